//! LayerNorm as one pass forward and one backward on `flex` with autodiff (the forward pass
//! alone without autodiff).
//!
//! burn's autodiff builds LayerNorm from its parts (mean, variance, subtract, divide, scale,
//! shift) and differentiates each. Here the forward pass keeps each row's mean and 1/std, and
//! the backward pass writes dx and accumulates dγ, dβ in one sweep over the rows.

use burn::backend::Flex;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops};
use burn::backend::flex::FlexTensor;
use burn::tensor::{Tensor, TensorData};
use rayon::prelude::*;

use super::fresh::{unwritten, written};
use super::math::{layer_norm_row, layer_norm_row_backward};
use super::{on_flex, on_flex_autodiff, register, track, values};

/// Rows per parallel task.
const ROWS: usize = 64;

/// `Some(LayerNorm(x))` over the last dimension when x, γ and β are f32 tensors on `flex` (with
/// autodiff, or without: the forward pass alone), else `None`.
pub(super) fn layer_norm<const D: usize>(
    x: &Tensor<D>,
    gamma: &Tensor<1>,
    beta: &Tensor<1>,
    epsilon: f32,
) -> Option<Tensor<D>> {
    if let Some(x) = on_flex(x) {
        let (gamma, beta) = (on_flex(gamma)?, on_flex(beta)?);
        let (output, _) = normalise(&x.to_contiguous(), &gamma, &beta, epsilon);
        return Some(Tensor::from_primitive::<Flex>(output));
    }
    let (x, gamma, beta) = (
        on_flex_autodiff(x)?,
        on_flex_autodiff(gamma)?,
        on_flex_autodiff(beta)?,
    );
    let input = x.primitive().to_contiguous();
    let g = gamma.primitive().to_contiguous();
    let (output, stats) = normalise(&input, &g, beta.primitive(), epsilon);
    let saved = Saved {
        input,
        gamma: g,
        stats,
    };
    let parents = [x.node(), gamma.node(), beta.node()];
    Some(track(LayerNorm, parents, saved, output))
}

/// Each row of a contiguous `input` normalised, with its (mean, 1/√(var + ε)).
fn normalise(
    input: &FlexTensor,
    gamma: &FlexTensor,
    beta: &FlexTensor,
    epsilon: f32,
) -> (FlexTensor, Vec<(f32, f32)>) {
    let (g, b) = (gamma.to_contiguous(), beta.to_contiguous());
    let (gamma_values, beta_values) = (values(&g), values(&b));
    let c = gamma_values.len();
    let mut output = unwritten(input.layout().num_elements());
    let mut stats = vec![(0.0f32, 0.0f32); output.len() / c];
    output
        .par_chunks_mut(ROWS * c)
        .zip(stats.par_chunks_mut(ROWS))
        .zip(values(input).par_chunks(ROWS * c))
        .for_each(|((y, stats), x)| {
            for ((y, x), stats) in y.chunks_exact_mut(c).zip(x.chunks_exact(c)).zip(stats) {
                *stats = layer_norm_row(x, gamma_values, beta_values, epsilon, y);
            }
        });
    // SAFETY: every row was normalised into its place.
    let output = unsafe { written(output) };
    let shape = input.layout().shape().clone();
    (FlexTensor::from_data(TensorData::new(output, shape)), stats)
}

#[derive(Debug)]
struct LayerNorm;

#[derive(Debug, Clone)]
struct Saved {
    input: FlexTensor,
    gamma: FlexTensor,
    /// Per row: mean and 1/√(var + ε).
    stats: Vec<(f32, f32)>,
}

impl Backward<Flex, 3> for LayerNorm {
    type State = Saved;

    fn backward(self, ops: Ops<Saved, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad_output = grads.consume::<Flex>(&ops.node).to_contiguous();
        let Saved {
            input,
            gamma,
            stats,
        } = ops.state;
        let gamma = values(&gamma);
        let c = gamma.len();
        let mut dx = unwritten(input.layout().num_elements());
        // Each task sums its rows' dγ, dβ; the tasks' sums are then added in task order, so
        // the result does not depend on thread scheduling (resume stays bit-exact).
        let partials: Vec<(Vec<f32>, Vec<f32>)> = dx
            .par_chunks_mut(ROWS * c)
            .zip(values(&input).par_chunks(ROWS * c))
            .zip(values(&grad_output).par_chunks(ROWS * c))
            .zip(stats.par_chunks(ROWS))
            .map(|(((dx, x), dy), stats)| {
                let (mut d_gamma, mut d_beta) = (vec![0.0f32; c], vec![0.0f32; c]);
                let rows = dx
                    .chunks_exact_mut(c)
                    .zip(x.chunks_exact(c))
                    .zip(dy.chunks_exact(c));
                for (((dx, x), dy), &stats) in rows.zip(stats) {
                    layer_norm_row_backward(x, dy, gamma, stats, dx, &mut d_gamma, &mut d_beta);
                }
                (d_gamma, d_beta)
            })
            .collect();
        let (mut d_gamma, mut d_beta) = (vec![0.0f32; c], vec![0.0f32; c]);
        for (g, b) in partials {
            d_gamma.iter_mut().zip(g).for_each(|(sum, v)| *sum += v);
            d_beta.iter_mut().zip(b).for_each(|(sum, v)| *sum += v);
        }
        // SAFETY: every row's dx was written.
        let dx = unsafe { written(dx) };
        let shape = input.layout().shape().clone();
        let grads_by_parent = [
            FlexTensor::from_data(TensorData::new(dx, shape)),
            FlexTensor::from_data(TensorData::new(d_gamma, [c])),
            FlexTensor::from_data(TensorData::new(d_beta, [c])),
        ];
        let parents = ops.parents.map(|parent| parent.map(|node| node.id));
        register(grads, &parents, grads_by_parent);
    }
}
