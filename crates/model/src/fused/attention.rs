//! Causal self-attention as one forward and one backward kernel on `flex` with autodiff.
//!
//! For every (sequence, head), with scale s = 1/√d_head:
//!
//! ```text
//! forward   S = s·Q·Kᵀ,  P = causal softmax(S) (the attention pattern),  O = P·V
//! backward  dV = Pᵀ·dO,  dP = dO·Vᵀ,  dS = s·P ⊙ (dP − rowsum(P ⊙ dP)),
//!           dQ = dS·K,   dK = dSᵀ·Q
//! ```
//!
//! The pattern is kept from the forward pass for the backward one, as burn's decomposed path
//! does. The heads run in parallel, each through single-threaded gemm calls that read Q, K, V
//! and dO in place whatever their strides (the head split is a strided view). Queries go in
//! tiles of 64, each multiplied only against the keys it may see, so long sequences skip
//! nearly half of the products.

use burn::backend::Flex;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::tensor::{Tensor, TensorData};
use rayon::prelude::*;

use super::math::{dot, exp_shifted};
use super::{FlexAutodiff, on_flex_autodiff};

/// `Some(attention output)` when all three inputs are f32 tensors on `flex` with autodiff and
/// the keys are the queries' own sequence; `None` sends the caller to the plain path.
pub(super) fn causal_attention(
    query: &Tensor<4>,
    key: &Tensor<4>,
    value: &Tensor<4>,
) -> Option<Tensor<4>> {
    if query.dims() != key.dims() || key.dims() != value.dims() {
        return None;
    }
    let (query, key, value) = (
        on_flex_autodiff(query)?,
        on_flex_autodiff(key)?,
        on_flex_autodiff(value)?,
    );
    let [.., d_head] = query.primitive().layout().shape().dims::<4>();
    let scale = 1.0 / (d_head as f32).sqrt();
    let (q, k, v) = (query.primitive(), key.primitive(), value.primitive());
    let (output, pattern) = forward(q, k, v, scale);
    let output = match CausalAttention
        .prepare::<NoCheckpointing>([query.node(), key.node(), value.node()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => {
            let saved = Saved {
                query: q.clone(),
                key: k.clone(),
                value: v.clone(),
                pattern,
                scale,
            };
            prep.finish(saved, output)
        }
        OpsKind::UnTracked(prep) => prep.finish(output),
    };
    Some(Tensor::from_primitive::<FlexAutodiff>(output))
}

#[derive(Debug)]
struct CausalAttention;

/// What the backward pass reads: the inputs and the attention pattern.
#[derive(Debug, Clone)]
struct Saved {
    query: FlexTensor,
    key: FlexTensor,
    value: FlexTensor,
    pattern: FlexTensor,
    scale: f32,
}

impl Backward<Flex, 3> for CausalAttention {
    type State = Saved;

    fn backward(self, ops: Ops<Saved, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad_output = grads.consume::<Flex>(&ops.node);
        let [d_query, d_key, d_value] = backward(&ops.state, &grad_output);
        for (parent, grad) in ops.parents.into_iter().zip([d_query, d_key, d_value]) {
            if let Some(node) = parent {
                grads.register::<Flex>(node.id, grad);
            }
        }
    }
}

/// A `[batch, head, time, d]` f32 tensor read in place: one `[time, d]` matrix per head.
struct Heads<'a> {
    data: &'a [f32],
    start: isize,
    strides: [isize; 4],
    n_head: usize,
}

impl<'a> Heads<'a> {
    fn of(tensor: &'a FlexTensor) -> Self {
        let layout = tensor.layout();
        let s = layout.strides();
        Self {
            data: tensor.storage::<f32>(),
            start: layout.start_offset() as isize,
            strides: [s[0], s[1], s[2], s[3]],
            n_head: layout.shape()[1],
        }
    }

    /// Pointer to head `bh` (= batch·n_head + head), its row stride and column stride.
    fn matrix(&self, bh: usize) -> Matrix {
        let (b, h) = ((bh / self.n_head) as isize, (bh % self.n_head) as isize);
        let offset = self.start + b * self.strides[0] + h * self.strides[1];
        // SAFETY: the layout maps every in-shape index inside the storage.
        let ptr = unsafe { self.data.as_ptr().offset(offset) };
        Matrix {
            ptr,
            row_stride: self.strides[2],
            col_stride: self.strides[3],
        }
    }
}

/// A read-only strided matrix.
#[derive(Clone, Copy)]
struct Matrix {
    ptr: *const f32,
    row_stride: isize,
    col_stride: isize,
}

impl Matrix {
    fn dense(data: &[f32], cols: usize) -> Self {
        Self {
            ptr: data.as_ptr(),
            row_stride: cols as isize,
            col_stride: 1,
        }
    }

    /// The submatrix from row `r` and column `c` on.
    fn from(self, r: usize, c: usize) -> Self {
        let offset = r as isize * self.row_stride + c as isize * self.col_stride;
        Self {
            ptr: self.ptr.wrapping_offset(offset),
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

/// `out[m×n] = scale · lhs[m×k] · rhs[k×n]`, `out` row-major with row stride `out_stride`, on
/// the calling thread.
#[allow(clippy::too_many_arguments)]
fn matmul(
    out: &mut [f32],
    out_stride: usize,
    m: usize,
    n: usize,
    k: usize,
    lhs: Matrix,
    rhs: Matrix,
    scale: f32,
) {
    assert!(m == 0 || out.len() >= (m - 1) * out_stride + n);
    // SAFETY: `out` holds the m×n values at that stride; lhs and rhs point into live tensors
    // whose layouts cover m×k and k×n elements at the given strides.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            out.as_mut_ptr(),
            1,
            out_stride as isize,
            false,
            lhs.ptr,
            lhs.col_stride,
            lhs.row_stride,
            rhs.ptr,
            rhs.col_stride,
            rhs.row_stride,
            0.0,
            scale,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// Query rows per tile. A tile of queries is multiplied only against the keys it may see, so
/// the masked upper triangle is skipped a tile at a time.
const TILE: usize = 64;

/// `(start, end)` of each tile of `t` positions.
fn tiles(t: usize) -> impl Iterator<Item = (usize, usize)> {
    (0..t)
        .step_by(TILE)
        .map(move |start| (start, (start + TILE).min(t)))
}

fn dense(values: Vec<f32>, shape: [usize; 4]) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape))
}

/// Output `[batch, head, time, d_head]` and pattern `[batch, head, time, time]`.
fn forward(
    query: &FlexTensor,
    key: &FlexTensor,
    value: &FlexTensor,
    scale: f32,
) -> (FlexTensor, FlexTensor) {
    let [batch, n_head, t, d] = query.layout().shape().dims::<4>();
    let (query, key, value) = (Heads::of(query), Heads::of(key), Heads::of(value));
    let mut output = vec![0.0f32; batch * n_head * t * d];
    let mut pattern = vec![0.0f32; batch * n_head * t * t];
    output
        .par_chunks_mut(t * d)
        .zip(pattern.par_chunks_mut(t * t))
        .enumerate()
        .for_each(|(bh, (out, p))| {
            let (q, k, v) = (query.matrix(bh), key.matrix(bh), value.matrix(bh));
            for (q0, q1) in tiles(t) {
                // Queries q0..q1 against keys 0..q1: every later key is masked for all of them.
                let out = &mut p[q0 * t..];
                matmul(out, t, q1 - q0, q1, d, q.from(q0, 0), k.transpose(), scale);
            }
            for (i, row) in p.chunks_exact_mut(t).enumerate() {
                let (seen, future) = row.split_at_mut(i + 1);
                let sum = exp_shifted(seen);
                seen.iter_mut().for_each(|x| *x /= sum);
                future.fill(0.0);
            }
            let p = Matrix::dense(p, t);
            for (q0, q1) in tiles(t) {
                matmul(&mut out[q0 * d..], d, q1 - q0, d, q1, p.from(q0, 0), v, 1.0);
            }
        });
    (
        dense(output, [batch, n_head, t, d]),
        dense(pattern, [batch, n_head, t, t]),
    )
}

/// Gradients with respect to query, key and value, each `[batch, head, time, d_head]`.
fn backward(saved: &Saved, grad_output: &FlexTensor) -> [FlexTensor; 3] {
    let [batch, n_head, t, d] = saved.query.layout().shape().dims::<4>();
    let (query, key, value, grad) = (
        Heads::of(&saved.query),
        Heads::of(&saved.key),
        Heads::of(&saved.value),
        Heads::of(grad_output),
    );
    let pattern = saved.pattern.storage::<f32>();
    let size = batch * n_head * t * d;
    let (mut d_query, mut d_key, mut d_value) = (vec![0.0; size], vec![0.0; size], vec![0.0; size]);
    d_query
        .par_chunks_mut(t * d)
        .zip(d_key.par_chunks_mut(t * d))
        .zip(d_value.par_chunks_mut(t * d))
        .enumerate()
        .for_each_init(
            || vec![0.0f32; t * t],
            |d_scores, (bh, ((dq, dk), dv))| {
                let p = &pattern[bh * t * t..(bh + 1) * t * t];
                let (q, k, v, d_out) = (
                    query.matrix(bh),
                    key.matrix(bh),
                    value.matrix(bh),
                    grad.matrix(bh),
                );
                let p_matrix = Matrix::dense(p, t);
                for (k0, k1) in tiles(t) {
                    // Keys k0..k1 were seen by queries k0.. only.
                    let p_seen = p_matrix.from(k0, k0).transpose();
                    let out = &mut dv[k0 * d..];
                    matmul(out, d, k1 - k0, d, t - k0, p_seen, d_out.from(k0, 0), 1.0);
                }
                // dP, then dS in place, row by row over the keys each query saw.
                for (q0, q1) in tiles(t) {
                    let out = &mut d_scores[q0 * t..];
                    matmul(
                        out,
                        t,
                        q1 - q0,
                        q1,
                        d,
                        d_out.from(q0, 0),
                        v.transpose(),
                        1.0,
                    );
                }
                for (i, (dp, p)) in d_scores
                    .chunks_exact_mut(t)
                    .zip(p.chunks_exact(t))
                    .enumerate()
                {
                    let (seen, future) = dp.split_at_mut(i + 1);
                    let p = &p[..=i];
                    let c = dot(p, seen);
                    for (ds, &p) in seen.iter_mut().zip(p) {
                        *ds = saved.scale * p * (*ds - c);
                    }
                    future.fill(0.0);
                }
                let ds = Matrix::dense(d_scores, t);
                for (q0, q1) in tiles(t) {
                    matmul(&mut dq[q0 * d..], d, q1 - q0, d, q1, ds.from(q0, 0), k, 1.0);
                }
                for (k0, k1) in tiles(t) {
                    let ds_seen = ds.from(k0, k0).transpose();
                    let out = &mut dk[k0 * d..];
                    matmul(out, d, k1 - k0, d, t - k0, ds_seen, q.from(k0, 0), 1.0);
                }
            },
        );
    let shape = [batch, n_head, t, d];
    [
        dense(d_query, shape),
        dense(d_key, shape),
        dense(d_value, shape),
    ]
}
