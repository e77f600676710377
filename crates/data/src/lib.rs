//! tinygpt's data pipeline, read top to bottom: each stage uses only the stages above it
//! (`tests/imports.rs` fails on an import circle).
//!
//! - shared leaves: `error` (what can go wrong), `store` (the cache directory beside a
//!   corpus, hex digits of hashes), `config` (the `[data]` table), `tokens` (a stream of ids)
//! - **sources** (`sources`): the paths and globs of `data.corpus` → files and their formats
//! - **documents**: `corpus` (one file's text, read or memory-mapped), `documents` (text,
//!   JSONL and Parquet files → documents, and each file's size, hash and count), `file_memo`
//!   (those facts remembered between runs)
//! - **the corpus and its split**: `one_file` (one text file, val its tail) or `collection`
//!   (documents from many files, val drawn by document)
//! - **tokenizers** (`tokenizer`): characters, byte-level BPE, a Hugging Face file;
//!   `incremental`: generated ids to text as they arrive
//! - **the token cache** (`cache`): encoded once into a file of ids, memory-mapped after
//! - **splits and batches** (`dataset`): train/val token streams → next-token windows
//! - `pipeline`: the stages joined, from a `[data]` table to splits

pub mod config;
mod error;
mod store;
pub mod tokens;

pub mod sources;

pub mod corpus;
mod documents;
mod file_memo;

pub mod collection;
pub mod one_file;

pub mod chat;
pub mod incremental;
pub mod tokenizer;

pub mod cache;

pub mod dataset;

pub mod pipeline;

pub use config::{CorpusSpec, DataConfig, Format};
pub use corpus::{Corpus, read_corpus};
pub use dataset::{Batch, BatchSampler, ChatSplits, Conversations, Splits, fixed_batches};
pub use error::DataError;
pub use incremental::IncrementalDecoder;
pub use one_file::{split_corpus, split_text};
pub use tokenizer::bpe::train_bpe;
pub use tokenizer::{CharTokenizer, Prompt, Role, Tokenizer, prompt_tokens};
pub use tokens::Tokens;
