use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::*;

#[test]
fn rounding_by_hand() {
    // 1 + 2^-8 lies halfway between bf16 1.0 and 1 + 2^-7: ties go to the even one (1.0).
    assert_eq!(round(1.0 + 2f32.powi(-8)), 0x3f80);
    // 1 + 3·2^-8 lies halfway between 1 + 2^-7 (odd) and 1 + 2^-6: up to the even one.
    assert_eq!(round(1.0 + 3.0 * 2f32.powi(-8)), 0x3f82);
    assert_eq!(round(1.0 + 2f32.powi(-8) + 2f32.powi(-20)), 0x3f81);
    assert_eq!(widen(round(-2.5)), -2.5);
    assert_eq!(round(f32::INFINITY), 0x7f80);
    assert!(widen(round(f32::NAN)).is_nan());
    // The largest f32 rounds up to infinity, as IEEE rounding does.
    assert_eq!(round(f32::MAX), 0x7f80);
}

#[test]
fn a_pair_dot_by_hand() {
    let (a, b) = ([round(1.5), round(-2.0)], [round(4.0), round(0.25)]);
    // 10 + (−2·0.25) + 1.5·4 = 15.5
    assert_eq!(dot_pair(10.0, a, b), 15.5);
    // The odd product is added first: 1 + 2^24·... shows the order.
    let big = [round(1.0), round(2f32.powi(24))];
    let one = [round(1.0), round(1.0)];
    // (1 + 2^24) rounds to 2^24, then + 1 rounds to 2^24 again: 2^24, not 2^24 + 2.
    assert_eq!(dot_pair(1.0, big, one), 2f32.powi(24));
    // A denormal input reads as zero.
    let tiny = [0x0001, 0x0000];
    assert_eq!(dot_pair(0.0, tiny, [round(2f32.powi(100)), 0]), 0.0);
}

/// Random f32 bit patterns: every exponent, denormals, infinities and NaNs among them.
fn random_bits(rng: &mut ChaCha8Rng, n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| match i % 7 {
            0 => f32::from_bits(rng.random::<u32>() & 0x807f_ffff), // denormal or zero
            1 => rng.random_range(-4.0..4.0),
            _ => f32::from_bits(rng.random()),
        })
        .collect()
}

/// Equal to the bit, NaNs equal when both are NaN.
fn same(a: f32, b: f32) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

#[test]
#[cfg(target_arch = "x86_64")]
fn the_instruction_rounds_as_the_reference_does() {
    if !has_avx512_bf16() {
        eprintln!("skipped: this CPU has no AVX512_BF16 (the reference alone is tested here)");
        return;
    }
    let mut rng = ChaCha8Rng::seed_from_u64(16);
    for _ in 0..2000 {
        let x: [f32; 32] = random_bits(&mut rng, 32).try_into().unwrap();
        // SAFETY: the CPU has AVX512_BF16.
        let theirs = unsafe { x86::round32(&x) };
        for (v, bits) in x.iter().zip(theirs) {
            assert!(
                same(widen(bits), widen(round(*v))),
                "{v:e} ({:#010x}): instruction {bits:#06x}, reference {:#06x}",
                v.to_bits(),
                round(*v)
            );
        }
    }
}

#[test]
fn the_vector_dot_equals_the_reference_to_the_bit_on_odd_sizes() {
    let mut rng = ChaCha8Rng::seed_from_u64(17);
    for n in [1, 15, 16, 17, 33, 64, 100] {
        let acc0 = random_bits(&mut rng, n);
        let a: Vec<u16> = random_bits(&mut rng, 2 * n)
            .into_iter()
            .map(round)
            .collect();
        let b: Vec<u16> = random_bits(&mut rng, 2 * n)
            .into_iter()
            .map(round)
            .collect();
        let mut acc = acc0.clone();
        if dot_pairs(&mut acc, &a, &b).is_none() {
            eprintln!("skipped: this CPU has no AVX512_BF16 (the reference alone is tested here)");
            return;
        }
        for j in 0..n {
            let expected = dot_pair(acc0[j], [a[2 * j], a[2 * j + 1]], [b[2 * j], b[2 * j + 1]]);
            assert!(
                same(acc[j], expected),
                "n {n}, lane {j}: {} vs {expected}",
                acc[j]
            );
        }
    }
}
