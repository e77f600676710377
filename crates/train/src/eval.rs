//! Scoring a text with a trained model: every target token exactly once, deterministically,
//! in windows of the model's context.

use burn::tensor::Device;
use burn::tensor::activation::log_softmax;
use tinygpt_model::Gpt;

use crate::tensors::{to_vec, token_tensor};

/// The windows that score every token after the first exactly once: `(start, first scored
/// position)`. Full windows of `block_size + 1` tokens at stride `block_size`; the remainder is
/// scored by one last window aligned to the end, counting only its new targets.
pub fn windows(n_tokens: usize, block_size: usize) -> Vec<(usize, usize)> {
    let span = block_size.min(n_tokens - 1);
    let mut windows = Vec::new();
    let mut start = 0;
    while start + span < n_tokens {
        windows.push((start, 0));
        start += span;
    }
    if start < n_tokens - 1 {
        let last = n_tokens - 1 - span;
        windows.push((last, start - last));
    }
    windows
}

/// Mean next-token loss over every target of `tokens`, and the number of windows used.
pub fn mean_loss(model: &Gpt, tokens: &[u32], batch_size: usize, device: &Device) -> (f64, usize) {
    let span = model.block_size.min(tokens.len() - 1);
    let all = windows(tokens.len(), model.block_size);
    let (mut total, mut count) = (0.0f64, 0usize);
    for chunk in all.chunks(batch_size) {
        let inputs: Vec<i64> = chunk
            .iter()
            .flat_map(|&(start, _)| tokens[start..start + span].iter().map(|&t| i64::from(t)))
            .collect();
        let logits = model.forward(token_tensor(&inputs, chunk.len(), device));
        let [rows, t, vocab] = logits.dims();
        let log_probs = to_vec(log_softmax(logits.reshape([rows * t, vocab]), 1));
        for (row, &(start, first)) in chunk.iter().enumerate() {
            for pos in first..span {
                let target = tokens[start + pos + 1] as usize;
                total -= f64::from(log_probs[(row * t + pos) * vocab + target]);
                count += 1;
            }
        }
    }
    (total / count as f64, all.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_score_every_target_once() {
        for (n, block) in [(10, 3), (11, 3), (12, 3), (4, 8), (2, 5), (100, 10)] {
            let mut scored = vec![0; n];
            let span = block.min(n - 1);
            for (start, first) in windows(n, block) {
                assert!(start + span < n);
                for pos in first..span {
                    scored[start + pos + 1] += 1;
                }
            }
            assert_eq!(scored[0], 0);
            assert!(
                scored[1..].iter().all(|&c| c == 1),
                "n={n} block={block}: {scored:?}"
            );
        }
        assert_eq!(windows(10, 3), vec![(0, 0), (3, 0), (6, 0)]);
        assert_eq!(windows(11, 3), vec![(0, 0), (3, 0), (6, 0), (7, 2)]);
    }
}
