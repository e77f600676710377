//! GELU as one vectorised pass forward and one backward on `flex` with autodiff.
//!
//! burn-flex computes the exact GELU with libm's scalar `erff`, one value at a time; this op
//! keeps the exact (erf) form but evaluates it eight lanes wide (see [`super::math`]).

use burn::backend::Flex;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::tensor::{Tensor, TensorData};
use rayon::prelude::*;

use super::math::{gelu_backward, gelu_forward};
use super::{FlexAutodiff, on_flex_autodiff, values};

/// Values per parallel task: big enough to amortise the hand-off.
const CHUNK: usize = 1 << 14;

/// `Some(gelu(x))` when `x` is an f32 tensor on `flex` with autodiff, else `None`.
pub(super) fn gelu<const D: usize>(x: &Tensor<D>) -> Option<Tensor<D>> {
    let x = on_flex_autodiff(x)?;
    let input = x.primitive().to_contiguous();
    let mut output = vec![0.0f32; input.layout().num_elements()];
    output
        .par_chunks_mut(CHUNK)
        .zip(values(&input).par_chunks(CHUNK))
        .for_each(|(y, x)| gelu_forward(x, y));
    let output = same_shape(output, &input);
    let output = match Gelu
        .prepare::<NoCheckpointing>([x.node()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish(input, output),
        OpsKind::UnTracked(prep) => prep.finish(output),
    };
    Some(Tensor::from_primitive::<FlexAutodiff>(output))
}

fn same_shape(values: Vec<f32>, like: &FlexTensor) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, like.layout().shape().clone()))
}

#[derive(Debug)]
struct Gelu;

impl Backward<Flex, 1> for Gelu {
    /// The (contiguous) input.
    type State = FlexTensor;

    fn backward(self, ops: Ops<FlexTensor, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad_output = grads.consume::<Flex>(&ops.node).to_contiguous();
        let [parent] = ops.parents;
        let Some(node) = parent else { return };
        let input = ops.state;
        let mut grad = vec![0.0f32; input.layout().num_elements()];
        grad.par_chunks_mut(CHUNK)
            .zip(values(&input).par_chunks(CHUNK))
            .zip(values(&grad_output).par_chunks(CHUNK))
            .for_each(|((dx, x), dy)| gelu_backward(x, dy, dx));
        grads.register::<Flex>(node.id, same_shape(grad, &input));
    }
}
