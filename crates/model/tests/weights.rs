//! Weights round-trip through safetensors with readable names, and bad files are refused.

use std::collections::HashMap;

use burn::tensor::{Device, Int, Tensor, TensorData};
use tinygpt_model::weights::{
    from_safetensors, load_module_tensors, module_tensors, to_safetensors,
};
use tinygpt_model::{Gpt, GptConfig, WeightsError};

fn config() -> GptConfig {
    GptConfig {
        vocab_size: 7,
        block_size: 4,
        n_layer: 2,
        n_head: 2,
        n_embd: 8,
        dropout: 0.0,
        bias: true,
        tie_embeddings: false,
        activation: Default::default(),
        layer_norm_eps: 1e-5,
        ..GptConfig::default()
    }
}

fn logits(model: &Gpt) -> Vec<f32> {
    let input = Tensor::<2, Int>::from_data(
        TensorData::new(vec![1i64, 2, 3, 4], [1, 4]),
        &Device::flex(),
    );
    model
        .forward(input)
        .into_data_as::<f32>()
        .as_slice::<f32>()
        .unwrap()
        .to_vec()
}

#[test]
fn names_follow_the_module_tree() {
    let model = Gpt::new(&config(), 0, &Device::flex()).unwrap();
    let names: Vec<String> = module_tensors(&model).into_iter().map(|t| t.name).collect();
    for expected in [
        "token_embedding.weight",
        "position_embedding.weight",
        "blocks.0.ln_1.gamma",
        "blocks.0.attn.query.weight",
        "blocks.0.attn.key.bias",
        "blocks.1.attn.output.weight",
        "blocks.1.mlp.up.weight",
        "blocks.1.mlp.down.bias",
        "ln_f.beta",
        "unembedding.weight",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} not in {names:?}"
        );
    }
}

#[test]
fn save_then_load_gives_identical_logits_and_bytes() {
    let device = Device::flex();
    let trained = Gpt::new(&config(), 1, &device).unwrap();
    let metadata = HashMap::from([("format".to_string(), "tinygpt".to_string())]);
    let bytes = to_safetensors(&module_tensors(&trained), metadata.clone());

    let (tensors, read_metadata) = from_safetensors(&bytes).unwrap();
    assert_eq!(read_metadata, metadata);
    let fresh = Gpt::new(&config(), 2, &device).unwrap();
    assert_ne!(logits(&fresh), logits(&trained));
    let loaded = load_module_tensors(fresh, tensors).unwrap();
    assert_eq!(logits(&loaded), logits(&trained));
    // Same weights → same bytes (no random ids in the file).
    assert_eq!(to_safetensors(&module_tensors(&loaded), metadata), bytes);
}

#[test]
fn wrong_shape_missing_extra_and_garbage_are_errors() {
    let device = Device::flex();
    let model = || Gpt::new(&config(), 0, &device).unwrap();
    let tensors = module_tensors(&model());

    let mut wrong = tensors.clone();
    wrong[0].shape = vec![wrong[0].values.len(), 1];
    let err = load_module_tensors(model(), wrong).unwrap_err();
    assert!(matches!(err, WeightsError::Shape { .. }), "{err}");

    let missing: Vec<_> = tensors.iter().skip(1).cloned().collect();
    let err = load_module_tensors(model(), missing).unwrap_err();
    assert_eq!(
        err,
        WeightsError::Missing {
            name: tensors[0].name.clone()
        }
    );

    let mut extra = tensors.clone();
    extra.push(tinygpt_model::NamedTensor {
        name: "zzz".into(),
        shape: vec![1],
        values: vec![0.0],
    });
    let err = load_module_tensors(model(), extra).unwrap_err();
    assert_eq!(err, WeightsError::Unexpected { name: "zzz".into() });

    let bytes = to_safetensors(&tensors, HashMap::new());
    assert!(matches!(
        from_safetensors(&bytes[..bytes.len() / 2]),
        Err(WeightsError::Format(_))
    ));
    assert!(matches!(
        from_safetensors(b"not a tensor file"),
        Err(WeightsError::Format(_))
    ));
}
