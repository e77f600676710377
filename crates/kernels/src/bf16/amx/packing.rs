//! A packed for AMX tiles: each row's bf16 pairs adjacent (a tile row is 16 of them), rows
//! and pairs padded with zeros to multiples of 16, whatever A's layout.

use rayon::prelude::*;

use super::super::packing::x86::{interleave, pair_row};
use super::super::packing::{SharedWords, keep_spare, pair, spare_words};
use crate::matrix::Matrix;

/// Pairs per tile row (64 bytes), and rows per tile.
pub(super) const PAIRS: usize = 16;

/// A's rows as bf16 pairs: pair p of row i at `words[i·stride + p]`, zero past A's k and m.
pub(super) struct TileA {
    pub(super) words: Vec<u32>,
    /// Words per row: A's pairs rounded up to a multiple of [`PAIRS`].
    pub(super) stride: usize,
}

impl TileA {
    /// A, m×k, packed on every thread of the pool. Rows adjacent in memory pack row by row;
    /// columns adjacent (`xᵀ`, the weight gradient's) 16 pairs at a time, each pair of
    /// columns interleaved and then turned to rows (so each row's 64 bytes are written at
    /// once); any other layout one value at a time.
    pub(super) fn new(lhs: Matrix, m: usize, k: usize) -> Self {
        let kp = k.div_ceil(2);
        let stride = kp.div_ceil(PAIRS) * PAIRS;
        let rows = m.div_ceil(PAIRS) * PAIRS;
        // Every word is written below (the padding too).
        let mut words = spare_words(rows * stride);
        words[m * stride..].fill(0);
        let pair_major = lhs.row_slice(0, k).is_none() && lhs.column_slice(0, m).is_some();
        if pair_major {
            let shared = SharedWords(words.as_mut_ptr(), m * stride);
            (0..stride / PAIRS).into_par_iter().for_each(|group| {
                let shared = &shared;
                let mut columns = vec![0u32; PAIRS * m];
                for (j, run) in columns.chunks_exact_mut(m).enumerate() {
                    let p = group * PAIRS + j;
                    let even = (2 * p < k).then(|| lhs.column_slice(2 * p, m)).flatten();
                    let odd = (2 * p + 1 < k)
                        .then(|| lhs.column_slice(2 * p + 1, m))
                        .flatten();
                    match even {
                        #[cfg(target_arch = "x86_64")]
                        // SAFETY: AMX CPUs have AVX512_BF16 (`permitted` checks both).
                        Some(even) => unsafe { interleave(run, even, odd) },
                        _ => run.fill(0),
                    }
                }
                for i in 0..m {
                    let at = i * stride + group * PAIRS;
                    assert!(at + PAIRS <= shared.1);
                    for j in 0..PAIRS {
                        // SAFETY: this task alone writes pairs group·16.. of every row, which
                        // lie in the buffer (checked).
                        unsafe { *shared.0.add(at + j) = columns[j * m + i] };
                    }
                }
            });
        } else {
            words[..m * stride]
                .par_chunks_mut(stride)
                .enumerate()
                .for_each(|(i, row_words)| match lhs.row_slice(i, k) {
                    #[cfg(target_arch = "x86_64")]
                    // SAFETY: as above; lanes past k read as 0.0, which rounds to a zero.
                    Some(row) => unsafe { pair_row(row_words, row) },
                    _ => {
                        for (p, word) in row_words.iter_mut().enumerate() {
                            *word = if p < kp {
                                pair(|x| lhs.at(i, x), k, p)
                            } else {
                                0
                            };
                        }
                    }
                });
        }
        Self { words, stride }
    }
}

impl Drop for TileA {
    fn drop(&mut self) {
        keep_spare(std::mem::take(&mut self.words));
    }
}
