//! A packed for AMX tiles: tile by tile, each 16 rows × 16 bf16 pairs (1 KB) contiguous, so
//! that a tile load reads one run of memory, as B's blocks are read; rows and pairs padded
//! with zeros to multiples of 16, whatever A's layout. (Row by row, a tile's 16 rows lay
//! 768 bytes apart at k = 384, and its loads were the tile loop's bottleneck.)

use rayon::prelude::*;

use super::super::packing::x86::{interleave, pair_row};
use super::super::packing::{keep_spare, pair, spare_words};
use crate::matrix::Matrix;

/// Pairs per tile row (64 bytes), and rows per tile.
pub(super) const PAIRS: usize = 16;

/// Words per tile.
pub(super) const TILE_WORDS: usize = PAIRS * PAIRS;

/// A's rows as bf16 pairs in tiles: pair p of row i in tile `(i / 16, p / 16)`, which starts
/// at word `((i / 16)·steps + p / 16)·256`, at `(i % 16)·16 + p % 16` in it; zero past A's
/// k and m.
pub(super) struct TileA {
    pub(super) words: Vec<u32>,
    /// Tiles along a row of tiles: A's pairs rounded up to a multiple of 16, over 16.
    pub(super) steps: usize,
}

impl TileA {
    /// A, m×k, packed on every thread of the pool, one row of tiles per task. Rows adjacent
    /// in memory pack row by row; columns adjacent (`xᵀ`, the weight gradient's) 16 pairs at
    /// a time, each pair of columns interleaved and then turned to rows; any other layout one
    /// value at a time.
    pub(super) fn new(lhs: Matrix, m: usize, k: usize) -> Self {
        let kp = k.div_ceil(2);
        let steps = kp.div_ceil(PAIRS);
        let row_tiles = m.div_ceil(PAIRS);
        // Every word is written below (the padding too).
        let mut words = spare_words(row_tiles * steps * TILE_WORDS);
        let pair_major = lhs.row_slice(0, k).is_none() && lhs.column_slice(0, m).is_some();
        let pack = |(tile_row, tiles): (usize, &mut [u32])| {
            let first = tile_row * PAIRS;
            let rows = PAIRS.min(m - first);
            if pair_major {
                // 16 columns of pairs (the tile row's 16 rows of each), interleaved, per step.
                let mut columns = [[0u32; PAIRS]; PAIRS];
                for step in 0..steps {
                    for (j, run) in columns.iter_mut().enumerate() {
                        let p = step * PAIRS + j;
                        let column = |c: usize| {
                            (c < k)
                                .then(|| lhs.from(first, 0).column_slice(c, rows))
                                .flatten()
                        };
                        match column(2 * p) {
                            #[cfg(target_arch = "x86_64")]
                            // SAFETY: AMX CPUs have AVX512_BF16 (`permitted` checks both).
                            Some(even) => unsafe {
                                interleave(&mut run[..rows], even, column(2 * p + 1))
                            },
                            _ => run[..rows].fill(0),
                        }
                    }
                    for r in 0..PAIRS {
                        let at = step * TILE_WORDS + r * PAIRS;
                        for (j, run) in columns.iter().enumerate() {
                            tiles[at + j] = if r < rows { run[r] } else { 0 };
                        }
                    }
                }
                return;
            }
            // One row's pairs at a time, then dealt out 16 at a time to its tiles.
            let mut row_words = vec![0u32; steps * PAIRS];
            for r in 0..PAIRS {
                let i = first + r;
                match (r < rows).then(|| lhs.row_slice(i, k)).flatten() {
                    #[cfg(target_arch = "x86_64")]
                    // SAFETY: as above; lanes past k read as 0.0, which rounds to a zero.
                    Some(row) => unsafe { pair_row(&mut row_words, row) },
                    _ => {
                        for (p, word) in row_words.iter_mut().enumerate() {
                            *word = if r < rows && p < kp {
                                pair(|x| lhs.at(i, x), k, p)
                            } else {
                                0
                            };
                        }
                    }
                }
                for (step, run) in row_words.chunks_exact(PAIRS).enumerate() {
                    let at = step * TILE_WORDS + r * PAIRS;
                    tiles[at..at + PAIRS].copy_from_slice(run);
                }
            }
        };
        words
            .par_chunks_mut(steps * TILE_WORDS)
            .enumerate()
            .for_each(pack);
        Self { words, steps }
    }
}

impl Drop for TileA {
    fn drop(&mut self) {
        keep_spare(std::mem::take(&mut self.words));
    }
}
