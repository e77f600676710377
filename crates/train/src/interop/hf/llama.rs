//! The Llama family's `config.json` (`LlamaConfig`, `Qwen3Config`, `NanoChatConfig` in
//! `transformers` 5), written for a tinygpt model and read into one, refusing in one line
//! what tinygpt cannot compute (rope scaling, sliding windows, experts, a head size other
//! than `hidden_size / num_attention_heads`, biases on only some maps).

use std::path::Path;

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use serde_json::json;
use tinygpt_data::Tokenizer;
use tinygpt_model::GptConfig;
use tinygpt_model::architecture::Architecture;
use tinygpt_model::config::{NormKind, Positions};

/// `config.json` for `config`, a model of `arch` (Llama, Qwen3 or NanoChat).
pub fn config_json(
    config: &GptConfig,
    arch: Architecture,
    tokenizer: &Tokenizer,
) -> serde_json::Value {
    let end = tokenizer.end_of_text();
    let mut json = json!({
        "architectures": [arch.hf_class()],
        "model_type": arch.model_type(),
        "vocab_size": config.vocab_size,
        "hidden_size": config.n_embd,
        "intermediate_size": config.mlp_hidden(),
        "num_hidden_layers": config.n_layer,
        "num_attention_heads": config.n_head,
        "num_key_value_heads": config.kv_heads(),
        "max_position_embeddings": config.block_size,
        "hidden_act": if arch == Architecture::NanoChat { "relu2" } else { "silu" },
        "rms_norm_eps": config.layer_norm_eps,
        "rope_parameters": {"rope_type": "default", "rope_theta": config.rope_base},
        // transformers 4.x reads the base from here.
        "rope_theta": config.rope_base,
        "attention_bias": config.bias,
        "attention_dropout": 0.0,
        "tie_word_embeddings": config.tie_embeddings,
        "initializer_range": 0.02,
        "bos_token_id": end,
        "eos_token_id": end,
        "pad_token_id": null,
        "use_cache": true,
        "dtype": "float32",
    });
    let extra = match arch {
        Architecture::Llama => json!({
            "head_dim": config.head_size(),
            "mlp_bias": config.bias,
            "pretraining_tp": 1,
        }),
        Architecture::Qwen3 => json!({
            "head_dim": config.head_size(),
            "use_sliding_window": false,
            "sliding_window": null,
            "max_window_layers": config.n_layer,
            "layer_types": vec!["full_attention"; config.n_layer],
        }),
        Architecture::NanoChat => json!({
            "final_logit_softcapping": (config.logit_softcap > 0.0).then_some(config.logit_softcap),
        }),
        Architecture::Gpt2 => unreachable!("GPT-2 has its own config"),
    };
    if let serde_json::Value::Object(extra) = extra {
        for (key, value) in extra {
            json[key] = value;
        }
    }
    json
}

/// The parts of a Llama-family `config.json` that decide the computation, with the classes'
/// defaults for keys a file leaves out (the sizes have none worth guessing: they are required).
#[derive(Debug, Deserialize)]
struct HfConfig {
    vocab_size: usize,
    hidden_size: usize,
    intermediate_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    num_key_value_heads: Option<usize>,
    head_dim: Option<usize>,
    #[serde(default = "default_positions")]
    max_position_embeddings: usize,
    #[serde(default = "silu")]
    hidden_act: String,
    #[serde(default = "default_epsilon")]
    rms_norm_eps: f64,
    rope_parameters: Option<RopeParameters>,
    rope_theta: Option<f64>,
    rope_scaling: Option<RopeParameters>,
    #[serde(default)]
    attention_bias: bool,
    #[serde(default)]
    mlp_bias: bool,
    tie_word_embeddings: Option<bool>,
    #[serde(default)]
    use_sliding_window: bool,
    layer_types: Option<Vec<String>>,
    /// NanoChat's soft-cap: absent means its default, 15; null means none.
    #[serde(default = "nanochat_softcap")]
    final_logit_softcapping: Option<f64>,
    num_experts: Option<usize>,
    num_local_experts: Option<usize>,
}

#[derive(Debug, Deserialize)]
struct RopeParameters {
    #[serde(default = "default_rope", alias = "type")]
    rope_type: String,
    rope_theta: Option<f64>,
    partial_rotary_factor: Option<f64>,
}

fn default_positions() -> usize {
    2048
}
fn silu() -> String {
    "silu".into()
}
fn default_epsilon() -> f64 {
    1e-6
}
fn default_rope() -> String {
    "default".into()
}
fn nanochat_softcap() -> Option<f64> {
    Some(15.0)
}

/// The tinygpt model config for a Llama-family `config.json` of `arch`, or the one reason it
/// cannot be.
pub fn model_config(json: &str, arch: Architecture, path: &Path) -> Result<GptConfig> {
    let at = path.display();
    let hf: HfConfig = serde_json::from_str(json)
        .with_context(|| format!("{at}: not a {} config", arch.hf_class()))?;
    if hf
        .num_experts
        .or(hf.num_local_experts)
        .is_some_and(|n| n > 0)
    {
        bail!("{at}: a mixture of experts: tinygpt's blocks have one dense MLP each");
    }
    let Some(activation) = tinygpt_model::llama::activation(arch, &hf.hidden_act) else {
        let expected = if arch == Architecture::NanoChat {
            "relu2"
        } else {
            "silu"
        };
        bail!(
            "{at}: hidden_act {:?}: tinygpt computes {} with {expected:?} only",
            hf.hidden_act,
            arch.hf_class()
        );
    };
    let rope = hf.rope_parameters.as_ref().or(hf.rope_scaling.as_ref());
    if let Some(rope) = rope {
        if rope.rope_type != "default" {
            bail!(
                "{at}: rope_type {:?}: tinygpt rotates by the plain angles (rope_type \"default\") only, with no scaling",
                rope.rope_type
            );
        }
        if rope.partial_rotary_factor.is_some_and(|f| f != 1.0) {
            bail!("{at}: partial_rotary_factor: tinygpt rotates every dimension of a head");
        }
    }
    let rope_base = rope
        .and_then(|r| r.rope_theta)
        .or(hf.rope_theta)
        .unwrap_or(tinygpt_model::config::ROPE_BASE);
    let heads = hf.num_attention_heads;
    let head_size = hf.hidden_size.checked_div(heads).unwrap_or(0);
    if let Some(d) = hf.head_dim.filter(|&d| d != head_size) {
        bail!(
            "{at}: head_dim {d} is not hidden_size / num_attention_heads ({head_size}): tinygpt's heads split the residual width"
        );
    }
    let sliding = hf.use_sliding_window
        || hf
            .layer_types
            .iter()
            .flatten()
            .any(|t| t != "full_attention");
    if sliding {
        bail!("{at}: sliding-window attention: tinygpt's layers attend over the full context");
    }
    let bias = hf.attention_bias;
    let mlp_bias = arch == Architecture::Llama && hf.mlp_bias;
    if bias != mlp_bias {
        bail!(
            "{at}: attention_bias {bias} but mlp_bias {mlp_bias}: tinygpt's linear maps have biases all or none"
        );
    }
    if hf.intermediate_size == 0 {
        bail!("{at}: intermediate_size is 0: an MLP needs a hidden layer");
    }
    let kv_heads = hf.num_key_value_heads.unwrap_or(heads);
    let softcap = match arch {
        Architecture::NanoChat => hf.final_logit_softcapping.unwrap_or(0.0),
        _ => 0.0,
    };
    let nanochat = arch == Architecture::NanoChat;
    let config = GptConfig {
        vocab_size: hf.vocab_size,
        block_size: hf.max_position_embeddings,
        n_layer: hf.num_hidden_layers,
        n_head: heads,
        n_embd: hf.hidden_size,
        // Canonical: 0 means as many as the queries.
        n_kv_head: if kv_heads == heads { 0 } else { kv_heads },
        mlp_width: if Some(hf.intermediate_size) == hf.hidden_size.checked_mul(4) {
            0
        } else {
            hf.intermediate_size
        },
        dropout: 0.0,
        bias,
        tie_embeddings: hf.tie_word_embeddings.unwrap_or(false),
        activation,
        layer_norm_eps: hf.rms_norm_eps,
        positions: Positions::Rope,
        rope_base,
        norm: NormKind::RmsNorm,
        norm_weight: !nanochat,
        embedding_norm: nanochat,
        qk_norm: arch != Architecture::Llama,
        logit_softcap: softcap,
        ..GptConfig::default()
    };
    config.validate().with_context(|| at.to_string())?;
    Ok(config)
}
