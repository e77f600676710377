//! The bf16 product's register tiles on `VDPBF16PS` (x86-64 with AVX512_BF16).

use std::arch::x86_64::*;
use std::ops::Range;

use super::super::packing::LANES;
use super::super::packing::x86::lanes;
use super::job::{BLOCKS, Job, ROWS};

/// The tiles of C's rows `rows` × panel `panel` of a job over its pairs `slice`, into `c`
/// (their first element, rows `c_stride` apart): from the job's first pair each element
/// starts at its column's bias (or +0), from a later one at the value the slice before
/// stored; after the job's last pair the sums are scaled.
///
/// # Safety
/// The CPU has AVX512_BF16; `c` holds those rows × columns, which no other thread touches;
/// the job's operands cover them.
#[target_feature(enable = "avx512f,avx512bf16")]
pub unsafe fn panel(
    c: *mut f32,
    c_stride: usize,
    job: &Job,
    rows: Range<usize>,
    panel: usize,
    slice: [usize; 2],
) {
    let first = panel * BLOCKS;
    let width = BLOCKS.min(job.cols.div_ceil(LANES) - first);
    let mut row = rows.start;
    while row < rows.end {
        let tall = (rows.end - row).min(ROWS);
        // SAFETY: the caller vouches for C; rows and blocks lie inside the operands.
        unsafe {
            let at = Tile {
                c: c.add((row - rows.start) * c_stride),
                c_stride,
                job,
                row,
                first,
                slice,
            };
            macro_rules! tiles {
                ($($r:literal),+) => {
                    match (tall, width) {
                        $(
                            ($r, 4) => tile::<$r, 4>(at),
                            ($r, 3) => tile::<$r, 3>(at),
                            ($r, 2) => tile::<$r, 2>(at),
                            ($r, _) => tile::<$r, 1>(at),
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

/// Where one tile reads and writes.
#[derive(Clone, Copy)]
struct Tile<'a> {
    /// C's element (row, first block's first column); rows `c_stride` apart.
    c: *mut f32,
    c_stride: usize,
    job: &'a Job<'a>,
    row: usize,
    /// The tile's first block of 16 columns.
    first: usize,
    /// A's pairs `slice[0]..slice[1]` (B's from the job's first pair on).
    slice: [usize; 2],
}

/// R rows × W blocks of 16 columns from block `first`, accumulated in registers over the
/// slice's pairs from the bias or +0 (the first slice of a job that does not accumulate)
/// or from C, then stored (the columns
/// past the job's dropped), scaled after the last slice.
#[inline(always)]
unsafe fn tile<const R: usize, const W: usize>(at: Tile) {
    let Tile {
        c,
        c_stride,
        job,
        row,
        first,
        slice,
    } = at;
    let (a, b) = (job.a, job.b);
    let mask = |w: usize| lanes(job.cols - (first + w) * LANES);
    // SAFETY (every access): rows row..row+R of A's pairs and blocks first..first+W of the
    // packed B exist, over the slice's pairs (the job covers them); the bias has the job's
    // columns, and its loads and C's loads and stores are masked to them.
    unsafe {
        let start: [__m512; W] = std::array::from_fn(|w| match job.bias {
            Some(bias) => _mm512_maskz_loadu_ps(mask(w), bias.as_ptr().add((first + w) * LANES)),
            None => _mm512_setzero_ps(),
        });
        let mut acc = [start; R];
        if slice[0] > 0 || job.accumulate {
            for (r, sums) in acc.iter_mut().enumerate() {
                for (w, sum) in sums.iter_mut().enumerate() {
                    *sum = _mm512_maskz_loadu_ps(mask(w), c.add(r * c_stride + w * LANES));
                }
            }
        }
        let a_rows: [*const u32; R] = std::array::from_fn(|r| {
            a.words
                .as_ptr()
                .add((row + r) * a.row_stride + slice[0] * a.pair_stride)
        });
        let b_first = job.b_first_pair + slice[0];
        let blocks: [*const u32; W] = std::array::from_fn(|w| {
            b.words
                .as_ptr()
                .add(((job.b_first_block + first + w) * b.pairs + b_first) * LANES)
        });
        for i in 0..slice[1] - slice[0] {
            let columns: [__m512bh; W] = std::array::from_fn(|w| {
                std::mem::transmute::<__m512i, __m512bh>(_mm512_loadu_si512(
                    blocks[w].add(i * LANES).cast(),
                ))
            });
            for (sums, a_row) in acc.iter_mut().zip(&a_rows) {
                let pair: __m512bh =
                    std::mem::transmute(_mm512_set1_epi32(*a_row.add(i * a.pair_stride) as i32));
                for (sum, column) in sums.iter_mut().zip(&columns) {
                    *sum = _mm512_dpbf16_ps(*sum, pair, *column);
                }
            }
        }
        let scale = (slice[1] == job.pairs && job.scale != 1.0).then_some(job.scale);
        for (r, sums) in acc.iter().enumerate() {
            for (w, sum) in sums.iter().enumerate() {
                let value = match scale {
                    Some(s) => _mm512_mul_ps(*sum, _mm512_set1_ps(s)),
                    None => *sum,
                };
                _mm512_mask_storeu_ps(c.add(r * c_stride + w * LANES), mask(w), value);
            }
        }
    }
}
