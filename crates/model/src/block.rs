//! One pre-LayerNorm residual block: `x += attn(ln(x)); x += mlp(ln(x))`.

use burn::module::Module;
use burn::nn::{Dropout, DropoutConfig, LayerNorm};
use burn::tensor::Tensor;

use crate::attention::{AttentionMaps, CausalSelfAttention};
use crate::config::GptConfig;
use crate::init::Initializer;
use crate::kv_cache::LayerCache;
use crate::layers;
use crate::mlp::Mlp;
use tinygpt_kernels::{dropout, layer_norm};

#[derive(Module, Debug)]
pub struct Block {
    pub ln_1: LayerNorm,
    pub attn: CausalSelfAttention,
    pub ln_2: LayerNorm,
    pub mlp: Mlp,
    pub dropout: Dropout,
    /// The LayerNorms' ε (burn keeps the module's own private; the fused path needs it).
    pub layer_norm_eps: f64,
}

impl Block {
    pub fn new(config: &GptConfig, init: &mut Initializer) -> Self {
        Self {
            ln_1: layers::layer_norm(init, config.n_embd, config.bias, config.layer_norm_eps),
            attn: CausalSelfAttention::new(config, init),
            ln_2: layers::layer_norm(init, config.n_embd, config.bias, config.layer_norm_eps),
            mlp: Mlp::new(config, init),
            dropout: DropoutConfig::new(config.dropout).init(),
            layer_norm_eps: config.layer_norm_eps,
        }
    }

    fn norm(&self, norm: &LayerNorm, x: Tensor<3>) -> Tensor<3> {
        layer_norm(norm, self.layer_norm_eps, x)
    }

    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let x = x.clone() + dropout(&self.dropout, self.attn.forward(self.norm(&self.ln_1, x)));
        x.clone() + dropout(&self.dropout, self.mlp.forward(self.norm(&self.ln_2, x)))
    }

    /// Same as [`Block::forward`] for new tokens attending through a key/value cache.
    pub fn forward_cached(&self, x: Tensor<3>, cache: &mut LayerCache) -> Tensor<3> {
        let attended = self
            .attn
            .forward_cached(self.norm(&self.ln_1, x.clone()), cache);
        let x = x + dropout(&self.dropout, attended);
        x.clone() + dropout(&self.dropout, self.mlp.forward(self.norm(&self.ln_2, x)))
    }

    /// Same as [`Block::forward`] through the explicit attention path; also returns the
    /// block's attention scores and pattern.
    pub fn forward_explicit(&self, x: Tensor<3>) -> (Tensor<3>, AttentionMaps) {
        let (attended, maps) = self.attn.forward_explicit(self.norm(&self.ln_1, x.clone()));
        let x = x + dropout(&self.dropout, attended);
        let x = x.clone() + dropout(&self.dropout, self.mlp.forward(self.norm(&self.ln_2, x)));
        (x, maps)
    }
}
