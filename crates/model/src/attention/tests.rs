use burn::tensor::{Device, Tensor, TensorData};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::*;

fn training_device() -> Device {
    Device::flex().autodiff()
}

fn random(shape: [usize; 3], seed: u64) -> TensorData {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n = shape.iter().product();
    let values: Vec<f32> = (0..n).map(|_| rng.random_range(-2.0..2.0)).collect();
    TensorData::new(values, shape)
}

fn max_abs_diff<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> f32 {
    let a = a.into_data().try_to_vec::<f32>().unwrap();
    let b = b.into_data().try_to_vec::<f32>().unwrap();
    a.iter()
        .zip(&b)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max)
}

#[test]
fn packed_projection_attention_matches_the_explicit_path_with_weight_gradients() {
    // The model's fast path on flex with autodiff (one packed QKV product, fused attention,
    // fused linear maps) against its explicit path, written as the math.
    let device = training_device();
    let config = crate::config::GptConfig {
        vocab_size: 10,
        block_size: 32,
        n_layer: 2,
        n_head: 3,
        n_embd: 24,
        dropout: 0.0,
        bias: true,
        tie_embeddings: true,
        activation: Default::default(),
        layer_norm_eps: 1e-5,
        ..crate::config::GptConfig::default()
    };
    let layer =
        CausalSelfAttention::new(&config, 0, &mut crate::init::Initializer::new(3, &device));
    let run = |fast: bool| {
        let x = Tensor::<3>::from_data(random([2, 20, 24], 5), &device).require_grad();
        assert!(fused::applies(&x));
        let y = if fast {
            layer.forward(x.clone(), None)
        } else {
            layer.forward_explicit(x.clone(), None).0
        };
        let upstream = Tensor::<3>::from_data(random([2, 20, 24], 6), &device);
        let grads = (y.clone() * upstream).sum().backward();
        let weight_grads: Vec<Tensor<2>> = [&layer.query, &layer.key, &layer.value, &layer.output]
            .iter()
            .map(|l| l.weight.val().grad(&grads).unwrap())
            .collect();
        let bias_grad = layer.key.bias.as_ref().unwrap().val().grad(&grads).unwrap();
        (y, x.grad(&grads).unwrap(), weight_grads, bias_grad)
    };
    let (fast, explicit) = (run(true), run(false));
    assert!(max_abs_diff(fast.0, explicit.0) < 1e-5);
    assert!(max_abs_diff(fast.1, explicit.1) < 1e-5);
    for (f, e) in fast.2.into_iter().zip(explicit.2) {
        assert!(max_abs_diff(f, e) < 1e-5);
    }
    assert!(max_abs_diff(fast.3, explicit.3) < 1e-5);
}
