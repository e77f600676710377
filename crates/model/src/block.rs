//! One pre-norm residual block: `x += attn(norm(x)); x += mlp(norm(x))`.

use burn::module::Module;
use burn::nn::{Dropout, DropoutConfig};
use burn::tensor::Tensor;

use crate::attention::{AttentionMaps, CausalSelfAttention};
use crate::config::GptConfig;
use crate::init::Initializer;
use crate::kv_cache::LayerCache;
use crate::layers;
use crate::mlp::Mlp;
use crate::norm::Norm;
use tinygpt_kernels::{RotaryTables, dropout};

#[derive(Module, Debug)]
pub struct Block {
    pub ln_1: Norm,
    pub attn: CausalSelfAttention,
    pub ln_2: Norm,
    pub mlp: Mlp,
    pub dropout: Dropout,
}

impl Block {
    /// Block number `layer` (which decides its attention window) of a model shaped `config`.
    pub fn new(config: &GptConfig, layer: usize, init: &mut Initializer) -> Self {
        Self {
            ln_1: layers::norm(init, config),
            attn: CausalSelfAttention::new(config, config.layer_window(layer), init),
            ln_2: layers::norm(init, config),
            mlp: Mlp::new(config, init),
            dropout: DropoutConfig::new(config.dropout).init(),
        }
    }

    /// The MLP's half of the block, after attention's.
    fn feed_forward(&self, x: Tensor<3>) -> Tensor<3> {
        x.clone() + dropout(&self.dropout, self.mlp.forward(self.ln_2.forward(x)))
    }

    pub fn forward(&self, x: Tensor<3>, rotary: Option<&RotaryTables>) -> Tensor<3> {
        let attended = self.attn.forward(self.ln_1.forward(x.clone()), rotary);
        self.feed_forward(x + dropout(&self.dropout, attended))
    }

    /// Same as [`Block::forward`] for new tokens attending through a key/value cache.
    pub fn forward_cached(
        &self,
        x: Tensor<3>,
        cache: &mut LayerCache,
        rotary: Option<&RotaryTables>,
    ) -> Tensor<3> {
        let attended = self
            .attn
            .forward_cached(self.ln_1.forward(x.clone()), cache, rotary);
        self.feed_forward(x + dropout(&self.dropout, attended))
    }

    /// Same as [`Block::forward`] for several sequences decoding together (see
    /// [`CausalSelfAttention::forward_lanes`]).
    pub fn forward_lanes(
        &self,
        x: Tensor<3>,
        cache: &mut LayerCache,
        slot: usize,
        open: &[bool],
        rotary: Option<&RotaryTables>,
    ) -> Tensor<3> {
        let attended =
            self.attn
                .forward_lanes(self.ln_1.forward(x.clone()), cache, slot, open, rotary);
        self.feed_forward(x + dropout(&self.dropout, attended))
    }

    /// Same as [`Block::forward`] through the explicit attention path; also returns the
    /// block's attention scores and pattern.
    pub fn forward_explicit(
        &self,
        x: Tensor<3>,
        rotary: Option<&RotaryTables>,
    ) -> (Tensor<3>, AttentionMaps) {
        let (attended, maps) = self
            .attn
            .forward_explicit(self.ln_1.forward(x.clone()), rotary);
        (
            self.feed_forward(x + dropout(&self.dropout, attended)),
            maps,
        )
    }
}
