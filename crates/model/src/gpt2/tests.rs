use super::*;
use crate::Gpt;
use crate::weights::module_tensors;
use burn::tensor::Device;

fn config(bias: bool, tie_embeddings: bool) -> GptConfig {
    GptConfig {
        vocab_size: 11,
        block_size: 8,
        n_layer: 2,
        n_head: 2,
        n_embd: 8,
        dropout: 0.0,
        bias,
        tie_embeddings,
        activation: Default::default(),
        layer_norm_eps: 1e-5,
        ..GptConfig::default()
    }
}

fn tensors(config: &GptConfig) -> Vec<NamedTensor> {
    module_tensors(&Gpt::new(config, 7, &Device::flex()).expect("valid config"))
}

fn find<'a>(tensors: &'a [NamedTensor], name: &str) -> &'a NamedTensor {
    tensors.iter().find(|t| t.name == name).expect(name)
}

#[test]
fn gpt2_names_round_trip_exactly() {
    for tie in [true, false] {
        let config = config(true, tie);
        let ours = tensors(&config);
        let theirs = to_gpt2(ours.clone(), &config).expect("export");
        // 2 embeddings + 12 per block + 2 for ln_f (+ lm_head when untied).
        assert_eq!(theirs.len(), 2 + 12 * 2 + 2 + usize::from(!tie));
        let mut back = from_gpt2(theirs, &config).expect("import");
        let mut ours = ours;
        ours.sort_by(|a, b| a.name.cmp(&b.name));
        back.sort_by(|a, b| a.name.cmp(&b.name));
        assert_eq!(back, ours);
    }
}

#[test]
fn c_attn_holds_query_key_value_side_by_side_and_lm_head_is_transposed() {
    let config = config(true, false);
    let ours = tensors(&config);
    let theirs = to_gpt2(ours.clone(), &config).expect("export");
    let c_attn = find(&theirs, "transformer.h.1.attn.c_attn.weight");
    assert_eq!(c_attn.shape, vec![8, 24]);
    let key = find(&ours, "blocks.1.attn.key.weight");
    // Row 3, column 5 of the key map sits at column 8 + 5 of c_attn's row 3.
    assert_eq!(c_attn.values[3 * 24 + 8 + 5], key.values[3 * 8 + 5]);
    let value_bias = find(&ours, "blocks.1.attn.value.bias");
    let c_attn_bias = find(&theirs, "transformer.h.1.attn.c_attn.bias");
    assert_eq!(&c_attn_bias.values[16..], &value_bias.values[..]);
    let head = find(&theirs, "lm_head.weight");
    let unembedding = find(&ours, "unembedding.weight");
    assert_eq!(head.shape, vec![11, 8]);
    assert_eq!(head.values[4 * 8 + 2], unembedding.values[2 * 11 + 4]);
}

#[test]
fn a_model_without_biases_exports_zero_biases() {
    let config = config(false, true);
    let theirs = to_gpt2(tensors(&config), &config).expect("export");
    for name in [
        "transformer.h.0.attn.c_attn.bias",
        "transformer.h.1.mlp.c_proj.bias",
        "transformer.ln_f.bias",
    ] {
        assert!(find(&theirs, name).values.iter().all(|&v| v == 0.0));
    }
}

#[test]
fn unprefixed_names_and_mask_buffers_are_accepted() {
    let config = config(true, true);
    let mut theirs = to_gpt2(tensors(&config), &config).expect("export");
    for t in &mut theirs {
        t.name = t.name.trim_start_matches(PREFIX).to_string();
    }
    theirs.push(NamedTensor {
        name: "h.0.attn.bias".into(),
        shape: vec![1, 1, 8, 8],
        values: vec![1.0; 64],
    });
    assert!(from_gpt2(theirs, &config).is_ok());
}

#[test]
fn missing_extra_and_misshapen_tensors_are_named() {
    let config = config(true, true);
    let theirs = to_gpt2(tensors(&config), &config).expect("export");
    let without: Vec<_> = theirs
        .iter()
        .filter(|t| t.name != "transformer.h.1.mlp.c_fc.bias")
        .cloned()
        .collect();
    assert_eq!(
        from_gpt2(without, &config),
        Err(WeightsError::Missing {
            name: "h.1.mlp.c_fc.bias".into()
        })
    );
    let mut extra = theirs.clone();
    extra.push(NamedTensor {
        name: "transformer.h.0.crossattention.c_attn.weight".into(),
        shape: vec![1],
        values: vec![0.0],
    });
    assert!(matches!(
        from_gpt2(extra, &config),
        Err(WeightsError::Unexpected { name }) if name == "h.0.crossattention.c_attn.weight"
    ));
    let mut untied_head = theirs;
    untied_head.push(NamedTensor {
        name: "lm_head.weight".into(),
        shape: vec![11, 8],
        values: vec![0.5; 88],
    });
    assert!(matches!(
        from_gpt2(untied_head, &config),
        Err(WeightsError::Unexpected { .. })
    ));
}
