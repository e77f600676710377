//! Greedy continuation of a prompt (full sampling lives in its own command).

use burn::tensor::Device;
use tinygpt_model::Gpt;

use crate::tensors::token_tensor;

/// Appends `n_new` tokens to `prompt`, each the argmax of the next-token logits given the
/// last `block_size` tokens.
pub fn greedy(model: &Gpt, prompt: &[u32], n_new: usize, device: &Device) -> Vec<u32> {
    let mut tokens = prompt.to_vec();
    for _ in 0..n_new {
        let context = &tokens[tokens.len().saturating_sub(model.block_size)..];
        let ids: Vec<i64> = context.iter().map(|&t| t as i64).collect();
        let logits = model.forward(token_tensor(&ids, 1, device));
        let [_, t, vocab] = logits.dims();
        let last = logits.slice([0..1, t - 1..t, 0..vocab]).reshape([vocab]);
        tokens.push(last.argmax(0).into_scalar::<i64>() as u32);
    }
    tokens
}
