use super::*;
use crate::Gpt;
use crate::config::{NormKind, Positions};
use crate::weights::module_tensors;
use burn::tensor::Device;

fn config(arch: Architecture, tie_embeddings: bool) -> GptConfig {
    let llama = GptConfig {
        vocab_size: 11,
        block_size: 8,
        n_layer: 2,
        n_head: 4,
        n_kv_head: 2,
        n_embd: 16,
        mlp_width: 24,
        positions: Positions::Rope,
        norm: NormKind::RmsNorm,
        activation: Activation::Swiglu,
        bias: false,
        tie_embeddings,
        ..GptConfig::default()
    };
    let config = match arch {
        Architecture::Llama => GptConfig {
            bias: true,
            ..llama
        },
        Architecture::Qwen3 => GptConfig {
            qk_norm: true,
            ..llama
        },
        Architecture::NanoChat => GptConfig {
            norm_weight: false,
            embedding_norm: true,
            qk_norm: true,
            activation: Activation::Relu2,
            logit_softcap: 15.0,
            ..llama
        },
        Architecture::Gpt2 => unreachable!("GPT-2 has its own names"),
    };
    assert_eq!(Architecture::of(&config), Ok(arch));
    config
}

fn sorted(mut tensors: Vec<NamedTensor>) -> Vec<NamedTensor> {
    tensors.sort_by(|a, b| a.name.cmp(&b.name));
    tensors
}

fn find<'a>(tensors: &'a [NamedTensor], name: &str) -> &'a NamedTensor {
    tensors.iter().find(|t| t.name == name).expect(name)
}

#[test]
fn llama_family_names_round_trip_exactly() {
    for arch in [
        Architecture::Llama,
        Architecture::Qwen3,
        Architecture::NanoChat,
    ] {
        for tie in [true, false] {
            let config = config(arch, tie);
            let ours = module_tensors(&Gpt::new(&config, 7, &Device::flex()).unwrap());
            let theirs = to_llama(ours.clone(), &config, arch).unwrap();
            let gains = match arch {
                Architecture::Llama => 2,
                Architecture::Qwen3 => 4,
                _ => 0,
            };
            let maps = if arch == Architecture::NanoChat { 6 } else { 7 };
            let biases = if config.bias { maps } else { 0 };
            let final_norm = usize::from(arch != Architecture::NanoChat);
            assert_eq!(
                theirs.len(),
                1 + 2 * (gains + maps + biases) + final_norm + usize::from(!tie),
                "{arch:?}"
            );
            let back = from_llama(theirs, &config, arch).unwrap();
            assert_eq!(sorted(back), sorted(ours), "{arch:?} tie {tie}");
        }
    }
}

#[test]
fn matrices_are_transposed_and_nanochat_queries_and_keys_turn_the_other_way() {
    let config = config(Architecture::NanoChat, false);
    let ours = module_tensors(&Gpt::new(&config, 7, &Device::flex()).unwrap());
    let theirs = to_llama(ours.clone(), &config, Architecture::NanoChat).unwrap();
    let (key, k_proj) = (
        find(&ours, "blocks.1.attn.key.weight"),
        find(&theirs, "model.layers.1.self_attn.k_proj.weight"),
    );
    assert_eq!(k_proj.shape, [8, 16]);
    // Head size 4: row 1 of a head is its first half (kept), row 6 = head 1's row 2 (negated).
    assert_eq!(k_proj.values[16 + 3], key.values[3 * 8 + 1]);
    assert_eq!(k_proj.values[6 * 16 + 3], -key.values[3 * 8 + 6]);
    let (value, v_proj) = (
        find(&ours, "blocks.0.attn.value.weight"),
        find(&theirs, "model.layers.0.self_attn.v_proj.weight"),
    );
    assert_eq!(v_proj.values[6 * 16 + 3], value.values[3 * 8 + 6]);
    let (up, fc1) = (
        find(&ours, "blocks.0.mlp.up.weight"),
        find(&theirs, "model.layers.0.mlp.fc1.weight"),
    );
    assert_eq!(fc1.shape, [24, 16]);
    assert_eq!(fc1.values[5 * 16 + 2], up.values[2 * 24 + 5]);
}

#[test]
fn a_norm_without_gain_exports_ones_and_leftovers_are_refused() {
    let gain_free = GptConfig {
        norm_weight: false,
        ..config(Architecture::Qwen3, true)
    };
    let ours = module_tensors(&Gpt::new(&gain_free, 7, &Device::flex()).unwrap());
    let theirs = to_llama(ours, &gain_free, Architecture::Qwen3).unwrap();
    assert_eq!(
        find(&theirs, "model.layers.0.self_attn.q_norm.weight").values,
        [1.0; 4]
    );
    assert_eq!(find(&theirs, "model.norm.weight").values, [1.0; 16]);

    let config = config(Architecture::Llama, false);
    let ours = module_tensors(&Gpt::new(&config, 7, &Device::flex()).unwrap());
    let mut theirs = to_llama(ours, &config, Architecture::Llama).unwrap();
    theirs.push(NamedTensor {
        name: "model.layers.0.mlp.experts.0.weight".into(),
        shape: vec![1],
        values: vec![0.0],
    });
    assert!(matches!(
        from_llama(theirs.clone(), &config, Architecture::Llama),
        Err(WeightsError::Unexpected { .. })
    ));
    theirs.pop();
    theirs.retain(|t| t.name != "model.layers.1.self_attn.o_proj.bias");
    assert!(matches!(
        from_llama(theirs, &config, Architecture::Llama),
        Err(WeightsError::Missing { .. })
    ));
}
