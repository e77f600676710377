//! tinygpt's model: a GPT-style causal transformer on burn, written to read like the math.

pub mod attention;
pub mod block;
pub mod config;
pub mod gpt;
pub mod init;
pub mod layers;
pub mod loss;
pub mod mlp;
pub mod params;

pub use config::{ConfigError, GptConfig};
pub use gpt::Gpt;
pub use loss::cross_entropy;
pub use params::ParamCount;
