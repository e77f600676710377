//! Seeded, host-side parameter initialisation.
//!
//! Weights are drawn on the CPU from a ChaCha stream and then uploaded, so the same seed gives
//! bit-identical initial weights on every device and backend (ndarray, flex, a GPU).

use burn::module::Param;
use burn::tensor::{Device, Tensor, TensorData};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal, Uniform};

/// Draws parameters from one seeded stream, in the order they are requested.
pub struct Initializer {
    rng: ChaCha8Rng,
    device: Device,
}

impl Initializer {
    pub fn new(seed: u64, device: &Device) -> Self {
        Self {
            rng: ChaCha8Rng::seed_from_u64(seed),
            device: device.clone(),
        }
    }

    /// A trainable tensor with entries drawn from N(0, std²).
    pub fn normal<const D: usize>(&mut self, shape: [usize; D], std: f64) -> Param<Tensor<D>> {
        let normal = Normal::new(0.0f32, std as f32).expect("std is finite and positive");
        let len = shape.iter().product();
        let values: Vec<f32> = (0..len).map(|_| normal.sample(&mut self.rng)).collect();
        Param::from_data(TensorData::new(values, shape), &self.device)
    }

    /// A trainable tensor with entries drawn uniformly from [−bound, bound).
    pub fn uniform<const D: usize>(&mut self, shape: [usize; D], bound: f64) -> Param<Tensor<D>> {
        let bound = bound as f32;
        let uniform = Uniform::new(-bound, bound).expect("bound is finite and positive");
        let len = shape.iter().product();
        let values: Vec<f32> = (0..len).map(|_| uniform.sample(&mut self.rng)).collect();
        Param::from_data(TensorData::new(values, shape), &self.device)
    }

    /// A trainable tensor filled with `value` (zeros for biases, ones for LayerNorm gains).
    pub fn constant<const D: usize>(&self, shape: [usize; D], value: f32) -> Param<Tensor<D>> {
        let len = shape.iter().product();
        Param::from_data(TensorData::new(vec![value; len], shape), &self.device)
    }

    pub fn device(&self) -> &Device {
        &self.device
    }
}
