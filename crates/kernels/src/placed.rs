//! Queries and keys as attention uses them, on the packed `[batch, time, 3·n_embd]` projection:
//! each head's query and key RMS-normalised without a gain (QK-norm, when asked), then turned
//! by RoPE; values pass through. One pass forward and one backward on `flex` (the plain path
//! splits, normalises, rotates and concatenates with burn's ops, a dozen passes each way).
//!
//! Backward of the rotation is the rotation by the opposite angle; of the norm,
//! dx = r·(dx̂ − x̂·mean(dx̂·x̂)) with x̂ = x·r, r = 1/√(mean(x²) + ε).

use std::sync::Arc;

use burn::backend::Flex;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops};
use burn::backend::flex::FlexTensor;
use burn::tensor::{Tensor, TensorData};
use rayon::prelude::*;

use super::fresh::{unwritten, written};
use super::rotary::RotaryTables;
use super::{on_flex, on_flex_autodiff, register, track, values};

/// Token rows per parallel task.
const ROWS: usize = 16;
/// The widest head the kernel takes (its backward keeps one head's gradient on the stack).
const MAX_HEAD: usize = 512;

/// What happens to each head's queries and keys.
#[derive(Debug, Clone)]
struct Placement {
    n_head: usize,
    /// QK-norm's ε, when the heads are normalised.
    epsilon: Option<f32>,
    /// RoPE's cos and sin, `[time, d_head/2]`, when the heads are rotated.
    cos: Option<Arc<[f32]>>,
    sin: Option<Arc<[f32]>>,
}

/// `Some(qkv with queries and keys placed)` for an f32 `qkv` on `flex`, else `None`.
pub(super) fn place(
    qkv: &Tensor<3>,
    n_head: usize,
    epsilon: Option<f64>,
    rotary: Option<&RotaryTables>,
) -> Option<Tensor<3>> {
    let placement = Placement {
        n_head,
        epsilon: epsilon.map(|e| e as f32),
        cos: rotary.map(|r| r.cos_values.clone()),
        sin: rotary.map(|r| r.sin_values.clone()),
    };
    let [_, time, width] = qkv.dims();
    let d = width / 3 / n_head;
    let tables_fit =
        rotary.is_none_or(|r| d.is_multiple_of(2) && r.cos_values.len() == time * d / 2);
    if !tables_fit || d > MAX_HEAD || width % (3 * n_head) != 0 {
        return None;
    }
    if let Some(x) = on_flex(qkv) {
        let (output, _) = placement.forward(&x.to_contiguous(), time);
        return Some(Tensor::from_primitive::<Flex>(output));
    }
    let x = on_flex_autodiff(qkv)?;
    let input = x.primitive().to_contiguous();
    let (output, rstd) = placement.forward(&input, time);
    let saved = Saved {
        input,
        rstd,
        time,
        placement: placement.clone(),
    };
    Some(track(placement, [x.node()], saved, output))
}

impl Placement {
    /// The placed `input` and, with QK-norm, each (row, part, head)'s r.
    fn forward(&self, input: &FlexTensor, time: usize) -> (FlexTensor, Vec<f32>) {
        let x = values(input);
        let width = *input.layout().shape().last().expect("3-D");
        let c = width / 3;
        let per_row = 2 * self.n_head;
        let rows = x.len() / width;
        let mut output = unwritten(x.len());
        let mut rstd = vec![1.0f32; rows * per_row];
        output
            .par_chunks_mut(ROWS * width)
            .zip(x.par_chunks(ROWS * width))
            .zip(rstd.par_chunks_mut(ROWS * per_row))
            .enumerate()
            .for_each(|(task, ((y, x), rstd))| {
                for (r, ((y, x), rstd)) in y
                    .chunks_exact_mut(width)
                    .zip(x.chunks_exact(width))
                    .zip(rstd.chunks_exact_mut(per_row))
                    .enumerate()
                {
                    let position = (task * ROWS + r) % time;
                    for (head, rstd) in rstd.iter_mut().enumerate() {
                        let at = head * (c / self.n_head);
                        let d = c / self.n_head;
                        *rstd = self.head_forward(&x[at..at + d], &mut y[at..at + d], position);
                    }
                    for (y, &x) in y[2 * c..].iter_mut().zip(&x[2 * c..]) {
                        y.write(x);
                    }
                }
            });
        // SAFETY: every query, key and value element of every row was written.
        let output = unsafe { written(output) };
        let shape = input.layout().shape().clone();
        (FlexTensor::from_data(TensorData::new(output, shape)), rstd)
    }

    /// One head's query or key: normalised, then rotated, into `y`; returns r (1 if no norm).
    fn head_forward(
        &self,
        x: &[f32],
        y: &mut [std::mem::MaybeUninit<f32>],
        position: usize,
    ) -> f32 {
        let d = x.len();
        let r = match self.epsilon {
            Some(epsilon) => {
                let mean_square = x.iter().map(|v| v * v).sum::<f32>() / d as f32;
                1.0 / (mean_square + epsilon).sqrt()
            }
            None => 1.0,
        };
        match (&self.cos, &self.sin) {
            (Some(cos), Some(sin)) => {
                let half = d / 2;
                let (cos, sin) = (&cos[position * half..], &sin[position * half..]);
                for i in 0..half {
                    let (x1, x2) = (x[i] * r, x[i + half] * r);
                    y[i].write(x1 * cos[i] - x2 * sin[i]);
                    y[i + half].write(x2 * cos[i] + x1 * sin[i]);
                }
            }
            _ => {
                for (y, &x) in y.iter_mut().zip(x) {
                    y.write(x * r);
                }
            }
        }
        r
    }

    /// One head's gradient: `dy` rotated back, then through the norm, into `dx`.
    fn head_backward(
        &self,
        x: &[f32],
        dy: &[f32],
        dx: &mut [std::mem::MaybeUninit<f32>],
        position: usize,
        r: f32,
    ) {
        let d = x.len();
        let mut d_hat = [0.0f32; MAX_HEAD];
        let d_hat = &mut d_hat[..d];
        match (&self.cos, &self.sin) {
            (Some(cos), Some(sin)) => {
                let half = d / 2;
                let (cos, sin) = (&cos[position * half..], &sin[position * half..]);
                for i in 0..half {
                    let (g1, g2) = (dy[i], dy[i + half]);
                    d_hat[i] = g1 * cos[i] + g2 * sin[i];
                    d_hat[i + half] = g2 * cos[i] - g1 * sin[i];
                }
            }
            _ => d_hat.copy_from_slice(dy),
        }
        if self.epsilon.is_none() {
            for (dx, &g) in dx.iter_mut().zip(d_hat.iter()) {
                dx.write(g);
            }
            return;
        }
        let mean = d_hat.iter().zip(x).map(|(g, x)| g * x * r).sum::<f32>() / d as f32;
        for ((dx, &g), &x) in dx.iter_mut().zip(d_hat.iter()).zip(x) {
            dx.write(r * (g - x * r * mean));
        }
    }
}

#[derive(Debug, Clone)]
struct Saved {
    input: FlexTensor,
    rstd: Vec<f32>,
    time: usize,
    placement: Placement,
}

impl Backward<Flex, 1> for Placement {
    type State = Saved;

    fn backward(self, ops: Ops<Saved, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad_output = grads.consume::<Flex>(&ops.node).to_contiguous();
        let Saved {
            input,
            rstd,
            time,
            placement,
        } = ops.state;
        let width = *input.layout().shape().last().expect("3-D");
        let c = width / 3;
        let d = c / placement.n_head;
        let per_row = 2 * placement.n_head;
        let mut dx = unwritten(input.layout().num_elements());
        dx.par_chunks_mut(ROWS * width)
            .zip(values(&input).par_chunks(ROWS * width))
            .zip(values(&grad_output).par_chunks(ROWS * width))
            .zip(rstd.par_chunks(ROWS * per_row))
            .enumerate()
            .for_each(|(task, (((dx, x), dy), rstd))| {
                let rows = dx
                    .chunks_exact_mut(width)
                    .zip(x.chunks_exact(width))
                    .zip(dy.chunks_exact(width))
                    .zip(rstd.chunks_exact(per_row));
                for (r, (((dx, x), dy), rstd)) in rows.enumerate() {
                    let position = (task * ROWS + r) % time;
                    for (head, &rstd) in rstd.iter().enumerate() {
                        let at = head * d;
                        let span = at..at + d;
                        placement.head_backward(
                            &x[span.clone()],
                            &dy[span.clone()],
                            &mut dx[span],
                            position,
                            rstd,
                        );
                    }
                    for (dx, &g) in dx[2 * c..].iter_mut().zip(&dy[2 * c..]) {
                        dx.write(g);
                    }
                }
            });
        // SAFETY: every element of every row was written.
        let dx = unsafe { written(dx) };
        let shape = input.layout().shape().clone();
        let parents = ops.parents.map(|parent| parent.map(|node| node.id));
        register(
            grads,
            &parents,
            [FlexTensor::from_data(TensorData::new(dx, shape))],
        );
    }
}
