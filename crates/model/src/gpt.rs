//! The whole model: embeddings, a stack of blocks, final norm, unembedding.

use burn::module::Module;
use burn::nn::{Dropout, DropoutConfig, Embedding, Linear};
use burn::tensor::{Device, Int, Tensor, TensorData};

use crate::attention::AttentionMaps;
use crate::block::Block;
use crate::config::{GptConfig, Positions};
use crate::init::Initializer;
use crate::kv_cache::{KvCache, LayerCache};
use crate::layers::{self, Role};
use crate::norm::Norm;
use crate::validate::ConfigError;
use tinygpt_kernels::{self as fused, RotaryTables};

#[derive(Module, Debug)]
pub struct Gpt {
    pub token_embedding: Embedding,
    /// The learned position table (`None` with rotary positions).
    pub position_embedding: Option<Embedding>,
    /// A norm right after the embedding (`model.embedding_norm`).
    pub embedding_norm: Option<Norm>,
    pub dropout: Dropout,
    pub blocks: Vec<Block>,
    pub ln_f: Norm,
    /// `None` when tied: the unembedding is then the token embedding's transpose.
    pub unembedding: Option<Linear>,
    pub block_size: usize,
    /// RoPE's base when positions are rotary, else 0.
    pub rope_base: f64,
    /// Size of one head (RoPE's tables are per head).
    pub head_size: usize,
    /// `c` of the logits' soft-cap `c·tanh(z/c)`, 0 for none.
    pub logit_softcap: f64,
}

impl Gpt {
    /// Builds a model with GPT-2 initialisation drawn from `seed` (identical on every device).
    pub fn new(config: &GptConfig, seed: u64, device: &Device) -> Result<Self, ConfigError> {
        config.validate()?;
        let mut init = Initializer::new(seed, device);
        let (v, c) = (config.vocab_size, config.n_embd);
        let rope = config.positions == Positions::Rope;
        let token_embedding = Embedding {
            weight: layers::matrix(&mut init, config, Role::TokenEmbedding, [v, c]),
        };
        let position_embedding = (!rope).then(|| Embedding {
            weight: layers::matrix(
                &mut init,
                config,
                Role::PositionEmbedding,
                [config.block_size, c],
            ),
        });
        Ok(Self {
            token_embedding,
            position_embedding,
            embedding_norm: config.embedding_norm.then(|| layers::norm(&init, config)),
            dropout: DropoutConfig::new(config.dropout).init(),
            blocks: (0..config.n_layer)
                .map(|layer| Block::new(config, layer, &mut init))
                .collect(),
            ln_f: layers::norm(&init, config),
            unembedding: (!config.tie_embeddings).then(|| Linear {
                weight: layers::matrix(&mut init, config, Role::Head, [c, v]),
                bias: None,
            }),
            block_size: config.block_size,
            rope_base: if rope { config.rope_base } else { 0.0 },
            head_size: config.head_size(),
            logit_softcap: config.logit_softcap,
        })
    }

    /// Next-token logits `[batch, time, vocab]` for every position of every sequence.
    pub fn forward(&self, tokens: Tensor<2, Int>) -> Tensor<3> {
        let [_, t] = tokens.dims();
        let rotary = self.rotary(0, t, &tokens.device());
        let mut x = self.embed(tokens);
        for block in &self.blocks {
            x = block.forward(x, rotary.as_ref());
        }
        self.unembed(x)
    }

    /// Logits through the explicit attention path, with every block's attention scores and
    /// pattern, in block order.
    pub fn forward_with_patterns(&self, tokens: Tensor<2, Int>) -> (Tensor<3>, Vec<AttentionMaps>) {
        let [_, t] = tokens.dims();
        let rotary = self.rotary(0, t, &tokens.device());
        let mut x = self.embed(tokens);
        let mut maps = Vec::with_capacity(self.blocks.len());
        for block in &self.blocks {
            let (next, layer) = block.forward_explicit(x, rotary.as_ref());
            x = next;
            maps.push(layer);
        }
        (self.unembed(x), maps)
    }

    /// Logits `[batch, vocab]` for the token after `tokens`, which continue the sequence whose
    /// keys and values `cache` holds (positions `cache.len..`). Updates the cache.
    pub fn forward_cached(&self, tokens: Tensor<2, Int>, cache: &mut KvCache) -> Tensor<2> {
        let [batch, t] = tokens.dims();
        let rotary = self.rotary(cache.len, t, &tokens.device());
        let mut x = self.embed_at(tokens, cache.len);
        for (block, layer) in self.blocks.iter().zip(&mut cache.layers) {
            x = block.forward_cached(x, layer, rotary.as_ref());
        }
        cache.len += t;
        let last = x.slice([0..batch, t - 1..t]);
        let logits = self.unembed(last);
        let [_, _, vocab] = logits.dims();
        logits.reshape([batch, vocab])
    }

    /// Next-token logits `[lanes, vocab]` for several sequences decoding together: lane i adds
    /// `tokens[i]` at `positions[i]`, attending to its open slots of `cache` (see
    /// lanes.rs); `open` is `[lanes, slot + 1]`, true where a slot is lane i's. Writes
    /// the new keys and values at `slot` of every layer of `cache`.
    pub fn forward_lanes(
        &self,
        tokens: &[u32],
        positions: &[usize],
        cache: &mut [LayerCache],
        slot: usize,
        open: &[bool],
        device: &Device,
    ) -> Tensor<2> {
        let lanes = tokens.len();
        assert!(positions.len() == lanes && positions.iter().all(|&p| p < self.block_size));
        let rotary = (self.rope_base > 0.0)
            .then(|| RotaryTables::at(positions, self.head_size, self.rope_base, device));
        let row = |values: Vec<i64>| {
            Tensor::<2, Int>::from_data(TensorData::new(values, [1, lanes]), device)
        };
        let mut x = self.embed_with(row(tokens.iter().map(|&t| i64::from(t)).collect()), || {
            row(positions.iter().map(|&p| p as i64).collect())
        });
        for (block, layer) in self.blocks.iter().zip(cache) {
            x = block.forward_lanes(x, layer, slot, open, rotary.as_ref());
        }
        let logits = self.unembed(x);
        let [_, _, vocab] = logits.dims();
        logits.reshape([lanes, vocab])
    }

    /// RoPE's angles for positions `offset..offset + time`, when positions are rotary.
    fn rotary(&self, offset: usize, time: usize, device: &Device) -> Option<RotaryTables> {
        (self.rope_base > 0.0)
            .then(|| RotaryTables::new(offset, time, self.head_size, self.rope_base, device))
    }

    /// Token embedding (plus the learned position embedding, then the embedding norm, when
    /// the model has them): `[batch, time, n_embd]`.
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
        let device = tokens.device();
        self.embed_with(tokens, || {
            Tensor::<1, Int>::arange(offset as i64..(offset + t) as i64, &device).reshape([1, t])
        })
    }

    /// The embedding of `tokens` at `positions()` (`[1, time]`, made only when the positions
    /// are learned).
    fn embed_with(
        &self,
        tokens: Tensor<2, Int>,
        positions: impl FnOnce() -> Tensor<2, Int>,
    ) -> Tensor<3> {
        let mut x = self.token_embedding.forward(tokens);
        if let Some(table) = &self.position_embedding {
            x = x + table.forward(positions());
        }
        if let Some(norm) = &self.embedding_norm {
            x = norm.forward(x);
        }
        fused::dropout(&self.dropout, x)
    }

    fn unembed(&self, x: Tensor<3>) -> Tensor<3> {
        let x = self.ln_f.forward(x);
        let logits = match &self.unembedding {
            Some(unembedding) => fused::linear(unembedding, x),
            None => fused::linear_with(x, self.token_embedding.weight.val().transpose(), None),
        };
        if self.logit_softcap > 0.0 {
            fused::softcap(logits, self.logit_softcap)
        } else {
            logits
        }
    }
}
