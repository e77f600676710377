//! `C = A·B` with A and B rounded to bf16 and every sum in f32: the product a bf16 run's linear
//! maps will use, on `VDPBF16PS`. Its order is fixed, so the vector kernel equals the scalar
//! reference to the bit: element `C[i, j]` starts at +0 and takes the pairs
//! `(A[i, 2p], A[i, 2p+1])·(B[2p, j], B[2p+1, j])` for p = 0, 1, … in turn, each as one lane of
//! the instruction ([`super::dot_pair`]); an odd k pairs its last element with a zero.
//!
//! The kernel: A's rows as bf16 pairs (one 32-bit word per pair), B packed in blocks of 16
//! columns (one 512-bit vector per pair of rows), and a tile of 8 rows × 32 columns held in
//! 16 registers while p runs; rows are shared out over rayon's threads.

use rayon::prelude::*;

use super::{dot_pair, round};

/// Rows of C per tile (and per task of a thread).
const ROWS: usize = 8;
/// Columns per vector.
const LANES: usize = 16;

/// `(x[2p], x[2p+1])` of one row as bf16 pairs, low half the even one; a zero pads an odd
/// length.
fn pairs(row: impl Fn(usize) -> f32, k: usize) -> Vec<u32> {
    (0..k.div_ceil(2))
        .map(|p| {
            let even = round(row(2 * p));
            let odd = if 2 * p + 1 < k {
                round(row(2 * p + 1))
            } else {
                0
            };
            u32::from(even) | u32::from(odd) << 16
        })
        .collect()
}

/// The scalar reference: `a` is m×k, `b` k×n, both row-major; returns C, m×n row-major.
pub fn reference(a: &[f32], b: &[f32], [m, k, n]: [usize; 3]) -> Vec<f32> {
    assert!(a.len() == m * k && b.len() == k * n);
    let mut c = vec![0.0f32; m * n];
    for i in 0..m {
        let a_pairs = pairs(|x| a[i * k + x], k);
        for j in 0..n {
            let b_pairs = pairs(|x| b[x * n + j], k);
            let half = |w: u32| [w as u16, (w >> 16) as u16];
            c[i * n + j] = a_pairs
                .iter()
                .zip(&b_pairs)
                .fold(0.0, |acc, (&x, &y)| dot_pair(acc, half(x), half(y)));
        }
    }
    c
}

/// B as vectors: block `jb` of 16 columns, then pair p, then lane: `LANES` words per pair.
/// Read row pair by row pair (B's rows are contiguous), in parallel over the pairs.
fn pack_columns(b: &[f32], [k, n]: [usize; 2]) -> Vec<u32> {
    let (blocks, kp) = (n.div_ceil(LANES), k.div_ceil(2));
    let mut by_pair = vec![0u32; kp * blocks * LANES];
    by_pair
        .par_chunks_mut(blocks * LANES)
        .enumerate()
        .for_each(|(p, words)| {
            let even = &b[2 * p * n..(2 * p + 1) * n];
            let odd = (2 * p + 1 < k).then(|| &b[(2 * p + 1) * n..(2 * p + 2) * n]);
            for j in 0..n {
                let high = odd.map_or(0, |row| round(row[j]));
                words[j] = u32::from(round(even[j])) | u32::from(high) << 16;
            }
        });
    // Regroup: block-major, so a tile's pairs are consecutive vectors.
    let mut packed = vec![0u32; blocks * kp * LANES];
    packed
        .par_chunks_mut(kp * LANES)
        .enumerate()
        .for_each(|(jb, block)| {
            for p in 0..kp {
                let from = p * blocks * LANES + jb * LANES;
                block[p * LANES..(p + 1) * LANES].copy_from_slice(&by_pair[from..from + LANES]);
            }
        });
    packed
}

/// The product on `VDPBF16PS`, equal to [`reference`] to the bit; `None` on a CPU without
/// AVX512_BF16.
pub fn multiply(a: &[f32], b: &[f32], [m, k, n]: [usize; 3]) -> Option<Vec<f32>> {
    assert!(a.len() == m * k && b.len() == k * n);
    if !super::has_avx512_bf16() {
        return None;
    }
    let kp = k.div_ceil(2);
    let a_pairs: Vec<u32> = (0..m).flat_map(|i| pairs(|x| a[i * k + x], k)).collect();
    let b_packed = pack_columns(b, [k, n]);
    let mut c = vec![0.0f32; m * n];
    if n == 0 {
        return Some(c);
    }
    c.par_chunks_mut(ROWS * n)
        .enumerate()
        .for_each(|(tile, rows)| {
            let first = tile * ROWS;
            let a_rows = &a_pairs[first * kp..(first + rows.len() / n) * kp];
            #[cfg(target_arch = "x86_64")]
            // SAFETY: the CPU has AVX512_BF16 (checked above); the slices hold the tile's rows.
            unsafe {
                x86::rows(rows, a_rows, &b_packed, [kp, n])
            };
        });
    Some(c)
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::LANES;

    /// C's rows `out` (each `n` long) from A's pairs of the same rows (`kp` each) and packed B.
    #[target_feature(enable = "avx512f,avx512bf16")]
    pub unsafe fn rows(out: &mut [f32], a: &[u32], b: &[u32], [kp, n]: [usize; 2]) {
        let rows = out.len() / n;
        let blocks = n.div_ceil(LANES);
        let mut jb = 0;
        while jb < blocks {
            let width = if jb + 1 < blocks { 2 } else { 1 };
            // SAFETY: the tile functions read `width` blocks from jb and `rows` rows of a.
            unsafe {
                match (rows, width) {
                    (8, 2) => tile::<8, 2>(out, a, b, [kp, n], jb),
                    (8, 1) => tile::<8, 1>(out, a, b, [kp, n], jb),
                    (r, 2) => (0..r).for_each(|i| {
                        tile::<1, 2>(&mut out[i * n..], &a[i * kp..], b, [kp, n], jb)
                    }),
                    (r, _) => (0..r).for_each(|i| {
                        tile::<1, 1>(&mut out[i * n..], &a[i * kp..], b, [kp, n], jb)
                    }),
                }
            }
            jb += width;
        }
    }

    /// R rows × W blocks of 16 columns from block `jb`, accumulated in registers over every
    /// pair p, then stored (the columns past `n` dropped).
    #[target_feature(enable = "avx512f,avx512bf16")]
    unsafe fn tile<const R: usize, const W: usize>(
        out: &mut [f32],
        a: &[u32],
        b: &[u32],
        [kp, n]: [usize; 2],
        jb: usize,
    ) {
        let mut acc = [[_mm512_setzero_ps(); W]; R];
        // SAFETY (the transmutes): __m512i and __m512bh are the same 512 bits.
        let mut columns: [__m512bh; W] =
            [unsafe { std::mem::transmute::<__m512i, __m512bh>(_mm512_setzero_si512()) }; W];
        for p in 0..kp {
            for (w, column) in columns.iter_mut().enumerate() {
                // SAFETY: block jb + w, pair p lies inside the packed B (jb + W ≤ blocks).
                *column = unsafe {
                    std::mem::transmute::<__m512i, __m512bh>(_mm512_loadu_si512(
                        b.as_ptr().add(((jb + w) * kp + p) * LANES).cast(),
                    ))
                };
            }
            for (r, row) in acc.iter_mut().enumerate() {
                let pair: __m512bh =
                    unsafe { std::mem::transmute(_mm512_set1_epi32(a[r * kp + p] as i32)) };
                for (sum, column) in row.iter_mut().zip(&columns) {
                    *sum = _mm512_dpbf16_ps(*sum, pair, *column);
                }
            }
        }
        for (r, row) in acc.iter().enumerate() {
            for (w, sum) in row.iter().enumerate() {
                let start = (jb + w) * LANES;
                let count = (n - start).min(LANES);
                let mask: __mmask16 = if count == LANES { !0 } else { (1 << count) - 1 };
                // SAFETY: columns start..start+count of row r exist in `out`.
                unsafe { _mm512_mask_storeu_ps(out.as_mut_ptr().add(r * n + start), mask, *sum) };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;

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
        ] {
            let a: Vec<f32> = (0..m * k).map(|_| rng.random_range(-3.0..3.0)).collect();
            let b: Vec<f32> = (0..k * n).map(|_| rng.random_range(-3.0..3.0)).collect();
            let Some(fast) = multiply(&a, &b, [m, k, n]) else {
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
}
