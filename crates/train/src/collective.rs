//! What data-parallel training asks of the processes it runs in: each process (a *rank*)
//! computes gradients on its own micro-batches, and the ranks sum them before the identical
//! AdamW step. The library knows only this trait; the `tinygpt` binary implements it over MPI
//! (`--features mpi`), and [`Alone`] is the one process of an ordinary run.

use std::hash::Hasher;

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::{Tensor, TensorData};

use crate::tensors::to_vec;

/// The ranks of one training job. Every method is collective: all ranks call it, in the same
/// order, and all get the same answer. `Sync` because a training step (its all-reduce
/// included) runs on a CPU pool thread; calls never overlap.
pub trait Collective: Sync {
    /// This process's number, 0 to `ranks() - 1`. Rank 0 writes the run's files.
    fn rank(&self) -> usize;
    /// How many processes train together.
    fn ranks(&self) -> usize;
    /// Replaces `values` by their element-wise sum over all ranks.
    fn sum_f32(&self, values: &mut [f32]);
    /// Replaces `values` by their element-wise sum over all ranks.
    fn sum_f64(&self, values: &mut [f64]);
    /// The largest of the ranks' `value`s.
    fn max_u64(&self, value: u64) -> u64;
    /// Returns once every rank has called it.
    fn barrier(&self);

    /// Whether this rank writes checkpoints, metrics and the final model.
    fn is_leader(&self) -> bool {
        self.rank() == 0
    }

    /// Whether every rank passed the same `value` (for example a hash of its weights).
    fn all_equal(&self, value: u64) -> bool {
        // Equal everywhere iff this rank's value is both the largest and the smallest.
        self.max_u64(value) == value && self.max_u64(!value) == !value
    }
}

/// A run of one process: every collective is the identity.
pub struct Alone;

impl Collective for Alone {
    fn rank(&self) -> usize {
        0
    }
    fn ranks(&self) -> usize {
        1
    }
    fn sum_f32(&self, _values: &mut [f32]) {}
    fn sum_f64(&self, _values: &mut [f64]) {}
    fn max_u64(&self, value: u64) -> u64 {
        value
    }
    fn barrier(&self) {}
}

/// Sums every parameter's gradient, and the loss, over all ranks: one flat buffer, one
/// all-reduce. Each rank's losses were already divided by the step's micro-batch count over
/// all ranks, so the sums are the gradient and the value of the mean loss.
pub fn sum_over_ranks<M: Module>(
    model: &M,
    grads: &mut GradientsParams,
    loss: Tensor<1>,
    collective: &dyn Collective,
) -> Tensor<1> {
    if collective.ranks() == 1 {
        return loss;
    }
    let mut flat = Flatten {
        grads,
        values: Vec::new(),
    };
    model.visit(&mut flat);
    let mut values = flat.values;
    let device = loss.device();
    values.extend(to_vec(loss));
    collective.sum_f32(&mut values);

    let loss = Tensor::from_data(
        TensorData::new(vec![values[values.len() - 1]], [1]),
        &device,
    );
    let mut unflatten = Unflatten {
        grads,
        values: &values,
        at: 0,
    };
    model.visit(&mut unflatten);
    loss
}

/// A hash of every parameter's values, to check that all ranks start from the same weights.
pub fn weights_fingerprint<M: Module>(model: &M) -> u64 {
    struct Fingerprint(std::hash::DefaultHasher);
    impl ModuleVisitor for Fingerprint {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            for value in to_vec(param.val()) {
                self.0.write_u32(value.to_bits());
            }
        }
    }
    // DefaultHasher::new() has fixed keys: the same values hash alike in every process of
    // one binary.
    let mut fingerprint = Fingerprint(std::hash::DefaultHasher::new());
    model.visit(&mut fingerprint);
    fingerprint.0.finish()
}

/// Appends each gradient to `values`, in the model's parameter order.
struct Flatten<'a> {
    grads: &'a GradientsParams,
    values: Vec<f32>,
}

impl ModuleVisitor for Flatten<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(grad) = self.grads.get::<D>(param.id) {
            self.values.extend(to_vec(grad));
        }
    }
}

/// Puts the summed values back, in the same order [`Flatten`] took them.
struct Unflatten<'a> {
    grads: &'a mut GradientsParams,
    values: &'a [f32],
    at: usize,
}

impl ModuleVisitor for Unflatten<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(grad) = self.grads.remove::<D>(param.id) {
            let shape = grad.shape();
            let n = shape.num_elements();
            let summed = self.values[self.at..self.at + n].to_vec();
            self.at += n;
            let summed = Tensor::from_data(TensorData::new(summed, shape), &grad.device());
            self.grads.register::<D>(param.id, summed);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use burn::nn::Linear;
    use burn::tensor::Device;

    use super::*;

    /// A pretend second rank whose gradients are `other` times this rank's: the sum is
    /// `(1 + other) ×` each value, and the buffer it saw is kept for inspection.
    struct Twin {
        other: f32,
        seen: Mutex<Vec<f32>>,
    }

    impl Collective for Twin {
        fn rank(&self) -> usize {
            0
        }
        fn ranks(&self) -> usize {
            2
        }
        fn sum_f32(&self, values: &mut [f32]) {
            *self.seen.lock().unwrap() = values.to_vec();
            values.iter_mut().for_each(|v| *v *= 1.0 + self.other);
        }
        fn sum_f64(&self, _values: &mut [f64]) {}
        fn max_u64(&self, value: u64) -> u64 {
            value
        }
        fn barrier(&self) {}
    }

    #[test]
    fn gradients_and_loss_travel_in_one_buffer_and_come_back_in_place() {
        let device = Device::flex().autodiff();
        let layer = Linear {
            weight: Param::from_data(
                TensorData::new(vec![1.0f32, 2.0, 3.0, 4.0], [2, 2]),
                &device,
            ),
            bias: Some(Param::from_data(
                TensorData::new(vec![5.0f32, 6.0], [2]),
                &device,
            )),
        };
        // loss = Σ W + 2 Σ b: ∂/∂W = 1, ∂/∂b = 2.
        let loss = layer.weight.val().sum() + layer.bias.as_ref().unwrap().val().sum() * 2.0;
        let mut grads = GradientsParams::from_grads(loss.backward(), &layer);
        let loss = Tensor::<1>::from_data(TensorData::new(vec![0.5f32], [1]), &device.inner());
        let twin = Twin {
            other: 3.0,
            seen: Mutex::new(Vec::new()),
        };
        let loss = sum_over_ranks(&layer, &mut grads, loss, &twin);
        // Weight, then bias (the layer's field order), then the loss.
        assert_eq!(
            *twin.seen.lock().unwrap(),
            [1.0, 1.0, 1.0, 1.0, 2.0, 2.0, 0.5]
        );
        assert_eq!(to_vec(loss), [2.0]);
        let weight = grads.get::<2>(layer.weight.id).unwrap();
        assert_eq!(weight.dims(), [2, 2]);
        assert_eq!(to_vec(weight.reshape([4])), [4.0; 4]);
        let bias = grads.get::<1>(layer.bias.as_ref().unwrap().id).unwrap();
        assert_eq!(to_vec(bias), [8.0, 8.0]);
    }

    #[test]
    fn one_rank_changes_nothing_and_all_equal_holds() {
        assert!(Alone.all_equal(42));
        assert_eq!(Alone.max_u64(7), 7);
        let mut values = [1.0f32, 2.0];
        Alone.sum_f32(&mut values);
        assert_eq!(values, [1.0, 2.0]);
    }
}
