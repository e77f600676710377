//! The fused RMSNorm against its plain twin (burn's ops): values and gradients, with a gain
//! and without, on widths that are and are not multiples of the vector width.

use burn::tensor::{Device, Tensor};

use super::{max_abs_diff, random, training_device};
use crate::rms_norm::{plain_rms_norm, rms_norm};

#[test]
fn fused_rms_norm_matches_the_plain_one_and_its_gradients() {
    for (width, with_gain) in [(32, false), (32, true), (37, true), (5, false)] {
        let device = training_device();
        let run = |fused: bool| {
            let x = Tensor::<3>::from_data(random([3, 70, width], 31), &device).require_grad();
            let gain = Tensor::<3>::from_data(random([1, 1, width], 32), &device)
                .reshape([width])
                .require_grad();
            let gamma = with_gain.then(|| gain.clone());
            let y = if fused {
                rms_norm(&x, gamma.as_ref(), 1e-5).expect("flex with autodiff is fused")
            } else {
                plain_rms_norm(x.clone(), gamma, 1e-5)
            };
            let upstream = Tensor::<3>::from_data(random([3, 70, width], 33), &device);
            let grads = (y.clone() * upstream).sum().backward();
            let d_gain = with_gain.then(|| gain.grad(&grads).unwrap());
            (y, x.grad(&grads).unwrap(), d_gain)
        };
        let (fused, plain) = (run(true), run(false));
        let values = max_abs_diff(fused.0, plain.0);
        let dx = max_abs_diff(fused.1, plain.1);
        assert!(values < 1e-5, "width {width}: values differ by {values}");
        assert!(dx < 1e-4, "width {width}: dx differs by {dx}");
        if let (Some(a), Some(b)) = (fused.2, plain.2) {
            let d_gain = max_abs_diff(a, b);
            assert!(d_gain < 1e-3, "width {width}: dγ differs by {d_gain}");
        }
    }
}

#[test]
fn fused_rms_norm_without_autodiff_gives_the_plain_values() {
    let device = Device::flex();
    let x = Tensor::<3>::from_data(random([2, 9, 24], 34), &device);
    let fused = rms_norm(&x, None, 1e-6).expect("plain flex is fused too");
    let diff = max_abs_diff(fused, plain_rms_norm(x, None, 1e-6));
    assert!(diff < 1e-6, "{diff}");
    #[allow(deprecated)] // ndarray: a backend the user asked for
    let other = Tensor::<3>::from_data(random([1, 4, 8], 1), &Device::ndarray());
    assert!(rms_norm(&other, None, 1e-5).is_none());
}
