//! The AdamW update of one parameter: as one in-place pass on `flex`, else with tensor ops.
//!
//! Written with tensor ops, one parameter's update takes about fourteen passes, each into a
//! fresh buffer. On the CPU the same arithmetic runs here once per element, in the same order
//! and precision, updating the weight and both moments in place (their buffers are owned by
//! the optimizer and the model alone after the backward pass, so nothing is copied).

use crate::values;
use burn::backend::Flex;
use burn::backend::flex::FlexTensor;
use burn::tensor::{DType, Tensor, TensorData};
use rayon::prelude::*;

/// First and second moments of one parameter, flattened to 1-D.
#[derive(Debug, Clone)]
pub struct Moments {
    pub first: Tensor<1>,
    pub second: Tensor<1>,
}

/// The weight and moments after one update: in one pass on `flex` (unless
/// `TINYGPT_PLAIN_OPS` is set), with tensor ops anywhere else.
pub fn update(
    weight: Tensor<1>,
    grad: Tensor<1>,
    previous: Option<Moments>,
    grad_scale: Option<&Tensor<1>>,
    k: &Coefficients,
) -> (Tensor<1>, Moments) {
    if crate::enabled() && applies(&weight) {
        update_in_place(weight, grad, previous, grad_scale, k)
    } else {
        plain_update(weight, grad, previous, grad_scale, k)
    }
}

/// The scalars of one parameter's update:
/// `m ← β₁m + (1−β₁)g`, `v ← β₂v + (1−β₂)g²`, `w ← keep·w − step_size·m/(√v + ε)`.
#[derive(Debug, Clone, Copy)]
pub struct Coefficients {
    pub beta1: f64,
    pub beta2: f64,
    pub step_size: f64,
    pub epsilon: f64,
    /// `1 − lr·weight_decay`.
    pub keep: f64,
}

/// The update written with tensor ops (any device): the new weight and moments.
pub fn plain_update(
    weight: Tensor<1>,
    grad: Tensor<1>,
    previous: Option<Moments>,
    grad_scale: Option<&Tensor<1>>,
    k: &Coefficients,
) -> (Tensor<1>, Moments) {
    let grad = match grad_scale {
        Some(scale) => grad * scale.clone(),
        None => grad,
    };
    let moments = match previous {
        Some(Moments { first, second }) => Moments {
            first: first.mul_scalar(k.beta1) + grad.clone().mul_scalar(1.0 - k.beta1),
            second: second.mul_scalar(k.beta2) + grad.square().mul_scalar(1.0 - k.beta2),
        },
        None => Moments {
            first: grad.clone().mul_scalar(1.0 - k.beta1),
            second: grad.square().mul_scalar(1.0 - k.beta2),
        },
    };
    let step = moments.first.clone().mul_scalar(k.step_size)
        / moments.second.clone().sqrt().add_scalar(k.epsilon);
    (weight.mul_scalar(k.keep) - step, moments)
}

/// Elements per parallel task.
const CHUNK: usize = 1 << 14;

/// Whether [`update`] takes this parameter: an f32 tensor on `flex` without autodiff (the
/// optimizer sees the weights' inner tensors, so that is the `flex` training device).
fn applies(weight: &Tensor<1>) -> bool {
    // The probe's clone is dropped at once, so the weight's buffer is unshared again after.
    weight.dtype() == DType::F32 && weight.clone().try_into_primitive::<Flex>().is_ok()
}

/// The weight and moments after one update. Every tensor must be on the weight's device, and
/// [`applies`] must hold.
fn update_in_place(
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

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Device;

    fn to_vec(t: Tensor<1>) -> Vec<f32> {
        t.into_data().try_to_vec::<f32>().unwrap()
    }

    #[test]
    fn one_pass_flex_update_matches_the_tensor_ops() {
        let device = Device::flex();
        let n = 40_000; // more than one parallel task, the last one partial
        let values = |seed: u32| -> Tensor<1> {
            let v: Vec<f32> = (0..n)
                .map(|i| {
                    ((i as u32).wrapping_mul(2_654_435_761) ^ seed) as f32 / u32::MAX as f32 - 0.5
                })
                .collect();
            Tensor::from_data(TensorData::new(v, [n]), &device)
        };
        let k = Coefficients {
            beta1: 0.9,
            beta2: 0.95,
            step_size: 1e-3 * (1.0f64 - 0.95f64.powi(2)).sqrt() / (1.0 - 0.9f64.powi(2)),
            epsilon: 1e-8 * (1.0f64 - 0.95f64.powi(2)).sqrt(),
            keep: 1.0 - 1e-3 * 0.1,
        };
        let scale = Tensor::<1>::from_data(TensorData::new(vec![0.7f32], [1]), &device);
        let (weight, grad) = (values(1), values(2));
        for previous in [
            None,
            Some(Moments {
                first: values(3).mul_scalar(0.01),
                second: values(4).abs().mul_scalar(1e-4),
            }),
        ] {
            for grad_scale in [None, Some(&scale)] {
                assert!(applies(&weight));
                let (w, m) = update_in_place(
                    weight.clone(),
                    grad.clone(),
                    previous.clone(),
                    grad_scale,
                    &k,
                );
                let (w_plain, m_plain) = plain_update(
                    weight.clone(),
                    grad.clone(),
                    previous.clone(),
                    grad_scale,
                    &k,
                );
                for (fused, plain) in [
                    (w, w_plain),
                    (m.first, m_plain.first),
                    (m.second, m_plain.second),
                ] {
                    let (fused, plain) = (to_vec(fused), to_vec(plain));
                    let diff = fused
                        .iter()
                        .zip(&plain)
                        .map(|(a, b)| (a - b).abs())
                        .fold(0.0, f32::max);
                    assert!(diff <= 1e-9, "one-pass update differs by {diff}");
                }
            }
        }
        // Anything but flex takes the tensor ops.
        #[allow(deprecated)] // ndarray: a backend the user asked for
        let other = Tensor::<1>::zeros([4], &Device::ndarray());
        assert!(!applies(&other));
        assert!(!applies(&Tensor::<1>::zeros(
            [4],
            &Device::flex().autodiff()
        )));
    }
}
