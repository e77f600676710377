//! How long a training step's attention takes: the fused attention op alone, forward and
//! backward, on random projections of the step's shape, once per block with that block's
//! window (what `bench` reports as attention's share of a step).

use std::time::Instant;

use burn::tensor::{Device, Distribution, Tensor};
use tinygpt_model::GptConfig;

/// Seconds for every block's attention, forward and backward, over `batch` sequences of
/// `block_size` tokens on `device` (with autodiff): the median of `tries`.
pub fn attention_seconds(config: &GptConfig, batch: usize, device: &Device, tries: usize) -> f64 {
    let device = device.clone().autodiff();
    let shape = [batch, config.block_size, 3 * config.n_embd];
    let mut times: Vec<f64> = (0..tries.max(1))
        .map(|_| {
            (0..config.n_layer)
                .map(|layer| {
                    let qkv = Tensor::<3>::random(shape, Distribution::Normal(0.0, 1.0), &device)
                        .require_grad();
                    let window = config.layer_window(layer);
                    let started = Instant::now();
                    let heads =
                        tinygpt_kernels::causal_self_attention(qkv.clone(), config.n_head, window);
                    let grads = heads.sum().backward();
                    let grad = qkv.grad(&grads).map(|g| g.into_data());
                    let _ = device.sync();
                    let elapsed = started.elapsed().as_secs_f64();
                    drop(grad);
                    elapsed
                })
                .sum()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}
