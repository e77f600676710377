//! Dropout as one vectorised pass forward and one backward on `flex` with autodiff.
//!
//! burn's `Dropout` draws a Bernoulli mask one element at a time from a ChaCha generator behind
//! a lock (about 8% of a nanoGPT-shape training step), then multiplies twice. Here the mask is
//! a hash of (key, element index): one 64-bit key per call is drawn from the device's seeded
//! generator, so a seeded run still draws the same masks, and any element's mask bit can be
//! computed anywhere, in parallel, without storing it. Backward applies the same mask to the
//! output gradient: `dx = dy·mask/(1 − p)`.

use burn::backend::Flex;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops};
use burn::backend::flex::FlexTensor;
use burn::tensor::{Distribution, Tensor, TensorData};
use rayon::prelude::*;

use super::fresh::{unwritten, written};
use super::math::apply_dropout_mask;
use super::{on_flex_autodiff, track, values};

/// Values per parallel task. A power of two, so no task straddles a multiple of 2³² (where the
/// index's high half, mixed into the key, changes).
const CHUNK: usize = 1 << 14;

/// `Some(dropout(x))` when `x` is an f32 tensor on `flex` with autodiff, else `None`.
/// `prob` is the probability of zeroing an element, in (0, 1).
pub(super) fn dropout<const D: usize>(x: &Tensor<D>, prob: f64) -> Option<Tensor<D>> {
    let node = on_flex_autodiff(x)?;
    let mask = Mask::new(draw_key(x), prob);
    let input = node.primitive().to_contiguous();
    let output = mask.apply(&input);
    Some(track(Dropout, [node.node()], mask, output))
}

/// 64 bits from the device's generator (three uniform f32 draws carry 24 bits each).
fn draw_key<const D: usize>(like: &Tensor<D>) -> u64 {
    let draws = Tensor::<1>::random([3], Distribution::Default, &like.device())
        .into_data()
        .try_to_vec::<f32>()
        .expect("random f32 values");
    draws
        .iter()
        .fold(0u64, |key, &u| (key << 24) | (u * (1 << 24) as f32) as u64)
}

/// Which elements one dropout call keeps: a function of the element's index.
#[derive(Debug, Clone, Copy)]
pub(super) struct Mask {
    key: u64,
    /// An element is kept when its 32-bit hash is below this: `(1 − p)·2³²`.
    keep_below: u32,
    /// `1/(1 − p)`, so the expected output equals the input.
    scale: f32,
}

impl Mask {
    pub(super) fn new(key: u64, prob: f64) -> Self {
        let keep = 1.0 - prob;
        Self {
            key,
            keep_below: (keep * 4_294_967_296.0).min(u32::MAX as f64) as u32,
            scale: (1.0 / keep) as f32,
        }
    }

    /// Whether element `index` (below 2³²) is kept.
    #[cfg(test)]
    pub(super) fn keeps(&self, index: u32) -> bool {
        super::math::dropout_hash(self.key, index) < self.keep_below
    }

    /// `mask(x)/(1 − p)`, element by element over the row-major values.
    pub(super) fn apply(&self, x: &FlexTensor) -> FlexTensor {
        let mut y = unwritten(x.layout().num_elements());
        y.par_chunks_mut(CHUNK)
            .zip(values(x).par_chunks(CHUNK))
            .enumerate()
            .for_each(|(chunk, (y, x))| {
                let first = (chunk * CHUNK) as u64;
                let key = self.key ^ ((first >> 32) << 32);
                apply_dropout_mask(x, y, key, first as u32, self.keep_below, self.scale);
            });
        // SAFETY: the chunks cover `y`, and the mask wrote each element.
        let y = unsafe { written(y) };
        FlexTensor::from_data(TensorData::new(y, x.layout().shape().clone()))
    }
}

#[derive(Debug)]
struct Dropout;

impl Backward<Flex, 1> for Dropout {
    type State = Mask;

    fn backward(self, ops: Ops<Mask, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad_output = grads.consume::<Flex>(&ops.node).to_contiguous();
        let [parent] = ops.parents;
        if let Some(node) = parent {
            grads.register::<Flex>(node.id, ops.state.apply(&grad_output));
        }
    }
}
