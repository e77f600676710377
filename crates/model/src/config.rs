//! The shape of a GPT: everything needed to build one, and nothing else.

use serde::{Deserialize, Serialize};

/// Model hyper-parameters, as they appear in the `[model]` section of a run config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GptConfig {
    /// Number of distinct tokens (rows of the embedding matrix). In a run config, 0 or
    /// absent means "as many as the tokenizer has".
    #[serde(default)]
    pub vocab_size: usize,
    /// Context length: the most tokens a query can look back over.
    pub block_size: usize,
    /// Number of residual blocks.
    pub n_layer: usize,
    /// Attention heads per block.
    pub n_head: usize,
    /// Width of the residual stream.
    pub n_embd: usize,
    /// Dropout probability on embeddings and residual branches.
    #[serde(default)]
    pub dropout: f64,
    /// Biases in the linear maps and LayerNorms.
    #[serde(default = "default_true")]
    pub bias: bool,
    /// Share the token embedding with the unembedding.
    #[serde(default = "default_true")]
    pub tie_embeddings: bool,
    /// The MLP's nonlinearity: `"gelu"` (exact, erf) or `"gelu_tanh"` (GPT-2's approximation,
    /// Hugging Face's `gelu_new`).
    #[serde(default)]
    pub activation: Activation,
    /// The ε every norm (LayerNorm or RMSNorm, blocks, final, queries and keys) adds to the
    /// variance or mean square (GPT-2's 1e-5 unless set).
    #[serde(default = "default_layer_norm_eps")]
    pub layer_norm_eps: f64,
    /// Where a token's position enters: `"learned"` (a position embedding added to the token
    /// embedding, GPT-2) or `"rope"` (queries and keys rotated by their position, no table).
    #[serde(default, skip_serializing_if = "is_default")]
    pub positions: Positions,
    /// RoPE's base: pair `i` of a head turns by `position · rope_base^(−2i/d_head)`.
    #[serde(
        default = "default_rope_base",
        skip_serializing_if = "is_default_rope_base"
    )]
    pub rope_base: f64,
    /// `"layer_norm"` (centre, then scale to unit variance) or `"rms_norm"` (scale to unit
    /// root mean square; no shift, whatever `bias` says).
    #[serde(default, skip_serializing_if = "is_default")]
    pub norm: NormKind,
    /// Whether norms carry a learned gain (nanochat's have no parameters at all).
    #[serde(default = "default_true", skip_serializing_if = "is_true")]
    pub norm_weight: bool,
    /// A norm right after the embedding, before the first block.
    #[serde(default, skip_serializing_if = "is_default")]
    pub embedding_norm: bool,
    /// RMS-normalise each head's queries and keys (before the rotation, as Qwen3 does; a
    /// rotation keeps the root mean square, so without a gain the order does not matter).
    #[serde(default, skip_serializing_if = "is_default")]
    pub qk_norm: bool,
    /// Logit soft-capping `c·tanh(z/c)`: logits stay inside (−c, c). 0 turns it off.
    #[serde(default, skip_serializing_if = "is_default")]
    pub logit_softcap: f64,
    /// How the weights start: `"gpt2"` (normal 0.02, residual projections scaled by 1/√(2L))
    /// or `"modern"` (nanochat's: uniform projections in, zero projections out, a unit-scale
    /// embedding and a near-zero head).
    #[serde(default, skip_serializing_if = "is_default")]
    pub init: Init,
}

/// Where positions enter the model.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Positions {
    #[default]
    Learned,
    Rope,
}

/// Which normalisation the blocks, the final norm and (for the gain) QK-norm use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NormKind {
    #[default]
    LayerNorm,
    RmsNorm,
}

/// The initialisation scheme.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Init {
    #[default]
    Gpt2,
    Modern,
}

/// The MLP's nonlinearity.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    /// `x·Φ(x)`, with the exact normal CDF.
    #[default]
    Gelu,
    /// `½x(1 + tanh(√(2/π)(x + 0.044715x³)))`, as GPT-2 was trained.
    GeluTanh,
    /// `max(0, x)²` (modded-nanogpt, nanochat).
    Relu2,
    /// `silu(x·W_gate) ⊙ (x·W_up)`: a gated MLP with a third matrix (Llama, Qwen).
    Swiglu,
}

fn is_default<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
}

fn is_true(value: &bool) -> bool {
    *value
}

/// RoPE's usual base (the RoFormer paper's, Llama's).
pub const ROPE_BASE: f64 = 10_000.0;

fn default_rope_base() -> f64 {
    ROPE_BASE
}

fn is_default_rope_base(value: &f64) -> bool {
    *value == ROPE_BASE
}

fn default_true() -> bool {
    true
}

fn default_layer_norm_eps() -> f64 {
    tinygpt_kernels::LAYER_NORM_EPSILON
}

/// A config value that cannot build a model; names the key and the fix.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("model.{key} = {value}: {reason}")]
pub struct ConfigError {
    pub key: &'static str,
    pub value: String,
    pub reason: String,
}

impl Default for GptConfig {
    /// The default run's shape (4 layers of 4 heads, 128 wide, context 64) with GPT-2's
    /// recipe; `vocab_size` 0 until a tokenizer says.
    fn default() -> Self {
        Self {
            vocab_size: 0,
            block_size: 64,
            n_layer: 4,
            n_head: 4,
            n_embd: 128,
            dropout: 0.0,
            bias: true,
            tie_embeddings: true,
            activation: Activation::default(),
            layer_norm_eps: default_layer_norm_eps(),
            positions: Positions::default(),
            rope_base: ROPE_BASE,
            norm: NormKind::default(),
            norm_weight: true,
            embedding_norm: false,
            qk_norm: false,
            logit_softcap: 0.0,
            init: Init::default(),
        }
    }
}

impl GptConfig {
    /// Size of one attention head: the query/key space each head works in.
    pub fn head_size(&self) -> usize {
        self.n_embd / self.n_head
    }

    /// Checks every key; the first bad one is returned as an error.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let sizes = [
            ("vocab_size", self.vocab_size),
            ("block_size", self.block_size),
            ("n_layer", self.n_layer),
            ("n_head", self.n_head),
            ("n_embd", self.n_embd),
        ];
        for (key, value) in sizes {
            if value == 0 {
                return Err(ConfigError {
                    key,
                    value: "0".into(),
                    reason: "must be greater than 0".into(),
                });
            }
        }
        if !self.n_embd.is_multiple_of(self.n_head) {
            return Err(ConfigError {
                key: "n_embd",
                value: self.n_embd.to_string(),
                reason: format!(
                    "must be divisible by n_head = {} (each head gets n_embd / n_head dimensions)",
                    self.n_head
                ),
            });
        }
        if crate::params::ParamCount::checked_total(self).is_none() {
            return Err(ConfigError {
                key: "n_embd",
                value: self.n_embd.to_string(),
                reason: format!(
                    "with n_layer = {}, vocab_size = {} and block_size = {} the model would have more than 2^64 parameters; use smaller sizes",
                    self.n_layer, self.vocab_size, self.block_size
                ),
            });
        }
        if !(self.layer_norm_eps > 0.0 && self.layer_norm_eps < 1.0) {
            return Err(ConfigError {
                key: "layer_norm_eps",
                value: self.layer_norm_eps.to_string(),
                reason: "must be in (0, 1), e.g. 1e-5 (GPT-2's)".into(),
            });
        }
        if self.positions == Positions::Rope && !self.head_size().is_multiple_of(2) {
            return Err(ConfigError {
                key: "positions",
                value: "\"rope\"".into(),
                reason: format!(
                    "rotates pairs of a head's dimensions, but n_embd / n_head = {} is odd; choose an even head size",
                    self.head_size()
                ),
            });
        }
        if !(self.rope_base > 1.0 && self.rope_base.is_finite()) {
            return Err(ConfigError {
                key: "rope_base",
                value: self.rope_base.to_string(),
                reason: "must be a finite number greater than 1, e.g. 10000".into(),
            });
        }
        if !(self.logit_softcap >= 0.0 && self.logit_softcap.is_finite()) {
            return Err(ConfigError {
                key: "logit_softcap",
                value: self.logit_softcap.to_string(),
                reason: "must be 0 (off) or a positive cap such as 15".into(),
            });
        }
        if self.init == Init::Modern && self.tie_embeddings {
            return Err(ConfigError {
                key: "init",
                value: "\"modern\"".into(),
                reason: "draws the embedding at scale 0.8 and the head near zero, so it needs tie_embeddings = false".into(),
            });
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(ConfigError {
                key: "dropout",
                value: self.dropout.to_string(),
                reason: "must be in [0, 1)".into(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The default shape (4 × 4 × 128, context 64) with a vocabulary.
    fn config() -> GptConfig {
        GptConfig {
            vocab_size: 65,
            ..GptConfig::default()
        }
    }

    #[test]
    fn valid_config_passes_and_gives_head_size() {
        assert_eq!(config().validate(), Ok(()));
        assert_eq!(config().head_size(), 32);
    }

    #[test]
    fn each_bad_value_names_its_key() {
        type Breaks = fn(&mut GptConfig);
        let cases: [(Breaks, &str); 4] = [
            (|c| c.n_head = 3, "n_embd"),
            (|c| c.block_size = 0, "block_size"),
            (|c| c.dropout = 1.0, "dropout"),
            (|c| c.dropout = -0.1, "dropout"),
        ];
        for (breaks, key) in cases {
            let mut c = config();
            breaks(&mut c);
            let err = c.validate().unwrap_err();
            assert_eq!(err.key, key);
            assert!(err.to_string().starts_with(&format!("model.{key} = ")));
        }
    }
}
