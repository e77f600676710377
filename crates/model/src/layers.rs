//! The small building blocks every block uses, and how each starts: the init scheme
//! (`model.init`) decides, in this one place, every matrix's initial distribution by its role.

use burn::module::Param;
use burn::nn::Linear;
use burn::tensor::Tensor;

use crate::config::{GptConfig, Init};
use crate::init::Initializer;
use crate::norm::Norm;

/// GPT-2's standard deviation for weight matrices.
pub const INIT_STD: f64 = 0.02;

/// What a matrix does in the model, which decides how it is initialised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    TokenEmbedding,
    PositionEmbedding,
    /// Query, key and value maps: read from the residual stream.
    Input,
    /// The MLP's up (and gate) maps.
    MlpUp,
    /// Attention's output and the MLP's down map: write into the residual stream.
    ResidualOutput,
    /// The untied unembedding.
    Head,
}

/// A matrix of `shape` for `role`, drawn from the config's init scheme:
/// - `gpt2`: N(0, 0.02²), residual outputs N(0, (0.02/√(2L))²) so the stream's variance does
///   not grow with depth;
/// - `modern` (nanochat's): inputs uniform with the standard deviation 1/√n_embd (no
///   outliers), the MLP's up map at 0.4 of that, residual outputs zero (every block starts as
///   the identity), the embedding N(0, 0.8²) and the head N(0, 0.001²).
pub fn matrix(
    init: &mut Initializer,
    config: &GptConfig,
    role: Role,
    shape: [usize; 2],
) -> Param<Tensor<2>> {
    match config.init {
        Init::Gpt2 => {
            let std = match role {
                Role::ResidualOutput => INIT_STD / (2.0 * config.n_layer as f64).sqrt(),
                _ => INIT_STD,
            };
            init.normal(shape, std)
        }
        Init::Modern => {
            let bound = 3f64.sqrt() / (config.n_embd as f64).sqrt();
            match role {
                Role::TokenEmbedding => init.normal(shape, 0.8),
                Role::PositionEmbedding => init.normal(shape, INIT_STD),
                Role::Input => init.uniform(shape, bound),
                Role::MlpUp => init.uniform(shape, 0.4 * bound),
                Role::ResidualOutput => init.constant(shape, 0.0),
                Role::Head => init.normal(shape, 0.001),
            }
        }
    }
}

/// `x ↦ x·W (+ b)`, W of shape [d_in, d_out] for `role`, b = 0 when the config has biases.
pub fn linear(
    init: &mut Initializer,
    config: &GptConfig,
    role: Role,
    d_in: usize,
    d_out: usize,
) -> Linear {
    Linear {
        weight: matrix(init, config, role, [d_in, d_out]),
        bias: config.bias.then(|| init.constant([d_out], 0.0)),
    }
}

/// `x ↦ x·W + b` with W ~ N(0, std²) of shape [d_in, d_out] and b = 0 (for layers outside the
/// GPT itself, such as the cross-attention lecture example).
pub fn normal_linear(
    init: &mut Initializer,
    d_in: usize,
    d_out: usize,
    bias: bool,
    std: f64,
) -> Linear {
    Linear {
        weight: init.normal([d_in, d_out], std),
        bias: bias.then(|| init.constant([d_out], 0.0)),
    }
}

/// The config's norm over the residual stream's `n_embd` features.
pub fn norm(init: &Initializer, config: &GptConfig) -> Norm {
    norm_over(init, config, config.n_embd)
}

/// The config's norm over `width` features (a head's, for QK-norm).
pub fn norm_over(init: &Initializer, config: &GptConfig, width: usize) -> Norm {
    Norm::new(
        init,
        config.norm,
        width,
        config.norm_weight,
        config.bias,
        config.layer_norm_eps,
    )
}
