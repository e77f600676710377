//! `C = A·B` with A and B rounded to bf16 and every sum in f32: the product a bf16 run's linear
//! maps will use, on `VDPBF16PS`. Its order is fixed, so the vector kernel equals the scalar
//! reference to the bit: element `C[i, j]` starts at +0 and takes the pairs
//! `(A[i, 2p], A[i, 2p+1])·(B[2p, j], B[2p+1, j])` for p = 0, 1, … in turn, each as one lane of
//! the instruction ([`super::dot_pair`]); an odd k pairs its last element with a zero.
//!
//! The kernel: A's rows converted to bf16 in place order (so each 32-bit word is one pair,
//! low half the even element), B packed in blocks of 16 columns (one 512-bit vector per pair
//! of rows), both converted sixteen or thirty-two at a time by `VCVTNE(2)PS2BF16`, which rounds
//! exactly as [`super::round`] does. A tile of 6 rows × 64 columns is held in 24 registers while
//! p runs. The work is shared out as panels of 64 columns × chunks of 96 rows, so a panel of B
//! (64 bytes per pair per block) stays in the core's L2 cache while every tile of the chunk
//! reads it: the first version streamed all of B from memory for every 8 rows, and ran at about
//! half the bf16 peak.

use rayon::prelude::*;

use super::{dot_pair, round};
use crate::fresh::{SharedRows, rewritable};

/// Rows of C per tile.
const ROWS: usize = 6;
/// Blocks of 16 columns per tile.
const BLOCKS: usize = 4;
/// Columns per vector.
const LANES: usize = 16;
/// Rows of C per task: 16 tiles, whose A rows (with k = 1024, 96 KB in bf16) sit beside the
/// panel of B in L2.
const CHUNK: usize = 16 * ROWS;

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

/// The product on `VDPBF16PS`, equal to [`reference`] to the bit; `None` on a CPU without
/// AVX512_BF16.
pub fn multiply(a: &[f32], b: &[f32], [m, k, n]: [usize; 3]) -> Option<Vec<f32>> {
    assert!(a.len() == m * k && b.len() == k * n);
    if !super::has_avx512_bf16() {
        return None;
    }
    let mut c = vec![0.0f32; m * n];
    // An empty sum is +0, as the reference's.
    if m == 0 || n == 0 || k == 0 {
        return Some(c);
    }
    #[cfg(target_arch = "x86_64")]
    {
        let kp = k.div_ceil(2);
        let mut a_pairs = vec![0u32; m * kp];
        a_pairs
            .par_chunks_mut(kp)
            .zip(a.par_chunks(k))
            // SAFETY: the CPU has AVX512_BF16 (checked above); each row is k floats, kp words.
            .for_each(|(words, row)| unsafe { x86::pair_row(words, row) });
        let blocks = n.div_ceil(LANES);
        let mut b_packed = vec![0u32; blocks * kp * LANES];
        b_packed
            .par_chunks_mut(kp * LANES)
            .enumerate()
            // SAFETY: as above; block jb's columns are read within each row of B.
            .for_each(|(jb, block)| unsafe { x86::pack_block(block, b, [k, n], jb) });
        let out = SharedRows::new(rewritable(&mut c));
        let panels = blocks.div_ceil(BLOCKS);
        let chunks = m.div_ceil(CHUNK);
        (0..panels * chunks).into_par_iter().for_each(|task| {
            let (panel, chunk) = (task / chunks, task % chunks);
            let rows = chunk * CHUNK..((chunk + 1) * CHUNK).min(m);
            let first_block = panel * BLOCKS;
            let width = BLOCKS.min(blocks - first_block);
            let first_col = first_block * LANES;
            let cols = (width * LANES).min(n - first_col);
            let tile = out.block(rows.start * n + first_col, [rows.len(), cols], n);
            // SAFETY: the CPU has AVX512_BF16; `block` checked that the task's rows × columns
            // lie in C, which this task alone writes; the packed operands cover every row and
            // block it reads.
            unsafe {
                x86::panel(
                    tile.cast(),
                    &a_pairs,
                    &b_packed,
                    [kp, n],
                    rows,
                    [first_block, width],
                )
            };
        });
    }
    Some(c)
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;
    use std::ops::Range;

    use super::{LANES, ROWS};

    /// One row of A as bf16 pairs: `words[p] = round(row[2p]) | round(row[2p + 1]) << 16`,
    /// a zero past the row's end.
    #[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
    pub unsafe fn pair_row(words: &mut [u32], row: &[f32]) {
        let k = row.len();
        // 32 floats (16 words) at a time; masked lanes read as 0.0, which rounds to 0.
        for (chunk, w) in words.chunks_mut(LANES).enumerate() {
            let at = 2 * LANES * chunk;
            let mask = |from: usize| -> __mmask16 {
                let left = k.saturating_sub(from).min(LANES);
                ((1u32 << left) - 1) as __mmask16
            };
            // SAFETY: masked lanes are not read, the others lie inside the row; the store
            // writes the chunk's words only.
            unsafe {
                let low = _mm512_maskz_loadu_ps(mask(at), row.as_ptr().wrapping_add(at));
                let high =
                    _mm512_maskz_loadu_ps(mask(at + LANES), row.as_ptr().wrapping_add(at + LANES));
                let pairs: __m512i = std::mem::transmute(_mm512_cvtne2ps_pbh(high, low));
                let keep = ((1u32 << w.len()) - 1) as __mmask16;
                _mm512_mask_storeu_epi32(w.as_mut_ptr().cast(), keep, pairs);
            }
        }
    }

    /// Block `jb` of B packed: for each pair p, 16 words `round(B[2p, j]) | round(B[2p+1, j])
    /// << 16` for the block's columns j (zero past n, and for the missing row of an odd k).
    #[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
    pub unsafe fn pack_block(block: &mut [u32], b: &[f32], [k, n]: [usize; 2], jb: usize) {
        let first = jb * LANES;
        let lanes = ((1u32 << (n - first).min(LANES)) - 1) as __mmask16;
        let row = |r: usize| -> __m512i {
            if r >= k {
                return _mm512_setzero_si512();
            }
            // SAFETY: the block's columns of row r lie inside B; masked ones are not read.
            unsafe {
                let x = _mm512_maskz_loadu_ps(lanes, b.as_ptr().add(r * n + first));
                _mm512_cvtepu16_epi32(std::mem::transmute::<__m256bh, __m256i>(
                    _mm512_cvtneps_pbh(x),
                ))
            }
        };
        for (p, words) in block.chunks_exact_mut(LANES).enumerate() {
            let pair = _mm512_or_si512(row(2 * p), _mm512_slli_epi32::<16>(row(2 * p + 1)));
            // SAFETY: the chunk holds 16 words.
            unsafe { _mm512_storeu_si512(words.as_mut_ptr().cast(), pair) };
        }
    }

    /// C's rows `rows` × blocks `first..first + width` (each 16 columns, the last cut at n),
    /// into `c`: the block's first element, its rows `n` apart.
    ///
    /// # Safety
    /// The CPU has AVX512_BF16; `c` holds that block of C; no other thread writes it.
    #[target_feature(enable = "avx512f,avx512bf16")]
    pub unsafe fn panel(
        c: *mut f32,
        a: &[u32],
        b: &[u32],
        [kp, n]: [usize; 2],
        rows: Range<usize>,
        [first, width]: [usize; 2],
    ) {
        let mut row = rows.start;
        while row < rows.end {
            let tall = (rows.end - row).min(ROWS);
            // SAFETY: the caller vouches for C; rows and blocks lie inside the operands.
            unsafe {
                let c = c.add((row - rows.start) * n);
                macro_rules! tiles {
                    ($($r:literal),+) => {
                        match (tall, width) {
                            $(
                                ($r, 4) => tile::<$r, 4>(c, a, b, [kp, n], row, first),
                                ($r, 3) => tile::<$r, 3>(c, a, b, [kp, n], row, first),
                                ($r, 2) => tile::<$r, 2>(c, a, b, [kp, n], row, first),
                                ($r, _) => tile::<$r, 1>(c, a, b, [kp, n], row, first),
                            )+
                            _ => unreachable!("at most {ROWS} rows per tile"),
                        }
                    };
                }
                tiles!(1, 2, 3, 4, 5, 6);
            }
            row += tall;
        }
    }

    /// R rows × W blocks of 16 columns from block `first`, accumulated in registers over every
    /// pair p, then stored from `c` on, rows `n` apart (the columns past `n` dropped).
    #[inline(always)]
    unsafe fn tile<const R: usize, const W: usize>(
        c: *mut f32,
        a: &[u32],
        b: &[u32],
        [kp, n]: [usize; 2],
        row: usize,
        first: usize,
    ) {
        // SAFETY (every access): rows row..row+R of A's pairs and blocks first..first+W of the
        // packed B exist (the caller's panel); C's stores are masked to its n columns.
        unsafe {
            let mut acc = [[_mm512_setzero_ps(); W]; R];
            let a = a.as_ptr().add(row * kp);
            let blocks: [*const u32; W] =
                std::array::from_fn(|w| b.as_ptr().add((first + w) * kp * LANES));
            for p in 0..kp {
                let columns: [__m512bh; W] = std::array::from_fn(|w| {
                    std::mem::transmute::<__m512i, __m512bh>(_mm512_loadu_si512(
                        blocks[w].add(p * LANES).cast(),
                    ))
                });
                for (r, sums) in acc.iter_mut().enumerate() {
                    let pair: __m512bh =
                        std::mem::transmute(_mm512_set1_epi32(*a.add(r * kp + p) as i32));
                    for (sum, column) in sums.iter_mut().zip(&columns) {
                        *sum = _mm512_dpbf16_ps(*sum, pair, *column);
                    }
                }
            }
            for (r, sums) in acc.iter().enumerate() {
                for (w, sum) in sums.iter().enumerate() {
                    let count = (n - (first + w) * LANES).min(LANES);
                    let mask: __mmask16 = ((1u32 << count) - 1) as __mmask16;
                    _mm512_mask_storeu_ps(c.add(r * n + w * LANES), mask, *sum);
                }
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
            [100, 70, 130],
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
