//! `C = A·B (+ b)` with A and B rounded to bf16 and every sum in f32: the product of a bf16
//! run's linear maps (forward and both gradients), on `VDPBF16PS`. Its order is fixed, so the
//! vector kernel equals the scalar reference to the bit: element `C[i, j]` starts at the bias
//! `b[j]` (or +0) and takes the pairs
//! `(A[i, 2p], A[i, 2p+1])·(B[2p, j], B[2p+1, j])` for p = 0, 1, … in turn, each as one lane of
//! the instruction ([`super::dot_pair`]); an odd k pairs its last element with a zero.
//!
//! The kernel: A's rows (or, for `xᵀ`, its columns) converted to bf16 in place order (so each 32-bit word is one pair,
//! low half the even element), B packed in blocks of 16 columns (one 512-bit vector per pair
//! of rows), both converted sixteen or thirty-two at a time by `VCVTNE(2)PS2BF16`, which rounds
//! exactly as [`super::round`] does. A tile of 6 rows × 64 columns is held in 24 registers while
//! p runs. The work is shared out as panels of 64 columns × chunks of 96 rows, so a panel of B
//! (64 bytes per pair per block) stays in the core's L2 cache while every tile of the chunk
//! reads it: the first version streamed all of B from memory for every 8 rows, and ran at about
//! half the bf16 peak.

use std::mem::MaybeUninit;
use std::ops::Range;

use rayon::prelude::*;

use super::dot_pair;
pub(crate) use super::packing::PackedB;
use super::packing::{LANES, PackedA, pairs};
use crate::fresh::{SharedRows, unwritten, written};
use crate::matrix::Matrix;
use job::{BLOCKS, Job, ROWS};

/// Rows of C per task: 16 tiles, whose A rows (with k = 1024, 96 KB in bf16) sit beside the
/// panel of B in L2.
const CHUNK: usize = 16 * ROWS;
/// Pairs per slice of the sum: a slice of a panel of B, 4 blocks × 16 columns × 128 words, is
/// 32 KB, the L1 cache of the cores it was measured on.
const DEPTH: usize = 128;

/// The scalar reference: `a` is m×k, `b` k×n, both row-major; returns C, m×n row-major.
pub fn reference(a: &[f32], b: &[f32], dims: [usize; 3]) -> Vec<f32> {
    reference_from(a, b, dims, None)
}

/// [`reference`] with every element of column j starting at `bias[j]` instead of +0 (the
/// linear map's `x·W + b`).
pub fn reference_from(
    a: &[f32],
    b: &[f32],
    [m, k, n]: [usize; 3],
    bias: Option<&[f32]>,
) -> Vec<f32> {
    assert!(a.len() == m * k && b.len() == k * n);
    let mut c = vec![0.0f32; m * n];
    for i in 0..m {
        let a_pairs = pairs(|x| a[i * k + x], k);
        for j in 0..n {
            let b_pairs = pairs(|x| b[x * n + j], k);
            let half = |w: u32| [w as u16, (w >> 16) as u16];
            let start = bias.map_or(0.0, |bias| bias[j]);
            c[i * n + j] = a_pairs
                .iter()
                .zip(&b_pairs)
                .fold(start, |acc, (&x, &y)| dot_pair(acc, half(x), half(y)));
        }
    }
    c
}

/// The product on `VDPBF16PS`, equal to [`reference`] to the bit, or on AMX tiles at
/// [`Level::Amx`](crate::math::Level::Amx) (close to it: see [`super::amx`]); `None` on a CPU
/// without AVX512_BF16.
pub fn multiply(a: &[f32], b: &[f32], [m, k, n]: [usize; 3]) -> Option<Vec<f32>> {
    assert!(a.len() == m * k && b.len() == k * n);
    if !super::has_avx512_bf16() {
        return None;
    }
    let mut c = unwritten(m * n);
    product(
        &mut c,
        [m, k, n],
        Matrix::dense(a, k),
        Matrix::dense(b, n),
        None,
    );
    // SAFETY: the product wrote all m·n values.
    Some(unsafe { written(c) })
}

/// `out = lhs·rhs (+ bias in every row)`, lhs m×k and rhs k×n read in place at any strides,
/// `out` m×n row-major and written in full (it may start unwritten), on every thread of the
/// pool; equal to [`reference_from`] on the same values to the bit. Operands whose rows or
/// columns are adjacent in memory (a transposed weight, `xᵀ` for a weight's gradient) are
/// converted sixteen or thirty-two values at a time; any other layout one value at a time.
///
/// # Panics
/// On a CPU without AVX512_BF16 (callers ask [`super::has_avx512_bf16`] first).
pub(crate) fn product(
    out: &mut [MaybeUninit<f32>],
    [m, k, n]: [usize; 3],
    lhs: Matrix,
    rhs: Matrix,
    bias: Option<&[f32]>,
) {
    assert_eq!(out.len(), m * n);
    assert!(bias.is_none_or(|bias| bias.len() == n));
    assert!(
        super::has_avx512_bf16(),
        "a bf16 product on a CPU without AVX512_BF16"
    );
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        // An empty sum: the bias, or +0 as the reference's.
        for row in out.chunks_exact_mut(n) {
            for (j, value) in row.iter_mut().enumerate() {
                value.write(bias.map_or(0.0, |bias| bias[j]));
            }
        }
        return;
    }
    if crate::math::level() >= crate::math::Level::Amx {
        return super::amx::product(out, [m, k, n], lhs, rhs, bias);
    }
    let a = PackedA::new(lhs, m, k, true);
    let b = PackedB::new(rhs, [k, n], true);
    let job = Job {
        a: &a,
        b: &b,
        b_first_pair: 0,
        pairs: a.pairs,
        cols: n,
        b_first_block: 0,
        bias,
        scale: 1.0,
        accumulate: false,
    };
    let out = SharedRows::new(out);
    let blocks = n.div_ceil(LANES);
    let panels = blocks.div_ceil(BLOCKS);
    let chunks = m.div_ceil(CHUNK);
    (0..panels * chunks).into_par_iter().for_each(|task| {
        let (panel, chunk) = (task / chunks, task % chunks);
        let rows = chunk * CHUNK..((chunk + 1) * CHUNK).min(m);
        let first_col = panel * BLOCKS * LANES;
        let cols = (BLOCKS * LANES).min(n - first_col);
        let tile = out.block(rows.start * n + first_col, [rows.len(), cols], n);
        // SAFETY: `block` checked that the task's rows × columns lie in C, rows n apart,
        // which this task alone writes; the job's operands cover every row and column.
        unsafe { job.run(tile.cast(), n, rows, panel) };
    });
}

/// The part of a packed B that a product takes: its pairs from `first_pair` on, and `cols`
/// columns from `first_col`, which starts one of B's blocks of 16.
#[derive(Clone, Copy)]
pub(crate) struct Part<'a> {
    b: &'a PackedB,
    first_pair: usize,
    first_block: usize,
    cols: usize,
}

impl PackedB {
    /// Pairs from `first_pair` on (rows `2·first_pair ..`), columns `cols`.
    ///
    /// # Panics
    /// When `cols` does not start on a block of [`BLOCK_COLUMNS`] or runs past B.
    pub(crate) fn part(&self, first_pair: usize, cols: Range<usize>) -> Part<'_> {
        assert!(
            cols.start.is_multiple_of(LANES) && cols.start <= cols.end && cols.end <= self.cols
        );
        Part {
            b: self,
            first_pair,
            first_block: cols.start / LANES,
            cols: cols.len(),
        }
    }
}

/// B's columns per packed block: a [`Part`] starts on a multiple of it.
pub(crate) const BLOCK_COLUMNS: usize = LANES;

/// `out = scale·lhs·B` on the calling thread, for small products that reuse one packed B
/// (attention's, per head): lhs is m×k read in place, its k elements paired with the part's
/// pairs. `out` holds m rows of the part's columns, `out_stride` apart, written in full.
/// Equal to [`reference`] on the same values (B's rows from `2·first_pair`, the part's
/// columns), times `scale`, to the bit.
pub(crate) fn multiply_packed(
    out: &mut [MaybeUninit<f32>],
    out_stride: usize,
    (lhs, [m, k]): (Matrix, [usize; 2]),
    part: Part,
    scale: f32,
) {
    assert!(m == 0 || part.cols == 0 || out.len() >= (m - 1) * out_stride + part.cols);
    // SAFETY: the m rows × cols lie inside `out`, which this call borrows alone.
    unsafe { multiply_packed_into(out.as_mut_ptr(), out_stride, (lhs, [m, k]), part, scale) }
}

/// `out += lhs·B` on the calling thread, as [`multiply_packed`] but each element's sum
/// starting from its value in `out` rather than +0 (the same pairs in the same order), for
/// attention's tiles that add up over blocks.
pub(crate) fn add_packed(
    out: &mut [f32],
    out_stride: usize,
    (lhs, [m, k]): (Matrix, [usize; 2]),
    part: Part,
) {
    assert!(m == 0 || part.cols == 0 || out.len() >= (m - 1) * out_stride + part.cols);
    // SAFETY: the m rows × cols lie inside `out`, which this call borrows alone; all of it
    // is initialised.
    unsafe { run_packed(out.as_mut_ptr(), out_stride, (lhs, [m, k]), part, 1.0, true) }
}

/// [`multiply_packed`] into memory that other threads write too, each its own elements.
///
/// # Safety
/// `out` must be valid for writes of m rows × the part's columns, `out_stride` apart, and no
/// other thread may touch them during the call.
pub(crate) unsafe fn multiply_packed_into(
    out: *mut MaybeUninit<f32>,
    out_stride: usize,
    (lhs, [m, k]): (Matrix, [usize; 2]),
    part: Part,
    scale: f32,
) {
    // SAFETY: as the caller vouches; nothing is read before it is written.
    unsafe { run_packed(out.cast(), out_stride, (lhs, [m, k]), part, scale, false) }
}

/// The products on a packed B, with or without `accumulate`.
///
/// # Safety
/// As [`multiply_packed_into`], and when `accumulate` the elements are initialised too.
unsafe fn run_packed(
    out: *mut f32,
    out_stride: usize,
    (lhs, [m, k]): (Matrix, [usize; 2]),
    part: Part,
    scale: f32,
    accumulate: bool,
) {
    let kp = k.div_ceil(2);
    let b = part.b;
    assert!(part.first_pair + kp <= b.pairs && k > 0);
    assert!(!accumulate || scale == 1.0, "a scaled sum that adds to C");
    if m == 0 || part.cols == 0 {
        return;
    }
    let a = PackedA::new(lhs, m, k, false);
    let job = Job {
        a: &a,
        b,
        b_first_pair: part.first_pair,
        b_first_block: part.first_block,
        pairs: kp,
        cols: part.cols,
        bias: None,
        scale,
        accumulate,
    };
    for panel in 0..part.cols.div_ceil(BLOCKS * LANES) {
        let first_col = panel * BLOCKS * LANES;
        // SAFETY: the caller vouches for the m rows × cols; the job's operands cover them.
        unsafe { job.run(out.add(first_col), out_stride, 0..m, panel) };
    }
}

impl Job<'_> {
    /// C's rows `rows` × the columns of panel `panel` (4 blocks of 16, cut at `cols`), into
    /// `c`: their first element, rows `c_stride` apart. The sum goes over p in slices of DEPTH
    /// pairs, each tile's sums stored to C between slices and loaded back (exactly): the same
    /// additions in the same order, with the slice of the panel of B that every tile of the
    /// chunk reads small enough for L1.
    ///
    /// # Safety
    /// `c` must be valid for writes (and reads) of those rows × columns, which no other thread
    /// touches during the call; the CPU has AVX512_BF16.
    unsafe fn run(&self, c: *mut f32, c_stride: usize, rows: Range<usize>, panel: usize) {
        #[cfg(target_arch = "x86_64")]
        for first in (0..self.pairs).step_by(DEPTH) {
            let slice = [first, (first + DEPTH).min(self.pairs)];
            // SAFETY: the caller vouches for C (written by the slices before this one); the
            // packed operands cover every row, pair and block a tile reads.
            unsafe { x86::panel(c, c_stride, self, rows.clone(), panel, slice) };
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (c, c_stride, rows, panel);
            unreachable!("AVX512_BF16 is x86-64 only");
        }
    }
}

mod job;
#[cfg(target_arch = "x86_64")]
mod x86;

#[cfg(test)]
mod tests;
