//! Muon (Keller Jordan, 2024): momentum, then the update replaced by the nearest
//! semi-orthogonal matrix, for the blocks' weight matrices.
//!
//! Each matrix's gradient feeds a Nesterov momentum; the quintic Newton–Schulz iteration then
//! maps the momentum `G = UΣVᵀ` to about `UVᵀ` (every singular value pushed into roughly
//! [0.7, 1.2]), so every direction the matrix acts in moves by a similar amount. The step is
//! scaled by `√max(1, out/in)` for the matrix as it acts (`out × in`). burn's `Linear` stores
//! `[in, out]`, so that is `√max(1, cols/rows)` here: the MLP's up map (in = C, out = 4C) gets
//! 2, its down map 1. (burn-optim's Muon reads the first two dimensions as `rows × cols`, which
//! for burn's own layout scales the down map instead; hence this one.)
//!
//! The iteration is written with burn's tensor ops, so on `flex` its products run on the same
//! gemm as training's; in a bf16 run (`train.precision = "bf16"`) they take bf16 operands with
//! f32 sums, as training's do (modded-nanogpt and nanochat run it in bf16 too): the iteration
//! only has to land the singular values in its band, and its share of a small-batch step is
//! large (a third of nanogpt-char's at batch 16).

use std::collections::{BTreeMap, HashMap};

use burn::tensor::Tensor;
use tinygpt_kernels::{Precision, bf16_batched_matmul};

use crate::config::TrainConfig;

/// The quintic iteration's coefficients (a, b, c): `X ← aX + (bA + cA²)X`, `A = XXᵀ`.
pub const NEWTON_SCHULZ: (f64, f64, f64) = (3.4445, -4.7750, 2.0315);
/// Newton–Schulz steps per update.
pub const NEWTON_SCHULZ_STEPS: usize = 5;
/// The momentum Muon starts from, warming up to `train.muon_momentum`.
const FIRST_MOMENTUM: f64 = 0.85;

#[derive(Debug, Clone)]
pub struct Muon {
    pub momentum: f64,
    pub momentum_warmup: usize,
    pub weight_decay: f64,
    /// The momentum of each matrix, by parameter path, flattened to 1-D.
    pub buffers: HashMap<String, Tensor<1>>,
    /// What the Newton–Schulz products multiply in (the run's `train.precision`).
    pub precision: Precision,
}

impl Muon {
    pub fn new(train: &TrainConfig) -> Self {
        Self {
            momentum: train.muon_momentum,
            momentum_warmup: train.muon_momentum_warmup,
            weight_decay: train.muon_weight_decay,
            buffers: HashMap::new(),
            precision: train.precision,
        }
    }

    /// The momentum at optimizer step `step` (1-based): from 0.85 up to `momentum`, linearly
    /// over `momentum_warmup` steps.
    pub fn momentum_at(&self, step: u64) -> f64 {
        if self.momentum_warmup == 0 {
            return self.momentum;
        }
        let progress = (step as f64 / self.momentum_warmup as f64).min(1.0);
        let start = FIRST_MOMENTUM.min(self.momentum);
        start + progress * (self.momentum - start)
    }

    /// One Muon step's directions for every matrix in `grads` (`key → gradient`, each
    /// `[in, out]`): the momentum buffers move, and each look-ahead is orthogonalised. Matrices
    /// of one shape go through one batched Newton–Schulz iteration (a default block has four
    /// square maps and two 1:4 ones), so a step runs 2 × 15 products, not 6 × n_layer × 15.
    pub fn directions(
        &mut self,
        grads: Vec<(String, Tensor<2>)>,
        step: u64,
    ) -> HashMap<String, Tensor<2>> {
        let mu = self.momentum_at(step);
        // Look-aheads by their wide orientation ([rows ≤ cols]); tall ones transposed.
        let mut by_shape: BTreeMap<[usize; 2], Vec<(String, bool, Tensor<2>)>> = BTreeMap::new();
        for (key, grad) in grads {
            let shape = grad.dims();
            // buffer ← μ·buffer + (1 − μ)·g; the Nesterov look-ahead (1 − μ)·g + μ·buffer.
            let scaled = grad.mul_scalar(1.0 - mu);
            let buffer = match self.buffers.remove(&key) {
                Some(previous) => previous.reshape(shape).mul_scalar(mu) + scaled.clone(),
                None => scaled.clone(),
            };
            let look_ahead = scaled + buffer.clone().mul_scalar(mu);
            self.buffers
                .insert(key.clone(), buffer.reshape([shape[0] * shape[1]]));
            let tall = shape[0] > shape[1];
            let wide = if tall {
                look_ahead.transpose()
            } else {
                look_ahead
            };
            by_shape
                .entry(wide.dims())
                .or_default()
                .push((key, tall, wide));
        }
        let mut directions = HashMap::new();
        for (_, group) in by_shape {
            let stacked = Tensor::stack(group.iter().map(|(_, _, g)| g.clone()).collect(), 0);
            let orthogonal = newton_schulz_wide(stacked, NEWTON_SCHULZ_STEPS, self.precision);
            let [_, rows, cols] = orthogonal.dims();
            for (i, (key, tall, _)) in group.into_iter().enumerate() {
                let one = orthogonal.clone().narrow(0, i, 1).reshape([rows, cols]);
                directions.insert(key, if tall { one.transpose() } else { one });
            }
        }
        directions
    }

    /// `weight` (`[in, out]`) after a step in `direction` at learning rate `lr`, with the
    /// shape scale and the decoupled weight decay.
    pub fn apply(&self, weight: Tensor<2>, direction: Tensor<2>, lr: f64) -> Tensor<2> {
        let step_size = lr * shape_scale(weight.dims());
        weight.mul_scalar(1.0 - lr * self.weight_decay) - direction.mul_scalar(step_size)
    }
}

/// `√max(1, out/in)` for a weight stored `[in, out]`.
pub fn shape_scale([d_in, d_out]: [usize; 2]) -> f64 {
    (d_out as f64 / d_in as f64).max(1.0).sqrt()
}

/// The quintic Newton–Schulz iteration on `g`: about `UVᵀ` for `g = UΣVᵀ`. Works on the wide
/// orientation (so `XXᵀ` is the smaller square) and gives the result in `g`'s.
pub fn newton_schulz(g: Tensor<2>, steps: usize) -> Tensor<2> {
    let [rows, cols] = g.dims();
    let tall = rows > cols;
    let x = if tall { g.transpose() } else { g };
    let [r, c] = x.dims();
    let x = newton_schulz_wide(x.reshape([1, r, c]), steps, Precision::Fp32).reshape([r, c]);
    if tall { x.transpose() } else { x }
}

/// The iteration on a batch of wide matrices `[n, rows ≤ cols]`, each on its own, its
/// products in `precision` (bf16 where the kernels take it: on `flex`, with AVX512_BF16).
fn newton_schulz_wide(g: Tensor<3>, steps: usize, precision: Precision) -> Tensor<3> {
    // Each scaled to Frobenius norm ≤ 1, so every singular value starts in (0, 1].
    let norm = g
        .clone()
        .square()
        .sum_dim(2)
        .sum_dim(1)
        .sqrt()
        .add_scalar(1e-7);
    let mut x = g / norm;
    let (a, b, c) = NEWTON_SCHULZ;
    let matmul = |lhs: Tensor<3>, rhs: Tensor<3>| match precision {
        Precision::Bf16 => bf16_batched_matmul(&lhs, &rhs).unwrap_or_else(|| lhs.matmul(rhs)),
        Precision::Fp32 => lhs.matmul(rhs),
    };
    for _ in 0..steps {
        let gram = matmul(x.clone(), x.clone().swap_dims(1, 2));
        let poly = gram.clone().mul_scalar(b) + matmul(gram.clone(), gram).mul_scalar(c);
        x = x.clone().mul_scalar(a) + matmul(poly, x);
    }
    x
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};

    use crate::tensors::to_vec;

    /// Entries in (−1, 1) from a fixed hash of (seed, index): no two matrices alike.
    fn random(rows: usize, cols: usize, seed: u64) -> Tensor<2> {
        let values: Vec<f32> = (0..rows * cols)
            .map(|i| {
                let x = (i as f64 * 12.9898 + seed as f64 * 78.233).sin() * 43_758.545_3;
                (2.0 * (x - x.floor()) - 1.0) as f32
            })
            .collect();
        Tensor::from_data(TensorData::new(values, [rows, cols]), &Device::flex())
    }

    /// The eigenvalues of the small Gram matrix `XXᵀ` (or `XᵀX`) by Jacobi rotations: the
    /// squared singular values of `X`. (Indices read as the textbook's.)
    #[allow(clippy::needless_range_loop)]
    fn squared_singular_values(x: &Tensor<2>) -> Vec<f64> {
        let [rows, cols] = x.dims();
        let v: Vec<f64> = to_vec(x.clone()).into_iter().map(f64::from).collect();
        let n = rows.min(cols);
        let at = |i: usize, j: usize| {
            if rows <= cols {
                v[i * cols + j]
            } else {
                v[j * cols + i]
            }
        };
        let m = rows.max(cols);
        let mut gram = vec![vec![0.0; n]; n];
        for i in 0..n {
            for j in 0..n {
                gram[i][j] = (0..m).map(|k| at(i, k) * at(j, k)).sum();
            }
        }
        for _ in 0..100 {
            for p in 0..n {
                for q in p + 1..n {
                    if gram[p][q].abs() < 1e-15 {
                        continue;
                    }
                    let theta = (gram[q][q] - gram[p][p]) / (2.0 * gram[p][q]);
                    let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                    let c = 1.0 / (t * t + 1.0).sqrt();
                    let s = t * c;
                    for k in 0..n {
                        let (gkp, gkq) = (gram[k][p], gram[k][q]);
                        gram[k][p] = c * gkp - s * gkq;
                        gram[k][q] = s * gkp + c * gkq;
                    }
                    for k in 0..n {
                        let (gpk, gqk) = (gram[p][k], gram[q][k]);
                        gram[p][k] = c * gpk - s * gqk;
                        gram[q][k] = s * gpk + c * gqk;
                    }
                }
            }
        }
        (0..n).map(|i| gram[i][i]).collect()
    }

    #[test]
    fn newton_schulz_in_bf16_lands_in_the_same_band_and_multiplies_differently() {
        if let Err(why) = tinygpt_kernels::bf16_products() {
            eprintln!("SKIPPED: {why}");
            return;
        }
        for (rows, cols, seed) in [(16, 48, 5), (32, 32, 6), (128, 512, 7)] {
            let g = random(rows, cols, seed).reshape([1, rows, cols]);
            let run = |precision| newton_schulz_wide(g.clone(), NEWTON_SCHULZ_STEPS, precision);
            let (bf16, fp32) = (run(Precision::Bf16), run(Precision::Fp32));
            let squared = squared_singular_values(&bf16.clone().reshape([rows, cols]));
            for s in squared.iter().map(|s2| s2.sqrt()) {
                assert!(
                    (0.6..=1.25).contains(&s),
                    "{rows}x{cols}: singular value {s}"
                );
            }
            let (bf16, fp32) = (to_vec(bf16), to_vec(fp32));
            let worst = bf16
                .iter()
                .zip(&fp32)
                .fold(0.0f32, |m, (x, y)| m.max((x - y).abs()));
            let size = fp32.iter().fold(0.0f32, |m, x| m.max(x.abs()));
            assert!(
                worst > 0.0 && worst < 0.1 * size,
                "{rows}x{cols}: {worst} of {size}"
            );
        }
    }

    #[test]
    fn newton_schulz_is_near_orthogonal_for_tall_wide_and_square_matrices() {
        // The quintic's fixed band: after 5 steps from a Frobenius-normalised start, every
        // singular value of a well-spread random matrix lies in about [0.7, 1.2].
        for (rows, cols, seed) in [(48, 16, 1), (16, 48, 2), (32, 32, 3), (128, 512, 4)] {
            let out = newton_schulz(random(rows, cols, seed), NEWTON_SCHULZ_STEPS);
            assert_eq!(out.dims(), [rows, cols]);
            let squared = squared_singular_values(&out);
            for s2 in &squared {
                let s = s2.sqrt();
                assert!(
                    (0.6..=1.25).contains(&s),
                    "{rows}x{cols}: singular value {s}"
                );
            }
            // and the input's were far from one (spread by the random draw)
            let input = squared_singular_values(&random(rows, cols, seed));
            let (lo, hi) = input
                .iter()
                .fold((f64::MAX, 0.0f64), |(lo, hi), s| (lo.min(*s), hi.max(*s)));
            assert!(hi / lo > 4.0, "{rows}x{cols}: input spread {lo}..{hi}");
        }
    }

    #[test]
    fn newton_schulz_commutes_with_transposition() {
        let g = random(24, 40, 7);
        let direct = to_vec(newton_schulz(g.clone(), 5));
        let via_transpose = to_vec(newton_schulz(g.transpose(), 5).transpose());
        for (a, b) in direct.iter().zip(&via_transpose) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
    }

    #[test]
    fn the_step_scale_follows_the_matrix_as_it_acts_out_by_in() {
        // burn stores [in, out]: the MLP's up map [C, 4C] acts as 4C × C and gets √4 = 2; the
        // down map [4C, C] acts as C × 4C and gets 1; square maps 1.
        assert_eq!(shape_scale([128, 512]), 2.0);
        assert_eq!(shape_scale([512, 128]), 1.0);
        assert_eq!(shape_scale([128, 128]), 1.0);
        // The whole update: zero momentum history, an up map's weight moves by lr·2·NS(g).
        let train = TrainConfig {
            muon_momentum_warmup: 0,
            ..TrainConfig::default()
        };
        let mut muon = Muon::new(&train);
        let g = random(8, 32, 9);
        let w = Tensor::<2>::zeros([8, 32], &Device::flex());
        let directions = muon.directions(vec![("up".to_string(), g.clone())], 1);
        let moved = to_vec(muon.apply(w, directions["up"].clone(), 0.1));
        let mu = train.muon_momentum;
        let look_ahead = g.mul_scalar((1.0 - mu) * (1.0 + mu));
        let expected = to_vec(newton_schulz(look_ahead, 5).mul_scalar(-0.1 * 2.0));
        for (a, b) in moved.iter().zip(&expected) {
            assert!((a - b).abs() < 1e-6, "{a} vs {b}");
        }
        assert!(muon.buffers.contains_key("up"));
    }

    #[test]
    fn a_batch_of_matrices_is_orthogonalised_each_on_its_own() {
        // Square, wide and tall matrices in one step give what each gives alone.
        let train = TrainConfig::default();
        let shapes = [(16, 16), (16, 64), (64, 16), (16, 16), (16, 64)];
        let grads: Vec<(String, Tensor<2>)> = shapes
            .iter()
            .enumerate()
            .map(|(i, &(r, c))| (format!("m{i}"), random(r, c, 20 + i as u64)))
            .collect();
        let together = Muon::new(&train).directions(grads.clone(), 1);
        for (key, grad) in grads {
            let alone = Muon::new(&train).directions(vec![(key.clone(), grad)], 1);
            let (a, b) = (to_vec(together[&key].clone()), to_vec(alone[&key].clone()));
            let diff = a
                .iter()
                .zip(&b)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f32::max);
            assert!(diff < 1e-5, "{key}: {diff}");
        }
    }

    #[test]
    fn momentum_warms_up_linearly_from_0_85() {
        let muon = Muon::new(&TrainConfig {
            muon_momentum: 0.95,
            muon_momentum_warmup: 100,
            ..TrainConfig::default()
        });
        assert!((muon.momentum_at(0) - 0.85).abs() < 1e-12);
        assert!((muon.momentum_at(50) - 0.90).abs() < 1e-12);
        assert!((muon.momentum_at(100) - 0.95).abs() < 1e-12);
        assert!((muon.momentum_at(1000) - 0.95).abs() < 1e-12);
    }
}
