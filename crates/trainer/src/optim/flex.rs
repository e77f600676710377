//! The AdamW update as one in-place pass over each parameter on `flex`.
//!
//! Written with tensor ops, one parameter's update takes about fourteen passes, each into a
//! fresh buffer. On the CPU the same arithmetic runs here once per element, in the same order
//! and precision, updating the weight and both moments in place (their buffers are owned by
//! the optimizer and the model alone after the backward pass, so nothing is copied).

use burn::backend::Flex;
use burn::backend::flex::FlexTensor;
use burn::tensor::{DType, Tensor, TensorData};
use rayon::prelude::*;
use tinygpt_model::fused::values;

use super::{Coefficients, Moments};

/// Elements per parallel task.
const CHUNK: usize = 1 << 14;

/// Whether [`update`] takes this parameter: an f32 tensor on `flex` without autodiff (the
/// optimizer sees the weights' inner tensors, so that is the `flex` training device).
pub(super) fn applies(weight: &Tensor<1>) -> bool {
    // The probe's clone is dropped at once, so the weight's buffer is unshared again after.
    weight.dtype() == DType::F32 && weight.clone().try_into_primitive::<Flex>().is_ok()
}

/// The weight and moments after one update. Every tensor must be on the weight's device, and
/// [`applies`] must hold.
pub(super) fn update(
    weight: Tensor<1>,
    grad: Tensor<1>,
    previous: Option<Moments>,
    grad_scale: Option<&Tensor<1>>,
    k: &Coefficients,
) -> (Tensor<1>, Moments) {
    let [n] = weight.dims();
    let (first, second) = match previous {
        Some(Moments { first, second }) => (first, second),
        None => (zeros(n), zeros(n)),
    };
    let (mut weight, mut first, mut second) = (owned(weight), owned(first), owned(second));
    let grad = primitive(grad).to_contiguous();
    let scale = grad_scale.map_or(1.0, |s| values(&primitive(s.clone()).to_contiguous())[0]);

    // The scalars as the tensor ops see them: converted to f32 once.
    let (b1, b2) = (k.beta1 as f32, k.beta2 as f32);
    let (one_minus_b1, one_minus_b2) = ((1.0 - k.beta1) as f32, (1.0 - k.beta2) as f32);
    let (step_size, epsilon, keep) = (k.step_size as f32, k.epsilon as f32, k.keep as f32);

    weight
        .storage_mut::<f32>()
        .par_chunks_mut(CHUNK)
        .zip(first.storage_mut::<f32>().par_chunks_mut(CHUNK))
        .zip(second.storage_mut::<f32>().par_chunks_mut(CHUNK))
        .zip(values(&grad).par_chunks(CHUNK))
        .for_each(|(((w, m), v), g)| {
            // Equal lengths, stated once, so the loop has no bounds checks and vectorises.
            let len = w.len();
            let (m, v, g) = (&mut m[..len], &mut v[..len], &g[..len]);
            for i in 0..len {
                let g = g[i] * scale;
                m[i] = m[i] * b1 + g * one_minus_b1;
                v[i] = v[i] * b2 + g * g * one_minus_b2;
                w[i] = w[i] * keep - m[i] * step_size / (v[i].sqrt() + epsilon);
            }
        });
    let tensor = Tensor::<1>::from_primitive::<Flex>;
    let moments = Moments {
        first: tensor(first),
        second: tensor(second),
    };
    (tensor(weight), moments)
}

fn primitive(tensor: Tensor<1>) -> FlexTensor {
    tensor
        .try_into_primitive::<Flex>()
        .expect("`applies` checked the device")
}

/// The tensor as a dense buffer of exactly its elements, ready to be written in place (copied
/// first only when it is a view or shared).
fn owned(tensor: Tensor<1>) -> FlexTensor {
    let primitive = primitive(tensor);
    let layout = primitive.layout();
    let dense = layout.is_contiguous()
        && layout.start_offset() == 0
        && primitive.bytes().len() == layout.num_elements() * size_of::<f32>();
    if dense {
        primitive
    } else {
        FlexTensor::from_data(primitive.into_data())
    }
}

fn zeros(n: usize) -> Tensor<1> {
    let zeros = FlexTensor::from_data(TensorData::new(vec![0.0f32; n], [n]));
    Tensor::from_primitive::<Flex>(zeros)
}
