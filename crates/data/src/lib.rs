//! tinygpt's data pipeline: corpus → tokens → train/val split → batches.

pub mod corpus;
pub mod dataset;
mod error;
pub mod tokenizer;

pub use corpus::read_corpus;
pub use dataset::{Batch, BatchSampler, Splits, fixed_batches};
pub use error::DataError;
pub use tokenizer::{CharTokenizer, Tokenizer};
