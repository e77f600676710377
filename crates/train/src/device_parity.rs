//! The wgpu device against the CPU: from the same initial weights and the same batch, the
//! logits, the loss, the gradient norm and the weights after one AdamW step agree within float
//! tolerance. CI (`CI` set) has Mesa's software Vulkan driver: a missing adapter there is a
//! failure, never a silent skip.

use burn::module::Module;
use burn::tensor::Device;
use tinygpt_data::Batch;
use tinygpt_model::weights::module_tensors;
use tinygpt_model::{Gpt, GptConfig, cross_entropy};

use crate::config::TrainConfig;
use crate::device::parse_device;
use crate::optim::Optimizer;
use crate::tensors::{batch_tensors, scalar, to_vec};
use crate::trainer::optimizer_step;
use tinygpt_kernels::Precision;

/// The wgpu device, or `None` (with a note) on a machine without an adapter outside CI.
pub fn wgpu_or_skip() -> Option<Device> {
    match parse_device("wgpu") {
        Ok(device) => Some(device),
        Err(e) if std::env::var_os("CI").is_some() => {
            panic!("CI must have a wgpu adapter (.ci/run installs mesa-vulkan-drivers): {e:#}")
        }
        Err(e) => {
            eprintln!("no wgpu adapter here, wgpu parity not checked: {e:#}");
            None
        }
    }
}

fn config() -> GptConfig {
    GptConfig {
        vocab_size: 19,
        block_size: 12,
        n_layer: 2,
        n_head: 2,
        n_embd: 32,
        dropout: 0.0,
        bias: true,
        tie_embeddings: true,
        activation: Default::default(),
        layer_norm_eps: 1e-5,
        ..GptConfig::default()
    }
}

fn batch() -> Batch {
    let stream: Vec<u32> = (0..200).map(|i| ((i * 7 + i / 3) % 19) as u32).collect();
    Batch::from_starts(&stream.into(), &[0, 17, 50, 101], 12)
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Every weight of `model`, flattened in module order.
fn weights(model: &Gpt) -> Vec<f32> {
    module_tensors(model)
        .into_iter()
        .flat_map(|t| t.values)
        .collect()
}

/// (logits, loss, gradient norm, weights after one AdamW step) on `device`.
fn one_step(device: &Device) -> (Vec<f32>, f64, f64, Vec<f32>) {
    let device = device.clone().autodiff();
    let model = Gpt::new(&config(), 7, &device).unwrap();
    let (inputs, targets) = batch_tensors(&batch(), &device);
    let logits = model.forward(inputs);
    let loss = scalar(cross_entropy(logits.clone(), targets).inner());
    let logits = to_vec(logits.inner());
    let mut optim = Optimizer::new(&TrainConfig::default());
    let (model, _, grad_norm) = optimizer_step(
        model,
        &mut optim,
        &[batch()],
        [1e-3, 1.0],
        Precision::Fp32,
        &device,
    );
    (logits, loss, scalar(grad_norm), weights(&model.valid()))
}

#[test]
fn wgpu_matches_the_cpu_on_logits_loss_and_one_adamw_step() {
    let Some(gpu) = wgpu_or_skip() else { return };
    let (cpu_logits, cpu_loss, cpu_norm, cpu_weights) = one_step(&Device::flex());
    let (gpu_logits, gpu_loss, gpu_norm, gpu_weights) = one_step(&gpu);
    // Same host-side initialisation: the starting weights are bit-identical.
    let initial = |device: &Device| weights(&Gpt::new(&config(), 7, device).unwrap());
    assert_eq!(initial(&Device::flex()), initial(&gpu));

    let logits = max_abs_diff(&cpu_logits, &gpu_logits);
    assert!(logits < 1e-4, "logits differ by {logits}");
    assert!(
        (cpu_loss - gpu_loss).abs() < 1e-5,
        "loss {cpu_loss} vs {gpu_loss}"
    );
    assert!(
        cpu_loss > 2.0,
        "an untrained model's loss is near ln 19: {cpu_loss}"
    );
    assert!(
        (cpu_norm - gpu_norm).abs() < 1e-4 * cpu_norm,
        "gradient norm {cpu_norm} vs {gpu_norm}"
    );
    // Adam's first step moves each weight by about lr = 1e-3 whatever its gradient's size (so
    // a tiny gradient's rounding shows): 5e-5 is a twentieth of a step. Measured: about 4e-6.
    let weights = max_abs_diff(&cpu_weights, &gpu_weights);
    eprintln!(
        "wgpu vs cpu: logits {logits:e}, loss {:e}, weights after a step {weights:e}",
        (cpu_loss - gpu_loss).abs()
    );
    assert!(weights < 5e-5, "weights after one step differ by {weights}");
    assert!(max_abs_diff(&cpu_weights, &initial(&Device::flex())) > 5e-4);
}
