//! Causal self-attention as one forward and one backward kernel on `flex` with autodiff (the
//! forward kernel alone without autodiff).
//!
//! For every (sequence, head), with scale s = 1/√d_head:
//!
//! ```text
//! forward   S = s·Q·Kᵀ,  P = causal softmax(S) (the attention pattern),  O = P·V
//! backward  dV = Pᵀ·dO,  dP = dO·Vᵀ,  dS = s·P ⊙ (dP − rowsum(P ⊙ dP)),
//!           dQ = dS·K,   dK = dSᵀ·Q
//! ```
//!
//! Queries, keys and values arrive packed side by side, `[batch, time, 3·n_embd]`, from one
//! projection, and their gradient leaves the same way. The pattern is kept from the forward
//! pass for the backward one, as burn's decomposed path does. The heads run in parallel, each
//! through single-threaded products that read Q, K, V and dO in place whatever their strides
//! (the head split is a strided view). Queries go in tiles of 64, each multiplied only against
//! the keys it may see, so long sequences skip nearly half of the products.

use burn::backend::Flex;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops};
use burn::backend::flex::{FlexTensor, Layout};
use burn::tensor::{Shape, Tensor, TensorData};
use rayon::prelude::*;

use super::bf16::matmul::{PackedB, multiply_packed, multiply_packed_into};
use super::fresh::{SharedRows, rewritable, unwritten, written, written_part};
use super::math::{dot, exp_shifted};
use super::matrix::{Matrix, multiply, multiply_into};
use super::{Precision, on_flex, on_flex_autodiff, precision, track};

/// `Some(heads)`, `[batch, head, time, d_head]`, when `qkv` (queries, keys and values side by
/// side, `[batch, time, 3·n_embd]`) is an f32 tensor on `flex` (with autodiff, or without: the
/// forward pass alone); `None` sends the caller to the plain path.
pub(super) fn causal_attention(qkv: &Tensor<3>, n_head: usize) -> Option<Tensor<4>> {
    let precision = precision();
    if let Some(qkv) = on_flex(qkv) {
        let (output, _, _) = attend(&qkv.to_contiguous(), n_head, precision);
        return Some(Tensor::from_primitive::<Flex>(output));
    }
    let qkv_autodiff = on_flex_autodiff(qkv)?;
    let packed = qkv_autodiff.primitive().to_contiguous();
    let (output, pattern, scale) = attend(&packed, n_head, precision);
    let saved = Saved {
        qkv: packed,
        n_head,
        pattern,
        scale,
        precision,
    };
    Some(track(CausalAttention, [qkv_autodiff.node()], saved, output))
}

/// The heads' outputs and attention pattern from contiguous packed projections, and the scale
/// 1/√d_head; the products in `precision`.
fn attend(
    packed: &FlexTensor,
    n_head: usize,
    precision: Precision,
) -> (FlexTensor, FlexTensor, f32) {
    let [.., width] = packed.layout().shape().dims::<3>();
    let d_head = width / 3 / n_head;
    let scale = 1.0 / (d_head as f32).sqrt();
    let [query, key, value] = [0, 1, 2].map(|part| heads_view(packed, part, n_head));
    let (output, pattern) = forward(&query, &key, &value, scale, precision);
    (output, pattern, scale)
}

/// Part `part` (0 queries, 1 keys, 2 values) of a contiguous `[batch, time, 3·n_embd]` tensor
/// as a `[batch, head, time, d_head]` view of the same buffer.
pub(super) fn heads_view(packed: &FlexTensor, part: usize, n_head: usize) -> FlexTensor {
    let layout = packed.layout();
    let [batch, t, width] = layout.shape().dims::<3>();
    let c = width / 3;
    let d = c / n_head;
    let strides = vec![(t * width) as isize, d as isize, width as isize, 1];
    let start = layout.start_offset() + part * c;
    let view = Layout::new(Shape::new([batch, n_head, t, d]), strides, start);
    packed.clone().with_layout(view)
}

#[derive(Debug)]
struct CausalAttention;

/// What the backward pass reads: the packed projections and the attention pattern.
#[derive(Debug, Clone)]
struct Saved {
    qkv: FlexTensor,
    n_head: usize,
    pattern: FlexTensor,
    scale: f32,
    /// What the forward pass multiplied in, and so the backward pass too.
    precision: Precision,
}

impl Backward<Flex, 1> for CausalAttention {
    type State = Saved;

    fn backward(self, ops: Ops<Saved, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad_output = grads.consume::<Flex>(&ops.node);
        let [parent] = ops.parents;
        if let Some(node) = parent {
            grads.register::<Flex>(node.id, backward(&ops.state, &grad_output));
        }
    }
}

/// A `[batch, head, time, d]` f32 tensor read in place: one `[time, d]` matrix per head.
pub(super) struct Heads<'a> {
    data: &'a [f32],
    start: isize,
    strides: [isize; 4],
    n_head: usize,
}

impl<'a> Heads<'a> {
    pub(super) fn of(tensor: &'a FlexTensor) -> Self {
        let layout = tensor.layout();
        let s = layout.strides();
        Self {
            data: tensor.storage::<f32>(),
            start: layout.start_offset() as isize,
            strides: [s[0], s[1], s[2], s[3]],
            n_head: layout.shape()[1],
        }
    }

    /// Head `bh` (= batch·n_head + head) as a `[time, d]` matrix.
    pub(super) fn matrix(&self, bh: usize) -> Matrix<'a> {
        let (b, h) = ((bh / self.n_head) as isize, (bh % self.n_head) as isize);
        let offset = self.start + b * self.strides[0] + h * self.strides[1];
        Matrix::new(self.data, offset, self.strides[2], self.strides[3])
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

/// Output `[batch, head, time, d_head]` and pattern `[batch, head, time, time]`. The output
/// is a view of a `[batch, time, n_embd]` buffer, each head in its own columns, so that
/// merging the heads back (`swap_dims` then `reshape`) is free instead of a copy. In bf16 a
/// head's Kᵀ and V are packed once for all its tiles of queries.
fn forward(
    query: &FlexTensor,
    key: &FlexTensor,
    value: &FlexTensor,
    scale: f32,
    precision: Precision,
) -> (FlexTensor, FlexTensor) {
    let [batch, n_head, t, d] = query.layout().shape().dims::<4>();
    let c = n_head * d;
    let (query, key, value) = (Heads::of(query), Heads::of(key), Heads::of(value));
    let mut output = unwritten(batch * t * c);
    let merged = SharedRows::new(&mut output);
    let mut pattern = unwritten(batch * n_head * t * t);
    // One task per (sequence, head), as many as there are heads even for a single sequence.
    pattern
        .par_chunks_mut(t * t)
        .enumerate()
        .for_each(|(bh, p)| {
            let (q, k, v) = (query.matrix(bh), key.matrix(bh), value.matrix(bh));
            let bf16 = (precision == Precision::Bf16).then(|| {
                (
                    PackedB::new(k.transpose(), [d, t], false),
                    PackedB::new(v, [t, d], false),
                )
            });
            for (q0, q1) in tiles(t) {
                // Queries q0..q1 against keys 0..q1: every later key is masked for all of them.
                let (out, queries) = (&mut p[q0 * t..], q.from(q0, 0));
                match &bf16 {
                    None => multiply(
                        out,
                        t,
                        [q1 - q0, q1, d],
                        queries,
                        k.transpose(),
                        scale,
                        false,
                    ),
                    Some((k_t, _)) => {
                        multiply_packed(out, t, (queries, [q1 - q0, d]), k_t.part(0, 0..q1), scale)
                    }
                }
            }
            for (i, row) in p.chunks_exact_mut(t).enumerate() {
                let (seen, future) = row.split_at_mut(i + 1);
                future.iter_mut().for_each(|x| {
                    x.write(0.0);
                });
                // SAFETY: query i's tile multiplied it against keys 0..q1, which include 0..=i.
                let seen = unsafe { written_part(seen) };
                let sum = exp_shifted(seen);
                seen.iter_mut().for_each(|x| *x /= sum);
            }
            // SAFETY: every row is now written in full, seen keys and future ones.
            let p = Matrix::dense(unsafe { written_part(p) }, t);
            // This head's columns of its sequence's rows.
            let (b, h) = (bh / n_head, bh % n_head);
            let first = b * t * c + h * d;
            for (q0, q1) in tiles(t) {
                let out = merged.block(first + q0 * c, [q1 - q0, d], c);
                let pattern = p.from(q0, 0);
                // SAFETY: `block` checked that rows q0..q1 of columns h·d..(h + 1)·d of
                // sequence b lie inside the buffer, and only this task writes them (each task
                // has its own (b, h)).
                unsafe {
                    match &bf16 {
                        None => multiply_into(out, c, [q1 - q0, d, q1], pattern, v, 1.0, false),
                        Some((_, v)) => multiply_packed_into(
                            out,
                            c,
                            (pattern, [q1 - q0, q1]),
                            v.part(0, 0..d),
                            1.0,
                        ),
                    }
                };
            }
        });
    // SAFETY: for each sequence, every head's tiles of queries covered its d columns of all t
    // rows, and the heads' columns make up the width.
    let output = unsafe { written(output) };
    // SAFETY: each (sequence, head) task wrote its t×t pattern in full.
    let pattern = unsafe { written(pattern) };
    let merged = FlexTensor::from_data(TensorData::new(output, [batch, t, c]));
    let heads = Layout::new(
        Shape::new([batch, n_head, t, d]),
        vec![(t * c) as isize, d as isize, c as isize, 1],
        0,
    );
    (
        merged.with_layout(heads),
        dense(pattern, [batch, n_head, t, t]),
    )
}

/// The gradient with respect to the packed projections, `[batch, time, 3·n_embd]`: each
/// sequence's dQ, dK and dV are written straight into their columns.
fn backward(saved: &Saved, grad_output: &FlexTensor) -> FlexTensor {
    let [batch, t, width] = saved.qkv.layout().shape().dims::<3>();
    let (c, n_head) = (width / 3, saved.n_head);
    let d = c / n_head;
    let [q_view, k_view, v_view] = [0, 1, 2].map(|part| heads_view(&saved.qkv, part, n_head));
    let (query, key, value, grad) = (
        Heads::of(&q_view),
        Heads::of(&k_view),
        Heads::of(&v_view),
        Heads::of(grad_output),
    );
    let pattern = saved.pattern.storage::<f32>();
    let mut d_qkv = unwritten(batch * t * width);
    d_qkv.par_chunks_mut(t * width).enumerate().for_each_init(
        || vec![0.0f32; t * t],
        |d_scores, (b, d_sequence)| {
            for h in 0..n_head {
                let bh = b * n_head + h;
                let p = &pattern[bh * t * t..(bh + 1) * t * t];
                let (q, k, v, d_out) = (
                    query.matrix(bh),
                    key.matrix(bh),
                    value.matrix(bh),
                    grad.matrix(bh),
                );
                // This head's columns of dQ, dK and dV in the sequence's rows.
                let (q_col, k_col, v_col) = (h * d, c + h * d, 2 * c + h * d);
                let p_matrix = Matrix::dense(p, t);
                // In bf16, each right-hand operand packed once for all its tiles: dO, Vᵀ, K, Q.
                let bf16 = (saved.precision == Precision::Bf16).then(|| {
                    [
                        PackedB::new(d_out, [t, d], false),
                        PackedB::new(v.transpose(), [d, t], false),
                        PackedB::new(k, [t, d], false),
                        PackedB::new(q, [t, d], false),
                    ]
                });
                for (k0, k1) in tiles(t) {
                    // Keys k0..k1 were seen by queries k0.. only (k0 is even: whole pairs).
                    let p_seen = p_matrix.from(k0, k0).transpose();
                    let out = &mut d_sequence[k0 * width + v_col..];
                    match &bf16 {
                        None => multiply(
                            out,
                            width,
                            [k1 - k0, d, t - k0],
                            p_seen,
                            d_out.from(k0, 0),
                            1.0,
                            false,
                        ),
                        Some([d_out, ..]) => multiply_packed(
                            out,
                            width,
                            (p_seen, [k1 - k0, t - k0]),
                            d_out.part(k0 / 2, 0..d),
                            1.0,
                        ),
                    }
                }
                // dP, then dS in place, row by row over the keys each query saw.
                for (q0, q1) in tiles(t) {
                    let out = rewritable(&mut d_scores[q0 * t..]);
                    match &bf16 {
                        None => multiply(
                            out,
                            t,
                            [q1 - q0, q1, d],
                            d_out.from(q0, 0),
                            v.transpose(),
                            1.0,
                            false,
                        ),
                        Some([_, v_t, ..]) => multiply_packed(
                            out,
                            t,
                            (d_out.from(q0, 0), [q1 - q0, d]),
                            v_t.part(0, 0..q1),
                            1.0,
                        ),
                    }
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
                    let out = &mut d_sequence[q0 * width + q_col..];
                    let d_scores = ds.from(q0, 0);
                    match &bf16 {
                        None => multiply(out, width, [q1 - q0, d, q1], d_scores, k, 1.0, false),
                        Some([_, _, k, _]) => multiply_packed(
                            out,
                            width,
                            (d_scores, [q1 - q0, q1]),
                            k.part(0, 0..d),
                            1.0,
                        ),
                    }
                }
                for (k0, k1) in tiles(t) {
                    let ds_seen = ds.from(k0, k0).transpose();
                    let out = &mut d_sequence[k0 * width + k_col..];
                    match &bf16 {
                        None => multiply(
                            out,
                            width,
                            [k1 - k0, d, t - k0],
                            ds_seen,
                            q.from(k0, 0),
                            1.0,
                            false,
                        ),
                        Some([.., q]) => multiply_packed(
                            out,
                            width,
                            (ds_seen, [k1 - k0, t - k0]),
                            q.part(k0 / 2, 0..d),
                            1.0,
                        ),
                    }
                }
            }
        },
    );
    // SAFETY: for every head, the key tiles wrote all t rows of its dV and dK columns and the
    // query tiles all t rows of its dQ columns: the heads' columns make up the width.
    let d_qkv = unsafe { written(d_qkv) };
    FlexTensor::from_data(TensorData::new(d_qkv, [batch, t, width]))
}
