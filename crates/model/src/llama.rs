//! The Llama family's tensor names and layouts (`LlamaForCausalLM`, `Qwen3ForCausalLM`,
//! `NanoChatForCausalLM` in `transformers`) ↔ tinygpt's.
//!
//! - Their linear maps are PyTorch `nn.Linear`s, `[d_out, d_in]`; tinygpt's (burn's) are
//!   `[d_in, d_out]`: every matrix is transposed, the embedding excepted.
//! - Rotary positions: tinygpt turns the pair (i, i + d/2) of each head by +θ, as Llama and
//!   Qwen3 do. NanoChat turns it by −θ; negating the second half of every head's query and key
//!   rows turns −θ into +θ (and commutes with a gain-free RMSNorm), so those rows are negated
//!   on the way in and out.
//! - A tinygpt norm without a gain exports as a gain of ones where the class has one.

use crate::architecture::Architecture;
use crate::config::{Activation, GptConfig};
use crate::tensor_set::Tensors;
use crate::weights::{NamedTensor, WeightsError};

/// tinygpt's name (under `blocks.{i}.`) ↔ the class's (under `model.layers.{i}.`) for each
/// linear map a block of `arch` has, with its shape `[d_in, d_out]` in tinygpt's layout.
fn block_maps(
    arch: Architecture,
    config: &GptConfig,
) -> Vec<(&'static str, &'static str, [usize; 2])> {
    let (c, kv, hidden) = (config.n_embd, config.kv_width(), config.mlp_hidden());
    let mut maps = vec![
        ("attn.query", "self_attn.q_proj", [c, c]),
        ("attn.key", "self_attn.k_proj", [c, kv]),
        ("attn.value", "self_attn.v_proj", [c, kv]),
        ("attn.output", "self_attn.o_proj", [c, c]),
    ];
    if arch == Architecture::NanoChat {
        maps.extend([
            ("mlp.up", "mlp.fc1", [c, hidden]),
            ("mlp.down", "mlp.fc2", [hidden, c]),
        ]);
    } else {
        maps.extend([
            ("mlp.gate", "mlp.gate_proj", [c, hidden]),
            ("mlp.up", "mlp.up_proj", [c, hidden]),
            ("mlp.down", "mlp.down_proj", [hidden, c]),
        ]);
    }
    maps
}

/// tinygpt's norm ↔ the class's gain, with its width, for the norms that carry one there
/// (NanoChat's carry none).
fn gains(arch: Architecture, config: &GptConfig) -> Vec<(String, String, usize)> {
    if arch == Architecture::NanoChat {
        return Vec::new();
    }
    let (c, d) = (config.n_embd, config.head_size());
    let mut gains = vec![("ln_f".to_string(), "model.norm.weight".to_string(), c)];
    for i in 0..config.n_layer {
        let (ours, theirs) = (format!("blocks.{i}"), format!("model.layers.{i}"));
        gains.push((
            format!("{ours}.ln_1"),
            format!("{theirs}.input_layernorm.weight"),
            c,
        ));
        gains.push((
            format!("{ours}.ln_2"),
            format!("{theirs}.post_attention_layernorm.weight"),
            c,
        ));
        if arch == Architecture::Qwen3 {
            gains.push((
                format!("{ours}.attn.query_norm"),
                format!("{theirs}.self_attn.q_norm.weight"),
                d,
            ));
            gains.push((
                format!("{ours}.attn.key_norm"),
                format!("{theirs}.self_attn.k_norm.weight"),
                d,
            ));
        }
    }
    gains
}

/// Negates rows `d/2..d` of every `d`-row head of a `[heads·d, d_in]` matrix (or `[heads·d]`
/// bias): NanoChat's rotation direction ↔ tinygpt's. Its own inverse.
fn flip_second_halves(t: &mut NamedTensor, d_head: usize) {
    let row = t.values.len() / t.shape[0];
    for (r, values) in t.values.chunks_exact_mut(row).enumerate() {
        if r % d_head >= d_head / 2 {
            values.iter_mut().for_each(|v| *v = -*v);
        }
    }
}

/// tinygpt's tensors (as [`crate::weights::module_tensors`] lists them) under `arch`'s names
/// and layouts, sorted by name, as `save_pretrained` writes them. `arch` must be what
/// [`Architecture::of`] says of `config`.
pub fn to_llama(
    tensors: Vec<NamedTensor>,
    config: &GptConfig,
    arch: Architecture,
) -> Result<Vec<NamedTensor>, WeightsError> {
    let mut ours = Tensors::new(tensors);
    let mut out = vec![
        ours.take("token_embedding.weight")?
            .renamed("model.embed_tokens.weight"),
    ];
    for (from, to, width) in gains(arch, config) {
        let gain = ours.take_or_ones(&format!("{from}.gamma"), width);
        out.push(gain.renamed(&to));
    }
    let d = config.head_size();
    for i in 0..config.n_layer {
        for (from, to, [_, d_out]) in block_maps(arch, config) {
            let at = format!("blocks.{i}.{from}");
            let mut weight = ours.take(&format!("{at}.weight"))?.transposed();
            let mut bias = match ours.has(&format!("{at}.bias")) {
                true => Some(ours.take_shaped(&format!("{at}.bias"), &[d_out])?),
                false => None,
            };
            if arch == Architecture::NanoChat && matches!(from, "attn.query" | "attn.key") {
                flip_second_halves(&mut weight, d);
                bias.iter_mut().for_each(|b| flip_second_halves(b, d));
            }
            let to = format!("model.layers.{i}.{to}");
            out.push(weight.renamed(&format!("{to}.weight")));
            out.extend(bias.map(|b| b.renamed(&format!("{to}.bias"))));
        }
    }
    out.extend(ours.take_unembedding(config.tie_embeddings)?);
    ours.finish_sorted(out)
}

/// `arch`'s tensors under tinygpt's names and layouts, for a model of `config` (as the
/// class's `config.json` maps onto tinygpt's switches). Every tensor's shape is checked
/// before it is touched; a missing or left-over one is an error.
pub fn from_llama(
    tensors: Vec<NamedTensor>,
    config: &GptConfig,
    arch: Architecture,
) -> Result<Vec<NamedTensor>, WeightsError> {
    let mut theirs = Tensors::new(tensors);
    let (c, v, d) = (config.n_embd, config.vocab_size, config.head_size());
    let mut out = vec![
        theirs
            .take_shaped("model.embed_tokens.weight", &[v, c])?
            .renamed("token_embedding.weight"),
    ];
    for (to, from, width) in gains(arch, config) {
        out.push(
            theirs
                .take_shaped(&from, &[width])?
                .renamed(&format!("{to}.gamma")),
        );
    }
    for i in 0..config.n_layer {
        for (to, from, [d_in, d_out]) in block_maps(arch, config) {
            let at = format!("model.layers.{i}.{from}");
            let mut weight = theirs.take_shaped(&format!("{at}.weight"), &[d_out, d_in])?;
            let mut bias = match config.bias {
                true => Some(theirs.take_shaped(&format!("{at}.bias"), &[d_out])?),
                false => None,
            };
            if arch == Architecture::NanoChat && matches!(to, "attn.query" | "attn.key") {
                flip_second_halves(&mut weight, d);
                bias.iter_mut().for_each(|b| flip_second_halves(b, d));
            }
            let to = format!("blocks.{i}.{to}");
            out.push(weight.transposed().renamed(&format!("{to}.weight")));
            out.extend(bias.map(|b| b.renamed(&format!("{to}.bias"))));
        }
    }
    let embedding = ("model.embed_tokens.weight", out[0].values.as_slice());
    let head = theirs.take_head("lm_head.weight", &[v, c], config.tie_embeddings, embedding)?;
    out.extend(head);
    theirs.finish_sorted(out)
}

/// The activation a Llama-family class's `hidden_act` names, if tinygpt has it.
pub fn activation(arch: Architecture, hidden_act: &str) -> Option<Activation> {
    match (arch, hidden_act) {
        (Architecture::Llama | Architecture::Qwen3, "silu" | "swish") => Some(Activation::Swiglu),
        (Architecture::NanoChat, "relu2") => Some(Activation::Relu2),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
