//! tinygpt's data pipeline: corpus (one text file, or documents from many files: text, JSONL,
//! Parquet) → tokens (cached) → train/val split → batches.

pub mod bpe;
pub mod cache;
mod cache_writer;
mod char_tokenizer;
pub mod collection;
pub mod config;
pub mod corpus;
pub mod dataset;
mod documents;
mod error;
mod file_memo;
pub mod hf_tokenizer;
pub mod one_file;
pub mod pipeline;
pub mod sources;
pub mod tokenizer;
pub mod tokens;

pub use bpe::train_bpe;
pub use config::{CorpusSpec, DataConfig, Format};
pub use corpus::{Corpus, read_corpus};
pub use dataset::{Batch, BatchSampler, Splits, fixed_batches, split_corpus, split_text};
pub use error::DataError;
pub use tokenizer::{CharTokenizer, Prompt, Tokenizer, prompt_tokens};
pub use tokens::Tokens;
