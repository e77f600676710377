//! Learning-rate schedule: linear warm-up, then cosine decay to `min_lr`.

use crate::config::TrainConfig;

/// Learning rate for optimizer step `step` (1-based).
pub fn learning_rate(step: usize, train: &TrainConfig) -> f64 {
    let (lr, min_lr, warmup) = (train.lr, train.min_lr, train.warmup_steps);
    if warmup > 0 && step <= warmup {
        return lr * step as f64 / warmup as f64;
    }
    let decay_steps = train.max_steps.saturating_sub(warmup);
    if decay_steps == 0 {
        return lr;
    }
    let progress = ((step - warmup) as f64 / decay_steps as f64).min(1.0);
    let cosine = 0.5 * (1.0 + (std::f64::consts::PI * progress).cos());
    min_lr + cosine * (lr - min_lr)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn train() -> TrainConfig {
        TrainConfig {
            lr: 1e-3,
            min_lr: 1e-4,
            warmup_steps: 10,
            max_steps: 110,
            ..TrainConfig::default()
        }
    }

    #[test]
    fn warmup_is_linear_from_zero() {
        assert!((learning_rate(1, &train()) - 1e-4).abs() < 1e-12);
        assert!((learning_rate(5, &train()) - 5e-4).abs() < 1e-12);
        assert!((learning_rate(10, &train()) - 1e-3).abs() < 1e-12);
    }

    #[test]
    fn cosine_reaches_midpoint_then_min_lr() {
        // halfway through the 100 decay steps, cos(pi/2) = 0: exactly between lr and min_lr
        assert!((learning_rate(60, &train()) - 5.5e-4).abs() < 1e-12);
        assert!((learning_rate(110, &train()) - 1e-4).abs() < 1e-12);
        // a quarter in: min + (1 + cos(pi/4))/2 * (lr - min)
        let quarter = 1e-4 + 0.5 * (1.0 + (std::f64::consts::FRAC_PI_4).cos()) * 9e-4;
        assert!((learning_rate(35, &train()) - quarter).abs() < 1e-12);
        // past max_steps (a resumed run extended later) it stays at min_lr
        assert!((learning_rate(500, &train()) - 1e-4).abs() < 1e-12);
    }

    #[test]
    fn no_warmup_starts_at_peak() {
        let t = TrainConfig {
            warmup_steps: 0,
            ..train()
        };
        assert!((learning_rate(0, &t) - 1e-3).abs() < 1e-12);
    }
}
