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
    /// The ε every LayerNorm adds to the variance (GPT-2's 1e-5 unless set).
    #[serde(default = "default_layer_norm_eps")]
    pub layer_norm_eps: f64,
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

    fn config() -> GptConfig {
        GptConfig {
            vocab_size: 65,
            block_size: 64,
            n_layer: 4,
            n_head: 4,
            n_embd: 128,
            dropout: 0.0,
            bias: true,
            tie_embeddings: true,
            activation: Default::default(),
            layer_norm_eps: 1e-5,
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
