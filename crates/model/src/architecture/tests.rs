use super::*;
use crate::config::Init;

fn gpt2() -> GptConfig {
    GptConfig {
        vocab_size: 50,
        ..GptConfig::default()
    }
}

fn llama() -> GptConfig {
    GptConfig {
        positions: Positions::Rope,
        norm: NormKind::RmsNorm,
        activation: Activation::Swiglu,
        bias: false,
        n_kv_head: 2,
        ..gpt2()
    }
}

fn nanochat() -> GptConfig {
    GptConfig {
        positions: Positions::Rope,
        norm: NormKind::RmsNorm,
        norm_weight: false,
        embedding_norm: true,
        qk_norm: true,
        activation: Activation::Relu2,
        bias: false,
        tie_embeddings: false,
        logit_softcap: 15.0,
        init: Init::Modern,
        ..gpt2()
    }
}

#[test]
fn each_family_is_recognised() {
    assert_eq!(Architecture::of(&gpt2()), Ok(Architecture::Gpt2));
    let relu2_gpt2 = GptConfig {
        activation: Activation::Relu2,
        ..gpt2()
    };
    assert_eq!(Architecture::of(&relu2_gpt2), Ok(Architecture::Gpt2));
    assert_eq!(Architecture::of(&llama()), Ok(Architecture::Llama));
    let with_biases = GptConfig {
        bias: true,
        ..llama()
    };
    assert_eq!(Architecture::of(&with_biases), Ok(Architecture::Llama));
    let qwen3 = GptConfig {
        qk_norm: true,
        ..llama()
    };
    assert_eq!(Architecture::of(&qwen3), Ok(Architecture::Qwen3));
    // A gain-free norm is a norm with gain 1: still a Qwen3.
    let gain_free = GptConfig {
        norm_weight: false,
        ..qwen3.clone()
    };
    assert_eq!(Architecture::of(&gain_free), Ok(Architecture::Qwen3));
    assert_eq!(Architecture::of(&nanochat()), Ok(Architecture::NanoChat));
    let uncapped = GptConfig {
        logit_softcap: 0.0,
        ..nanochat()
    };
    assert_eq!(Architecture::of(&uncapped), Ok(Architecture::NanoChat));
    // A window as long as the context hides nothing, so it exports.
    let whole = GptConfig {
        attention_window: nanochat().block_size,
        ..nanochat()
    };
    assert_eq!(Architecture::of(&whole), Ok(Architecture::NanoChat));
}

#[test]
fn the_first_blocking_switch_is_named_with_its_fix() {
    let cases: Vec<(GptConfig, &str, &str)> = vec![
        (
            GptConfig {
                logit_softcap: 30.0,
                ..llama()
            },
            "logit_softcap > 0",
            "LlamaForCausalLM",
        ),
        (
            GptConfig {
                activation: Activation::Gelu,
                ..llama()
            },
            "activation = \"gelu\"",
            "LlamaForCausalLM",
        ),
        (
            GptConfig {
                qk_norm: true,
                bias: true,
                ..llama()
            },
            "bias = true",
            "Qwen3ForCausalLM",
        ),
        (
            GptConfig {
                norm_weight: true,
                ..nanochat()
            },
            "norm_weight = true",
            "NanoChatForCausalLM",
        ),
        (
            GptConfig {
                n_kv_head: 2,
                ..gpt2()
            },
            "n_kv_head < n_head",
            "GPT2LMHeadModel",
        ),
        (
            GptConfig {
                attention_window: 8,
                ..llama()
            },
            "attention_window < block_size",
            "LlamaForCausalLM",
        ),
        (
            GptConfig {
                attention_window: 8,
                ..nanochat()
            },
            "attention_window < block_size",
            "NanoChatForCausalLM",
        ),
    ];
    for (config, switch, class) in cases {
        let err = Architecture::of(&config).unwrap_err();
        assert_eq!((err.switch.as_str(), err.class), (switch, class), "{err}");
        assert!(err.to_string().starts_with(&format!("model.{switch}: ")));
    }
}

#[test]
fn model_types_round_trip() {
    for a in Architecture::ALL {
        assert_eq!(Architecture::from_model_type(a.model_type()), Some(a));
    }
    assert_eq!(Architecture::from_model_type("mixtral"), None);
    assert_eq!(Architecture::NanoChat.gguf_arch(), None);
}
