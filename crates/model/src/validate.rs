//! What a config must satisfy to build a model: every key in range, and a parameter count
//! that fits (counted by [`ParamCount`] from the config alone).

use crate::config::{GptConfig, Init, Positions};
use crate::params::ParamCount;

/// A config value that cannot build a model; names the key and the fix.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("model.{key} = {value}: {reason}")]
pub struct ConfigError {
    pub key: &'static str,
    pub value: String,
    pub reason: String,
}

impl GptConfig {
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
        if ParamCount::checked_total(self).is_none() {
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
        if self.n_kv_head > self.n_head || !self.n_head.is_multiple_of(self.kv_heads()) {
            return Err(ConfigError {
                key: "n_kv_head",
                value: self.n_kv_head.to_string(),
                reason: format!(
                    "must divide n_head = {} (each key/value head serves n_head / n_kv_head query heads; 0 means n_head)",
                    self.n_head
                ),
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
        if self.attention_window > self.block_size {
            return Err(ConfigError {
                key: "attention_window",
                value: self.attention_window.to_string(),
                reason: format!(
                    "is longer than the context, block_size = {}; use at most that (or 0 for full attention)",
                    self.block_size
                ),
            });
        }
        let pattern = &self.window_pattern;
        if pattern.chars().any(|c| c != 'S' && c != 'L') {
            return Err(ConfigError {
                key: "window_pattern",
                value: format!("{pattern:?}"),
                reason:
                    "takes only the letters S (the window) and L (full attention), e.g. \"SSSL\""
                        .into(),
            });
        }
        if !pattern.is_empty() && self.attention_window == 0 {
            return Err(ConfigError {
                key: "window_pattern",
                value: format!("{pattern:?}"),
                reason:
                    "names windowed layers, but attention_window is 0; set attention_window too"
                        .into(),
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
    fn a_window_pattern_names_each_layer_and_leaves_the_last_one_full() {
        let windowed = |pattern: &str, n_layer: usize| {
            let c = GptConfig {
                attention_window: 16,
                window_pattern: pattern.into(),
                n_layer,
                ..config()
            };
            assert_eq!(c.validate(), Ok(()));
            let windows: Vec<usize> = (0..n_layer).map(|l| c.layer_window(l)).collect();
            let short = windows.iter().filter(|&&w| w > 0).count();
            assert_eq!(
                c.windowed_layers(),
                short,
                "{pattern:?} over {n_layer} layers"
            );
            windows
        };
        assert_eq!(windowed("", 3), [16, 16, 16]);
        assert_eq!(windowed("SSSL", 6), [16, 16, 16, 0, 16, 0]);
        assert_eq!(windowed("SL", 5), [16, 0, 16, 0, 0]);
        assert_eq!(config().layer_window(0), 0);
    }

    #[test]
    fn each_bad_value_names_its_key() {
        type Breaks = fn(&mut GptConfig);
        let cases: [(Breaks, &str); 7] = [
            (|c| c.attention_window = 65, "attention_window"),
            (|c| c.window_pattern = "SSxL".into(), "window_pattern"),
            (|c| c.window_pattern = "SSSL".into(), "window_pattern"),
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
