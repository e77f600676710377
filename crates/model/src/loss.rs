//! Next-token prediction loss.

use burn::tensor::activation::log_softmax;
use burn::tensor::{Int, Tensor};

/// Mean cross-entropy over all `batch × time` positions: at every position of every sequence
/// the model predicts the next token, so one window of T+1 tokens gives T training examples.
pub fn cross_entropy(logits: Tensor<3>, targets: Tensor<2, Int>) -> Tensor<1> {
    let [batch, t, vocab] = logits.dims();
    let log_probs = log_softmax(logits.reshape([batch * t, vocab]), 1);
    let target_log_probs = log_probs.gather(1, targets.reshape([batch * t, 1]));
    target_log_probs.mean().neg()
}

/// Mean cross-entropy over the positions `learn` marks (`[batch, time]`, 1 learned, 0
/// skipped), `learned` of them: a chat run learns the assistant's tokens only. A batch with
/// none learned has loss 0.
pub fn masked_cross_entropy(
    logits: Tensor<3>,
    targets: Tensor<2, Int>,
    learn: Tensor<2>,
    learned: usize,
) -> Tensor<1> {
    let [batch, t, vocab] = logits.dims();
    let log_probs = log_softmax(logits.reshape([batch * t, vocab]), 1);
    let target_log_probs = log_probs.gather(1, targets.reshape([batch * t, 1]));
    (target_log_probs.reshape([batch * t]) * learn.reshape([batch * t]))
        .sum()
        .div_scalar(learned.max(1) as f64)
        .neg()
}
