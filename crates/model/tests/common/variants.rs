//! The model shapes the model tests run through: the GPT-2 recipe at test size, each modern
//! switch alone, and shapes with several at once.

use burn::tensor::{Device, Int, Tensor, TensorData};
use tinygpt_model::{Activation, GptConfig, Init, NormKind, Positions};

pub fn base() -> GptConfig {
    GptConfig {
        vocab_size: 13,
        block_size: 12,
        n_layer: 2,
        n_head: 2,
        n_embd: 16,
        ..GptConfig::default()
    }
}

/// nanochat's shape: every modern switch on at once.
pub fn modern() -> GptConfig {
    GptConfig {
        positions: Positions::Rope,
        norm: NormKind::RmsNorm,
        norm_weight: false,
        embedding_norm: true,
        qk_norm: true,
        activation: Activation::Relu2,
        logit_softcap: 15.0,
        init: Init::Modern,
        tie_embeddings: false,
        bias: false,
        ..base()
    }
}

/// Each switch alone (grouped-query attention in two shapes), then all of them, then sliding
/// windows (alone, and per layer with GQA and RoPE), then a SwiGLU Llama-like shape with norm
/// gains.
pub fn variants() -> Vec<(&'static str, GptConfig)> {
    vec![
        (
            "rope",
            GptConfig {
                positions: Positions::Rope,
                ..base()
            },
        ),
        (
            "rms_norm",
            GptConfig {
                norm: NormKind::RmsNorm,
                ..base()
            },
        ),
        (
            "no norm weight",
            GptConfig {
                norm_weight: false,
                ..base()
            },
        ),
        (
            "embedding_norm",
            GptConfig {
                embedding_norm: true,
                ..base()
            },
        ),
        (
            "qk_norm",
            GptConfig {
                qk_norm: true,
                ..base()
            },
        ),
        (
            "relu2",
            GptConfig {
                activation: Activation::Relu2,
                ..base()
            },
        ),
        (
            "swiglu",
            GptConfig {
                activation: Activation::Swiglu,
                ..base()
            },
        ),
        (
            "softcap",
            GptConfig {
                logit_softcap: 2.0,
                ..base()
            },
        ),
        (
            "modern init",
            GptConfig {
                init: Init::Modern,
                tie_embeddings: false,
                ..base()
            },
        ),
        ("nanochat", modern()),
        (
            "multi-query",
            GptConfig {
                n_kv_head: 1,
                ..base()
            },
        ),
        (
            "grouped-query, rotated and normalised",
            GptConfig {
                n_head: 4,
                n_kv_head: 2,
                positions: Positions::Rope,
                qk_norm: true,
                ..base()
            },
        ),
        (
            "sliding window",
            GptConfig {
                attention_window: 3,
                ..base()
            },
        ),
        (
            "windowed then full, grouped-query, rotated",
            GptConfig {
                n_head: 4,
                n_kv_head: 2,
                positions: Positions::Rope,
                qk_norm: true,
                attention_window: 5,
                window_pattern: "SL".into(),
                ..base()
            },
        ),
        (
            "llama-like",
            GptConfig {
                positions: Positions::Rope,
                norm: NormKind::RmsNorm,
                qk_norm: true,
                activation: Activation::Swiglu,
                bias: false,
                tie_embeddings: false,
                ..base()
            },
        ),
    ]
}

pub fn tokens(seq: &[i64], device: &Device) -> Tensor<2, Int> {
    Tensor::from_data(TensorData::new(seq.to_vec(), [1, seq.len()]), device)
}
