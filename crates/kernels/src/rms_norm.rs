//! RMSNorm, `x/√(mean(x²) + ε) (·γ)`, as one pass forward and one backward on `flex` with
//! autodiff (the forward pass alone without autodiff), beside its plain twin through burn's
//! ops (square, mean, add, sqrt, reciprocal, multiply: five passes and their backward).
//!
//! The forward pass keeps each row's 1/rms; the backward pass writes dx and sums dγ in one
//! sweep over the rows. A norm without a gain (nanochat's, QK-norm's) runs with γ = 1 and no
//! gradient asked for it.

use std::mem::MaybeUninit;

use burn::backend::Flex;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops};
use burn::backend::flex::FlexTensor;
use burn::tensor::{Tensor, TensorData};
use rayon::prelude::*;

use super::fresh::{unwritten, written};
use super::math::{Level, level, vectorised};
use super::{on_flex, on_flex_autodiff, register, track, values};

/// Rows per parallel task.
const ROWS: usize = 64;

/// `x/√(mean(x²) + ε) (·γ)` over the last dimension, with burn's ops.
pub fn plain_rms_norm<const D: usize>(
    x: Tensor<D>,
    gamma: Option<Tensor<1>>,
    epsilon: f64,
) -> Tensor<D> {
    let mean_square = x.clone().square().mean_dim(D - 1);
    let normalised = x * mean_square.add_scalar(epsilon).sqrt().recip();
    match gamma {
        Some(gamma) => normalised * gamma.unsqueeze(),
        None => normalised,
    }
}

/// `Some(RMSNorm(x))` when x (and γ) are f32 tensors on `flex`, with autodiff or without;
/// else `None`.
pub(super) fn rms_norm<const D: usize>(
    x: &Tensor<D>,
    gamma: Option<&Tensor<1>>,
    epsilon: f32,
) -> Option<Tensor<D>> {
    let width = x.dims()[D - 1];
    let ones = || Tensor::<1>::ones([width], &x.device());
    let gamma = gamma.cloned().unwrap_or_else(ones);
    if let Some(x) = on_flex(x) {
        let gamma = on_flex(&gamma)?.to_contiguous();
        let (output, _) = normalise(&x.to_contiguous(), values(&gamma), epsilon);
        return Some(Tensor::from_primitive::<Flex>(output));
    }
    let (x, gamma) = (on_flex_autodiff(x)?, on_flex_autodiff(&gamma)?);
    let input = x.primitive().to_contiguous();
    let g = gamma.primitive().to_contiguous();
    let (output, rstd) = normalise(&input, values(&g), epsilon);
    let saved = Saved {
        input,
        gamma: g,
        rstd,
    };
    Some(track(RmsNorm, [x.node(), gamma.node()], saved, output))
}

/// Each row of a contiguous `input` normalised, with its 1/√(mean(x²) + ε).
fn normalise(input: &FlexTensor, gamma: &[f32], epsilon: f32) -> (FlexTensor, Vec<f32>) {
    let c = gamma.len();
    let mut output = unwritten(input.layout().num_elements());
    let mut rstd = vec![0.0f32; output.len() / c];
    output
        .par_chunks_mut(ROWS * c)
        .zip(rstd.par_chunks_mut(ROWS))
        .zip(values(input).par_chunks(ROWS * c))
        .for_each(|((y, rstd), x)| {
            for ((y, x), rstd) in y.chunks_exact_mut(c).zip(x.chunks_exact(c)).zip(rstd) {
                *rstd = rms_norm_row(x, gamma, epsilon, y);
            }
        });
    // SAFETY: every row was normalised into its place.
    let output = unsafe { written(output) };
    let shape = input.layout().shape().clone();
    (FlexTensor::from_data(TensorData::new(output, shape)), rstd)
}

vectorised! {
    /// One row: writes `x·r·γ` and returns r = 1/√(mean(x²) + ε). Eight partial sums, so
    /// every vector level adds in the same order.
    pub fn rms_norm_row(x: &[f32], gamma: &[f32], epsilon: f32, y: &mut [MaybeUninit<f32>]) -> f32 {
        let n = x.len();
        let mut squares = [0.0f32; 8];
        let chunks = x.chunks_exact(8);
        let tail: f32 = chunks.remainder().iter().map(|v| v * v).sum();
        for chunk in chunks {
            for i in 0..8 {
                squares[i] += chunk[i] * chunk[i];
            }
        }
        let mean_square = (squares.iter().sum::<f32>() + tail) / n as f32;
        let rstd = 1.0 / (mean_square + epsilon).sqrt();
        for ((y, &x), &g) in y.iter_mut().zip(x).zip(gamma) {
            y.write(x * rstd * g);
        }
        rstd
    }
}

vectorised! {
    /// Backward of one row: writes dx and adds this row's share of dγ. With x̂ = x·r and
    /// g = dy·γ: dx = r·(g − x̂·mean(g·x̂)).
    pub fn rms_norm_row_backward(
        x: &[f32],
        dy: &[f32],
        gamma: &[f32],
        rstd: f32,
        dx: &mut [MaybeUninit<f32>],
        d_gamma: &mut [f32],
    ) {
        let n = x.len();
        let (dy, gamma, dx, d_gamma) = (&dy[..n], &gamma[..n], &mut dx[..n], &mut d_gamma[..n]);
        let mut gx_sum = [0.0f32; 8];
        let (x8, dy8, gamma8) = (x.chunks_exact(8), dy.chunks_exact(8), gamma.chunks_exact(8));
        let mut gx_tail = 0.0;
        for ((&x, &dy), &gamma) in x8.remainder().iter().zip(dy8.remainder()).zip(gamma8.remainder()) {
            gx_tail += dy * gamma * x * rstd;
        }
        for ((x, dy), gamma) in x8.zip(dy8).zip(gamma8) {
            for i in 0..8 {
                gx_sum[i] += dy[i] * gamma[i] * x[i] * rstd;
            }
        }
        let gx_mean = (gx_sum.iter().sum::<f32>() + gx_tail) / n as f32;
        for k in 0..n {
            let x_hat = x[k] * rstd;
            dx[k].write(rstd * (dy[k] * gamma[k] - x_hat * gx_mean));
            d_gamma[k] += dy[k] * x_hat;
        }
    }
}

#[derive(Debug)]
struct RmsNorm;

#[derive(Debug, Clone)]
struct Saved {
    input: FlexTensor,
    gamma: FlexTensor,
    /// Per row: 1/√(mean(x²) + ε).
    rstd: Vec<f32>,
}

impl Backward<Flex, 2> for RmsNorm {
    type State = Saved;

    fn backward(self, ops: Ops<Saved, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad_output = grads.consume::<Flex>(&ops.node).to_contiguous();
        let Saved { input, gamma, rstd } = ops.state;
        let gamma = values(&gamma);
        let c = gamma.len();
        let mut dx = unwritten(input.layout().num_elements());
        // Each task sums its rows' dγ; the tasks' sums are added in task order, so the result
        // does not depend on thread scheduling (resume stays bit-exact).
        let partials: Vec<Vec<f32>> = dx
            .par_chunks_mut(ROWS * c)
            .zip(values(&input).par_chunks(ROWS * c))
            .zip(values(&grad_output).par_chunks(ROWS * c))
            .zip(rstd.par_chunks(ROWS))
            .map(|(((dx, x), dy), rstd)| {
                let mut d_gamma = vec![0.0f32; c];
                let rows = dx
                    .chunks_exact_mut(c)
                    .zip(x.chunks_exact(c))
                    .zip(dy.chunks_exact(c));
                for (((dx, x), dy), &rstd) in rows.zip(rstd) {
                    rms_norm_row_backward(x, dy, gamma, rstd, dx, &mut d_gamma);
                }
                d_gamma
            })
            .collect();
        let mut d_gamma = vec![0.0f32; c];
        for part in partials {
            d_gamma.iter_mut().zip(part).for_each(|(sum, v)| *sum += v);
        }
        // SAFETY: every row's dx was written.
        let dx = unsafe { written(dx) };
        let shape = input.layout().shape().clone();
        let grads_by_parent = [
            FlexTensor::from_data(TensorData::new(dx, shape)),
            FlexTensor::from_data(TensorData::new(d_gamma, [c])),
        ];
        let parents = ops.parents.map(|parent| parent.map(|node| node.id));
        register(grads, &parents, grads_by_parent);
    }
}
