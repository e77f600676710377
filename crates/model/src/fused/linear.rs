//! The linear map `y = x·W + b` as one gemm forward and two gemms plus a column sum backward,
//! on `flex` with autodiff.
//!
//! burn-flex gives every matmul output a zeroed buffer that is then copied once more to align
//! it, and adds the bias in a separate pass. Here the output starts as the bias rows and the
//! gemm accumulates `x·W` into it; the backward pass writes `dx = dy·Wᵀ` and `dW = xᵀ·dy`
//! straight into fresh buffers and sums `db` over the rows.

use burn::backend::Flex;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::tensor::{Shape, Tensor, TensorData};
use rayon::prelude::*;

use super::{FlexAutodiff, on_flex_autodiff, register, values};

/// Below this many multiply-adds a product runs on one thread (burn-flex's threshold).
const PARALLEL_THRESHOLD: usize = 192 * 192 * 192;

/// `Some(x·W + b)` over the last dimension of `x` when all are f32 tensors on `flex` with
/// autodiff, else `None`.
pub(super) fn linear<const D: usize>(
    x: &Tensor<D>,
    weight: &Tensor<2>,
    bias: Option<&Tensor<1>>,
) -> Option<Tensor<D>> {
    let (x, weight) = (on_flex_autodiff(x)?, on_flex_autodiff(weight)?);
    let bias = match bias {
        Some(bias) => Some(on_flex_autodiff(bias)?),
        None => None,
    };
    let input = x.primitive().to_contiguous();
    let w = weight.primitive().clone();
    let [k, n] = w.layout().shape().dims::<2>();
    let rows = input.layout().num_elements() / k;

    let mut output = match &bias {
        Some(bias) => values(&bias.primitive().to_contiguous()).repeat(rows),
        None => vec![0.0; rows * n],
    };
    matmul(
        &mut output,
        [rows, n, k],
        Matrix::dense(values(&input), k),
        Matrix::of(&w),
        bias.is_some(),
    );
    let mut shape = input.layout().shape().clone();
    shape[D - 1] = n;
    let output = FlexTensor::from_data(TensorData::new(output, shape));

    let saved = Saved {
        input,
        weight: w,
        input_shape: x.primitive().layout().shape().clone(),
    };
    let output = match bias {
        Some(bias) => match LinearWithBias
            .prepare::<NoCheckpointing>([x.node(), weight.node(), bias.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => prep.finish(saved, output),
            OpsKind::UnTracked(prep) => prep.finish(output),
        },
        None => match LinearNoBias
            .prepare::<NoCheckpointing>([x.node(), weight.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => prep.finish(saved, output),
            OpsKind::UnTracked(prep) => prep.finish(output),
        },
    };
    Some(Tensor::from_primitive::<FlexAutodiff>(output))
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

    let mut dx = vec![0.0; rows * k];
    matmul(&mut dx, [rows, k, n], dy, weight.transpose(), false);
    let mut dw = vec![0.0; k * n];
    let x = Matrix::dense(values(&saved.input), k);
    matmul(&mut dw, [k, n, rows], x.transpose(), dy, false);
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

/// A read-only strided matrix.
#[derive(Clone, Copy)]
struct Matrix<'a> {
    data: &'a [f32],
    offset: isize,
    row_stride: isize,
    col_stride: isize,
}

impl<'a> Matrix<'a> {
    fn dense(data: &'a [f32], cols: usize) -> Self {
        Self {
            data,
            offset: 0,
            row_stride: cols as isize,
            col_stride: 1,
        }
    }

    /// A 2-D tensor read in place through its layout.
    fn of(tensor: &'a FlexTensor) -> Self {
        let layout = tensor.layout();
        let strides = layout.strides();
        Self {
            data: tensor.storage::<f32>(),
            offset: layout.start_offset() as isize,
            row_stride: strides[0],
            col_stride: strides[1],
        }
    }

    /// The rows from `r` on.
    fn skip_rows(self, r: usize) -> Self {
        Self {
            offset: self.offset + r as isize * self.row_stride,
            ..self
        }
    }

    fn transpose(self) -> Self {
        Self {
            row_stride: self.col_stride,
            col_stride: self.row_stride,
            ..self
        }
    }
}

/// `out[m×n] (+)= lhs[m×k] · rhs[k×n]`, `out` dense row-major; added to `out` when
/// `accumulate`, else written over it. A big product is split into one block of output rows
/// per thread, each a single-threaded gemm: in isolation that matched or beat gemm's own
/// threading at every shape measured (2048×512×128: 221 against 181 GFLOP/s).
fn matmul(out: &mut [f32], [m, n, k]: [usize; 3], lhs: Matrix, rhs: Matrix, accumulate: bool) {
    assert_eq!(out.len(), m * n);
    let threads = rayon::current_num_threads();
    if m * n * k < PARALLEL_THRESHOLD || threads == 1 || m < 2 * 16 {
        return matmul_rows(out, [m, n, k], lhs, rhs, accumulate);
    }
    // Row blocks in multiples of 16 (the micro-kernel's height).
    let block = m.div_ceil(threads).div_ceil(16) * 16;
    out.par_chunks_mut(block * n)
        .enumerate()
        .for_each(|(i, out)| {
            let rows = out.len() / n;
            matmul_rows(out, [rows, n, k], lhs.skip_rows(i * block), rhs, accumulate);
        });
}

/// [`matmul`] on the calling thread.
fn matmul_rows(out: &mut [f32], [m, n, k]: [usize; 3], lhs: Matrix, rhs: Matrix, accumulate: bool) {
    // SAFETY: `out` holds m×n values; lhs and rhs come from live tensors (or dense slices)
    // whose layouts cover m×k and k×n elements at the given offsets and strides.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            out.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            lhs.data.as_ptr().offset(lhs.offset),
            lhs.col_stride,
            lhs.row_stride,
            rhs.data.as_ptr().offset(rhs.offset),
            rhs.col_stride,
            rhs.row_stride,
            if accumulate { 1.0 } else { 0.0 },
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}
