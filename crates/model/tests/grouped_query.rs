//! Grouped-query attention (`n_kv_head`): each key/value head serves `n_head / n_kv_head`
//! query heads. The oracle is plain multi-head attention whose key and value maps are the
//! grouped ones repeated per head: the two must compute the same logits, on the fast and the
//! explicit path, and the cache holds only the shared heads.

mod common;

use burn::tensor::{Device, Int, Tensor, TensorData};
use common::variants::base;
use common::{max_abs_diff, values};
use tinygpt_model::weights::{load_module_tensors, module_tensors};
use tinygpt_model::{Gpt, GptConfig, KvCache, ParamCount, Positions};

fn grouped() -> GptConfig {
    GptConfig {
        n_head: 4,
        n_kv_head: 2,
        positions: Positions::Rope,
        qk_norm: true,
        ..base()
    }
}

/// The multi-head model computing what `model` (of `config`, with GQA) computes: its key and
/// value weights and biases repeated so that query head h reads key/value head h / groups.
fn as_multi_head(model: &Gpt, config: &GptConfig, device: &Device) -> Gpt {
    let (d, groups) = (config.head_size(), config.n_head / config.kv_heads());
    let spread = |values: &[f32], rows: usize| -> Vec<f32> {
        let kv_width = values.len() / rows;
        let width = kv_width * groups;
        let mut out = Vec::with_capacity(rows * width);
        for row in values.chunks(kv_width) {
            for j in 0..width {
                let (head, e) = (j / d, j % d);
                out.push(row[(head / groups) * d + e]);
            }
        }
        out
    };
    let tensors = module_tensors(model)
        .into_iter()
        .map(|mut t| {
            let shared = t.name.contains(".attn.key.") || t.name.contains(".attn.value.");
            if shared {
                let rows = if t.shape.len() == 2 { t.shape[0] } else { 1 };
                t.values = spread(&t.values, rows);
                *t.shape.last_mut().unwrap() *= groups;
            }
            t
        })
        .collect();
    let multi_head = GptConfig {
        n_kv_head: 0,
        ..config.clone()
    };
    load_module_tensors(Gpt::new(&multi_head, 0, device).unwrap(), tensors).unwrap()
}

fn tokens(seq: &[i64], device: &Device) -> Tensor<2, Int> {
    Tensor::from_data(TensorData::new(seq.to_vec(), [1, seq.len()]), device)
}

#[test]
fn grouped_query_attention_equals_multi_head_attention_with_shared_keys_and_values() {
    let seq = [3, 1, 4, 1, 5, 9, 2, 6, 5, 3];
    for config in [
        grouped(),
        GptConfig {
            n_kv_head: 1,
            ..grouped()
        },
    ] {
        for device in [Device::flex(), Device::flex().autodiff()] {
            let model = Gpt::new(&config, 7, &device).unwrap();
            let oracle = as_multi_head(&model, &config, &device);
            let fast = values(model.forward(tokens(&seq, &device)));
            let explicit = values(model.forward_with_patterns(tokens(&seq, &device)).0);
            let expected = values(oracle.forward_with_patterns(tokens(&seq, &device)).0);
            let kv = config.n_kv_head;
            assert!(
                max_abs_diff(&fast, &expected) < 1e-5,
                "{kv} kv heads, {device:?}"
            );
            assert!(
                max_abs_diff(&explicit, &expected) < 1e-5,
                "{kv} kv heads, {device:?}"
            );
        }
    }
}

#[test]
fn n_kv_head_equal_to_n_head_is_multi_head_attention_to_the_bit() {
    let device = Device::flex();
    let seq = [1, 2, 3, 4, 5, 6];
    let same = GptConfig {
        n_kv_head: 4,
        ..grouped()
    };
    let default = GptConfig {
        n_kv_head: 0,
        ..grouped()
    };
    let a = values(
        Gpt::new(&same, 3, &device)
            .unwrap()
            .forward(tokens(&seq, &device)),
    );
    let b = values(
        Gpt::new(&default, 3, &device)
            .unwrap()
            .forward(tokens(&seq, &device)),
    );
    assert_eq!(a, b);
}

#[test]
fn the_cache_keeps_only_the_shared_heads() {
    let device = Device::flex();
    let config = grouped();
    let model = Gpt::new(&config, 5, &device).unwrap();
    let mut cache = KvCache::new(config.n_layer);
    model.forward_cached(tokens(&[1, 2, 3], &device), &mut cache);
    let keys = cache.layers[0].keys.as_ref().unwrap().dims();
    assert_eq!(keys, [1, config.n_kv_head, 3, config.head_size()]);
}

#[test]
fn keys_and_values_shrink_the_parameter_count_and_a_bad_n_kv_head_is_named() {
    let (gqa, mha) = (
        grouped(),
        GptConfig {
            n_kv_head: 0,
            ..grouped()
        },
    );
    let (c, kv, l) = (gqa.n_embd, gqa.kv_width(), gqa.n_layer);
    // Per block, the key and value maps lose c·(c − kv) weights and c − kv biases each.
    assert_eq!(
        ParamCount::of(&mha).total() - ParamCount::of(&gqa).total(),
        l * 2 * (c * (c - kv) + (c - kv))
    );
    for bad in [3, 8] {
        let config = GptConfig {
            n_kv_head: bad,
            ..grouped()
        };
        assert_eq!(config.validate().unwrap_err().key, "n_kv_head", "{bad}");
    }
}
