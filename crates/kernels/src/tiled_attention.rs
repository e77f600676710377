//! Causal self-attention in tiles, with no T × T pattern kept: FlashAttention's scheme, written
//! for CPU caches, and an optional sliding window.
//!
//! For every (sequence, head), with scale s = 1/√d_head, query i sees the keys
//! `max(0, i − W + 1) ..= i` (W = `window`, every earlier key when it is 0):
//!
//! ```text
//! forward   for each block of queries, for each block of keys it may see:
//!             S = s·Q·Kᵀ,  m' = max(m, rowmax S),  P = e^(S − m'),
//!             l ← l·e^(m − m') + rowsum P,  O ← O·e^(m − m') + P·V,  m ← m'
//!           O ← O / l,  and L = m + ln l (the row's log-sum-exp) is kept
//! backward  D = rowsum(dO ⊙ O); for each block of keys, for each block of queries that sees it:
//!             P = e^(S − L) (the pattern, recomputed),  dV += Pᵀ·dO,  dP = dO·Vᵀ,
//!             dS = s·P ⊙ (dP − D),  dK += dSᵀ·Q,  dQ += dS·K
//! ```
//!
//! What the backward pass keeps is the packed projections, the output and L: O(T·d) per head,
//! where the stored-pattern kernel ([`super::attention`]) keeps T². In bf16 every product
//! takes bf16 operands (each head's Kᵀ, V, K, Q and dO packed once, the tiles as they come)
//! and sums in f32; the online softmax, L, D and the sums over blocks stay f32, and a
//! windowed block of keys starts on a block of 16 so that it lines up with the packed Kᵀ (the
//! extra keys are masked, as the causal ones are). The forward pass runs one
//! task per (head, block of queries). The backward pass runs one task per (head, group of
//! keys): each writes its keys' dK and dV and a dQ of its own for the queries that see them,
//! and the groups' dQs are summed in group order, so the result does not depend on how the
//! tasks were scheduled.

use std::mem::MaybeUninit;

use burn::backend::Flex;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops};
use burn::backend::flex::{FlexTensor, Layout};
use burn::tensor::{Shape, Tensor, TensorData};
use rayon::prelude::*;

use super::attention::{Heads, heads_view};
use super::bf16::matmul::{BLOCK_COLUMNS, PackedB, add_packed, multiply_packed};
use super::fresh::{SharedRows, rewritable, unwritten, written};
use super::math::exp;
use super::matrix::{Matrix, multiply};
use super::tiles::{blocks, exp_seen, first_key, scale_row, seen_columns};
use super::{Precision, on_flex, on_flex_autodiff, precision, track};

mod backward;
mod saved;

use saved::Saved;

/// Queries per forward task; each is multiplied against the keys it sees, [`KEY_BLOCK`] at a
/// time, so a task's scores (128 × 256 floats, 128 KiB) stay in the L2 cache. Measured at
/// 4,096 tokens (Zen 4) against 64 × 256, 64 × 512, 128 × 512 and 256 × 256.
const QUERY_BLOCK: usize = 128;
const KEY_BLOCK: usize = 256;
/// Attention's outputs `[batch, head, time, d_head]` from contiguous packed projections
/// (`[batch, time, 3·n_embd]`), with or without autodiff; `None` off `flex`.
/// The products take the thread's [`precision`].
pub(super) fn tiled_attention(qkv: &Tensor<3>, n_head: usize, window: usize) -> Option<Tensor<4>> {
    let precision = precision();
    if let Some(qkv) = on_flex(qkv) {
        let (output, _) = forward(&qkv.to_contiguous(), n_head, window, precision);
        return Some(Tensor::from_primitive::<Flex>(output));
    }
    let qkv_autodiff = on_flex_autodiff(qkv)?;
    let packed = qkv_autodiff.primitive().to_contiguous();
    let saved = saved_state(packed, n_head, window, precision);
    let output = saved.output.clone();
    Some(track(TiledAttention, [qkv_autodiff.node()], saved, output))
}

/// Runs the forward pass and returns what its backward pass reads.
pub(super) fn saved_state(
    qkv: FlexTensor,
    n_head: usize,
    window: usize,
    precision: Precision,
) -> Saved {
    let (output, log_sum_exp) = forward(&qkv, n_head, window, precision);
    Saved {
        qkv,
        output,
        log_sum_exp,
        n_head,
        window,
        precision,
    }
}

#[derive(Debug)]
struct TiledAttention;

impl Backward<Flex, 1> for TiledAttention {
    type State = Saved;

    fn backward(self, ops: Ops<Saved, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad_output = grads.consume::<Flex>(&ops.node);
        let [parent] = ops.parents;
        if let Some(node) = parent {
            grads.register::<Flex>(node.id, backward::backward(&ops.state, &grad_output));
        }
    }
}

/// Output `[batch, head, time, d_head]` (a view of a `[batch, time, n_embd]` buffer, as the
/// stored-pattern kernel returns it) and each row's log-sum-exp, `[batch, head, time]`.
fn forward(
    packed: &FlexTensor,
    n_head: usize,
    window: usize,
    precision: Precision,
) -> (FlexTensor, Vec<f32>) {
    let [batch, t, width] = packed.layout().shape().dims::<3>();
    let c = width / 3;
    let d = c / n_head;
    let scale = 1.0 / (d as f32).sqrt();
    let [query, key, value] = [0, 1, 2].map(|part| heads_view(packed, part, n_head));
    let (query, key, value) = (Heads::of(&query), Heads::of(&key), Heads::of(&value));
    // In bf16, each head's Kᵀ and V, packed once for all its blocks of queries.
    let bf16: Option<Vec<[PackedB; 2]>> = (precision == Precision::Bf16).then(|| {
        (0..batch * n_head)
            .into_par_iter()
            .map(|bh| {
                [
                    PackedB::new(key.matrix(bh).transpose(), [d, t], false),
                    PackedB::new(value.matrix(bh), [t, d], false),
                ]
            })
            .collect()
    });
    let mut output = unwritten(batch * t * c);
    let merged = SharedRows::new(&mut output);
    let mut log_sum_exp = vec![0.0f32; batch * n_head * t];
    log_sum_exp
        .par_chunks_mut(t)
        .enumerate()
        .flat_map(|(bh, row)| {
            row.par_chunks_mut(QUERY_BLOCK)
                .enumerate()
                .map(move |(block, lse)| (bh, block * QUERY_BLOCK, lse))
        })
        .for_each_init(
            || {
                (
                    vec![0.0f32; QUERY_BLOCK * KEY_BLOCK],
                    vec![0.0f32; QUERY_BLOCK * d],
                )
            },
            |(scores, acc), (bh, q0, lse)| {
                let rows = lse.len();
                let (q, k, v) = (query.matrix(bh), key.matrix(bh), value.matrix(bh));
                let acc = &mut acc[..rows * d];
                acc.fill(0.0);
                let mut max = vec![f32::NEG_INFINITY; rows];
                let mut sum = vec![0.0f32; rows];
                let packed = bf16.as_ref().map(|heads| &heads[bh]);
                let first = match packed {
                    None => first_key(q0, window),
                    Some(_) => first_key(q0, window) / BLOCK_COLUMNS * BLOCK_COLUMNS,
                };
                for (k0, k1) in blocks(first, q0 + rows, KEY_BLOCK) {
                    let n = k1 - k0;
                    let s = &mut scores[..rows * n];
                    let queries = q.from(q0, 0);
                    match packed {
                        None => {
                            let kt = k.from(k0, 0).transpose();
                            multiply(rewritable(s), n, [rows, n, d], queries, kt, scale, false)
                        }
                        Some([kt, _]) => {
                            let keys = kt.part(0, k0..k1);
                            multiply_packed(rewritable(s), n, (queries, [rows, d]), keys, scale)
                        }
                    }
                    for (r, row) in s.chunks_exact_mut(n).enumerate() {
                        let (start, end) = seen_columns(q0 + r, window, k0, n);
                        if start == end {
                            row.fill(0.0);
                            continue;
                        }
                        let (new_max, block_sum) = exp_seen(row, start, end, max[r]);
                        // The running sum and output were weighed against the old maximum.
                        let correction = match max[r] {
                            f32::NEG_INFINITY => 0.0,
                            old => exp(old - new_max),
                        };
                        if correction != 1.0 {
                            scale_row(&mut acc[r * d..(r + 1) * d], correction);
                        }
                        sum[r] = sum[r] * correction + block_sum;
                        max[r] = new_max;
                    }
                    let p = Matrix::dense(s, n);
                    match packed {
                        None => multiply(
                            rewritable(acc),
                            d,
                            [rows, d, n],
                            p,
                            v.from(k0, 0),
                            1.0,
                            true,
                        ),
                        // k0 is even (a multiple of 16): whole pairs of keys.
                        Some([_, v]) => add_packed(acc, d, (p, [rows, n]), v.part(k0 / 2, 0..d)),
                    }
                }
                let (b, h) = (bh / n_head, bh % n_head);
                let out = merged.block(b * t * c + q0 * c + h * d, [rows, d], c);
                for r in 0..rows {
                    // Every query sees at least its own key, so the sum is positive.
                    let inverse = 1.0 / sum[r];
                    for j in 0..d {
                        // SAFETY: `block` checked that rows q0.. of this head's d columns lie
                        // inside the buffer, and only this task writes them.
                        unsafe {
                            out.add(r * c + j)
                                .write(MaybeUninit::new(acc[r * d + j] * inverse))
                        };
                    }
                    lse[r] = max[r] + sum[r].ln();
                }
            },
        );
    // SAFETY: for each sequence, every head's blocks of queries wrote its d columns of all t
    // rows, and the heads' columns make up the width.
    let output = unsafe { written(output) };
    let merged = FlexTensor::from_data(TensorData::new(output, [batch, t, c]));
    let heads = Layout::new(
        Shape::new([batch, n_head, t, d]),
        vec![(t * c) as isize, d as isize, c as isize, 1],
        0,
    );
    (merged.with_layout(heads), log_sum_exp)
}
