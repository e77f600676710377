//! `--device cuda[:N]`. tinygpt has no CUDA backend: burn 0.22's (`burn/cuda`) depends on
//! `cubecl-llvm`, whose build script downloads a prebuilt LLVM from GitHub at build time, which
//! offline machines (this project's CI and GPU test machines among them) cannot do. NVIDIA GPUs
//! run through wgpu (Vulkan) instead; the name gets an error saying so rather than "unknown
//! device". docs/gpu.md has the details.

use anyhow::{Result, bail};
use burn::tensor::Device;

/// `cuda` or `cuda:N` as the GPU index it selects.
pub fn cuda_index(name: &str) -> Option<usize> {
    match name.strip_prefix("cuda")? {
        "" => Some(0),
        rest => rest.strip_prefix(':')?.parse().ok(),
    }
}

pub(super) fn cuda_device(name: &str, _index: usize) -> Result<Device> {
    bail!(
        "--device {name}: tinygpt has no CUDA backend (burn's needs an LLVM download at build time; see docs/gpu.md); NVIDIA GPUs run through Vulkan: --device wgpu:discrete (`tinygpt devices` lists them)"
    )
}
