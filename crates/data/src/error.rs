use std::path::PathBuf;

/// Everything that can go wrong turning a text file into batches; each message names the
/// problem and the fix.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("corpus {path} not found: set data.corpus to an existing text file")]
    CorpusMissing { path: PathBuf },
    #[error("cannot read corpus {path}: {source}")]
    CorpusUnreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("corpus {path} is empty: point data.corpus at a file with text in it")]
    CorpusEmpty { path: PathBuf },
    #[error("corpus {path} changed while tinygpt was reading it: run again once it is written")]
    CorpusChanged { path: PathBuf },
    #[error(
        "corpus {path} is not UTF-8 text (invalid byte at offset {offset}): convert it to UTF-8 first"
    )]
    CorpusNotUtf8 { path: PathBuf, offset: usize },
    #[error("corpus {path}{location} {problem}, or pass --skip-bad-documents to skip it")]
    BadDocument {
        path: PathBuf,
        /// ` line 17`, ` row 3`, or empty for the whole file.
        location: String,
        problem: String,
    },
    #[error("text has {} character(s) the tokenizer does not know: {}", .chars.len(), format_chars(.chars))]
    UnknownChars { chars: Vec<char> },
    #[error("token id {id} is outside the vocabulary of {vocab_size} tokens")]
    UnknownToken { id: u32, vocab_size: usize },
    #[error(
        "{split} split has {tokens} tokens but one training window needs block_size + 1 = {needed}: use a longer corpus, a smaller model.block_size, or adjust data.val_fraction"
    )]
    SplitTooShort {
        split: &'static str,
        tokens: usize,
        needed: usize,
    },
    #[error("data.val_fraction = {0}: must be in (0, 1)")]
    BadValFraction(f64),
    #[error("{0}")]
    Config(String),
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    #[error(
        "data.vocab_size = {0}: a byte-level BPE needs at least 257 tokens (256 bytes + the end-of-text token)"
    )]
    BpeVocabTooSmall(usize),
    #[error("token cache {path}: {reason}")]
    Cache { path: PathBuf, reason: String },
    #[error("tokenizer file {path}: {reason}")]
    TokenizerFile { path: PathBuf, reason: String },
}

fn format_chars(chars: &[char]) -> String {
    chars
        .iter()
        .map(|c| format!("{c:?}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Why the cache could not be written: the disk (then tokens stay in memory) or the text.
#[derive(Debug)]
pub enum Failure {
    Io(std::io::Error),
    Data(DataError),
}

impl Failure {
    /// As a data error, for callers with no disk to fall back from.
    pub fn into_data(self) -> DataError {
        match self {
            Failure::Data(e) => e,
            Failure::Io(e) => DataError::Tokenizer(e.to_string()),
        }
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Self {
        Failure::Io(e)
    }
}

impl From<DataError> for Failure {
    fn from(e: DataError) -> Self {
        Failure::Data(e)
    }
}
