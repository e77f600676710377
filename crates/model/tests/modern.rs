//! The modern switches of `[model]` (RoPE, RMSNorm, QK-norm, ReLU², SwiGLU, soft-cap, the
//! modern init): hand-computed values, invariants, and the fast path against the explicit one.

mod common;

use burn::module::{Module, Param};
use burn::tensor::{Device, Int, Tensor, TensorData};
use common::variants::{base, modern, tokens, variants};
use common::{max_abs_diff, random, values};
use tinygpt_kernels::softcap;
use tinygpt_model::generate::argmax;
use tinygpt_model::{
    Activation, Generator, Gpt, GptConfig, Init, ParamCount, Positions, cross_entropy,
};

#[test]
fn softcap_bounds_logits_and_is_c_tanh_of_the_uncapped_ones() {
    let device = Device::flex();
    let z = random([4, 8], 4, &device).mul_scalar(50.0);
    let capped = values(softcap(z.clone(), 3.0));
    assert!(capped.iter().all(|v| v.abs() < 3.0 + 1e-6));
    let by_hand: Vec<f32> = values(z).iter().map(|v| 3.0 * (v / 3.0).tanh()).collect();
    assert!(max_abs_diff(&capped, &by_hand) < 1e-5);

    // In the model: the same weights with and without the cap.
    let seq = [1, 5, 2, 7, 3, 3, 9];
    let logits = |cap: f64| {
        let config = GptConfig {
            logit_softcap: cap,
            ..base()
        };
        let model = Gpt::new(&config, 3, &device).unwrap();
        values(model.forward(tokens(&seq, &device)))
    };
    let free = logits(0.0);
    // A cap at half the largest logit: GPT-2's init gives small ones, so the cap is small too.
    let cap = free.iter().fold(0.0f32, |m, v| m.max(v.abs())) / 2.0;
    let capped = logits(f64::from(cap));
    assert!(capped.iter().all(|v| v.abs() < cap));
    let by_hand: Vec<f32> = free.iter().map(|v| cap * (v / cap).tanh()).collect();
    assert!(max_abs_diff(&capped, &by_hand) < 1e-6);
    assert!(
        max_abs_diff(&capped, &free) > cap / 4.0,
        "the cap changed nothing"
    );
}

#[test]
fn qk_norm_bounds_every_score_by_the_square_root_of_the_head_size() {
    // Unit-RMS queries and keys have length √d, so |q·k|/√d ≤ √d, whatever the weights.
    let device = Device::flex();
    let config = GptConfig {
        qk_norm: true,
        norm_weight: false,
        ..base()
    };
    let model = Gpt::new(&config, 5, &device).unwrap();
    let model = scaled(model, 30.0);
    let (_, maps) = model.forward_with_patterns(tokens(&[1, 2, 3, 4, 5, 6, 7, 8], &device));
    let bound = (config.head_size() as f32).sqrt() + 1e-4;
    let scores: Vec<f32> = values(maps[1].scores.clone())
        .into_iter()
        .filter(|s| s.is_finite())
        .collect();
    assert!(scores.iter().all(|s| s.abs() <= bound), "{scores:?}");
    // without QK-norm the same (scaled-up) weights exceed it
    let plain = scaled(Gpt::new(&base(), 5, &device).unwrap(), 30.0);
    let (_, maps) = plain.forward_with_patterns(tokens(&[1, 2, 3, 4, 5, 6, 7, 8], &device));
    let most = values(maps[1].scores.clone())
        .into_iter()
        .filter(|s| s.is_finite())
        .fold(0.0f32, |m, s| m.max(s.abs()));
    assert!(most > bound, "{most}");
}

/// Every query and key map multiplied by `factor` (large scores).
fn scaled(mut model: Gpt, factor: f64) -> Gpt {
    for block in &mut model.blocks {
        for linear in [&mut block.attn.query, &mut block.attn.key] {
            linear.weight = Param::from_tensor(linear.weight.val().mul_scalar(factor));
        }
    }
    model
}

#[test]
fn the_fast_path_equals_the_explicit_path_with_gradients_for_every_variant() {
    // On flex with autodiff the fast path (packed QKV, fused attention and linear maps) and the
    // explicit path (the math, op by op) give the same logits and weight gradients.
    let device = Device::flex().autodiff();
    let seq: Vec<i64> = vec![3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8];
    let targets: Vec<i64> = seq.iter().map(|t| (t * 7 + 1) % 13).collect();
    for (name, config) in variants() {
        let model = Gpt::new(&config, 11, &device).unwrap();
        let run = |fast: bool| {
            let input = tokens(&seq, &device);
            let logits = if fast {
                model.forward(input)
            } else {
                model.forward_with_patterns(input).0
            };
            let target =
                Tensor::<2, Int>::from_data(TensorData::new(targets.clone(), [1, 12]), &device);
            let loss = cross_entropy(logits.clone(), target);
            let grads = loss.backward();
            let mut grad_values = Vec::new();
            for block in &model.blocks {
                for linear in [
                    &block.attn.query,
                    &block.attn.key,
                    &block.mlp.up,
                    &block.mlp.down,
                ] {
                    grad_values.extend(values(linear.weight.val().grad(&grads).unwrap()));
                }
            }
            grad_values.extend(values(
                model.token_embedding.weight.val().grad(&grads).unwrap(),
            ));
            (values(logits), grad_values)
        };
        let (fast, explicit) = (run(true), run(false));
        let logits = max_abs_diff(&fast.0, &explicit.0);
        let grads = max_abs_diff(&fast.1, &explicit.1);
        assert!(logits < 1e-5, "{name}: logits differ by {logits}");
        assert!(grads < 1e-5, "{name}: gradients differ by {grads}");
        assert!(
            fast.1.iter().any(|g| *g != 0.0),
            "{name}: no gradient reached the blocks"
        );
    }
}

#[test]
fn cached_generation_equals_recomputing_for_every_variant() {
    // RoPE's positions must continue across the cache: the logits of each next token are the
    // same whether the context is recomputed or read from the cache, past block_size too.
    let device = Device::flex();
    for (name, config) in variants() {
        let model = Gpt::new(&config, 2, &device).unwrap();
        let mut cached = Generator::new(&model, &[1, 2], true, &device);
        let mut plain = Generator::new(&model, &[1, 2], false, &device);
        for step in 0..20 {
            let (a, b) = (cached.next_logits(), plain.next_logits());
            assert!(max_abs_diff(&a, &b) < 1e-5, "{name}, step {step}");
            let next = argmax(&a);
            cached.push(next);
            plain.push(next);
        }
    }
}

#[test]
fn the_parameter_count_is_the_models_for_every_variant() {
    let device = Device::flex();
    for (name, config) in variants().into_iter().chain([("gpt2", base())]) {
        let model = Gpt::new(&config, 1, &device).unwrap();
        let count = ParamCount::of(&config);
        assert_eq!(model.num_params(), count.total(), "{name}");
        assert_eq!(
            ParamCount::checked_total(&config),
            Some(count.total() as u64),
            "{name}"
        );
    }
    // RoPE drops the position table; SwiGLU adds a gate per block; no weight drops the gains.
    let rope = GptConfig {
        positions: Positions::Rope,
        ..base()
    };
    assert_eq!(
        ParamCount::of(&base()).total() - ParamCount::of(&rope).total(),
        base().block_size * base().n_embd
    );
    let swiglu = GptConfig {
        activation: Activation::Swiglu,
        ..base()
    };
    let c = base().n_embd;
    assert_eq!(
        ParamCount::of(&swiglu).total() - ParamCount::of(&base()).total(),
        base().n_layer * (c * 4 * c + 4 * c)
    );
}

#[test]
fn the_modern_init_starts_every_block_as_the_identity() {
    // Zero output projections: each block adds nothing at first, so the logits are the head
    // applied to the normalised embedding alone, whatever the blocks' other weights.
    let device = Device::flex();
    let config = modern();
    let model = Gpt::new(&config, 4, &device).unwrap();
    for block in &model.blocks {
        assert!(
            values(block.attn.output.weight.val())
                .iter()
                .all(|w| *w == 0.0)
        );
        assert!(
            values(block.mlp.down.weight.val())
                .iter()
                .all(|w| *w == 0.0)
        );
        let q = values(block.attn.query.weight.val());
        let bound = 3f32.sqrt() / 4.0;
        assert!(q.iter().all(|w| w.abs() <= bound) && q.iter().any(|w| w.abs() > bound / 2.0));
    }
    let head = values(model.unembedding.as_ref().unwrap().weight.val());
    let std = (head.iter().map(|w| w * w).sum::<f32>() / head.len() as f32).sqrt();
    assert!((0.0005..0.002).contains(&std), "head std {std}");
}

#[test]
fn invalid_switches_name_their_key() {
    let odd_heads = GptConfig {
        positions: Positions::Rope,
        n_embd: 18,
        n_head: 2,
        ..base()
    };
    assert_eq!(odd_heads.validate().unwrap_err().key, "positions");
    let softcap = GptConfig {
        logit_softcap: -1.0,
        ..base()
    };
    assert_eq!(softcap.validate().unwrap_err().key, "logit_softcap");
    let rope_base = GptConfig {
        rope_base: 1.0,
        ..base()
    };
    assert_eq!(rope_base.validate().unwrap_err().key, "rope_base");
    let tied = GptConfig {
        init: Init::Modern,
        tie_embeddings: true,
        ..base()
    };
    assert_eq!(tied.validate().unwrap_err().key, "init");
}

#[test]
fn the_gpt2_recipe_keeps_its_parameter_names() {
    // The defaults still build GPT-2's module tree: checkpoints of earlier runs load.
    let device = Device::flex();
    let model = Gpt::new(&base(), 1, &device).unwrap();
    let names: Vec<String> = tinygpt_model::weights::module_tensors(&model)
        .into_iter()
        .map(|t| t.name)
        .collect();
    for name in [
        "position_embedding.weight",
        "blocks.0.ln_1.gamma",
        "blocks.0.ln_1.beta",
        "ln_f.beta",
    ] {
        assert!(
            names.iter().any(|n| n == name),
            "{name} missing from {names:?}"
        );
    }
    assert!(
        !names
            .iter()
            .any(|n| n.contains("norm") || n.contains("gate")),
        "{names:?}"
    );
    let modern = Gpt::new(&modern(), 1, &device).unwrap();
    let names: Vec<String> = tinygpt_model::weights::module_tensors(&modern)
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert!(
        !names
            .iter()
            .any(|n| n.contains("position") || n.contains("gamma")),
        "{names:?}"
    );
}
