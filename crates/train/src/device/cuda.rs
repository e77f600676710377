//! `--device cuda[:N]`: burn's CUDA backend, compiled in with the `cuda` cargo feature. It
//! builds without a CUDA toolkit (the bindings load the driver's libraries at run time), so a
//! machine without the driver or NVRTC fails at the first tensor: that is tried here, once,
//! so the user gets an error line instead of a panic.

use anyhow::{Result, bail};
use burn::tensor::Device;

/// `cuda` or `cuda:N` as the GPU index it selects.
pub fn cuda_index(name: &str) -> Option<usize> {
    match name.strip_prefix("cuda")? {
        "" => Some(0),
        rest => rest.strip_prefix(':')?.parse().ok(),
    }
}

#[cfg(feature = "cuda")]
pub(super) fn cuda_device(name: &str, index: usize) -> Result<Device> {
    use burn::tensor::Tensor;

    let device = Device::cuda(index);
    let probe = device.clone();
    match quietly(move || Tensor::<1>::zeros([1], &probe).into_data()) {
        Ok(_) => Ok(device),
        Err(reason) => bail!(
            "cannot start device {name:?}: {reason}. CUDA needs the NVIDIA driver and NVRTC (libnvrtc) at run time; `tinygpt devices` lists the wgpu adapters, or use --device flex"
        ),
    }
}

#[cfg(not(feature = "cuda"))]
pub(super) fn cuda_device(name: &str, _index: usize) -> Result<Device> {
    bail!(
        "--device {name}: this tinygpt was built without CUDA; build it with `cargo build --release --features cuda`, or use a wgpu device (`tinygpt devices`)"
    )
}

/// Runs `f`, turning a panic into its message without printing it.
#[cfg(feature = "cuda")]
fn quietly<T>(f: impl FnOnce() -> T + std::panic::UnwindSafe) -> Result<T, String> {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let result = std::panic::catch_unwind(f);
    std::panic::set_hook(hook);
    result.map_err(|payload| {
        payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "CUDA failed to start".into())
    })
}
