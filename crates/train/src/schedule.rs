//! Learning-rate schedules: linear warm-up, then either a cosine decay to `min_lr` or
//! warmup–stable–decay (WSD: flat at the peak, then a linear warmdown to `min_lr` over the
//! last `warmdown_fraction` of the steps, as modded-nanogpt and nanochat train).

use crate::config::{Schedule, TrainConfig};

/// Learning rate for optimizer step `step` (1-based).
pub fn learning_rate(step: usize, train: &TrainConfig) -> f64 {
    let (lr, min_lr, warmup) = (train.lr, train.min_lr, train.warmup_steps);
    if warmup > 0 && step <= warmup {
        return lr * step as f64 / warmup as f64;
    }
    if train.schedule == Schedule::Wsd {
        return warmup_stable_decay(step, train);
    }
    let decay_steps = train.max_steps.saturating_sub(warmup);
    if decay_steps == 0 {
        return lr;
    }
    let progress = ((step - warmup) as f64 / decay_steps as f64).min(1.0);
    let cosine = 0.5 * (1.0 + (std::f64::consts::PI * progress).cos());
    min_lr + cosine * (lr - min_lr)
}

/// WSD past the warm-up: `lr` until the warmdown starts, then linearly down to `min_lr` at
/// `max_steps` (and `min_lr` beyond, for a run extended later).
fn warmup_stable_decay(step: usize, train: &TrainConfig) -> f64 {
    let (lr, min_lr) = (train.lr, train.min_lr);
    let warmdown = (train.warmdown_fraction * train.max_steps as f64).round() as usize;
    let start = train.max_steps.saturating_sub(warmdown);
    if step <= start || warmdown == 0 {
        return lr;
    }
    let progress = ((step - start) as f64 / warmdown as f64).min(1.0);
    lr + progress * (min_lr - lr)
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

    #[test]
    fn wsd_warms_up_stays_flat_then_falls_linearly_to_min_lr() {
        let t = TrainConfig {
            schedule: Schedule::Wsd,
            warmdown_fraction: 0.25,
            max_steps: 200,
            ..train()
        };
        // warm-up as before
        assert!((learning_rate(5, &t) - 5e-4).abs() < 1e-12);
        // flat at the peak until step 150 (the last quarter of 200 decays)
        for step in [10, 11, 100, 150] {
            assert_eq!(learning_rate(step, &t), 1e-3, "step {step}");
        }
        // halfway through the warmdown: halfway between lr and min_lr
        assert!((learning_rate(175, &t) - 5.5e-4).abs() < 1e-12);
        assert!((learning_rate(151, &t) - (1e-3 - 9e-4 / 50.0)).abs() < 1e-12);
        assert!((learning_rate(200, &t) - 1e-4).abs() < 1e-12);
        assert!((learning_rate(400, &t) - 1e-4).abs() < 1e-12);
        // no warmdown: flat to the end
        let flat = TrainConfig {
            warmdown_fraction: 0.0,
            ..t
        };
        assert_eq!(learning_rate(200, &flat), 1e-3);
    }
}
