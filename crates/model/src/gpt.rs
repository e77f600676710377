//! The whole model: embeddings, a stack of blocks, final LayerNorm, unembedding.

use burn::module::Module;
use burn::nn::{Dropout, DropoutConfig, Embedding, LayerNorm, Linear};
use burn::tensor::module::linear;
use burn::tensor::{Device, Int, Tensor};

use crate::block::Block;
use crate::config::{ConfigError, GptConfig};
use crate::init::Initializer;
use crate::layers::{INIT_STD, layer_norm, linear as init_linear};

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
            ln_f: layer_norm(&init, c, config.bias),
            unembedding: (!config.tie_embeddings)
                .then(|| init_linear(&mut init, c, v, false, INIT_STD)),
            block_size: config.block_size,
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

    /// Logits through the explicit attention path, with every block's attention pattern
    /// `[batch, head, query, key]`, in block order.
    pub fn forward_with_patterns(&self, tokens: Tensor<2, Int>) -> (Tensor<3>, Vec<Tensor<4>>) {
        let mut x = self.embed(tokens);
        let mut patterns = Vec::with_capacity(self.blocks.len());
        for block in &self.blocks {
            let (next, pattern) = block.forward_explicit(x);
            x = next;
            patterns.push(pattern);
        }
        (self.unembed(x), patterns)
    }

    /// Token embedding plus learned position embedding: `[batch, time, n_embd]`.
    fn embed(&self, tokens: Tensor<2, Int>) -> Tensor<3> {
        let [_, t] = tokens.dims();
        assert!(
            t <= self.block_size,
            "sequence of {t} tokens exceeds block_size {}",
            self.block_size
        );
        let positions = Tensor::<1, Int>::arange(0..t as i64, &tokens.device()).reshape([1, t]);
        let x = self.token_embedding.forward(tokens) + self.position_embedding.forward(positions);
        self.dropout.forward(x)
    }

    fn unembed(&self, x: Tensor<3>) -> Tensor<3> {
        let x = self.ln_f.forward(x);
        match &self.unembedding {
            Some(unembedding) => unembedding.forward(x),
            None => linear(x, self.token_embedding.weight.val().transpose(), None),
        }
    }
}
