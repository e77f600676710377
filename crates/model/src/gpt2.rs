//! GPT-2's tensor names and layouts (Hugging Face `GPT2LMHeadModel`, OpenAI's checkpoints) ↔
//! tinygpt's.
//!
//! The architectures are the same; only the bookkeeping differs:
//! - GPT-2's `Conv1D` stores `[d_in, d_out]`, as tinygpt's linear maps do, so those weights
//!   move unchanged; `lm_head` is a PyTorch `nn.Linear` (`[d_out, d_in]`): transposed.
//! - `attn.c_attn` holds the query, key and value maps side by side (`[C, 3C]`, bias `[3C]`);
//!   tinygpt keeps three maps.
//! - GPT-2 always has biases: a model trained without them exports zeros (the same function).
//! - LayerNorm's scale and shift are `weight`/`bias` there, `gamma`/`beta` here.

use crate::config::GptConfig;
use crate::tensor_set::Tensors;
use crate::weights::{NamedTensor, WeightsError};

/// The prefix `GPT2LMHeadModel` puts before the transformer's tensors (`GPT2Model`, and OpenAI's
/// original checkpoints on the Hub, have none).
const PREFIX: &str = "transformer.";

/// tinygpt's tensors (as [`crate::weights::module_tensors`] lists them) under GPT-2's names
/// and layouts, sorted by name, as `GPT2LMHeadModel.save_pretrained` writes them.
pub fn to_gpt2(
    tensors: Vec<NamedTensor>,
    config: &GptConfig,
) -> Result<Vec<NamedTensor>, WeightsError> {
    let mut ours = Tensors::new(tensors);
    let c = config.n_embd;
    let mut out = vec![
        ours.take("token_embedding.weight")?
            .renamed("transformer.wte.weight"),
        ours.take("position_embedding.weight")?
            .renamed("transformer.wpe.weight"),
    ];
    let mut norm = |ours: &mut Tensors, from: &str, to: &str| -> Result<(), WeightsError> {
        let scale = ours.take(&format!("{from}.gamma"))?;
        let shift = ours.take_or_zeros(&format!("{from}.beta"), &[c]);
        out.push(scale.renamed(&format!("{to}.weight")));
        out.push(shift.renamed(&format!("{to}.bias")));
        Ok(())
    };
    for i in 0..config.n_layer {
        let (ours_at, theirs_at) = (format!("blocks.{i}"), format!("transformer.h.{i}"));
        norm(
            &mut ours,
            &format!("{ours_at}.ln_1"),
            &format!("{theirs_at}.ln_1"),
        )?;
        norm(
            &mut ours,
            &format!("{ours_at}.ln_2"),
            &format!("{theirs_at}.ln_2"),
        )?;
    }
    norm(&mut ours, "ln_f", "transformer.ln_f")?;
    for i in 0..config.n_layer {
        let (ours_at, theirs_at) = (format!("blocks.{i}"), format!("transformer.h.{i}"));
        let [query, key, value] =
            ["query", "key", "value"].map(|m| ours.take_linear(&format!("{ours_at}.attn.{m}"), c));
        let (query, key, value) = (query?, key?, value?);
        out.push(NamedTensor::side_by_side(
            [&query.0, &key.0, &value.0],
            &format!("{theirs_at}.attn.c_attn.weight"),
        ));
        out.push(NamedTensor::side_by_side(
            [&query.1, &key.1, &value.1],
            &format!("{theirs_at}.attn.c_attn.bias"),
        ));
        for (from, to) in [
            ("attn.output", "attn.c_proj"),
            ("mlp.up", "mlp.c_fc"),
            ("mlp.down", "mlp.c_proj"),
        ] {
            let d_out = ours.width(&format!("{ours_at}.{from}.weight"))?;
            let (weight, bias) = ours.take_linear(&format!("{ours_at}.{from}"), d_out)?;
            out.push(weight.renamed(&format!("{theirs_at}.{to}.weight")));
            out.push(bias.renamed(&format!("{theirs_at}.{to}.bias")));
        }
    }
    out.extend(ours.take_unembedding(config.tie_embeddings)?);
    ours.finish_sorted(out)
}

/// GPT-2's tensors (with or without the `transformer.` prefix) under tinygpt's names and
/// layouts, for a model of `config` (which must have `bias = true`: GPT-2 always has biases).
/// The causal-mask buffers old checkpoints carry (`attn.bias`, `attn.masked_bias`) are dropped;
/// any other tensor left over is an error, as is a missing one.
pub fn from_gpt2(
    tensors: Vec<NamedTensor>,
    config: &GptConfig,
) -> Result<Vec<NamedTensor>, WeightsError> {
    let mut theirs = Tensors::new(tensors.into_iter().filter_map(|t| {
        let name = t.name.strip_prefix(PREFIX).unwrap_or(&t.name).to_string();
        let mask_buffer = name.ends_with(".attn.bias") || name.ends_with(".attn.masked_bias");
        (!mask_buffer).then(|| t.renamed(&name))
    }));
    // Every tensor's shape is checked before it is touched (split, transposed, cropped): a
    // damaged or hostile file is refused by name, never a panic.
    let (c, v, hidden) = (config.n_embd, config.vocab_size, config.mlp_hidden());
    let mut out = vec![
        theirs
            .take_shaped("wte.weight", &[v, c])?
            .renamed("token_embedding.weight"),
        theirs
            .take_shaped("wpe.weight", &[config.block_size, c])?
            .renamed("position_embedding.weight"),
    ];
    let mut norm = |theirs: &mut Tensors, from: &str, to: &str| -> Result<(), WeightsError> {
        for (part, ours) in [("weight", "gamma"), ("bias", "beta")] {
            out.push(
                theirs
                    .take_shaped(&format!("{from}.{part}"), &[c])?
                    .renamed(&format!("{to}.{ours}")),
            );
        }
        Ok(())
    };
    for i in 0..config.n_layer {
        norm(
            &mut theirs,
            &format!("h.{i}.ln_1"),
            &format!("blocks.{i}.ln_1"),
        )?;
        norm(
            &mut theirs,
            &format!("h.{i}.ln_2"),
            &format!("blocks.{i}.ln_2"),
        )?;
    }
    norm(&mut theirs, "ln_f", "ln_f")?;
    for i in 0..config.n_layer {
        let (theirs_at, ours_at) = (format!("h.{i}"), format!("blocks.{i}"));
        let weight = theirs.take_shaped(&format!("{theirs_at}.attn.c_attn.weight"), &[c, 3 * c])?;
        let bias = theirs.take_shaped(&format!("{theirs_at}.attn.c_attn.bias"), &[3 * c])?;
        let weights = weight.split_side_by_side(3);
        let biases = bias.split_side_by_side(3);
        for ((map, w), b) in ["query", "key", "value"].iter().zip(weights).zip(biases) {
            out.push(w.renamed(&format!("{ours_at}.attn.{map}.weight")));
            out.push(b.renamed(&format!("{ours_at}.attn.{map}.bias")));
        }
        // Conv1D weights are [in, out], as burn's.
        for (from, to, inputs, outputs) in [
            ("attn.c_proj", "attn.output", c, c),
            ("mlp.c_fc", "mlp.up", c, hidden),
            ("mlp.c_proj", "mlp.down", hidden, c),
        ] {
            for (part, shape) in [("weight", vec![inputs, outputs]), ("bias", vec![outputs])] {
                let t = theirs.take_shaped(&format!("{theirs_at}.{from}.{part}"), &shape)?;
                out.push(t.renamed(&format!("{ours_at}.{to}.{part}")));
            }
        }
    }
    let embedding = ("wte.weight", out[0].values.as_slice());
    let head = theirs.take_head("lm_head.weight", &[v, c], config.tie_embeddings, embedding)?;
    out.extend(head);
    theirs.finish_sorted(out)
}

#[cfg(test)]
mod tests;
