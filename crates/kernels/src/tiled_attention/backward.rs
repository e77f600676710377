//! The tiled attention's backward pass: for each block of keys, the pattern recomputed from
//! the saved log-sum-exps tile by tile, and dK, dV and the keys' part of dQ (see the parent
//! module for the scheme).

use burn::backend::flex::FlexTensor;
use burn::tensor::TensorData;
use rayon::prelude::*;

use super::saved::Saved;
use crate::Precision;
use crate::attention::{Heads, heads_view};
use crate::bf16::matmul::{PackedB, add_packed, multiply_packed};
use crate::fresh::{SharedRows, rewritable};
use crate::matrix::{Matrix, multiply};
use crate::tiles::{blocks, end_query, exp_minus, scores_grad, seen_columns};

/// The backward pass's square tiles: five products per tile over 256 × 256 scores (256 KiB
/// each for the pattern and its gradient). Tiles of 128 ran the step at 4,096 tokens 20–30%
/// slower: each product is then too small for its packing and call to pay.
const BACKWARD_BLOCK: usize = 256;
/// The backward pass splits each head's keys into this many groups (fewer when short): enough
/// tasks to keep every core busy for a single sequence, and the extra dQ buffers (one per
/// group) stay a few times the head's own.
const KEY_GROUPS: usize = 8;

/// The gradient with respect to the packed projections, `[batch, time, 3·n_embd]`.
pub(super) fn backward(saved: &Saved, grad_output: &FlexTensor) -> FlexTensor {
    let [batch, t, width] = saved.qkv.layout().shape().dims::<3>();
    let (c, n_head, window) = (width / 3, saved.n_head, saved.window);
    let d = c / n_head;
    let scale = 1.0 / (d as f32).sqrt();
    let [q_view, k_view, v_view] = [0, 1, 2].map(|part| heads_view(&saved.qkv, part, n_head));
    let (query, key, value) = (Heads::of(&q_view), Heads::of(&k_view), Heads::of(&v_view));
    let (output, grad) = (Heads::of(&saved.output), Heads::of(grad_output));
    let lse = &saved.log_sum_exp;
    // In bf16, each head's Kᵀ, Vᵀ, K, Q and dO, packed once for all its tiles.
    let bf16: Option<Vec<Packed>> = (saved.precision == Precision::Bf16).then(|| {
        (0..batch * n_head)
            .into_par_iter()
            .map(|bh| {
                let (q, k, v) = (query.matrix(bh), key.matrix(bh), value.matrix(bh));
                Packed {
                    k_t: PackedB::new(k.transpose(), [d, t], false),
                    v_t: PackedB::new(v.transpose(), [d, t], false),
                    k: PackedB::new(k, [t, d], false),
                    q: PackedB::new(q, [t, d], false),
                    d_out: PackedB::new(grad.matrix(bh), [t, d], false),
                }
            })
            .collect()
    });

    // D = rowsum(dO ⊙ O), one per (head, query).
    let delta: Vec<f32> = (0..batch * n_head)
        .into_par_iter()
        .flat_map_iter(|bh| {
            let (o, d_out) = (output.matrix(bh), grad.matrix(bh));
            (0..t).map(move |i| (0..d).map(|j| o.at(i, j) * d_out.at(i, j)).sum::<f32>())
        })
        .collect();

    let group = t.div_ceil(KEY_GROUPS).next_multiple_of(BACKWARD_BLOCK);
    let groups = t.div_ceil(group);
    let mut d_qkv = vec![0.0f32; batch * t * width];
    let shared = SharedRows::new(rewritable(&mut d_qkv));
    // Each task's dQ for the queries that see its keys, `[first query.., d]`, in task order:
    // head by head, each head's groups in order.
    let partial_dq: Vec<Vec<f32>> = (0..batch * n_head * groups)
        .into_par_iter()
        .map_init(
            || Scratch::new(d),
            |scratch, task| {
                let (bh, g) = (task / groups, task % groups);
                let (g0, g1) = (g * group, ((g + 1) * group).min(t));
                let q_end = end_query(g1 - 1, window, t);
                let mut dq = vec![0.0f32; (q_end - g0) * d];
                let heads = HeadMatrices {
                    q: query.matrix(bh),
                    k: key.matrix(bh),
                    v: value.matrix(bh),
                    d_out: grad.matrix(bh),
                    lse: &lse[bh * t..(bh + 1) * t],
                    delta: &delta[bh * t..(bh + 1) * t],
                    bf16: bf16.as_ref().map(|heads| &heads[bh]),
                };
                let (b, h) = (bh / n_head, bh % n_head);
                for (k0, k1) in blocks(g0, g1, BACKWARD_BLOCK) {
                    heads.key_block(scratch, [k0, k1], [window, t, d], scale, &mut dq[..], g0);
                    let nk = k1 - k0;
                    for (part, acc) in [(1, &scratch.dk), (2, &scratch.dv)] {
                        let column = part * c + h * d;
                        let out = shared.block(b * t * width + k0 * width + column, [nk, d], width);
                        for (r, row) in acc[..nk * d].chunks_exact(d).enumerate() {
                            // SAFETY: `block` checked the bounds; only this task writes the dK
                            // and dV of keys k0..k1 of head (b, h).
                            unsafe {
                                let start = out.add(r * width).cast::<f32>();
                                std::ptr::copy_nonoverlapping(row.as_ptr(), start, d);
                            }
                        }
                    }
                }
                dq
            },
        )
        .collect();
    // The groups' dQs, summed in group order (one task per head).
    partial_dq
        .par_chunks(groups)
        .enumerate()
        .for_each(|(bh, parts)| {
            let (b, h) = (bh / n_head, bh % n_head);
            let out = shared.block(b * t * width + h * d, [t, d], width);
            for (g, dq) in parts.iter().enumerate() {
                for (r, row) in dq.chunks_exact(d).enumerate() {
                    for (j, &x) in row.iter().enumerate() {
                        // SAFETY: `block` checked the bounds; only this task touches head
                        // (b, h)'s dQ columns, which start zeroed.
                        unsafe { *out.add((g * group + r) * width + j).cast::<f32>() += x };
                    }
                }
            }
        });
    FlexTensor::from_data(TensorData::new(d_qkv, [batch, t, width]))
}

/// One backward task's tiles: scores and their gradient, and the key block's dK and dV.
struct Scratch {
    pattern: Vec<f32>,
    d_scores: Vec<f32>,
    dk: Vec<f32>,
    dv: Vec<f32>,
}

impl Scratch {
    fn new(d: usize) -> Self {
        let tile = BACKWARD_BLOCK * BACKWARD_BLOCK;
        Self {
            pattern: vec![0.0; tile],
            d_scores: vec![0.0; tile],
            dk: vec![0.0; BACKWARD_BLOCK * d],
            dv: vec![0.0; BACKWARD_BLOCK * d],
        }
    }
}

/// One head's operands packed for the bf16 products.
struct Packed {
    k_t: PackedB,
    v_t: PackedB,
    k: PackedB,
    q: PackedB,
    d_out: PackedB,
}

/// One head's queries, keys, values, output gradient, log-sum-exps and D (and in bf16 the
/// same packed).
struct HeadMatrices<'a> {
    q: Matrix<'a>,
    k: Matrix<'a>,
    v: Matrix<'a>,
    d_out: Matrix<'a>,
    lse: &'a [f32],
    delta: &'a [f32],
    bf16: Option<&'a Packed>,
}

impl HeadMatrices<'_> {
    /// dK and dV of keys `k0..k1` (into `scratch.dk`, `scratch.dv`), and their part of dQ
    /// added into `dq` (rows from query `dq_first` on).
    fn key_block(
        &self,
        scratch: &mut Scratch,
        [k0, k1]: [usize; 2],
        [window, t, d]: [usize; 3],
        scale: f32,
        dq: &mut [f32],
        dq_first: usize,
    ) {
        let nk = k1 - k0;
        let (dk, dv) = (&mut scratch.dk[..nk * d], &mut scratch.dv[..nk * d]);
        dk.fill(0.0);
        dv.fill(0.0);
        for (q0, q1) in blocks(k0, end_query(k1 - 1, window, t), BACKWARD_BLOCK) {
            let nq = q1 - q0;
            let p = &mut scratch.pattern[..nq * nk];
            let ds = &mut scratch.d_scores[..nq * nk];
            let (q, d_out) = (self.q.from(q0, 0), self.d_out.from(q0, 0));
            let dq = &mut dq[(q0 - dq_first) * d..];
            // k0 and q0 are multiples of the block: whole pairs, whole blocks of 16.
            let (keys, pairs) = (k0..k1, [k0 / 2, q0 / 2]);
            match self.bf16 {
                None => multiply(
                    rewritable(p),
                    nk,
                    [nq, nk, d],
                    q,
                    self.k.from(k0, 0).transpose(),
                    scale,
                    false,
                ),
                Some(b) => multiply_packed(
                    rewritable(p),
                    nk,
                    (q, [nq, d]),
                    b.k_t.part(0, keys.clone()),
                    scale,
                ),
            }
            for (r, row) in p.chunks_exact_mut(nk).enumerate() {
                let (start, end) = seen_columns(q0 + r, window, k0, nk);
                exp_minus(row, start, end, self.lse[q0 + r]);
            }
            let p_t = Matrix::dense(p, nk).transpose();
            match self.bf16 {
                None => multiply(rewritable(dv), d, [nk, d, nq], p_t, d_out, 1.0, true),
                Some(b) => add_packed(dv, d, (p_t, [nk, nq]), b.d_out.part(pairs[1], 0..d)),
            }
            match self.bf16 {
                None => {
                    let v_t = self.v.from(k0, 0).transpose();
                    multiply(rewritable(ds), nk, [nq, nk, d], d_out, v_t, 1.0, false)
                }
                Some(b) => multiply_packed(
                    rewritable(ds),
                    nk,
                    (d_out, [nq, d]),
                    b.v_t.part(0, keys),
                    1.0,
                ),
            }
            for (r, (ds, p)) in ds.chunks_exact_mut(nk).zip(p.chunks_exact(nk)).enumerate() {
                scores_grad(ds, p, self.delta[q0 + r], scale);
            }
            let ds = Matrix::dense(ds, nk);
            match self.bf16 {
                None => {
                    multiply(rewritable(dk), d, [nk, d, nq], ds.transpose(), q, 1.0, true);
                    let k = self.k.from(k0, 0);
                    multiply(rewritable(dq), d, [nq, d, nk], ds, k, 1.0, true);
                }
                Some(b) => {
                    add_packed(dk, d, (ds.transpose(), [nk, nq]), b.q.part(pairs[1], 0..d));
                    add_packed(dq, d, (ds, [nq, nk]), b.k.part(pairs[0], 0..d));
                }
            }
        }
    }
}
