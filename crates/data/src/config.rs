//! The `[data]` section of a run config: which corpus, which tokenizer, how much to hold out.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::DataError;
use crate::bpe::MIN_BPE_VOCAB;

/// The largest BPE vocabulary tinygpt trains: far past what a tiny model uses, and far below
/// the u32 token ids' limit.
pub const MAX_BPE_VOCAB: usize = 1 << 24;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    /// UTF-8 text file, relative to the working directory.
    pub corpus: PathBuf,
    /// `"char"` (one token per distinct character), `"bpe"` (a byte-level BPE trained on the
    /// train split) or the path of a `tokenizer.json`.
    #[serde(default = "default_tokenizer")]
    pub tokenizer: String,
    /// Vocabulary size of a trained BPE (at least 257).
    #[serde(default = "default_bpe_vocab")]
    pub vocab_size: usize,
    /// The last `val_fraction` of the tokens are held out for validation.
    #[serde(default = "default_val_fraction")]
    pub val_fraction: f64,
    /// A trained BPE learns from at most this many bytes of the train split (evenly spaced
    /// windows of it when the split is larger): its merges settle long before gigabytes.
    #[serde(default = "default_bpe_sample_bytes")]
    pub bpe_sample_bytes: usize,
}

fn default_tokenizer() -> String {
    "char".into()
}

fn default_bpe_vocab() -> usize {
    1024
}

fn default_val_fraction() -> f64 {
    0.1
}

fn default_bpe_sample_bytes() -> usize {
    256_000_000
}

impl DataConfig {
    /// Range checks the types alone do not express.
    pub fn validate(&self) -> Result<(), DataError> {
        if self.tokenizer == "bpe" && self.vocab_size > MAX_BPE_VOCAB {
            return Err(DataError::Config(format!(
                "data.vocab_size = {}: at most {MAX_BPE_VOCAB} tokens for a trained BPE",
                self.vocab_size
            )));
        }
        if self.tokenizer == "bpe" && self.vocab_size < MIN_BPE_VOCAB {
            return Err(DataError::BpeVocabTooSmall(self.vocab_size));
        }
        if self.bpe_sample_bytes < 1 << 20 {
            return Err(DataError::Config(format!(
                "data.bpe_sample_bytes = {}: give a BPE at least 1 MB (1048576 bytes) to learn from",
                self.bpe_sample_bytes
            )));
        }
        Ok(())
    }
}
