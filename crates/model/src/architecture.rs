//! Which architecture of the wider world a tinygpt model *is*: the Hugging Face class (and
//! llama.cpp architecture) that computes exactly the same function, decided from the config's
//! switches in this one place.
//!
//! | switches | class |
//! | --- | --- |
//! | learned positions, LayerNorm, GELU or ReLU², full attention | `GPT2LMHeadModel` |
//! | RoPE, RMSNorm, SwiGLU | `LlamaForCausalLM` |
//! | the same with QK-norm (before the rotation), no biases | `Qwen3ForCausalLM` |
//! | RoPE, parameter-free RMSNorm also after the embedding, QK-norm, ReLU², no biases, optional soft-cap | `NanoChatForCausalLM` |
//!
//! A norm without a gain is the same function as one whose gain is all ones, so a model with
//! `norm_weight = false` still exports as a Llama or Qwen3 (with ones written for the gains).

use crate::config::{Activation, GptConfig, NormKind, Positions};

/// A model family that other tools run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Architecture {
    Gpt2,
    Llama,
    Qwen3,
    NanoChat,
}

/// Why a model has no architecture: the first switch that blocks the nearest one.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error(
    "model.{switch}: no architecture tinygpt exports computes that (the nearest, {class}: {fix})"
)]
pub struct Unrepresentable {
    /// `KEY = VALUE`, as a config would say it.
    pub switch: String,
    /// The class the model came closest to.
    pub class: &'static str,
    /// What would make the model exportable.
    pub fix: String,
}

impl Architecture {
    pub const ALL: [Self; 4] = [Self::Gpt2, Self::Llama, Self::Qwen3, Self::NanoChat];

    /// The `transformers` class (`architectures` in `config.json`).
    pub fn hf_class(self) -> &'static str {
        match self {
            Self::Gpt2 => "GPT2LMHeadModel",
            Self::Llama => "LlamaForCausalLM",
            Self::Qwen3 => "Qwen3ForCausalLM",
            Self::NanoChat => "NanoChatForCausalLM",
        }
    }

    /// `model_type` in `config.json`.
    pub fn model_type(self) -> &'static str {
        match self {
            Self::Gpt2 => "gpt2",
            Self::Llama => "llama",
            Self::Qwen3 => "qwen3",
            Self::NanoChat => "nanochat",
        }
    }

    pub fn from_model_type(model_type: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.model_type() == model_type)
    }

    /// llama.cpp's GGUF architecture, where llama.cpp has one (it has no NanoChat).
    pub fn gguf_arch(self) -> Option<&'static str> {
        match self {
            Self::Gpt2 => Some("gpt2"),
            Self::Llama => Some("llama"),
            Self::Qwen3 => Some("qwen3"),
            Self::NanoChat => None,
        }
    }

    /// The architecture that computes exactly what `config` does, or the switch that blocks
    /// the nearest one.
    pub fn of(config: &GptConfig) -> Result<Self, Unrepresentable> {
        let nearest = Self::nearest(config);
        match nearest.blockers(config).into_iter().next() {
            None => Ok(nearest),
            Some((switch, fix)) => Err(Unrepresentable {
                switch,
                class: nearest.hf_class(),
                fix: fix.into(),
            }),
        }
    }

    /// The family a model belongs to by its positions and MLP: learned positions are GPT-2's;
    /// with RoPE, SwiGLU is Llama's (Qwen3's with QK-norm) and ReLU² NanoChat's.
    fn nearest(config: &GptConfig) -> Self {
        match (config.positions, config.activation) {
            (Positions::Learned, _) => Self::Gpt2,
            (Positions::Rope, Activation::Relu2) => Self::NanoChat,
            (Positions::Rope, _) if config.qk_norm => Self::Qwen3,
            (Positions::Rope, _) => Self::Llama,
        }
    }

    /// Every switch of `config` this architecture lacks, with its fix, in config order.
    fn blockers(self, config: &GptConfig) -> Vec<(String, &'static str)> {
        let c = config;
        let rms = c.norm == NormKind::RmsNorm;
        let gated = c.activation == Activation::Swiglu;
        let capped = c.logit_softcap > 0.0;
        let grouped = c.kv_heads() != c.n_head;
        let activation = format!("activation = \"{}\"", activation_name(c.activation));
        // A window as long as the context hides nothing.
        let windowed = c.attention_window > 0 && c.attention_window < c.block_size;
        let mut checks: Vec<(bool, &str, &str)> = match self {
            Self::Gpt2 => vec![
                (rms, "norm = \"rms_norm\"", "GPT-2 has LayerNorm"),
                (
                    !c.norm_weight,
                    "norm_weight = false",
                    "GPT-2's norms have gains",
                ),
                (
                    c.embedding_norm,
                    "embedding_norm = true",
                    "drop the embedding norm",
                ),
                (c.qk_norm, "qk_norm = true", "drop QK-norm"),
                (capped, "logit_softcap > 0", "set model.logit_softcap = 0"),
                (grouped, "n_kv_head < n_head", "set model.n_kv_head = 0"),
                (
                    gated,
                    "activation = \"swiglu\"",
                    "with RoPE and RMSNorm it is a Llama",
                ),
            ],
            Self::Llama | Self::Qwen3 => vec![
                (
                    !rms,
                    "norm = \"layer_norm\"",
                    "Llama and Qwen3 use norm = \"rms_norm\"",
                ),
                (
                    !gated,
                    &activation,
                    "Llama and Qwen3 use activation = \"swiglu\", NanoChat \"relu2\"",
                ),
                (
                    c.embedding_norm,
                    "embedding_norm = true",
                    "only NanoChat has one (with ReLU²)",
                ),
                (
                    capped,
                    "logit_softcap > 0",
                    "only NanoChat soft-caps (with ReLU²); set model.logit_softcap = 0",
                ),
                (
                    self == Self::Qwen3 && c.bias,
                    "bias = true",
                    "Qwen3 has no biases; Llama (no QK-norm) has",
                ),
            ],
            Self::NanoChat => vec![
                (
                    !rms,
                    "norm = \"layer_norm\"",
                    "NanoChat uses norm = \"rms_norm\"",
                ),
                (
                    c.norm_weight,
                    "norm_weight = true",
                    "NanoChat's norms have no gains",
                ),
                (
                    !c.embedding_norm,
                    "embedding_norm = false",
                    "NanoChat has a norm after the embedding",
                ),
                (
                    !c.qk_norm,
                    "qk_norm = false",
                    "NanoChat normalises queries and keys",
                ),
                (c.bias, "bias = true", "NanoChat has no biases"),
            ],
        };
        checks.push((
            windowed,
            "attention_window < block_size",
            "the exported classes attend to the whole context; set model.attention_window = 0",
        ));
        checks
            .into_iter()
            .filter(|(blocks, ..)| *blocks)
            .map(|(_, switch, fix)| (switch.to_string(), fix))
            .collect()
    }
}

/// The activation as a config names it.
fn activation_name(activation: Activation) -> &'static str {
    match activation {
        Activation::Gelu => "gelu",
        Activation::GeluTanh => "gelu_tanh",
        Activation::Relu2 => "relu2",
        Activation::Swiglu => "swiglu",
    }
}

#[cfg(test)]
mod tests;
