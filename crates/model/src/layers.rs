//! The two small building blocks every block uses, initialised GPT-2 style.

use burn::nn::{LayerNorm, LayerNormConfig, Linear};

use crate::init::Initializer;

/// GPT-2's standard deviation for weight matrices.
pub const INIT_STD: f64 = 0.02;

/// `x ↦ x·W + b` with W ~ N(0, std²) of shape [d_in, d_out] and b = 0.
pub fn linear(init: &mut Initializer, d_in: usize, d_out: usize, bias: bool, std: f64) -> Linear {
    Linear {
        weight: init.normal([d_in, d_out], std),
        bias: bias.then(|| init.constant([d_out], 0.0)),
    }
}

/// LayerNorm with gain 1, (optionally) shift 0, and `epsilon` added to the variance.
pub fn layer_norm(init: &Initializer, n_embd: usize, bias: bool, epsilon: f64) -> LayerNorm {
    let mut norm = LayerNormConfig::new(n_embd)
        .with_bias(bias)
        .with_epsilon(epsilon)
        .init(init.device());
    norm.gamma = init.constant([n_embd], 1.0);
    norm.beta = bias.then(|| init.constant([n_embd], 0.0));
    norm
}
