//! tinygpt's model: a GPT-style causal transformer on burn, written to read like the math.

pub mod architecture;
pub mod attention;
pub mod block;
pub mod config;
pub mod cross_attention;
pub mod generate;
pub mod gpt;
pub mod gpt2;
pub mod init;
pub mod kv_cache;
pub mod lanes;
pub mod layers;
pub mod llama;
pub mod loss;
pub mod mlp;
pub mod norm;
pub mod params;
pub mod sampling;
pub mod tensor_set;
pub mod validate;
pub mod weights;

pub use attention::AttentionMaps;
pub use config::{Activation, GptConfig, Init, NormKind, Positions};
pub use generate::Generator;
pub use gpt::Gpt;
pub use kv_cache::KvCache;
pub use lanes::{LaneId, Lanes};
pub use loss::{cross_entropy, masked_cross_entropy};
pub use params::ParamCount;
pub use validate::ConfigError;
pub use weights::{NamedTensor, WeightsError};
