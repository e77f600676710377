//! Choosing the compute device (and so the backend) by name at run time: the CPU backends
//! `flex` and `ndarray`, a wgpu adapter (Vulkan, Metal or DX12), or `auto`.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use anyhow::{Result, anyhow, bail};
use burn::tensor::wgpu::{WgpuInitError, wgpu};
use burn::tensor::{Device, DeviceKind, Tensor};
use tinygpt_kernels::Precision;

mod cuda;
pub use cuda::cuda_index;

/// A compute backend compiled into tinygpt.
pub struct Backend {
    /// Its `--device` name.
    pub name: &'static str,
    /// What it runs on, for `tinygpt devices`.
    pub about: &'static str,
    /// Its device, for a CPU backend; a GPU backend's devices are its adapters.
    pub cpu_device: Option<fn() -> Device>,
}

/// The one table of backends: `--device`, `train.device`, `auto` and `tinygpt devices` all
/// read it. A new backend is a row here (and its burn feature in the root Cargo.toml).
pub const BACKENDS: &[Backend] = &[
    Backend {
        name: "flex",
        about: "CPU (burn-flex: SIMD, multithreaded)",
        cpu_device: Some(Device::flex),
    },
    Backend {
        name: "ndarray",
        about: "CPU (burn-ndarray)",
        cpu_device: Some(ndarray_device),
    },
    Backend {
        name: "wgpu",
        about: "GPU through Vulkan, Metal, DX12 or OpenGL (burn-wgpu, with fusion and autotune)",
        cpu_device: None,
    },
];

/// The adapter kinds `wgpu:KIND` selects, as `--device` spells them.
const WGPU_KINDS: &str = "wgpu:discrete[:N], wgpu:integrated[:N], wgpu:virtual[:N], wgpu:cpu";

#[allow(deprecated)] // burn-ndarray is deprecated upstream but users asked for it
fn ndarray_device() -> Device {
    Device::ndarray()
}

/// The device names `--device` and `train.device` accept, in words.
pub fn device_names() -> String {
    let backends: Vec<&str> = BACKENDS.iter().map(|b| b.name).collect();
    format!("auto, {}, {WGPU_KINDS}", backends.join(", "))
}

/// The device named `name`. A wgpu device is initialised here, so a missing adapter or a
/// driver failure is an error now rather than a panic at the first tensor.
pub fn parse_device(name: &str) -> Result<Device> {
    if name == "auto" {
        return parse_device(auto_device(&adapters()));
    }
    if let Some(open) = BACKENDS
        .iter()
        .find(|b| b.name == name)
        .and_then(|b| b.cpu_device)
    {
        return Ok(open());
    }
    if let Some(index) = cuda_index(name) {
        return cuda::cuda_device(name, index);
    }
    match wgpu_kind(name) {
        Some(kind) => wgpu_device(name, kind),
        None => bail!("unknown device {name:?}: use one of {}", device_names()),
    }
}

/// The device `name` selects, and how to name it to the user: for `auto`, what it picked.
pub fn open_device(name: &str) -> Result<(Device, String)> {
    if name == "auto" {
        let chosen = auto_device(&adapters());
        return Ok((parse_device(chosen)?, format!("auto ({chosen})")));
    }
    Ok((parse_device(name)?, name.to_string()))
}

/// Refuses `train.precision = "bf16"` where its products cannot run: off the flex device's
/// fused kernels, or on a CPU without AVX512_BF16.
pub fn check_precision(precision: Precision, device: &Device, label: &str) -> Result<()> {
    if precision != Precision::Bf16 {
        return Ok(());
    }
    if !tinygpt_kernels::enabled() {
        bail!(
            "train.precision = \"bf16\" runs in tinygpt's fused kernels, which TINYGPT_PLAIN_OPS turns off: unset it, or set train.precision = \"fp32\""
        );
    }
    let probe = Tensor::<1>::zeros([1], &device.clone().autodiff());
    if !tinygpt_kernels::applies(&probe) {
        bail!(
            "train.precision = \"bf16\" runs on the flex device, and this run's device is {label}: set train.device = \"flex\" or train.precision = \"fp32\""
        );
    }
    tinygpt_kernels::bf16_products().map_err(|why| anyhow!("train.precision = \"bf16\": {why}"))
}

/// The device `auto` stands for, given the adapters wgpu finds.
pub fn auto_device(adapters: &[wgpu::AdapterInfo]) -> &'static str {
    auto_gpu(adapters).map_or("flex", device_name)
}

/// The `--device` spelling that selects an adapter of this type.
pub fn device_name(kind: wgpu::DeviceType) -> &'static str {
    match kind {
        wgpu::DeviceType::DiscreteGpu => "wgpu:discrete",
        wgpu::DeviceType::IntegratedGpu => "wgpu:integrated",
        wgpu::DeviceType::VirtualGpu => "wgpu:virtual",
        wgpu::DeviceType::Cpu => "wgpu:cpu",
        wgpu::DeviceType::Other => "wgpu",
    }
}

/// `wgpu`, `wgpu:discrete`, `wgpu:discrete:1`, … as the adapter kind they select.
fn wgpu_kind(name: &str) -> Option<DeviceKind> {
    let rest = name.strip_prefix("wgpu")?;
    if rest.is_empty() {
        return Some(DeviceKind::DefaultDevice);
    }
    let mut parts = rest.strip_prefix(':')?.splitn(2, ':');
    let kind = parts.next()?;
    let index = match parts.next() {
        Some(index) => index.parse().ok()?,
        None => 0,
    };
    match kind {
        "discrete" => Some(DeviceKind::DiscreteGpu(index)),
        "integrated" => Some(DeviceKind::IntegratedGpu(index)),
        "virtual" => Some(DeviceKind::VirtualGpu(index)),
        "cpu" if index == 0 => Some(DeviceKind::Cpu),
        _ => None,
    }
}

/// Initialises a wgpu device once per process (burn's runtime can be initialised only once
/// per adapter selection) and hands out clones afterwards.
fn wgpu_device(name: &str, kind: DeviceKind) -> Result<Device> {
    static DEVICES: OnceLock<Mutex<HashMap<DeviceKind, Device>>> = OnceLock::new();
    let mut devices = DEVICES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(device) = devices.get(&kind) {
        return Ok(device.clone());
    }
    let device = Device::wgpu_options()
        .device_kind(kind.clone())
        .init()
        .map_err(|e| {
            let reason = match e {
                WgpuInitError::AdapterUnavailable { .. } => "no adapter of that kind".to_string(),
                other => other.to_string(),
            };
            let found = match adapters().as_slice() {
                [] => "no wgpu adapter was found".to_string(),
                found => format!(
                    "adapters found: {}",
                    found
                        .iter()
                        .map(|a| format!("{} ({:?})", a.name, a.device_type))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            };
            anyhow::anyhow!(
                "cannot start device {name:?}: {reason}; {found}. `tinygpt devices` lists what is available; use --device flex to run on the CPU"
            )
        })?;
    devices.insert(kind, device.clone());
    Ok(device)
}

/// The kind of hardware GPU `auto` uses, if wgpu sees one: discrete before integrated.
/// Software adapters such as lavapipe are slower than `flex`, so `auto` never picks them.
fn auto_gpu(adapters: &[wgpu::AdapterInfo]) -> Option<wgpu::DeviceType> {
    [
        wgpu::DeviceType::DiscreteGpu,
        wgpu::DeviceType::IntegratedGpu,
    ]
    .into_iter()
    .find(|kind| adapters.iter().any(|a| a.device_type == *kind))
}

/// On a machine without a desktop session, Vulkan's window-system probing (through
/// libwayland) prints "error: XDG_RUNTIME_DIR is invalid or not set" to stderr although
/// nothing is wrong; pointing it at the temporary directory keeps tinygpt's output clean.
/// Call before any thread starts.
pub fn quiet_headless_vulkan() {
    if std::env::var_os("XDG_RUNTIME_DIR").is_none_or(|dir| dir.is_empty()) {
        // SAFETY: called at the start of `main`, before any other thread exists.
        unsafe { std::env::set_var("XDG_RUNTIME_DIR", std::env::temp_dir()) };
    }
}

/// The adapters wgpu finds on this machine, on every graphics API compiled in (the same GPU
/// can appear once per API).
pub fn adapters() -> Vec<wgpu::AdapterInfo> {
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle());
    futures_lite::future::block_on(instance.enumerate_adapters(wgpu::Backends::all()))
        .iter()
        .map(|adapter| adapter.get_info())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wgpu_names_select_adapter_kinds() {
        assert_eq!(wgpu_kind("wgpu"), Some(DeviceKind::DefaultDevice));
        assert_eq!(wgpu_kind("wgpu:cpu"), Some(DeviceKind::Cpu));
        assert_eq!(wgpu_kind("wgpu:discrete"), Some(DeviceKind::DiscreteGpu(0)));
        assert_eq!(
            wgpu_kind("wgpu:integrated:2"),
            Some(DeviceKind::IntegratedGpu(2))
        );
        for bad in [
            "wgpux",
            "wgpu:",
            "wgpu:gpu",
            "wgpu:discrete:x",
            "wgpu:cpu:1",
            "cuda",
        ] {
            assert_eq!(wgpu_kind(bad), None, "{bad}");
        }
        let err = parse_device("cudax").unwrap_err().to_string();
        assert!(err.contains("unknown device \"cudax\"") && err.contains("wgpu:cpu"));
    }

    #[test]
    fn cuda_names_select_an_index() {
        assert_eq!(cuda_index("cuda"), Some(0));
        assert_eq!(cuda_index("cuda:3"), Some(3));
        for bad in ["cudax", "cuda:", "cuda:x", "wgpu"] {
            assert_eq!(cuda_index(bad), None, "{bad}");
        }
    }

    #[test]
    fn cuda_says_how_nvidia_gpus_run() {
        let err = parse_device("cuda:1").unwrap_err().to_string();
        assert!(
            err.contains("no CUDA backend") && err.contains("wgpu:discrete"),
            "{err}"
        );
    }
}
