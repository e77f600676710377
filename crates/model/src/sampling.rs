//! Choosing the next token from logits: temperature, then top-k, then top-p (nucleus).

use crate::generate::argmax;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SamplingParams {
    /// 0 means greedy (argmax).
    pub temperature: f64,
    pub top_k: Option<usize>,
    pub top_p: Option<f64>,
}

/// The tokens still allowed after top-k and then top-p, with their renormalised
/// probabilities, most likely first. Ties keep the lower token id first.
pub fn candidates(logits: &[f32], params: &SamplingParams) -> Vec<(u32, f64)> {
    let t = params.temperature.max(f64::MIN_POSITIVE);
    let max = logits.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x)) as f64;
    let mut probs: Vec<(u32, f64)> = logits
        .iter()
        .enumerate()
        .map(|(i, &x)| (i as u32, ((x as f64 - max) / t).exp()))
        .collect();
    probs.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    if let Some(k) = params.top_k {
        probs.truncate(k.max(1));
    }
    normalise(&mut probs);
    if let Some(p) = params.top_p {
        // The smallest prefix whose mass reaches p (always at least one token).
        let mut mass = 0.0;
        let mut keep = probs.len();
        for (i, (_, q)) in probs.iter().enumerate() {
            mass += q;
            if mass >= p - 1e-12 {
                keep = i + 1;
                break;
            }
        }
        probs.truncate(keep);
        normalise(&mut probs);
    }
    probs
}

fn normalise(probs: &mut [(u32, f64)]) {
    let total: f64 = probs.iter().map(|(_, q)| q).sum();
    for (_, q) in probs.iter_mut() {
        *q /= total;
    }
}

/// Draws the next token (argmax when the temperature is 0).
pub fn sample(logits: &[f32], params: &SamplingParams, rng: &mut ChaCha8Rng) -> u32 {
    if params.temperature == 0.0 {
        return argmax(logits);
    }
    let candidates = candidates(logits, params);
    let mut u: f64 = rng.random();
    for &(token, q) in &candidates {
        if u < q {
            return token;
        }
        u -= q;
    }
    candidates.last().expect("at least one candidate").0
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    /// Logits whose softmax (at temperature 1) is exactly `probs`.
    fn logits(probs: &[f64]) -> Vec<f32> {
        probs.iter().map(|p| p.ln() as f32).collect()
    }

    fn params(top_k: Option<usize>, top_p: Option<f64>) -> SamplingParams {
        SamplingParams {
            temperature: 1.0,
            top_k,
            top_p,
        }
    }

    fn kept(c: &[(u32, f64)]) -> Vec<u32> {
        c.iter().map(|(t, _)| *t).collect()
    }

    #[test]
    fn top_k_keeps_the_k_most_likely() {
        let l = logits(&[0.1, 0.4, 0.2, 0.3]);
        let c = candidates(&l, &params(Some(2), None));
        assert_eq!(kept(&c), vec![1, 3]);
        assert!((c[0].1 - 0.4 / 0.7).abs() < 1e-6 && (c[1].1 - 0.3 / 0.7).abs() < 1e-6);
        assert_eq!(
            kept(&candidates(&l, &params(Some(10), None))),
            vec![1, 3, 2, 0]
        );
    }

    #[test]
    fn top_p_keeps_the_smallest_set_reaching_p() {
        let l = logits(&[0.1, 0.4, 0.2, 0.3]);
        // 0.4 < 0.5; 0.4 + 0.3 = 0.7 ≥ 0.5
        assert_eq!(kept(&candidates(&l, &params(None, Some(0.5)))), vec![1, 3]);
        // exactly reaching p counts: 0.4 + 0.3 = 0.7
        assert_eq!(kept(&candidates(&l, &params(None, Some(0.7)))), vec![1, 3]);
        assert_eq!(
            kept(&candidates(&l, &params(None, Some(0.71)))),
            vec![1, 3, 2]
        );
        assert_eq!(kept(&candidates(&l, &params(None, Some(0.3)))), vec![1]);
        assert_eq!(
            kept(&candidates(&l, &params(None, Some(1.0)))),
            vec![1, 3, 2, 0]
        );
    }

    #[test]
    fn top_k_then_top_p_compose() {
        let l = logits(&[0.05, 0.35, 0.25, 0.2, 0.15]);
        // top-3 → {0.35, 0.25, 0.2} renormalised to {0.4375, 0.3125, 0.25}; p = 0.7 → 2 tokens
        let c = candidates(&l, &params(Some(3), Some(0.7)));
        assert_eq!(kept(&c), vec![1, 2]);
        assert!((c[0].1 - 0.35 / 0.6).abs() < 1e-6);
    }

    #[test]
    fn temperature_sharpens_and_zero_is_greedy() {
        let l = logits(&[0.2, 0.8]);
        let hot = candidates(
            &l,
            &SamplingParams {
                temperature: 2.0,
                top_k: None,
                top_p: None,
            },
        );
        let cold = candidates(
            &l,
            &SamplingParams {
                temperature: 0.5,
                top_k: None,
                top_p: None,
            },
        );
        // p ∝ q^(1/T): T = 0.5 → 0.64 : 0.04; T = 2 → sqrt(0.8) : sqrt(0.2)
        assert!((cold[0].1 - 0.64 / 0.68).abs() < 1e-6);
        assert!((hot[0].1 - 0.8f64.sqrt() / (0.8f64.sqrt() + 0.2f64.sqrt())).abs() < 1e-6);
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let greedy = SamplingParams {
            temperature: 0.0,
            top_k: None,
            top_p: None,
        };
        assert!((0..20).all(|_| sample(&l, &greedy, &mut rng) == 1));
    }

    #[test]
    fn sampling_follows_the_distribution_and_respects_filters() {
        let l = logits(&[0.1, 0.4, 0.2, 0.3]);
        let mut rng = ChaCha8Rng::seed_from_u64(42);
        let mut counts = [0usize; 4];
        for _ in 0..20_000 {
            counts[sample(&l, &params(None, None), &mut rng) as usize] += 1;
        }
        for (c, p) in counts.iter().zip([0.1, 0.4, 0.2, 0.3]) {
            assert!((*c as f64 / 20_000.0 - p).abs() < 0.015, "{counts:?}");
        }
        for _ in 0..2_000 {
            let t = sample(&l, &params(Some(2), None), &mut rng);
            assert!(t == 1 || t == 3);
        }
    }
}
