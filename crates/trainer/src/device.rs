//! Choosing the compute device (and so the backend) by name at run time.

use anyhow::{Result, bail};
use burn::tensor::Device;

/// The device names `--device` and `train.device` accept.
pub const DEVICE_NAMES: &[&str] = &["flex", "ndarray"];

pub fn parse_device(name: &str) -> Result<Device> {
    match name {
        "flex" => Ok(Device::flex()),
        #[allow(deprecated)] // burn-ndarray is deprecated upstream but users asked for it
        "ndarray" => Ok(Device::ndarray()),
        other => bail!(
            "unknown device {other:?}: use one of {}",
            DEVICE_NAMES.join(", ")
        ),
    }
}
