//! The AMX product against the exact sum of its bf16 products on every layout and on odd
//! shapes (tiles cut by C's edges, several chunks and panels), and the same bits whatever the
//! number of threads.

use std::io::Write;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::*;
use crate::bf16::{round, widen};
use crate::fresh::{unwritten, written};
use crate::tests::operands::{Layouts, dense};

/// Whether this process has no AMX tiles, said loudly (past the harness's capture).
fn skipped() -> bool {
    if permitted() {
        return false;
    }
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED: this CPU or OS grants no AMX-BF16 tiles; only a CPU with them tests them"
    );
    true
}

/// The product through the tiles, on the current pool.
fn tiles(lhs: Matrix, rhs: Matrix, [m, k, n]: [usize; 3], bias: Option<&[f32]>) -> Vec<f32> {
    let mut out = unwritten(m * n);
    product(&mut out, [m, k, n], lhs, rhs, bias);
    // SAFETY: the product writes every element (in tests a forgotten one stays NaN).
    unsafe { written(out) }
}

/// Checks C against the exact sum of the bf16-rounded products from the bias: within
/// `k·2⁻²⁴·Σ|terms|`, the bound that recursive f32 summation of k + 1 terms meets in any
/// order. (`TDPBF16PS` sums in an order Intel does not document; measured, its error per
/// tile of 32 products is under 2⁻²³·Σ|terms|.)
fn assert_close(
    c: &[f32],
    a: &[f32],
    b: &[f32],
    [m, k, n]: [usize; 3],
    bias: Option<&[f32]>,
    what: &str,
) {
    let bf = |x: f32| f64::from(widen(round(x)));
    for i in 0..m {
        for j in 0..n {
            let start = bias.map_or(0.0, |bias| f64::from(bias[j]));
            let terms = (0..k).map(|p| bf(a[i * k + p]) * bf(b[p * n + j]));
            let (sum, size) = terms.fold((start, start.abs()), |(s, z), t| (s + t, z + t.abs()));
            let bound = (k as f64 + 1.0) * 2f64.powi(-24) * size;
            let got = f64::from(c[i * n + j]);
            assert!(
                (got - sum).abs() <= bound,
                "{what}: C[{i}, {j}] = {got}, exact {sum}, bound {bound:e}"
            );
        }
    }
}

#[test]
fn the_tiles_sum_the_bf16_products_on_every_layout_and_odd_shape() {
    if skipped() {
        return;
    }
    let mut rng = ChaCha8Rng::seed_from_u64(40);
    let mut random =
        |len: usize| -> Vec<f32> { (0..len).map(|_| rng.random_range(-3.0..3.0)).collect() };
    for [m, k, n] in [
        [1, 1, 1],
        [3, 5, 7],
        [16, 32, 16],
        [17, 33, 17],
        [33, 64, 48],
        [100, 70, 130],
        [300, 385, 65],
    ] {
        let layouts = Layouts::new(&mut random, [m, k, n]);
        let (lhs, rhs) = (layouts.lhs(), layouts.rhs());
        let bias = random(n);
        for (x, lhs) in lhs.iter().enumerate() {
            for (y, rhs) in rhs.iter().enumerate() {
                for bias in [None, Some(&bias[..])] {
                    let c = tiles(*lhs, *rhs, [m, k, n], bias);
                    let (a, b) = (dense(*lhs, [m, k]), dense(*rhs, [k, n]));
                    let what = format!("{m}×{k}×{n}, layouts {x}/{y}, bias {}", bias.is_some());
                    assert_close(&c, &a, &b, [m, k, n], bias, &what);
                }
            }
        }
    }
}

#[test]
fn the_tiles_give_the_same_bits_on_one_thread_as_on_many() {
    if skipped() {
        return;
    }
    let [m, k, n] = [530, 200, 100];
    let mut rng = ChaCha8Rng::seed_from_u64(41);
    let a: Vec<f32> = (0..m * k).map(|_| rng.random_range(-1.0..1.0)).collect();
    let b: Vec<f32> = (0..k * n).map(|_| rng.random_range(-1.0..1.0)).collect();
    let on = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| tiles(Matrix::dense(&a, k), Matrix::dense(&b, n), [m, k, n], None))
    };
    let bits = |c: Vec<f32>| c.into_iter().map(f32::to_bits).collect::<Vec<_>>();
    let one = bits(on(1));
    assert_eq!(one, bits(on(3)));
    assert_eq!(one, bits(on(1)), "a second run");
}

#[test]
fn the_tiles_are_the_bf16_product_at_the_amx_level_only() {
    if skipped() {
        return;
    }
    // Products whose exact sums are not f32 values show which kernel ran: the level picks
    // the tiles, and holding it to avx512bf16 picks `VDPBF16PS`, the reference's bits.
    let [m, k, n] = [64, 384, 64];
    let mut rng = ChaCha8Rng::seed_from_u64(42);
    let a: Vec<f32> = (0..m * k).map(|_| rng.random_range(-1.0..1.0)).collect();
    let b: Vec<f32> = (0..k * n).map(|_| rng.random_range(-1.0..1.0)).collect();
    let reference = crate::bf16::matmul::reference(&a, &b, [m, k, n]);
    let same = |c: &[f32]| {
        c.iter()
            .zip(&reference)
            .all(|(x, y)| x.to_bits() == y.to_bits())
    };
    let amx = crate::math::with_level(crate::math::Level::Amx, || {
        crate::bf16::matmul::multiply(&a, &b, [m, k, n]).unwrap()
    });
    assert!(
        !same(&amx),
        "the tiles gave the reference's bits on every element"
    );
    assert_close(&amx, &a, &b, [m, k, n], None, "amx");
    let dot_pairs = crate::tests::on_dot_pairs(|| crate::bf16::matmul::multiply(&a, &b, [m, k, n]));
    assert!(same(&dot_pairs.unwrap()));
}
