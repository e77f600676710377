//! The `llama` and `qwen3` architectures: the Hugging Face Llama-family tensors under
//! llama.cpp's names, matrices as `[d_out, d_in]` as transformers has them.
//!
//! llama.cpp's `llama` rotates adjacent pairs (dimensions 2i, 2i+1; its "normal" rope), while
//! transformers and tinygpt rotate halves (i, i + d/2): as `convert_hf_to_gguf.py` does, the
//! query and key rows of each head are interleaved so the same pairs turn. Its `qwen3` rotates
//! halves ("neox"), so those rows stay.

use anyhow::{Context, Result};
use tinygpt_model::architecture::Architecture;
use tinygpt_model::llama::to_llama;
use tinygpt_model::{GptConfig, NamedTensor};

use super::file::{Gguf, Value};

/// The keys past the common sizes: key/value heads, rope, the RMSNorm's ε.
pub(super) fn metadata(file: &mut Gguf, arch: &str, config: &GptConfig) -> Result<()> {
    let u32_of = |n: usize| u32::try_from(n).context("a dimension exceeds u32");
    let d = u32_of(config.head_size())?;
    file.put(
        &format!("{arch}.attention.head_count_kv"),
        Value::U32(u32_of(config.kv_heads())?),
    );
    file.put(&format!("{arch}.attention.key_length"), Value::U32(d));
    file.put(&format!("{arch}.attention.value_length"), Value::U32(d));
    file.put(&format!("{arch}.rope.dimension_count"), Value::U32(d));
    file.put(
        &format!("{arch}.rope.freq_base"),
        Value::F32(config.rope_base as f32),
    );
    file.put(
        &format!("{arch}.attention.layer_norm_rms_epsilon"),
        Value::F32(config.layer_norm_eps as f32),
    );
    file.put(
        &format!("{arch}.vocab_size"),
        Value::U32(u32_of(config.vocab_size)?),
    );
    Ok(())
}

/// tinygpt's tensors under llama.cpp's names and layouts for `arch` (Llama or Qwen3).
pub(super) fn tensors(
    tensors: Vec<NamedTensor>,
    config: &GptConfig,
    arch: Architecture,
) -> Result<Vec<NamedTensor>> {
    let d = config.head_size();
    let mut out = Vec::new();
    for t in to_llama(tensors, config, arch).context("the model's tensors")? {
        let name = tensor_name(&t.name).with_context(|| format!("unexpected tensor {}", t.name))?;
        let mut t = t.renamed(&name);
        let rotated = name.contains(".attn_q.") || name.contains(".attn_k.");
        if arch == Architecture::Llama && rotated {
            interleave_halves(&mut t, d);
        }
        out.push(t);
    }
    Ok(out)
}

/// llama.cpp's name for a Llama-family tensor.
fn tensor_name(hf: &str) -> Option<String> {
    let fixed = match hf {
        "model.embed_tokens.weight" => Some("token_embd.weight"),
        "model.norm.weight" => Some("output_norm.weight"),
        "lm_head.weight" => Some("output.weight"),
        _ => None,
    };
    if let Some(name) = fixed {
        return Some(name.into());
    }
    let (layer, part) = hf.strip_prefix("model.layers.")?.split_once('.')?;
    let (module, param) = part.rsplit_once('.')?;
    let module = match module {
        "input_layernorm" => "attn_norm",
        "self_attn.q_proj" => "attn_q",
        "self_attn.k_proj" => "attn_k",
        "self_attn.v_proj" => "attn_v",
        "self_attn.o_proj" => "attn_output",
        "self_attn.q_norm" => "attn_q_norm",
        "self_attn.k_norm" => "attn_k_norm",
        "post_attention_layernorm" => "ffn_norm",
        "mlp.gate_proj" => "ffn_gate",
        "mlp.up_proj" => "ffn_up",
        "mlp.down_proj" => "ffn_down",
        _ => return None,
    };
    Some(format!("blk.{layer}.{module}.{param}"))
}

/// Reorders the rows of every `d`-row head of a `[heads·d, …]` tensor from halves
/// (0, 1, …, d/2−1 | d/2, …, d−1) to pairs (0, d/2, 1, d/2+1, …): new row 2j + h is old row
/// h·d/2 + j.
fn interleave_halves(t: &mut NamedTensor, d: usize) {
    let row = t.values.len() / t.shape[0];
    let old = t.values.clone();
    for (head, rows) in t.values.chunks_exact_mut(d * row).enumerate() {
        for j in 0..d / 2 {
            for h in 0..2 {
                let from = (head * d + h * d / 2 + j) * row;
                let to = (2 * j + h) * row;
                rows[to..to + row].copy_from_slice(&old[from..from + row]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_llama_cpp() {
        let name = |hf| tensor_name(hf).unwrap();
        assert_eq!(
            name("model.layers.3.self_attn.k_norm.weight"),
            "blk.3.attn_k_norm.weight"
        );
        assert_eq!(
            name("model.layers.0.mlp.gate_proj.weight"),
            "blk.0.ffn_gate.weight"
        );
        assert_eq!(
            name("model.layers.1.self_attn.o_proj.bias"),
            "blk.1.attn_output.bias"
        );
        assert_eq!(name("lm_head.weight"), "output.weight");
        assert_eq!(tensor_name("model.layers.0.mlp.experts.0.weight"), None);
    }

    #[test]
    fn halves_become_adjacent_pairs_head_by_head() {
        // Two heads of size 4, one column: rows are their own numbers.
        let mut t = NamedTensor {
            name: "q".into(),
            shape: vec![8, 1],
            values: (0..8).map(|v| v as f32).collect(),
        };
        interleave_halves(&mut t, 4);
        assert_eq!(t.values, [0.0, 2.0, 1.0, 3.0, 4.0, 6.0, 5.0, 7.0]);
        // A bias (one value per row) moves the same way.
        let mut bias = NamedTensor {
            name: "b".into(),
            shape: vec![4],
            values: vec![10.0, 11.0, 12.0, 13.0],
        };
        interleave_halves(&mut bias, 4);
        assert_eq!(bias.values, [10.0, 12.0, 11.0, 13.0]);
    }
}
