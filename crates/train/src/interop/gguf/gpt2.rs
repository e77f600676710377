//! The `gpt2` architecture's tensors: GPT-2's Hugging Face tensors under llama.cpp's names,
//! each matrix as `[d_out, d_in]`.

use anyhow::{Context, Result, bail};
use tinygpt_model::gpt2::to_gpt2;
use tinygpt_model::{GptConfig, NamedTensor};

/// tinygpt's tensors under llama.cpp's `gpt2` names and layouts.
pub(super) fn tensors(tensors: Vec<NamedTensor>, config: &GptConfig) -> Result<Vec<NamedTensor>> {
    let mut out = Vec::new();
    for t in to_gpt2(tensors, config).context("the model's tensors")? {
        let name = t.name.strip_prefix("transformer.").unwrap_or(&t.name);
        let (gguf_name, transpose) = tensor_name(name)?;
        let t = if transpose { t.transposed() } else { t };
        out.push(t.renamed(&gguf_name));
    }
    Ok(out)
}

/// The GGUF name for a GPT-2 tensor, and whether its `Conv1D` layout `[d_in, d_out]` must
/// become the `[d_out, d_in]` of llama.cpp's matrices.
fn tensor_name(gpt2: &str) -> Result<(String, bool)> {
    let fixed = match gpt2 {
        "wte.weight" => Some("token_embd.weight"),
        "wpe.weight" => Some("position_embd.weight"),
        "ln_f.weight" => Some("output_norm.weight"),
        "ln_f.bias" => Some("output_norm.bias"),
        "lm_head.weight" => Some("output.weight"),
        _ => None,
    };
    if let Some(name) = fixed {
        return Ok((name.into(), false));
    }
    let rest = gpt2
        .strip_prefix("h.")
        .context(format!("unexpected {gpt2}"))?;
    let (layer, part) = rest.split_once('.').context(format!("unexpected {gpt2}"))?;
    let (module, param) = part
        .rsplit_once('.')
        .context(format!("unexpected {gpt2}"))?;
    let module = match module {
        "ln_1" => "attn_norm",
        "attn.c_attn" => "attn_qkv",
        "attn.c_proj" => "attn_output",
        "ln_2" => "ffn_norm",
        "mlp.c_fc" => "ffn_up",
        "mlp.c_proj" => "ffn_down",
        _ => bail!("unexpected tensor {gpt2}"),
    };
    let transpose = param == "weight" && !module.ends_with("norm");
    Ok((format!("blk.{layer}.{module}.{param}"), transpose))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tensor_names_and_transposes() {
        assert_eq!(
            tensor_name("h.3.attn.c_attn.weight").unwrap(),
            ("blk.3.attn_qkv.weight".into(), true)
        );
        assert_eq!(
            tensor_name("h.0.ln_2.bias").unwrap(),
            ("blk.0.ffn_norm.bias".into(), false)
        );
        assert_eq!(
            tensor_name("h.1.mlp.c_proj.bias").unwrap(),
            ("blk.1.ffn_down.bias".into(), false)
        );
        assert_eq!(
            tensor_name("lm_head.weight").unwrap(),
            ("output.weight".into(), false)
        );
        assert!(tensor_name("h.0.crossattention.q_attn.weight").is_err());
    }
}
