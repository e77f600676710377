//! The `[data]` section of a run config: which corpus, which tokenizer, how much to hold out.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::DataError;

/// The smallest BPE vocabulary: 256 byte tokens plus the end-of-text token.
pub const MIN_BPE_VOCAB: usize = 257;

/// The largest BPE vocabulary tinygpt trains: far past what a tiny model uses, and far below
/// the u32 token ids' limit.
pub const MAX_BPE_VOCAB: usize = 1 << 24;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    /// A file, a directory (its `*.txt` and `*.md` files, recursively), a glob, or a list of
    /// these; paths relative to the working directory.
    pub corpus: CorpusSpec,
    /// `"text"`, `"jsonl"` or `"parquet"`; guessed from each file's extension when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<Format>,
    /// The field (JSONL) or column (Parquet) holding each document's text.
    #[serde(
        default = "default_text_field",
        skip_serializing_if = "is_default_text_field"
    )]
    pub text_field: String,
    /// Validation documents from these files instead of a `val_fraction` of the corpus's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub val_corpus: Option<CorpusSpec>,
    /// Count and skip documents that cannot be read (bad JSON, no text field, not UTF-8)
    /// instead of stopping at the first.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub skip_bad_documents: bool,
    /// `"char"` (one token per distinct character), `"bpe"` (a byte-level BPE trained on the
    /// train split) or the path of a `tokenizer.json`.
    #[serde(default = "default_tokenizer")]
    pub tokenizer: String,
    /// Vocabulary size of a trained BPE (at least 257).
    #[serde(default = "default_bpe_vocab")]
    pub vocab_size: usize,
    /// Held out for validation: the last `val_fraction` of a one-file corpus's text, or that
    /// fraction of a many-document corpus's documents (whole ones, chosen from the seed).
    #[serde(default = "default_val_fraction")]
    pub val_fraction: f64,
    /// A trained BPE learns from at most this many bytes of the train split (evenly spaced
    /// windows of it when the split is larger): its merges settle long before gigabytes.
    #[serde(default = "default_bpe_sample_bytes")]
    pub bpe_sample_bytes: usize,
}

/// Where a corpus's documents are: one path, directory or glob, or a list of them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum CorpusSpec {
    One(PathBuf),
    Many(Vec<PathBuf>),
}

impl CorpusSpec {
    pub fn entries(&self) -> &[PathBuf] {
        match self {
            CorpusSpec::One(path) => std::slice::from_ref(path),
            CorpusSpec::Many(paths) => paths,
        }
    }

    /// The one path given, when it is one.
    pub fn single(&self) -> Option<&Path> {
        match self.entries() {
            [one] => Some(one),
            _ => None,
        }
    }
}

impl From<PathBuf> for CorpusSpec {
    fn from(path: PathBuf) -> Self {
        CorpusSpec::One(path)
    }
}

impl From<&str> for CorpusSpec {
    fn from(path: &str) -> Self {
        CorpusSpec::One(path.into())
    }
}

impl std::fmt::Display for CorpusSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown: Vec<String> = self
            .entries()
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        match self {
            CorpusSpec::One(_) => write!(f, "{}", shown.join("")),
            CorpusSpec::Many(_) => write!(f, "[{}]", shown.join(", ")),
        }
    }
}

/// How a file's documents are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// The whole file is one document.
    Text,
    /// One JSON object per line; `text_field` is the document.
    Jsonl,
    /// One document per row, in the string column `text_field`.
    Parquet,
    /// One conversation per JSONL line, `{"messages": [{"role", "content"}, ...]}` (the
    /// Hugging Face convention), rendered with the chat template; training learns only the
    /// assistant's turns.
    Chat,
}

impl Format {
    /// The format a file's extension names (`.jsonl`/`.ndjson`, `.parquet`), text otherwise.
    pub fn of(path: &Path) -> Format {
        let ext = path
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase());
        match ext.as_deref() {
            Some("jsonl" | "ndjson") => Format::Jsonl,
            Some("parquet") => Format::Parquet,
            _ => Format::Text,
        }
    }

    /// The extensions a directory is searched for.
    pub fn extensions(self) -> &'static [&'static str] {
        match self {
            Format::Text => &["txt", "md"],
            Format::Jsonl => &["jsonl", "ndjson"],
            Format::Parquet => &["parquet"],
            Format::Chat => &["jsonl", "ndjson"],
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Format::Text => "text",
            Format::Jsonl => "jsonl",
            Format::Parquet => "parquet",
            Format::Chat => "chat",
        }
    }
}

fn default_text_field() -> String {
    "text".into()
}

fn is_default_text_field(field: &str) -> bool {
    field == "text"
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
    /// A config of `corpus` with every other key at its default.
    pub fn of(corpus: impl Into<CorpusSpec>) -> Self {
        Self {
            corpus: corpus.into(),
            format: None,
            text_field: default_text_field(),
            val_corpus: None,
            skip_bad_documents: false,
            tokenizer: default_tokenizer(),
            vocab_size: default_bpe_vocab(),
            val_fraction: default_val_fraction(),
            bpe_sample_bytes: default_bpe_sample_bytes(),
        }
    }

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
        if self.corpus.entries().is_empty() {
            return Err(DataError::Config(
                "data.corpus = []: name at least one file, directory or glob".into(),
            ));
        }
        if self.text_field.is_empty() {
            return Err(DataError::Config(
                "data.text_field is empty: name the JSONL field or Parquet column holding the text (e.g. \"text\")".into(),
            ));
        }
        Ok(())
    }
}

/// Val must be a part, and not the whole, of the text.
pub(crate) fn check_val_fraction(val_fraction: f64) -> Result<(), DataError> {
    if val_fraction > 0.0 && val_fraction < 1.0 {
        Ok(())
    } else {
        Err(DataError::BadValFraction(val_fraction))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corpus_is_a_path_or_a_list_and_new_keys_stay_out_of_old_configs() {
        let one: DataConfig = toml::from_str("corpus = \"a.txt\"").unwrap();
        assert_eq!(one, DataConfig::of("a.txt"));
        // A config written before documents existed serialises exactly as it did.
        assert_eq!(
            toml::to_string(&one).unwrap(),
            "corpus = \"a.txt\"\ntokenizer = \"char\"\nvocab_size = 1024\nval_fraction = 0.1\nbpe_sample_bytes = 256000000\n"
        );
        let many: DataConfig = toml::from_str(
            "corpus = [\"a/\", \"b/*.jsonl\"]\nformat = \"jsonl\"\ntext_field = \"story\"",
        )
        .unwrap();
        assert_eq!(many.corpus.entries().len(), 2);
        assert_eq!(many.format, Some(Format::Jsonl));
        assert_eq!(many.corpus.to_string(), "[a/, b/*.jsonl]");
        let back: DataConfig = toml::from_str(&toml::to_string(&many).unwrap()).unwrap();
        assert_eq!(back, many);
        assert!(toml::from_str::<DataConfig>("corpus = \"a\"\nformat = \"csv\"").is_err());
    }

    #[test]
    fn formats_from_extensions() {
        assert_eq!(Format::of(Path::new("a/b.JSONL")), Format::Jsonl);
        assert_eq!(Format::of(Path::new("x.parquet")), Format::Parquet);
        assert_eq!(Format::of(Path::new("notes.md")), Format::Text);
        assert_eq!(Format::of(Path::new("README")), Format::Text);
    }
}
