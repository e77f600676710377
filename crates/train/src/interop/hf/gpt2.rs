//! GPT-2's `config.json` (`GPT2Config`), written for a tinygpt model and read into one.

use std::path::Path;

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use serde_json::json;
use tinygpt_data::Tokenizer;
use tinygpt_model::{Activation, GptConfig};

/// What `transformers` calls each of tinygpt's activations.
pub fn activation_name(activation: Activation) -> &'static str {
    match activation {
        Activation::Gelu => "gelu",
        Activation::GeluTanh => "gelu_new",
        Activation::Relu2 => "relu2",
        Activation::Swiglu => "silu",
    }
}

/// `config.json` for `config`, with the tokenizer's end-of-text as BOS and EOS (explicitly
/// none for a character vocabulary: GPT-2's default, 50256, would name a token it lacks).
pub fn config_json(config: &GptConfig, tokenizer: &Tokenizer) -> serde_json::Value {
    let end = tokenizer.end_of_text();
    json!({
        "architectures": ["GPT2LMHeadModel"],
        "model_type": "gpt2",
        "vocab_size": config.vocab_size,
        "n_positions": config.block_size,
        "n_embd": config.n_embd,
        "n_layer": config.n_layer,
        "n_head": config.n_head,
        "n_inner": (config.mlp_width != 0).then_some(config.mlp_width),
        "activation_function": activation_name(config.activation),
        "layer_norm_epsilon": config.layer_norm_eps,
        "resid_pdrop": config.dropout,
        "embd_pdrop": config.dropout,
        "attn_pdrop": 0.0,
        "initializer_range": 0.02,
        "scale_attn_weights": true,
        "scale_attn_by_inverse_layer_idx": false,
        "reorder_and_upcast_attn": false,
        "add_cross_attention": false,
        "tie_word_embeddings": config.tie_embeddings,
        "bos_token_id": end,
        "eos_token_id": end,
        "use_cache": true,
        "dtype": "float32",
    })
}

/// The parts of a `transformers` GPT-2 `config.json` that decide the computation, with
/// `GPT2Config`'s defaults for keys a file leaves out.
#[derive(Debug, Deserialize)]
struct HfConfig {
    #[serde(default = "gpt2_vocab")]
    vocab_size: usize,
    #[serde(default = "gpt2_positions")]
    n_positions: usize,
    #[serde(default = "gpt2_width")]
    n_embd: usize,
    #[serde(default = "gpt2_depth")]
    n_layer: usize,
    #[serde(default = "gpt2_depth")]
    n_head: usize,
    n_inner: Option<usize>,
    #[serde(default = "gpt2_activation")]
    activation_function: String,
    #[serde(default = "gpt2_epsilon")]
    layer_norm_epsilon: f64,
    #[serde(default = "yes")]
    scale_attn_weights: bool,
    #[serde(default)]
    scale_attn_by_inverse_layer_idx: bool,
    #[serde(default)]
    add_cross_attention: bool,
    #[serde(default = "yes")]
    tie_word_embeddings: bool,
}

fn gpt2_vocab() -> usize {
    50257
}
fn gpt2_positions() -> usize {
    1024
}
fn gpt2_width() -> usize {
    768
}
fn gpt2_depth() -> usize {
    12
}
fn gpt2_activation() -> String {
    "gelu_new".into()
}
fn gpt2_epsilon() -> f64 {
    1e-5
}
fn yes() -> bool {
    true
}

/// The tinygpt model config for a `transformers` GPT-2 `config.json`, or the one reason it
/// cannot be.
pub fn model_config(json: &str, path: &Path) -> Result<GptConfig> {
    let at = path.display();
    let hf: HfConfig =
        serde_json::from_str(json).with_context(|| format!("{at}: not a model config"))?;
    let activation = match hf.activation_function.as_str() {
        "gelu" => Activation::Gelu,
        // Both are ½x(1 + tanh(√(2/π)(x + 0.044715x³))).
        "gelu_new" | "gelu_pytorch_tanh" => Activation::GeluTanh,
        "relu2" => Activation::Relu2,
        other => bail!(
            "{at}: activation_function {other:?} is not one tinygpt has: it computes \"gelu\" (erf), \"gelu_new\" (tanh) and \"relu2\""
        ),
    };
    if hf.n_inner == Some(0) {
        bail!("{at}: n_inner is 0: an MLP needs a hidden layer (null means 4 × n_embd)");
    }
    if hf.add_cross_attention {
        bail!("{at}: add_cross_attention is true: tinygpt's blocks have self-attention only");
    }
    if !hf.scale_attn_weights || hf.scale_attn_by_inverse_layer_idx {
        bail!(
            "{at}: attention scores scaled other than by 1/√head_size (scale_attn_weights false or scale_attn_by_inverse_layer_idx true): tinygpt scales by 1/√head_size only"
        );
    }
    let config = GptConfig {
        vocab_size: hf.vocab_size,
        block_size: hf.n_positions,
        n_layer: hf.n_layer,
        n_head: hf.n_head,
        n_embd: hf.n_embd,
        dropout: 0.0,
        bias: true,
        tie_embeddings: hf.tie_word_embeddings,
        activation,
        // GPT-2's null n_inner is 4 × n_embd, tinygpt's 0.
        mlp_width: hf
            .n_inner
            .filter(|&n| Some(n) != hf.n_embd.checked_mul(4))
            .unwrap_or(0),
        layer_norm_eps: hf.layer_norm_epsilon,
        ..GptConfig::default()
    };
    config.validate().with_context(|| at.to_string())?;
    Ok(config)
}
