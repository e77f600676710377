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
