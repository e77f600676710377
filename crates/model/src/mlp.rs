//! The per-token feed-forward network: up to 4× width, GELU (exact or tanh), back down.

use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::Tensor;

use crate::config::{Activation, GptConfig};
use crate::init::Initializer;
use crate::layers::{INIT_STD, linear};
use tinygpt_kernels::{self as fused, gelu, gelu_tanh};

#[derive(Module, Debug)]
pub struct Mlp {
    pub up: Linear,
    pub down: Linear,
    #[module(skip)]
    pub activation: Activation,
}

impl Mlp {
    pub fn new(config: &GptConfig, init: &mut Initializer) -> Self {
        let (c, hidden) = (config.n_embd, 4 * config.n_embd);
        let residual_std = INIT_STD / (2.0 * config.n_layer as f64).sqrt();
        Self {
            up: linear(init, c, hidden, config.bias, INIT_STD),
            down: linear(init, hidden, c, config.bias, residual_std),
            activation: config.activation,
        }
    }

    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let hidden = fused::linear(&self.up, x);
        let hidden = match self.activation {
            Activation::Gelu => gelu(hidden),
            Activation::GeluTanh => gelu_tanh(hidden),
        };
        fused::linear(&self.down, hidden)
    }
}
