//! RoPE and RMSNorm by hand: the rotation is the identity at position 0, keeps lengths,
//! turns each pair by its own frequency and makes scores depend on distance alone; RMSNorm's
//! values for a worked example.

mod common;

use burn::tensor::{Device, Tensor, TensorData};
use common::{max_abs_diff, random, values};
use tinygpt_kernels::{RotaryTables, rms_norm, rotate};

#[test]
fn rope_at_position_zero_is_the_identity_and_keeps_lengths_elsewhere() {
    let device = Device::flex();
    let x = random([1, 1, 3, 8], 1, &device);
    let at_zero = RotaryTables::new(0, 1, 8, 10_000.0, &device);
    assert_eq!(values(rotate(x.clone(), &at_zero)), values(x.clone()));
    // Further out every pair turns, but keeps its length.
    let later = RotaryTables::new(7, 1, 8, 10_000.0, &device);
    let turned = values(rotate(x.clone(), &later));
    let original = values(x);
    assert!(max_abs_diff(&turned, &original) > 1e-2);
    for head in 0..3 {
        for i in 0..4 {
            let (a, b) = (original[head * 8 + i], original[head * 8 + i + 4]);
            let (c, d) = (turned[head * 8 + i], turned[head * 8 + i + 4]);
            assert!(((a * a + b * b) - (c * c + d * d)).abs() < 1e-5);
        }
    }
}

#[test]
fn rope_by_hand_turns_pair_zero_by_the_position_and_pair_one_slower() {
    // d = 4, base 100: pair 0 turns by m, pair 1 by m/10. x = (1, 0 | 0, 0) at m = 1 becomes
    // (cos 1, cos 0.1·0 ... ): first half (x₁·cos − x₂·sin), second half (x₂·cos + x₁·sin).
    let device = Device::flex();
    let x = Tensor::<4>::from_data(
        TensorData::new(vec![1.0f32, 2.0, 0.0, 0.0], [1, 1, 1, 4]),
        &device,
    );
    let tables = RotaryTables::new(1, 1, 4, 100.0, &device);
    let y = values(rotate(x, &tables));
    let expected = [
        1f32.cos(),
        2.0 * 0.1f32.cos(),
        1f32.sin(),
        2.0 * 0.1f32.sin(),
    ];
    assert!(max_abs_diff(&y, &expected) < 1e-6, "{y:?} vs {expected:?}");
}

#[test]
fn rope_scores_depend_only_on_the_distance_between_query_and_key() {
    // The same queries and keys placed at positions 0..6 and at 9..15 give the same scores.
    let device = Device::flex();
    let (t, d) = (6, 8);
    let q = random([1, t, 1, d], 2, &device);
    let k = random([1, t, 1, d], 3, &device);
    let scores = |offset: usize| {
        let tables = RotaryTables::new(offset, t, d, 10_000.0, &device);
        let q = rotate(q.clone(), &tables).reshape([t, d]);
        let k = rotate(k.clone(), &tables).reshape([t, d]);
        values(q.matmul(k.transpose()))
    };
    let (near, far) = (scores(0), scores(9));
    assert!(max_abs_diff(&near, &far) < 1e-4, "{near:?} vs {far:?}");
    // and they are not the unrotated scores (the rotation does something)
    let plain = values(q.reshape([t, d]).matmul(k.reshape([t, d]).transpose()));
    assert!(max_abs_diff(&near, &plain) > 1e-2);
}

#[test]
fn rms_norm_by_hand() {
    // x = (1, 2, 3, 4): mean square 7.5, so x/√7.5, then the gain (1, 2, 1, 2).
    let device = Device::flex();
    let x = Tensor::<2>::from_data(
        TensorData::new(vec![1.0f32, 2.0, 3.0, 4.0], [1, 4]),
        &device,
    );
    let gain = Tensor::<1>::from_data(TensorData::new(vec![1.0f32, 2.0, 1.0, 2.0], [4]), &device);
    let r = 7.5f32.sqrt();
    let plain = values(rms_norm(x.clone(), None, 0.0));
    assert!(max_abs_diff(&plain, &[1.0 / r, 2.0 / r, 3.0 / r, 4.0 / r]) < 1e-6);
    let gained = values(rms_norm(x.clone(), Some(gain), 0.0));
    assert!(max_abs_diff(&gained, &[1.0 / r, 4.0 / r, 3.0 / r, 8.0 / r]) < 1e-6);
    // ε enters under the root: (1, 2, 3, 4) with ε = 2.5 divides by √10.
    let eps = values(rms_norm(x, None, 2.5));
    let r = 10f32.sqrt();
    assert!(max_abs_diff(&eps, &[1.0 / r, 2.0 / r, 3.0 / r, 4.0 / r]) < 1e-6);
}
