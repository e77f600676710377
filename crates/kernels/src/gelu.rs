//! GELU as one vectorised pass forward and one backward on `flex` with autodiff (the forward
//! pass alone without autodiff), in either form: exact (erf) or GPT-2's tanh approximation.
//! ReLU² and the logits' soft-cap `c·tanh(z/c)` are element-wise too and run the same way
//! (burn would take two and three passes, each with its own backward).
//!
//! burn-flex computes the exact GELU with libm's scalar `erff`, one value at a time, and again
//! in the backward pass (the tanh form as five tensor ops). This op evaluates either form
//! eight lanes wide (see [`super::math`]), once: the forward pass also writes the derivative,
//! and the backward pass is one multiplication.

use std::mem::MaybeUninit;

use burn::backend::Flex;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops};
use burn::backend::flex::FlexTensor;
use burn::tensor::{Tensor, TensorData};
use rayon::prelude::*;

use super::fresh::{unwritten, written};
use super::math::{gelu_forward, gelu_tanh_forward};
use super::{on_flex, on_flex_autodiff, track, values};

/// Values per parallel task: big enough to amortise the hand-off.
const CHUNK: usize = 1 << 14;

/// `Some(gelu(x))` (the tanh form when `tanh`) when `x` is an f32 tensor on `flex` (with
/// autodiff or without), else `None`.
pub(super) fn gelu<const D: usize>(x: &Tensor<D>, tanh: bool) -> Option<Tensor<D>> {
    if tanh {
        pointwise(x, gelu_tanh_forward)
    } else {
        pointwise(x, gelu_forward)
    }
}

/// `Some(max(0, x)²)` on `flex`, else `None`.
pub(super) fn relu2<const D: usize>(x: &Tensor<D>) -> Option<Tensor<D>> {
    pointwise(x, |x, y, d| {
        for ((&x, y), d) in x.iter().zip(y).zip(d) {
            let r = x.max(0.0);
            y.write(r * r);
            d.write(2.0 * r);
        }
    })
}

/// `Some(cap·tanh(z/cap))` on `flex`, else `None`. Its derivative is 1 − tanh²(z/cap).
pub(super) fn softcap<const D: usize>(x: &Tensor<D>, cap: f32) -> Option<Tensor<D>> {
    pointwise(x, move |x, y, d| {
        for ((&x, y), d) in x.iter().zip(y).zip(d) {
            let t = (x / cap).tanh();
            y.write(cap * t);
            d.write(1.0 - t * t);
        }
    })
}

/// An element-wise function whose `forward` writes each value and its derivative.
fn pointwise<const D: usize, F>(x: &Tensor<D>, forward: F) -> Option<Tensor<D>>
where
    F: Fn(&[f32], &mut [MaybeUninit<f32>], &mut [MaybeUninit<f32>]) + Sync,
{
    if let Some(x) = on_flex(x) {
        let (output, _) = evaluate(&x.to_contiguous(), &forward);
        return Some(Tensor::from_primitive::<Flex>(output));
    }
    let x = on_flex_autodiff(x)?;
    let (output, derivative) = evaluate(&x.primitive().to_contiguous(), &forward);
    Some(track(Pointwise, [x.node()], derivative, output))
}

/// The function of a contiguous tensor, and its derivative at each input.
fn evaluate<F>(input: &FlexTensor, forward: &F) -> (FlexTensor, FlexTensor)
where
    F: Fn(&[f32], &mut [MaybeUninit<f32>], &mut [MaybeUninit<f32>]) + Sync,
{
    let n = input.layout().num_elements();
    let (mut output, mut derivative) = (unwritten(n), unwritten(n));
    output
        .par_chunks_mut(CHUNK)
        .zip(derivative.par_chunks_mut(CHUNK))
        .zip(values(input).par_chunks(CHUNK))
        .for_each(|((y, d), x)| forward(x, y, d));
    // SAFETY: the forward kernel wrote every output and derivative.
    let (output, derivative) = unsafe { (written(output), written(derivative)) };
    (same_shape(output, input), same_shape(derivative, input))
}

fn same_shape(values: Vec<f32>, like: &FlexTensor) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, like.layout().shape().clone()))
}

#[derive(Debug)]
/// An element-wise op's backward pass: the saved derivative times the output's gradient.
struct Pointwise;

impl Backward<Flex, 1> for Pointwise {
    /// The derivative at each input (`Φ(x) + x·φ(x)` for the exact GELU, `2·max(0, x)` for ReLU²).
    type State = FlexTensor;

    fn backward(self, ops: Ops<FlexTensor, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad_output = grads.consume::<Flex>(&ops.node).to_contiguous();
        let [parent] = ops.parents;
        let Some(node) = parent else { return };
        let derivative = ops.state;
        let mut grad = unwritten(derivative.layout().num_elements());
        grad.par_chunks_mut(CHUNK)
            .zip(values(&derivative).par_chunks(CHUNK))
            .zip(values(&grad_output).par_chunks(CHUNK))
            .for_each(|((dx, d), dy)| {
                for ((dx, d), dy) in dx.iter_mut().zip(d).zip(dy) {
                    dx.write(dy * d);
                }
            });
        // SAFETY: the chunks cover the gradient, and each element was written.
        let grad = unsafe { written(grad) };
        grads.register::<Flex>(node.id, same_shape(grad, &derivative));
    }
}
