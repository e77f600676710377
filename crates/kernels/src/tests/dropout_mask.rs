//! Fused dropout against the plain mask product, and the mask's statistics.

use burn::tensor::{Device, Tensor, TensorData};

use super::{max_abs_diff, random, training_device};
use crate::{dropout, math, values};

#[test]
fn fused_dropout_matches_the_plain_mask_product_and_its_gradient() {
    let device = training_device();
    let (shape, prob) = ([4, 300, 100], 0.25);
    let data = random(shape, 11);
    // Inputs away from zero, so a zero output means a dropped element.
    let data = TensorData::new(
        data.iter::<f32>()
            .map(|v| v.signum() * (0.5 + v.abs()))
            .collect(),
        shape,
    );
    let upstream = Tensor::<3>::from_data(random(shape, 12), &device);

    let x = Tensor::<3>::from_data(data.clone(), &device).require_grad();
    let y = dropout::dropout(&x, prob).expect("flex autodiff takes the fused path");
    let dx = x
        .grad(&(y.clone() * upstream.clone()).sum().backward())
        .unwrap();

    let kept = y.clone().not_equal_elem(0.0).float().inner();
    let n = shape.iter().product::<usize>() as f64;
    let kept_fraction = kept.clone().sum().into_scalar::<f32>() as f64 / n;
    let sigma = (prob * (1.0 - prob) / n).sqrt();
    assert!(
        (kept_fraction - (1.0 - prob)).abs() < 5.0 * sigma,
        "kept {kept_fraction}, expected {}",
        1.0 - prob
    );

    // The plain path with the same mask: x·mask/(1 − p).
    let mask = Tensor::<3>::from_inner(kept);
    let x = Tensor::<3>::from_data(data, &device).require_grad();
    let plain_y = x.clone() * mask * (1.0 / (1.0 - prob));
    let plain_dx = x
        .grad(&(plain_y.clone() * upstream).sum().backward())
        .unwrap();
    assert!(max_abs_diff(y, plain_y) < 1e-6);
    assert!(max_abs_diff(dx, plain_dx) < 1e-6);
}

#[test]
fn dropout_mask_depends_only_on_key_and_index() {
    // Longer than a few parallel chunks, and not a multiple of one.
    let n = (3 << 14) + 5;
    let x = Tensor::<1>::from_data(TensorData::new(vec![1.0f32; n], [n]), &Device::flex());
    let x = x.try_into_primitive::<burn::backend::Flex>().unwrap();
    let outputs = |key| {
        let y = dropout::Mask::new(key, 0.5).apply(&x);
        values(&y).to_vec()
    };
    let first = outputs(7);
    assert_eq!(first, outputs(7), "same key, same mask");
    for (i, &y) in first.iter().enumerate() {
        let kept = math::dropout_hash(7, i as u32) < 1 << 31;
        assert_eq!(y, if kept { 2.0 } else { 0.0 }, "element {i}");
    }
    let other = outputs(8);
    let differing = first.iter().zip(&other).filter(|(a, b)| a != b).count();
    // Independent masks at p = ½ disagree on half the elements.
    assert!(
        (differing as f64 / n as f64 - 0.5).abs() < 0.02,
        "{differing} of {n} differ"
    );
}

#[test]
fn dropout_hash_keeps_the_right_fraction_with_no_neighbour_correlation() {
    let n = 1u32 << 20;
    for (key, prob) in [(1u64, 0.1), (0xdead_beef_0000_0001, 0.5), (u64::MAX, 0.9)] {
        let mask = dropout::Mask::new(key, prob);
        let keep = 1.0 - prob;
        let kept: Vec<bool> = (0..n).map(|i| mask.keeps(i)).collect();
        let fraction = kept.iter().filter(|&&k| k).count() as f64 / n as f64;
        let both = kept.windows(2).filter(|w| w[0] && w[1]).count() as f64 / (n - 1) as f64;
        let tolerance = 5.0 * (keep * (1.0 - keep) / n as f64).sqrt();
        assert!(
            (fraction - keep).abs() < tolerance,
            "key {key}: kept {fraction}"
        );
        assert!(
            (both - keep * keep).abs() < tolerance,
            "key {key}: neighbours {both}"
        );
    }
}
