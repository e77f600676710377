//! Greedy continuation of a prompt, printed at the end of training.

use burn::tensor::Device;
use tinygpt_model::generate::argmax;
use tinygpt_model::{Generator, Gpt};

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
