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

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};

    #[test]
    fn masked_cross_entropy_is_the_mean_over_the_learned_targets() {
        let device = Device::flex();
        // Two positions over a vocabulary of 2: logits (0, ln 3) and (ln 3, 0).
        let ln3 = 3f32.ln();
        let logits = Tensor::<3>::from_data(
            TensorData::new(vec![0.0, ln3, ln3, 0.0], [1, 2, 2]),
            &device,
        );
        let targets = Tensor::<2, Int>::from_data(TensorData::new(vec![1i64, 1], [1, 2]), &device);
        let value = |t: Tensor<1>| t.into_scalar::<f32>();
        // -ln(3/4) at the first position, -ln(1/4) at the second.
        let (first, second) = (-(0.75f32).ln(), -(0.25f32).ln());
        let learn =
            |w: [f32; 2]| Tensor::<2>::from_data(TensorData::new(w.to_vec(), [1, 2]), &device);
        let all = value(masked_cross_entropy(
            logits.clone(),
            targets.clone(),
            learn([1.0, 1.0]),
            2,
        ));
        assert!((all - (first + second) / 2.0).abs() < 1e-6);
        assert!((all - value(cross_entropy(logits.clone(), targets.clone()))).abs() < 1e-6);
        let only_second = value(masked_cross_entropy(
            logits.clone(),
            targets.clone(),
            learn([0.0, 1.0]),
            1,
        ));
        assert!((only_second - second).abs() < 1e-6);
        let none = value(masked_cross_entropy(logits, targets, learn([0.0, 0.0]), 0));
        assert_eq!(none, 0.0);
    }
}
