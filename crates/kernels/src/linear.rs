//! The linear map `y = x·W + b` as one gemm forward and two gemms plus a column sum backward,
//! on `flex` with autodiff.
//!
//! burn-flex gives every matmul output a zeroed buffer that is then copied once more to align
//! it, and adds the bias in a separate pass. Here the output starts as the bias rows and the
//! gemm accumulates `x·W` into it; the backward pass writes `dx = dy·Wᵀ` and `dW = xᵀ·dy`
//! straight into fresh buffers and sums `db` over the rows.
//!
//! Under [`super::with_precision`]`(Bf16, ..)` the three products take bf16 operands with f32
//! sums ([`super::bf16::matmul`]); the bias, its gradient and everything around stay f32, and
//! the backward pass multiplies as its forward pass did.

use std::mem::MaybeUninit;

use burn::backend::Flex;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops};
use burn::backend::flex::FlexTensor;
use burn::tensor::{Shape, Tensor, TensorData};
use rayon::prelude::*;

use super::bf16::matmul::product as bf16_product;
use super::fresh::{unwritten, written};
use super::matrix::{Matrix, multiply};
use super::{Precision, on_flex, on_flex_autodiff, precision, register, track, values};

/// Below this many multiply-adds a product runs on one thread (burn-flex's threshold).
const PARALLEL_THRESHOLD: usize = 192 * 192 * 192;

/// `Some(x·W + b)` over the last dimension of `x` when all are f32 tensors on `flex` (with
/// autodiff: forward and backward kernels; without: the forward one), else `None`.
pub(super) fn linear<const D: usize>(
    x: &Tensor<D>,
    weight: &Tensor<2>,
    bias: Option<&Tensor<1>>,
) -> Option<Tensor<D>> {
    if let Some(x) = on_flex(x) {
        let bias = match bias {
            Some(bias) => Some(on_flex(bias)?),
            None => None,
        };
        let output = forward(
            &x.to_contiguous(),
            &on_flex(weight)?,
            bias.as_ref(),
            precision(),
        );
        return Some(Tensor::from_primitive::<Flex>(output));
    }
    let (x, weight) = (on_flex_autodiff(x)?, on_flex_autodiff(weight)?);
    let bias = match bias {
        Some(bias) => Some(on_flex_autodiff(bias)?),
        None => None,
    };
    let input = x.primitive().to_contiguous();
    let w = weight.primitive().clone();
    let precision = precision();
    let output = forward(&input, &w, bias.as_ref().map(|b| b.primitive()), precision);

    let saved = Saved {
        input,
        weight: w,
        input_shape: x.primitive().layout().shape().clone(),
        precision,
    };
    Some(match bias {
        Some(bias) => {
            let parents = [x.node(), weight.node(), bias.node()];
            track(LinearWithBias, parents, saved, output)
        }
        None => track(LinearNoBias, [x.node(), weight.node()], saved, output),
    })
}

/// `x·W + b` for a contiguous `x` `[.., k]` and `W` `[k, n]` (any strides), multiplied in
/// `precision`.
fn forward(
    input: &FlexTensor,
    w: &FlexTensor,
    bias: Option<&FlexTensor>,
    precision: Precision,
) -> FlexTensor {
    let [k, n] = w.layout().shape().dims::<2>();
    let rows = input.layout().num_elements() / k;
    let bias_values = bias.map(FlexTensor::to_contiguous);
    let mut output = unwritten(rows * n);
    product(
        &mut output,
        [rows, n, k],
        Matrix::dense(values(input), k),
        Matrix::of(w),
        bias_values.as_ref().map(values),
        precision,
    );
    // SAFETY: the product wrote all rows·n values.
    let output = unsafe { written(output) };
    let mut shape = input.layout().shape().clone();
    let last = shape.num_dims() - 1;
    shape[last] = n;
    FlexTensor::from_data(TensorData::new(output, shape))
}

#[derive(Debug)]
struct LinearWithBias;

#[derive(Debug)]
struct LinearNoBias;

#[derive(Debug, Clone)]
struct Saved {
    /// x, contiguous, `[rows, k]` in effect.
    input: FlexTensor,
    /// W `[k, n]`, any strides (the tied unembedding is a transposed view).
    weight: FlexTensor,
    input_shape: Shape,
    /// What the forward pass multiplied in, and so the backward pass too.
    precision: Precision,
}

impl Backward<Flex, 3> for LinearWithBias {
    type State = Saved;

    fn backward(self, ops: Ops<Saved, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad_output = grads.consume::<Flex>(&ops.node).to_contiguous();
        let parents = ops.parents.map(|parent| parent.map(|node| node.id));
        let (dx, dw) = input_and_weight_grads(&ops.state, &grad_output);
        let db = bias_grad(&ops.state, &grad_output);
        register(grads, &parents, [dx, dw, db]);
    }
}

impl Backward<Flex, 2> for LinearNoBias {
    type State = Saved;

    fn backward(self, ops: Ops<Saved, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad_output = grads.consume::<Flex>(&ops.node).to_contiguous();
        let parents = ops.parents.map(|parent| parent.map(|node| node.id));
        let (dx, dw) = input_and_weight_grads(&ops.state, &grad_output);
        register(grads, &parents, [dx, dw]);
    }
}

/// `dx = dy·Wᵀ` in x's shape and `dW = xᵀ·dy`.
fn input_and_weight_grads(saved: &Saved, grad_output: &FlexTensor) -> (FlexTensor, FlexTensor) {
    let [k, n] = saved.weight.layout().shape().dims::<2>();
    let dy = Matrix::dense(values(grad_output), n);
    let rows = grad_output.layout().num_elements() / n;
    let weight = Matrix::of(&saved.weight);

    let mut dx = unwritten(rows * k);
    let precision = saved.precision;
    product(
        &mut dx,
        [rows, k, n],
        dy,
        weight.transpose(),
        None,
        precision,
    );
    let mut dw = unwritten(k * n);
    let x = Matrix::dense(values(&saved.input), k);
    product(&mut dw, [k, n, rows], x.transpose(), dy, None, precision);
    // SAFETY: each product wrote its whole output.
    let (dx, dw) = unsafe { (written(dx), written(dw)) };
    (
        FlexTensor::from_data(TensorData::new(dx, saved.input_shape.clone())),
        FlexTensor::from_data(TensorData::new(dw, [k, n])),
    )
}

/// `db = Σ_rows dy`, summed row after row (a fixed order).
fn bias_grad(saved: &Saved, grad_output: &FlexTensor) -> FlexTensor {
    let [_, n] = saved.weight.layout().shape().dims::<2>();
    let mut db = vec![0.0f32; n];
    for row in values(grad_output).chunks_exact(n) {
        db.iter_mut().zip(row).for_each(|(sum, v)| *sum += v);
    }
    FlexTensor::from_data(TensorData::new(db, [n]))
}

/// `out[m×n] = lhs[m×k] · rhs[k×n] (+ bias in every row)` in `precision`, `out` dense
/// row-major and written in full (it may start unwritten).
fn product(
    out: &mut [MaybeUninit<f32>],
    [m, n, k]: [usize; 3],
    lhs: Matrix,
    rhs: Matrix,
    bias: Option<&[f32]>,
    precision: Precision,
) {
    match precision {
        Precision::Fp32 => matmul(out, [m, n, k], lhs, rhs, bias),
        Precision::Bf16 => bf16_product(out, [m, k, n], lhs, rhs, bias),
    }
}

/// The f32 product of [`product`]. A big product is split into one block of output rows per
/// thread, each a single-threaded gemm: in isolation that matched or beat gemm's own threading
/// at every shape measured (2048×512×128: 221 against 181 GFLOP/s). With a bias, each thread
/// first fills its own rows with it and the gemm adds the product, so the fill is shared out
/// too and its rows are still in that core's cache when the gemm reads them.
fn matmul(
    out: &mut [MaybeUninit<f32>],
    [m, n, k]: [usize; 3],
    lhs: Matrix,
    rhs: Matrix,
    bias: Option<&[f32]>,
) {
    assert_eq!(out.len(), m * n);
    let product = |out: &mut [MaybeUninit<f32>], first_row: usize| {
        if let Some(bias) = bias {
            for row in out.chunks_exact_mut(n) {
                row.iter_mut().zip(bias).for_each(|(o, &b)| {
                    o.write(b);
                });
            }
        }
        let rows = out.len() / n;
        multiply(
            out,
            n,
            [rows, n, k],
            lhs.from(first_row, 0),
            rhs,
            1.0,
            bias.is_some(),
        );
    };
    let threads = rayon::current_num_threads();
    if m * n * k < PARALLEL_THRESHOLD || threads == 1 || m < 2 * 16 {
        return product(out, 0);
    }
    // Row blocks in multiples of 16 (the micro-kernel's height).
    let block = m.div_ceil(threads).div_ceil(16) * 16;
    out.par_chunks_mut(block * n)
        .enumerate()
        .for_each(|(i, out)| product(out, i * block));
}
