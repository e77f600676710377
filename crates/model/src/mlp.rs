//! The per-token feed-forward network: up to 4× width, GELU, back down.

use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::Tensor;

use crate::config::GptConfig;
use crate::init::Initializer;
use crate::layers::{INIT_STD, linear};
use tinygpt_kernels::{self as fused, gelu};

#[derive(Module, Debug)]
pub struct Mlp {
    pub up: Linear,
    pub down: Linear,
}

impl Mlp {
    pub fn new(config: &GptConfig, init: &mut Initializer) -> Self {
        let (c, hidden) = (config.n_embd, 4 * config.n_embd);
        let residual_std = INIT_STD / (2.0 * config.n_layer as f64).sqrt();
        Self {
            up: linear(init, c, hidden, config.bias, INIT_STD),
            down: linear(init, hidden, c, config.bias, residual_std),
        }
    }

    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        fused::linear(&self.down, gelu(fused::linear(&self.up, x)))
    }
}
