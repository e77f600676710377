//! The whole model: embeddings, a stack of blocks, final LayerNorm, unembedding.

use burn::module::Module;
use burn::nn::{Dropout, DropoutConfig, Embedding, LayerNorm, Linear};
use burn::tensor::{Device, Int, Tensor};

use crate::attention::AttentionMaps;
use crate::block::Block;
use crate::config::{ConfigError, GptConfig};
use crate::init::Initializer;
use crate::kv_cache::KvCache;
use crate::layers::{INIT_STD, layer_norm, linear as init_linear};
use tinygpt_kernels as fused;

#[derive(Module, Debug)]
pub struct Gpt {
    pub token_embedding: Embedding,
    pub position_embedding: Embedding,
    pub dropout: Dropout,
    pub blocks: Vec<Block>,
    pub ln_f: LayerNorm,
    /// `None` when tied: the unembedding is then the token embedding's transpose.
    pub unembedding: Option<Linear>,
    pub block_size: usize,
    /// The final LayerNorm's ε.
    pub layer_norm_eps: f64,
}

impl Gpt {
    /// Builds a model with GPT-2 initialisation drawn from `seed` (identical on every device).
    pub fn new(config: &GptConfig, seed: u64, device: &Device) -> Result<Self, ConfigError> {
        config.validate()?;
        let mut init = Initializer::new(seed, device);
        let (v, c) = (config.vocab_size, config.n_embd);
        Ok(Self {
            token_embedding: Embedding {
                weight: init.normal([v, c], INIT_STD),
            },
            position_embedding: Embedding {
                weight: init.normal([config.block_size, c], INIT_STD),
            },
            dropout: DropoutConfig::new(config.dropout).init(),
            blocks: (0..config.n_layer)
                .map(|_| Block::new(config, &mut init))
                .collect(),
            ln_f: layer_norm(&init, c, config.bias, config.layer_norm_eps),
            unembedding: (!config.tie_embeddings)
                .then(|| init_linear(&mut init, c, v, false, INIT_STD)),
            block_size: config.block_size,
            layer_norm_eps: config.layer_norm_eps,
        })
    }

    /// Next-token logits `[batch, time, vocab]` for every position of every sequence.
    pub fn forward(&self, tokens: Tensor<2, Int>) -> Tensor<3> {
        let mut x = self.embed(tokens);
        for block in &self.blocks {
            x = block.forward(x);
        }
        self.unembed(x)
    }

    /// Logits through the explicit attention path, with every block's attention scores and
    /// pattern, in block order.
    pub fn forward_with_patterns(&self, tokens: Tensor<2, Int>) -> (Tensor<3>, Vec<AttentionMaps>) {
        let mut x = self.embed(tokens);
        let mut maps = Vec::with_capacity(self.blocks.len());
        for block in &self.blocks {
            let (next, layer) = block.forward_explicit(x);
            x = next;
            maps.push(layer);
        }
        (self.unembed(x), maps)
    }

    /// Logits `[batch, vocab]` for the token after `tokens`, which continue the sequence whose
    /// keys and values `cache` holds (positions `cache.len..`). Updates the cache.
    pub fn forward_cached(&self, tokens: Tensor<2, Int>, cache: &mut KvCache) -> Tensor<2> {
        let [batch, t] = tokens.dims();
        let mut x = self.embed_at(tokens, cache.len);
        for (block, layer) in self.blocks.iter().zip(&mut cache.layers) {
            x = block.forward_cached(x, layer);
        }
        cache.len += t;
        let last = x.slice([0..batch, t - 1..t]);
        let logits = self.unembed(last);
        let [_, _, vocab] = logits.dims();
        logits.reshape([batch, vocab])
    }

    /// Token embedding plus learned position embedding: `[batch, time, n_embd]`.
    fn embed(&self, tokens: Tensor<2, Int>) -> Tensor<3> {
        self.embed_at(tokens, 0)
    }

    /// As [`Gpt::embed`] for tokens at positions `offset..offset + time`.
    fn embed_at(&self, tokens: Tensor<2, Int>, offset: usize) -> Tensor<3> {
        let [_, t] = tokens.dims();
        assert!(
            offset + t <= self.block_size,
            "positions up to {} exceed block_size {}",
            offset + t,
            self.block_size
        );
        let positions =
            Tensor::<1, Int>::arange(offset as i64..(offset + t) as i64, &tokens.device())
                .reshape([1, t]);
        let x = self.token_embedding.forward(tokens) + self.position_embedding.forward(positions);
        fused::dropout(&self.dropout, x)
    }

    fn unembed(&self, x: Tensor<3>) -> Tensor<3> {
        let x = fused::layer_norm(&self.ln_f, self.layer_norm_eps, x);
        match &self.unembedding {
            Some(unembedding) => fused::linear(unembedding, x),
            None => fused::linear_with(x, self.token_embedding.weight.val().transpose(), None),
        }
    }
}
