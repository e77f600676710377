//! One optimizer step: forward and backward over a rank's micro-batches, the gradients summed
//! over the ranks, global-norm clipping and AdamW.

use burn::optim::{GradientsAccumulator, GradientsParams};
use burn::tensor::{Device, Tensor};
use tinygpt_data::Batch;
use tinygpt_kernels::{Precision, with_precision};
use tinygpt_model::Gpt;

use crate::collective::{Alone, Collective, sum_over_ranks};
use crate::optim::{Optimizer, clip_scale, global_grad_norm};
use crate::tensors::batch_loss;

/// One rank's part of an optimizer step.
pub struct Shard<'b> {
    /// This rank's micro-batches.
    pub batches: &'b [Batch],
    /// Where `batches[0]` sits among the step's micro-batches over all ranks.
    pub first: usize,
    /// The step's micro-batches over all ranks. Each loss is divided by this, so the summed
    /// gradients are those of the mean loss.
    pub total: usize,
    /// When set, dropout for micro-batch k is seeded from this and k, so a micro-batch draws
    /// the same masks whichever rank trains on it (k = 0 gets this seed itself).
    pub dropout_seed: Option<u64>,
    /// What the linear maps' products take (`train.precision`).
    pub precision: Precision,
}

/// The seed of micro-batch `k`'s dropout masks in a step seeded `seed`.
fn micro_batch_seed(seed: u64, k: usize) -> u64 {
    seed.wrapping_add((k as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

/// One AdamW step on the summed gradients of `micro_batches` (each loss divided by their
/// number, so the step is that of the mean loss), in one process, the products in
/// `precision`. Returns the updated model, the mean loss and the gradient norm before
/// clipping, both still on the device. `max_norm` 0 means no clipping.
pub fn optimizer_step(
    model: Gpt,
    optim: &mut Optimizer,
    micro_batches: &[Batch],
    [lr, max_norm]: [f64; 2],
    precision: Precision,
    device: &Device,
) -> (Gpt, Tensor<1>, Tensor<1>) {
    let shard = Shard {
        batches: micro_batches,
        first: 0,
        total: micro_batches.len(),
        dropout_seed: None,
        precision,
    };
    data_parallel_step(model, optim, &shard, lr, max_norm, device, &Alone)
}

/// [`optimizer_step`] over the ranks of `collective`: each computes the gradients of its
/// shard, the ranks sum them (and the loss), and every rank takes the same AdamW step.
pub fn data_parallel_step(
    model: Gpt,
    optim: &mut Optimizer,
    shard: &Shard,
    lr: f64,
    max_norm: f64,
    device: &Device,
    collective: &dyn Collective,
) -> (Gpt, Tensor<1>, Tensor<1>) {
    // The whole step runs on one of the CPU pool's worker threads; the caller waits once for
    // all of it. Called from outside the pool, every parallel op would hand its work over and
    // sleep until it is done: a wake-up per op, a few hundred per step. On a worker, each op
    // runs its own share in place. It stays on one thread, all-reduce included: burn's
    // fusion keeps a stream of operations per thread, and a step split across threads
    // corrupted the gradients on wgpu.
    rayon::scope(|_| {
        let n = shard.total as f64;
        let mut accumulator = GradientsAccumulator::<Gpt>::new();
        let mut loss_sum: Option<Tensor<1>> = None;
        for (i, batch) in shard.batches.iter().enumerate() {
            if let Some(seed) = shard.dropout_seed {
                device.seed(micro_batch_seed(seed, shard.first + i));
            }
            let loss =
                with_precision(shard.precision, || batch_loss(&model, batch, device)).div_scalar(n);
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            accumulator.accumulate(&model, grads);
            let loss = loss.detach().inner();
            loss_sum = Some(match loss_sum {
                Some(sum) => sum + loss,
                None => loss,
            });
        }
        let mut grads = accumulator.grads();
        let loss = loss_sum.expect("at least one micro-batch");
        let loss = sum_over_ranks(&model, &mut grads, loss, collective);
        let grad_norm = global_grad_norm(&model, &grads);
        let scale = (max_norm > 0.0).then(|| clip_scale(grad_norm.clone(), max_norm));
        let model = optim.step(model, lr, &mut grads, scale);
        (model, loss, grad_norm)
    })
}
