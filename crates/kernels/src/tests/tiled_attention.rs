//! The tiled attention against burn's attention with the same mask (the plain twin): outputs
//! and gradients, causality and the window, and what it keeps for the backward pass.

use burn::tensor::{Device, Tensor};

use super::{random, training_device};
use crate::heads::split_heads;
use crate::tiled_attention::{saved_state, tiled_attention};
use crate::{causal_self_attention, plain_causal_self_attention};

/// The heads' outputs and the gradient with respect to packed `[batch, time, 3·n_embd]`
/// projections, tiled or plain, under an upstream gradient that weighs every output
/// differently.
fn attention_with_grads(
    tiled: bool,
    [batch, time, n_head, d_head]: [usize; 4],
    window: usize,
) -> (Vec<f32>, Vec<f32>) {
    let device = training_device();
    let c = n_head * d_head;
    let qkv = Tensor::<3>::from_data(random([batch, time, 3 * c], 1), &device).require_grad();
    let output = match tiled {
        true => tiled_attention(&qkv, n_head, window).expect("flex autodiff takes the kernel"),
        false => plain_causal_self_attention(qkv.clone(), n_head, window),
    };
    let weights = split_heads(
        Tensor::<3>::from_data(random([batch, time, c], 4), &device),
        n_head,
    );
    let grads = (output.clone() * weights).sum().backward();
    let grad = qkv.grad(&grads).expect("leaf gradient");
    let values = |t: Tensor<3>| t.into_data().try_to_vec::<f32>().unwrap();
    (values(merge(output)), values(grad))
}

fn merge(heads: Tensor<4>) -> Tensor<3> {
    let [b, h, t, d] = heads.dims();
    heads.swap_dims(1, 2).reshape([b, t, h * d])
}

/// max |a − b| / max |b|, NaN if any element is NaN.
fn relative_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    let diff = a
        .iter()
        .zip(b)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, |max, d| if d > max || d.is_nan() { d } else { max });
    diff / scale
}

fn assert_close(shape: [usize; 4], window: usize) {
    let (out, grad) = attention_with_grads(true, shape, window);
    let (plain_out, plain_grad) = attention_with_grads(false, shape, window);
    let diff = relative_diff(&out, &plain_out);
    assert!(
        diff < 1e-5,
        "{shape:?}, window {window}: outputs differ by {diff}"
    );
    let diff = relative_diff(&grad, &plain_grad);
    assert!(
        diff < 1e-5,
        "{shape:?}, window {window}: dqkv differs by {diff}"
    );
}

#[test]
fn tiled_attention_matches_plain_attention_and_its_gradients() {
    // 300 and 523 positions: several blocks of queries and keys, the last ones partial.
    for d_head in [16, 32, 64, 128] {
        assert_close([1, 300, 2, d_head], 0);
    }
    assert_close([2, 523, 3, 16], 0);
    assert_close([1, 1, 2, 32], 0);
    assert_close([3, 5, 1, 16], 0);
}

#[test]
fn tiled_attention_with_a_window_matches_plain_attention_masked_alike() {
    let t = 301;
    for window in [1, 7, 200, t - 1, t] {
        assert_close([1, t, 2, 32], window);
    }
    assert_close([2, 40, 2, 16], 7);
}

#[test]
fn a_window_as_long_as_the_sequence_is_full_attention() {
    let device = Device::flex();
    let qkv = Tensor::<3>::from_data(random([1, 40, 3 * 16], 9), &device);
    let full = causal_self_attention(qkv.clone(), 2, 0);
    let window = causal_self_attention(qkv, 2, 40);
    let (a, b) = (full.into_data(), window.into_data());
    assert_eq!(a, b, "window = T took another path than full attention");
}

/// Outputs of the tiled kernel (no autodiff) after the keys and values at `position` change.
fn outputs_with_change_at(position: usize, time: usize, window: usize) -> [Vec<f32>; 2] {
    let device = Device::flex();
    let c = 16;
    let run = |change: bool| {
        let mut values = random([1, time, 3 * c], 2).try_to_vec::<f32>().unwrap();
        if change {
            let row = position * 3 * c;
            values[row + c..row + 3 * c]
                .iter_mut()
                .for_each(|x| *x += 1.5);
        }
        let qkv = Tensor::<3>::from_data(
            burn::tensor::TensorData::new(values, [1, time, 3 * c]),
            &device,
        );
        let heads = tiled_attention(&qkv, 2, window).expect("flex takes the kernel");
        merge(heads).into_data().try_to_vec::<f32>().unwrap()
    };
    [run(false), run(true)]
}

#[test]
fn a_change_reaches_only_the_queries_whose_window_holds_it() {
    let (time, c, j) = (700, 16, 333);
    for window in [0, 1, 7, 300] {
        let [before, after] = outputs_with_change_at(j, time, window);
        let reach = if window == 0 { time } else { j + window };
        for i in 0..time {
            let same = before[i * c..(i + 1) * c] == after[i * c..(i + 1) * c];
            let sees = i >= j && i < reach;
            assert_eq!(!same, sees, "window {window}: query {i}, change at {j}");
        }
    }
}

#[test]
fn what_the_tiled_backward_pass_keeps_grows_linearly_in_time() {
    let device = Device::flex();
    let (n_head, c) = (4, 128);
    let bytes = |t: usize| {
        let qkv = Tensor::<3>::from_data(random([1, t, 3 * c], 3), &device);
        let packed = crate::on_flex(&qkv).expect("a flex tensor");
        saved_state(packed, n_head, 0, crate::Precision::Fp32).bytes()
    };
    let (short, long) = (bytes(1024), bytes(2048));
    // Projections (3c), output (c) and one log-sum-exp per head and position: nothing T².
    assert_eq!(short, 4 * 1024 * (3 * c + c + n_head));
    assert_eq!(long, 2 * short);
}

/// Not a test: the tiled kernel's forward and backward passes timed apart at 8,192 tokens,
/// 4 heads of 32 (`cargo test --release -p tinygpt-kernels --lib time_the_tiled -- --ignored
/// --nocapture`).
#[test]
#[ignore]
fn time_the_tiled_attention_passes() {
    let (t, n_head, c) = (8192, 4, 128);
    let flops = (t * t / 2) as f64 * c as f64 * 2.0; // one T²/2·d product, every head
    for _ in 0..3 {
        let qkv = Tensor::<3>::from_data(random([1, t, 3 * c], 7), &training_device());
        let qkv = qkv.require_grad();
        let started = std::time::Instant::now();
        let out = tiled_attention(&qkv, n_head, 0).unwrap();
        let forward = started.elapsed().as_secs_f64();
        let grads = out.sum().backward();
        let _ = qkv.grad(&grads).unwrap().into_data();
        let backward = started.elapsed().as_secs_f64() - forward;
        println!(
            "forward {:.0} ms ({:.0} GFLOP/s), backward {:.0} ms ({:.0} GFLOP/s)",
            forward * 1e3,
            2.0 * flops / forward / 1e9,
            backward * 1e3,
            5.0 * flops / backward / 1e9
        );
    }
}

/// Not a test: single-threaded gemm speed on the tiled kernel's product shapes, hot in cache
/// (`... --lib time_the_tile_products -- --ignored --nocapture`).
#[test]
#[ignore]
fn time_the_tile_products() {
    use crate::matrix::{Matrix, multiply};
    let a = vec![0.5f32; 512 * 512];
    let b = vec![0.25f32; 512 * 512];
    let mut out = vec![0.0f32; 256 * 512];
    for (name, [m, n, k], transposed) in [
        ("warm-up", [128, 256, 32], true),
        ("QKᵀ 64×256×32", [64, 256, 32], true),
        ("QKᵀ 128×256×32", [128, 256, 32], true),
        ("QKᵀ 256×256×32", [256, 256, 32], true),
        ("QKᵀ 256×512×32", [256, 512, 32], true),
        ("PV 64×32×256", [64, 32, 256], false),
        ("PV 128×32×256", [128, 32, 256], false),
        ("dV 256×32×256", [256, 32, 256], false),
        ("dV 256×32×512", [256, 32, 512], false),
    ] {
        let lhs = Matrix::dense(&a, k);
        let rhs = match transposed {
            true => Matrix::new(&b, 0, 96, 1).transpose(), // keys' rows, 96 apart as packed
            false => Matrix::new(&b, 0, 96, 1),
        };
        let reps = 2000;
        let started = std::time::Instant::now();
        for _ in 0..reps {
            let out = crate::fresh::rewritable(&mut out);
            multiply(out, n, [m, n, k], lhs, rhs, 1.0, true);
        }
        let s = started.elapsed().as_secs_f64() / reps as f64;
        println!(
            "{name}: {:.1} µs, {:.0} GFLOP/s",
            s * 1e6,
            2.0 * (m * n * k) as f64 / s / 1e9
        );
    }
}
