//! The per-token feed-forward network: up to `mlp_hidden` (4× unless set), a nonlinearity (GELU exact or tanh,
//! ReLU², or SwiGLU's gate), back down.

use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::Tensor;

use crate::config::{Activation, GptConfig};
use crate::init::Initializer;
use crate::layers::{Role, linear};
use tinygpt_kernels::{self as fused, gelu, gelu_tanh};

#[derive(Module, Debug)]
pub struct Mlp {
    pub up: Linear,
    /// SwiGLU's gate, `[n_embd, mlp_hidden]` (no gate for the other activations).
    pub gate: Option<Linear>,
    pub down: Linear,
    #[module(skip)]
    pub activation: Activation,
}

impl Mlp {
    pub fn new(config: &GptConfig, init: &mut Initializer) -> Self {
        let (c, hidden) = (config.n_embd, config.mlp_hidden());
        let up = linear(init, config, Role::MlpUp, c, hidden);
        let gate = (config.activation == Activation::Swiglu)
            .then(|| linear(init, config, Role::MlpUp, c, hidden));
        Self {
            up,
            gate,
            down: linear(init, config, Role::ResidualOutput, hidden, c),
            activation: config.activation,
        }
    }

    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let hidden = match (&self.gate, self.activation) {
            (Some(gate), _) => {
                fused::swiglu(fused::linear(gate, x.clone()), fused::linear(&self.up, x))
            }
            (None, activation) => {
                let hidden = fused::linear(&self.up, x);
                match activation {
                    Activation::Gelu => gelu(hidden),
                    Activation::GeluTanh => gelu_tanh(hidden),
                    Activation::Relu2 => fused::relu2(hidden),
                    Activation::Swiglu => unreachable!("a SwiGLU MLP has a gate"),
                }
            }
        };
        fused::linear(&self.down, hidden)
    }
}
