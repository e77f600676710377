//! Autoregressive generation with a sliding context window, through the KV cache or by
//! recomputing the whole context each step — both see exactly the same context.
//!
//! The context is `tokens[window_start..]`. When it would grow past `block_size`, the window
//! slides so that only the newest `block_size / 2` tokens remain: learned position embeddings
//! tie every cached key to its position, so the cache is rebuilt from those tokens, once per
//! `block_size / 2` new tokens rather than once per token.

use burn::tensor::{Device, Int, Tensor, TensorData};

use crate::gpt::Gpt;
use crate::kv_cache::KvCache;

pub struct Generator<'a> {
    model: &'a Gpt,
    device: Device,
    tokens: Vec<u32>,
    window_start: usize,
    /// `None`: recompute the whole context every step.
    cache: Option<KvCache>,
}

impl<'a> Generator<'a> {
    /// `prompt` must be non-empty and at most `block_size` tokens long.
    pub fn new(model: &'a Gpt, prompt: &[u32], use_cache: bool, device: &Device) -> Self {
        assert!(!prompt.is_empty() && prompt.len() <= model.block_size);
        Self {
            model,
            device: device.clone(),
            tokens: prompt.to_vec(),
            window_start: 0,
            cache: use_cache.then(|| KvCache::new(model.blocks.len())),
        }
    }

    /// All tokens so far, prompt included.
    pub fn tokens(&self) -> &[u32] {
        &self.tokens
    }

    /// Next-token logits `[vocab]` given the current context (does not add a token).
    pub fn next_logits(&mut self) -> Vec<f32> {
        let block_size = self.model.block_size;
        if self.tokens.len() - self.window_start > block_size {
            self.window_start = self.tokens.len() - (block_size / 2).max(1);
            if let Some(cache) = &mut self.cache {
                cache.clear();
            }
        }
        let context = &self.tokens[self.window_start..];
        let logits = match &mut self.cache {
            Some(cache) => {
                // Feed what the cache has not seen: the whole window after a (re)build,
                // otherwise just the newest token.
                let new = &context[cache.len..];
                self.model.forward_cached(ids(new, &self.device), cache)
            }
            None => {
                let logits = self.model.forward(ids(context, &self.device));
                let [_, t, vocab] = logits.dims();
                logits.slice([0..1, t - 1..t]).reshape([1, vocab])
            }
        };
        logits
            .into_data_as::<f32>()
            .as_slice::<f32>()
            .expect("f32 data")
            .to_vec()
    }

    pub fn push(&mut self, token: u32) {
        self.tokens.push(token);
    }
}

fn ids(tokens: &[u32], device: &Device) -> Tensor<2, Int> {
    let ids: Vec<i64> = tokens.iter().map(|&t| i64::from(t)).collect();
    Tensor::from_data(TensorData::new(ids, [1, tokens.len()]), device)
}

/// Index of the largest logit (the first one on ties).
pub fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &x) in logits.iter().enumerate() {
        if x > logits[best] {
            best = i;
        }
    }
    best as u32
}

/// `prompt` followed by `n_new` greedily chosen tokens.
pub fn greedy(model: &Gpt, prompt: &[u32], n_new: usize, device: &Device) -> Vec<u32> {
    let start = prompt.len().saturating_sub(model.block_size);
    let mut generator = Generator::new(model, &prompt[start..], true, device);
    for _ in 0..n_new {
        let next = argmax(&generator.next_logits());
        generator.push(next);
    }
    let mut tokens = prompt[..start].to_vec();
    tokens.extend_from_slice(generator.tokens());
    tokens
}
