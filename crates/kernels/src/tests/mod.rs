//! Every fused op against burn's plain ops: same outputs and same gradients.

use burn::tensor::{Device, Tensor, TensorData, activation};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{attention, dropout, gelu, layer_norm, linear, math, plain_causal_self_attention};
use crate::heads::split_heads;

mod bf16_linear;
mod causal_attention;
mod dropout_mask;
mod modern_ops;
pub(crate) mod operands;
mod rms_norm;
mod tiled_attention;
mod vector_levels;

fn training_device() -> Device {
    Device::flex().autodiff()
}

fn random(shape: [usize; 3], seed: u64) -> TensorData {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n = shape.iter().product();
    let values: Vec<f32> = (0..n).map(|_| rng.random_range(-2.0..2.0)).collect();
    TensorData::new(values, shape)
}

/// The largest |a − b|, or NaN if any difference is NaN (`f32::max` would drop it: an output
/// element a kernel never wrote is NaN in tests, see `fresh`).
fn max_abs_diff<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> f32 {
    let a = a.into_data().try_to_vec::<f32>().unwrap();
    let b = b.into_data().try_to_vec::<f32>().unwrap();
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(&b)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, |max, d| if d > max || d.is_nan() { d } else { max })
}

#[test]
fn fused_ops_take_the_plain_path_off_flex() {
    #[allow(deprecated)] // ndarray: a backend the user asked for
    let ndarray = Device::ndarray();
    for device in [ndarray.clone(), ndarray.autodiff()] {
        let packed = Tensor::<3>::from_data(random([1, 4, 24], 1), &device);
        assert!(attention::causal_attention(&packed, 2).is_none());
        assert!(!super::applies(&packed));
        let x = split_heads(Tensor::from_data(random([1, 4, 8], 1), &device), 2);
        assert!(gelu::gelu(&x, false).is_none());
        assert!(gelu::gelu(&x, true).is_none());
        assert!(dropout::dropout(&x, 0.5).is_none());
        let gamma = Tensor::<1>::ones([4], &device);
        assert!(layer_norm::layer_norm(&x, &gamma, &gamma, 1e-5).is_none());
        let weight = Tensor::<2>::ones([4, 3], &device);
        assert!(linear::linear(&x, &weight, None).is_none());
    }
}

#[test]
fn on_flex_without_autodiff_the_forward_kernels_give_the_plain_ops_values() {
    // Evaluation and sampling: the fused forward kernels alone, on plain `flex` tensors.
    let device = Device::flex();
    let x = Tensor::<3>::from_data(random([3, 50, 24], 21), &device);
    assert!(super::applies(&x));

    let weight = Tensor::<3>::from_data(random([1, 24, 36], 22), &device).reshape([24, 36]);
    let bias = Tensor::<3>::from_data(random([1, 1, 36], 23), &device).reshape([36]);
    let tied = Tensor::<3>::from_data(random([1, 65, 24], 24), &device)
        .reshape([65, 24])
        .transpose();
    for (weight, bias) in [(weight, Some(bias)), (tied, None)] {
        let fused = linear::linear(&x, &weight, bias.as_ref()).expect("flex takes the fused path");
        let plain = burn::tensor::module::linear(x.clone(), weight, bias);
        let diff = max_abs_diff(fused, plain);
        assert!(diff < 1e-5, "linear differs by {diff}");
    }

    for tanh in [false, true] {
        let fused = gelu::gelu(&x, tanh).expect("flex takes the fused path");
        let plain = match tanh {
            false => activation::gelu(x.clone()),
            true => activation::gelu_approximate(x.clone()),
        };
        let diff = max_abs_diff(fused, plain);
        assert!(diff < 2e-6, "gelu (tanh: {tanh}) differs by {diff}");
    }

    let mut norm = burn::nn::LayerNormConfig::new(24).init(&device);
    norm.gamma = burn::module::Param::from_tensor(
        Tensor::<3>::from_data(random([1, 1, 24], 25), &device).reshape([24]),
    );
    let beta = norm.beta.as_ref().unwrap().val();
    let fused = layer_norm::layer_norm(
        &x,
        &norm.gamma.val(),
        &beta,
        crate::LAYER_NORM_EPSILON as f32,
    )
    .expect("flex takes the fused path");
    let diff = max_abs_diff(fused, norm.forward(x.clone()));
    assert!(diff < 1e-5, "layer norm differs by {diff}");

    // Two tiles of queries, three heads.
    let packed = Tensor::<3>::from_data(random([2, 70, 3 * 24], 26), &device);
    let fused = attention::causal_attention(&packed, 3).expect("flex takes the fused path");
    let diff = max_abs_diff(fused, plain_causal_self_attention(packed, 3, 0));
    assert!(diff < 1e-5, "attention differs by {diff}");

    #[allow(deprecated)] // ndarray: a backend the user asked for
    let ndarray = Device::ndarray();
    let other = Tensor::<3>::from_data(random([1, 4, 8], 1), &ndarray);
    assert!(!super::applies(&other));
}

#[test]
fn fused_gelu_matches_plain_gelu_and_its_gradient() {
    // The exact form against burn's erf GELU, the tanh form against burn's approximation.
    for tanh in [false, true] {
        let device = training_device();
        // -8..8 in steps of 1/64: the tails, zero, and everything between.
        let values: Vec<f32> = (-512..=512).map(|i| i as f32 / 64.0).collect();
        let n = values.len();
        let run = |fused: bool| {
            let x = Tensor::<1>::from_data(TensorData::new(values.clone(), [n]), &device)
                .require_grad();
            let y = match (fused, tanh) {
                (true, _) => gelu::gelu(&x, tanh).expect("flex autodiff takes the fused path"),
                (false, false) => activation::gelu(x.clone()),
                (false, true) => activation::gelu_approximate(x.clone()),
            };
            let upstream = Tensor::<3>::from_data(random([1, 1, n], 5), &device).reshape([n]);
            let grads = (y.clone() * upstream).sum().backward();
            (y, x.grad(&grads).unwrap())
        };
        let ((fused_y, fused_dx), (plain_y, plain_dx)) = (run(true), run(false));
        let diff = max_abs_diff(fused_y, plain_y);
        assert!(diff < 2e-6, "gelu (tanh: {tanh}) differs by {diff}");
        let diff = max_abs_diff(fused_dx, plain_dx);
        assert!(
            diff < 2e-6,
            "gelu (tanh: {tanh}) gradient differs by {diff}"
        );
    }
}

#[test]
fn vectorised_exp_is_within_a_few_ulp() {
    let mut worst = 0.0f32;
    for i in -8700..8800 {
        let x = i as f32 / 100.0 + 0.003;
        let (fast, exact) = (math::exp(x), (x as f64).exp() as f32);
        worst = worst.max(((fast - exact) / exact).abs());
    }
    assert!(worst < 4.0 * f32::EPSILON, "relative error {worst}");
}

#[test]
fn shifted_exp_and_dot_match_their_definitions() {
    let mut row: Vec<f32> = (0..19).map(|i| (i as f32 * 0.37).sin() * 3.0).collect();
    let max = row.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
    let expected: Vec<f32> = row.iter().map(|v| (v - max).exp()).collect();
    let sum = math::exp_shifted(&mut row);
    for (got, want) in row.iter().zip(&expected) {
        assert!((got - want).abs() < 1e-6);
    }
    assert!((sum - expected.iter().sum::<f32>()).abs() < 1e-5);
    let b: Vec<f32> = (0..19).map(|i| i as f32).collect();
    let want: f32 = row.iter().zip(&b).map(|(a, b)| a * b).sum();
    assert!((math::dot(&row, &b) - want).abs() < 1e-4);
}

#[test]
fn fused_layer_norm_matches_plain_layer_norm_and_its_gradients() {
    let device = training_device();
    // 150 rows: more than one parallel task, and a last task that is not full. 20 columns: not
    // a multiple of the eight vector lanes.
    let shape = [3, 50, 20];
    let run = |fused: bool| {
        let mut norm = burn::nn::LayerNormConfig::new(20)
            .with_epsilon(crate::LAYER_NORM_EPSILON)
            .init(&device);
        let gamma: Tensor<3> = Tensor::from_data(random([1, 1, 20], 7), &device);
        let beta: Tensor<3> = Tensor::from_data(random([1, 1, 20], 8), &device);
        norm.gamma = burn::module::Param::from_tensor(gamma.reshape([20]));
        norm.beta = Some(burn::module::Param::from_tensor(beta.reshape([20])));
        // Rows with a large offset and a small spread test the variance's stability.
        let x = Tensor::<3>::from_data(random(shape, 9), &device)
            .mul_scalar(0.1)
            .add_scalar(30.0);
        let x = x.require_grad();
        let y = if fused {
            layer_norm::layer_norm(
                &x,
                &norm.gamma.val(),
                &norm.beta.as_ref().unwrap().val(),
                1e-5,
            )
            .expect("flex autodiff takes the fused path")
        } else {
            norm.forward(x.clone())
        };
        let upstream = Tensor::<3>::from_data(random(shape, 10), &device);
        let grads = (y.clone() * upstream).sum().backward();
        let d_gamma = norm.gamma.val().grad(&grads).unwrap();
        let d_beta = norm.beta.as_ref().unwrap().val().grad(&grads).unwrap();
        (y, x.grad(&grads).unwrap(), d_gamma, d_beta)
    };
    let (fused, plain) = (run(true), run(false));
    let diff = max_abs_diff(fused.0, plain.0);
    assert!(diff < 1e-4, "layer norm differs by {diff}");
    let diff = max_abs_diff(fused.1, plain.1);
    assert!(diff < 1e-3, "dx differs by {diff}");
    let diff = max_abs_diff(fused.2, plain.2);
    assert!(diff < 1e-3, "dgamma differs by {diff}");
    let diff = max_abs_diff(fused.3, plain.3);
    assert!(diff < 1e-4, "dbeta differs by {diff}");
}

/// Output and gradients (x, W, b) of `x·W + b` through the fused op or burn's `linear`. With
/// `transposed`, W is the transpose of a `[d_out, d_in]` leaf, as for the tied unembedding.
fn linear_with_grads(
    fused: bool,
    [batch, time, d_in, d_out]: [usize; 4],
    bias: bool,
    transposed: bool,
) -> Vec<Tensor<3>> {
    let device = training_device();
    let x = Tensor::<3>::from_data(random([batch, time, d_in], 11), &device).require_grad();
    let leaf_shape = if transposed {
        [1, d_out, d_in]
    } else {
        [1, d_in, d_out]
    };
    let w_leaf = Tensor::<3>::from_data(random(leaf_shape, 12), &device)
        .reshape([leaf_shape[1], leaf_shape[2]])
        .require_grad();
    let weight = if transposed {
        w_leaf.clone().transpose()
    } else {
        w_leaf.clone()
    };
    let b = bias.then(|| {
        Tensor::<3>::from_data(random([1, 1, d_out], 13), &device)
            .reshape([d_out])
            .require_grad()
    });
    let y = if fused {
        linear::linear(&x, &weight, b.as_ref()).expect("flex autodiff takes the fused path")
    } else {
        burn::tensor::module::linear(x.clone(), weight, b.clone())
    };
    let upstream = Tensor::<3>::from_data(random([batch, time, d_out], 14), &device);
    let grads = (y.clone() * upstream).sum().backward();
    let mut out = vec![
        y,
        x.grad(&grads).unwrap(),
        w_leaf.grad(&grads).unwrap().unsqueeze(),
    ];
    if let Some(b) = b {
        out.push(b.grad(&grads).unwrap().unsqueeze());
    }
    out
}

#[test]
fn fused_linear_matches_plain_linear_and_its_gradients() {
    // A small product (one thread), the default shape's (gemm on all threads), and the tied
    // unembedding: no bias, W a transposed view.
    for (dims, bias, transposed) in [
        ([3, 50, 20, 36], true, false),
        ([32, 64, 128, 128], true, false),
        ([4, 16, 32, 65], false, true),
    ] {
        let fused = linear_with_grads(true, dims, bias, transposed);
        let plain = linear_with_grads(false, dims, bias, transposed);
        assert_eq!(fused.len(), plain.len());
        for (name, (f, p)) in ["y", "dx", "dW", "db"]
            .iter()
            .zip(fused.into_iter().zip(plain))
        {
            assert_eq!(f.dims(), p.dims(), "{name} shape for {dims:?}");
            let scale = p.clone().abs().max().into_scalar::<f32>().max(1.0);
            let diff = max_abs_diff(f, p);
            assert!(
                diff < 2e-6 * scale,
                "{name} differs by {diff} (scale {scale}) for {dims:?}"
            );
        }
    }
}

#[test]
fn tanh_gelu_and_its_derivative_match_the_f64_formulas() {
    // −10..10 in steps of 1/128, and a length that is not a multiple of the vector width.
    let x: Vec<f32> = (-1280..=1280).map(|i| i as f32 / 128.0).collect();
    let (mut y, mut d) = (vec![0.0; x.len()], vec![0.0; x.len()]);
    math::gelu_tanh_forward(
        &x,
        crate::fresh::rewritable(&mut y),
        crate::fresh::rewritable(&mut d),
    );
    let c = (2.0 / std::f64::consts::PI).sqrt();
    for ((&x, &y), &d) in x.iter().zip(&y).zip(&d) {
        let x = f64::from(x);
        let t = (c * (x + 0.044715 * x.powi(3))).tanh();
        let want_y = 0.5 * x * (1.0 + t);
        let want_d = 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * c * (1.0 + 3.0 * 0.044715 * x * x);
        assert!(
            (f64::from(y) - want_y).abs() < 1e-6 * want_y.abs().max(1.0),
            "y({x})"
        );
        assert!(
            (f64::from(d) - want_d).abs() < 1e-6 * want_d.abs().max(1.0),
            "d({x}): {d} vs {want_d}"
        );
    }
}

/// Runs `f` with this thread's bf16 products on `VDPBF16PS` even where AMX tiles are
/// granted, for the tests that hold them to the scalar reference's bits.
pub(crate) fn on_dot_pairs<R>(f: impl FnOnce() -> R) -> R {
    use crate::math::{Level, level, with_level};
    if level() > Level::Avx512Bf16 {
        with_level(Level::Avx512Bf16, f)
    } else {
        f()
    }
}
