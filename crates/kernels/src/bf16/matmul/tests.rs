//! The bf16 product against its scalar reference, to the bit, on every layout; and its timing.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::*;
use crate::tests::operands::{Layouts, dense};

#[test]
fn the_reference_by_hand() {
    // [1 2 3] · [[1], [10], [100]] = 1 + 20 + 300: exact in bf16 and f32. The pairs are
    // (1, 2)·(1, 10) then (3, 0)·(100, 0).
    assert_eq!(
        reference(&[1.0, 2.0, 3.0], &[1.0, 10.0, 100.0], [1, 3, 1]),
        [321.0]
    );
    // Operands round to bf16 first: 1 + 2^-9 becomes 1.
    assert_eq!(reference(&[1.0 + 2f32.powi(-9)], &[3.0], [1, 1, 1]), [3.0]);
}

#[test]
fn the_kernel_equals_the_reference_to_the_bit_on_odd_shapes() {
    let mut rng = ChaCha8Rng::seed_from_u64(36);
    for [m, k, n] in [
        [1, 1, 1],
        [3, 5, 7],
        [8, 16, 32],
        [9, 33, 17],
        [17, 64, 48],
        [20, 7, 70],
        [100, 70, 130],
    ] {
        let a: Vec<f32> = (0..m * k).map(|_| rng.random_range(-3.0..3.0)).collect();
        let b: Vec<f32> = (0..k * n).map(|_| rng.random_range(-3.0..3.0)).collect();
        let Some(fast) = crate::tests::on_dot_pairs(|| multiply(&a, &b, [m, k, n])) else {
            eprintln!("skipped: this CPU has no AVX512_BF16 (the reference alone is tested)");
            return;
        };
        let expected = reference(&a, &b, [m, k, n]);
        let same = fast
            .iter()
            .zip(&expected)
            .all(|(x, y)| x.to_bits() == y.to_bits());
        assert!(same, "{m}×{k}×{n}");
    }
}

#[test]
fn operands_read_in_place_at_any_strides_and_the_bias_equal_the_reference() {
    let mut rng = ChaCha8Rng::seed_from_u64(38);
    let mut random =
        |len: usize| -> Vec<f32> { (0..len).map(|_| rng.random_range(-3.0..3.0)).collect() };
    for [m, k, n] in [[1, 1, 1], [7, 9, 5], [40, 33, 70], [100, 64, 17]] {
        let layouts = Layouts::new(&mut random, [m, k, n]);
        let (lhs, rhs) = (layouts.lhs(), layouts.rhs());
        let bias = random(n);
        for (x, lhs) in lhs.iter().enumerate() {
            for (y, rhs) in rhs.iter().enumerate() {
                for bias in [None, Some(&bias[..])] {
                    if !crate::bf16::has_avx512_bf16() {
                        eprintln!("skipped: this CPU has no AVX512_BF16");
                        return;
                    }
                    let mut out = unwritten(m * n);
                    crate::tests::on_dot_pairs(|| product(&mut out, [m, k, n], *lhs, *rhs, bias));
                    // SAFETY: the product writes every element.
                    let out = unsafe { written(out) };
                    let (a, b) = (dense(*lhs, [m, k]), dense(*rhs, [k, n]));
                    let expected = reference_from(&a, &b, [m, k, n], bias);
                    let same = out
                        .iter()
                        .zip(&expected)
                        .all(|(x, y)| x.to_bits() == y.to_bits());
                    assert!(
                        same,
                        "{m}×{k}×{n}, layouts {x}/{y}, bias {}",
                        bias.is_some()
                    );
                }
            }
        }
    }
}

/// GFLOP/s of the products a bf16 training step of nanogpt-char (6L/384, batch 16 × 256)
/// makes, each in the layout the linear map hands over, beside the f32 product.
/// `cargo test --release --lib time_the_bf16_products -- --ignored --nocapture`
#[test]
#[ignore = "a timing, not a test"]
fn time_the_bf16_products() {
    if !crate::bf16::has_avx512_bf16() {
        eprintln!("skipped: this CPU has no AVX512_BF16");
        return;
    }
    let rows = 16 * 256;
    let mut rng = ChaCha8Rng::seed_from_u64(39);
    let mut random =
        |len: usize| -> Vec<f32> { (0..len).map(|_| rng.random_range(-1.0..1.0)).collect() };
    for (name, [d_in, d_out]) in [
        ("qkv", [384, 1152]),
        ("fc", [384, 1536]),
        ("proj", [1536, 384]),
    ] {
        let (x, w, dy) = (
            random(rows * d_in),
            random(d_in * d_out),
            random(rows * d_out),
        );
        let cases = [
            (
                "x·W",
                [rows, d_in, d_out],
                Matrix::dense(&x, d_in),
                Matrix::dense(&w, d_out),
            ),
            (
                "dy·Wᵀ",
                [rows, d_out, d_in],
                Matrix::dense(&dy, d_out),
                Matrix::dense(&w, d_out).transpose(),
            ),
            (
                "xᵀ·dy",
                [d_in, rows, d_out],
                Matrix::dense(&x, d_in).transpose(),
                Matrix::dense(&dy, d_out),
            ),
        ];
        for (what, [m, k, n], lhs, rhs) in cases {
            let mut out = unwritten(m * n);
            let mut best = f64::INFINITY;
            for _ in 0..10 {
                let started = std::time::Instant::now();
                product(&mut out, [m, k, n], lhs, rhs, None);
                best = best.min(started.elapsed().as_secs_f64());
            }
            let mut dot_pairs_best = f64::INFINITY;
            for _ in 0..10 {
                let started = std::time::Instant::now();
                crate::tests::on_dot_pairs(|| product(&mut out, [m, k, n], lhs, rhs, None));
                dot_pairs_best = dot_pairs_best.min(started.elapsed().as_secs_f64());
            }
            let mut f32_best = f64::INFINITY;
            for _ in 0..10 {
                let started = std::time::Instant::now();
                crate::matrix::multiply(&mut out, n, [m, n, k], lhs, rhs, 1.0, false);
                f32_best = f32_best.min(started.elapsed().as_secs_f64());
            }
            let mut packing = f64::INFINITY;
            for _ in 0..10 {
                let started = std::time::Instant::now();
                std::hint::black_box(PackedA::new(lhs, m, k, true));
                std::hint::black_box(PackedB::new(rhs, [k, n], true));
                packing = packing.min(started.elapsed().as_secs_f64());
            }
            let flops = 2.0 * (m * n * k) as f64;
            eprintln!(
                "{name} {what} {m}×{k}×{n}: bf16 at level {} {:.0} GFLOP/s, VDPBF16PS {:.0} \
                 ({:.0}% packing), f32 one thread {:.0}",
                crate::math::level().name(),
                flops / best / 1e9,
                flops / dot_pairs_best / 1e9,
                100.0 * packing / dot_pairs_best,
                flops / f32_best / 1e9
            );
        }
    }
}

/// The reference with element (i, j) starting at `start[i·n + j]` instead of +0: what
/// [`add_packed`] computes.
fn reference_adding_to(start: &[f32], a: &[f32], b: &[f32], [m, k, n]: [usize; 3]) -> Vec<f32> {
    let half = |w: u32| [w as u16, (w >> 16) as u16];
    (0..m * n)
        .map(|e| {
            let (i, j) = (e / n, e % n);
            let a_pairs = pairs(|x| a[i * k + x], k);
            let b_pairs = pairs(|x| b[x * n + j], k);
            a_pairs
                .iter()
                .zip(&b_pairs)
                .fold(start[e], |acc, (&x, &y)| dot_pair(acc, half(x), half(y)))
        })
        .collect()
}

#[test]
fn a_packed_b_reused_over_its_rows_and_columns_equals_the_reference_to_the_bit() {
    if !crate::bf16::has_avx512_bf16() {
        eprintln!("skipped: this CPU has no AVX512_BF16");
        return;
    }
    let mut rng = ChaCha8Rng::seed_from_u64(40);
    let mut random =
        |len: usize| -> Vec<f32> { (0..len).map(|_| rng.random_range(-3.0..3.0)).collect() };
    // B as attention has it: keys × head size, rows adjacent (V, K, Q, dO) or read
    // transposed (Kᵀ, Vᵀ).
    let (kb, nb) = (150, 70);
    let (b_rows, b_cols) = (random(kb * nb), random(kb * nb));
    for rhs in [
        Matrix::dense(&b_rows, nb),
        Matrix::dense(&b_cols, kb).transpose(),
    ] {
        let packed = PackedB::new(rhs, [kb, nb], false);
        let b = dense(rhs, [kb, nb]);
        // (B's first pair, A's k, B's columns taken, A's rows)
        for (first_pair, k, cols, m) in [
            (0, 150, 0..70, 9),
            (0, 64, 0..33, 64),
            (32, 85, 0..70, 7),
            (10, 1, 0..16, 3),
            (5, 40, 16..70, 8),
            (0, 150, 48..70, 13),
            (73, 3, 64..65, 2),
        ] {
            let a_values = random(m * k);
            let n = cols.len();
            for lhs in [
                Matrix::dense(&a_values, k),
                Matrix::dense(&a_values, m).transpose(),
            ] {
                let rows: Vec<f32> = (0..k)
                    .flat_map(|r| {
                        let row = 2 * first_pair + r;
                        b[row * nb + cols.start..row * nb + cols.end].to_vec()
                    })
                    .collect();
                let case = format!("pairs {first_pair}.., k {k}, columns {cols:?}");
                let part = packed.part(first_pair, cols.clone());
                let stride = n + 5;
                // Scaled, into unwritten memory: NaN past the columns stays.
                let mut out = vec![MaybeUninit::new(f32::NAN); m * stride];
                let scale = 0.125f32;
                multiply_packed(&mut out, stride, (lhs, [m, k]), part, scale);
                let expected = reference(&dense(lhs, [m, k]), &rows, [m, k, n]);
                // Added to what C holds.
                let start = random(m * n);
                let mut sums = vec![f32::NAN; m * stride];
                for i in 0..m {
                    sums[i * stride..i * stride + n].copy_from_slice(&start[i * n..(i + 1) * n]);
                }
                add_packed(&mut sums, stride, (lhs, [m, k]), part);
                let added = reference_adding_to(&start, &dense(lhs, [m, k]), &rows, [m, k, n]);
                for i in 0..m {
                    for j in 0..stride {
                        // SAFETY: every element started as NaN.
                        let got = unsafe { out[i * stride + j].assume_init() };
                        let sum = sums[i * stride + j];
                        if j < n {
                            let want = expected[i * n + j] * scale;
                            assert_eq!(got.to_bits(), want.to_bits(), "{case}: {i},{j}");
                            let want = added[i * n + j];
                            assert_eq!(sum.to_bits(), want.to_bits(), "{case}: += at {i},{j}");
                        } else {
                            assert!(
                                got.is_nan() && sum.is_nan(),
                                "{case}: past the columns at {i},{j}"
                            );
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn the_reference_starts_each_column_at_its_bias() {
    // [1 2] · [[1 0], [0 1]] + [0.5, -4] = [1.5, -2].
    let c = reference_from(
        &[1.0, 2.0],
        &[1.0, 0.0, 0.0, 1.0],
        [1, 2, 2],
        Some(&[0.5, -4.0]),
    );
    assert_eq!(c, [1.5, -2.0]);
}

#[test]
fn the_product_is_close_to_the_f32_one() {
    // bf16 keeps 8 significant bits: each term is off by about 2^-8 of its size.
    let mut rng = ChaCha8Rng::seed_from_u64(37);
    let [m, k, n] = [6, 40, 5];
    let a: Vec<f32> = (0..m * k).map(|_| rng.random_range(-1.0..1.0)).collect();
    let b: Vec<f32> = (0..k * n).map(|_| rng.random_range(-1.0..1.0)).collect();
    let c = reference(&a, &b, [m, k, n]);
    for i in 0..m {
        for j in 0..n {
            let exact: f32 = (0..k).map(|x| a[i * k + x] * b[x * n + j]).sum();
            let bound: f32 = (0..k).map(|x| (a[i * k + x] * b[x * n + j]).abs()).sum();
            assert!(
                (c[i * n + j] - exact).abs() <= bound * 2f32.powi(-7),
                "{i},{j}"
            );
        }
    }
}
