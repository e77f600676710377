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

use super::{dot_pair, round};
use crate::fresh::{SharedRows, unwritten, written};
use crate::matrix::Matrix;

/// Rows of C per tile.
const ROWS: usize = 6;
/// Blocks of 16 columns per tile.
const BLOCKS: usize = 4;
/// Columns per vector.
const LANES: usize = 16;
/// Rows of C per task: 16 tiles, whose A rows (with k = 1024, 96 KB in bf16) sit beside the
/// panel of B in L2.
const CHUNK: usize = 16 * ROWS;
/// Pairs per slice of the sum: a slice of a panel of B, 4 blocks × 16 columns × 128 words, is
/// 32 KB, the L1 cache of the cores it was measured on.
const DEPTH: usize = 128;

/// `(x[2p], x[2p+1])` of one row as bf16 pairs, low half the even one; a zero pads an odd
/// length.
fn pairs(row: impl Fn(usize) -> f32, k: usize) -> Vec<u32> {
    (0..k.div_ceil(2)).map(|p| pair(&row, k, p)).collect()
}

/// Pair `p` of a row of `k` elements: `round(x[2p]) | round(x[2p+1]) << 16`, a zero past k.
fn pair(row: impl Fn(usize) -> f32, k: usize, p: usize) -> u32 {
    let even = round(row(2 * p));
    let odd = if 2 * p + 1 < k {
        round(row(2 * p + 1))
    } else {
        0
    };
    u32::from(even) | u32::from(odd) << 16
}

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

/// The product on `VDPBF16PS`, equal to [`reference`] to the bit; `None` on a CPU without
/// AVX512_BF16.
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
    let a = PackedA::new(lhs, m, k, true);
    let b = PackedB::new(rhs, [k, n], true);
    let job = Job {
        a: &a,
        b: &b,
        b_first_pair: 0,
        pairs: a.pairs,
        cols: n,
        bias,
        scale: 1.0,
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

/// `out = scale·lhs·B` on the calling thread, for small products that reuse one packed B
/// (attention's, per head): lhs is m×k read in place, its k elements paired with B's pairs
/// from `b_first_pair` on; only B's first `cols` columns are taken. `out` holds m rows of
/// `cols` values, `out_stride` apart, written in full. Equal to [`reference`] on the same
/// values (B's rows `2·b_first_pair ..` and columns `..cols`), times `scale`, to the bit.
pub(crate) fn multiply_packed(
    out: &mut [MaybeUninit<f32>],
    out_stride: usize,
    (lhs, [m, k]): (Matrix, [usize; 2]),
    (b, b_first_pair, cols): (&PackedB, usize, usize),
    scale: f32,
) {
    assert!(m == 0 || cols == 0 || out.len() >= (m - 1) * out_stride + cols);
    // SAFETY: the m rows × cols lie inside `out`, which this call borrows alone.
    unsafe {
        multiply_packed_into(
            out.as_mut_ptr(),
            out_stride,
            (lhs, [m, k]),
            (b, b_first_pair, cols),
            scale,
        )
    }
}

/// [`multiply_packed`] into memory that other threads write too, each its own elements.
///
/// # Safety
/// `out` must be valid for writes of m rows × `cols` values, `out_stride` apart, and no other
/// thread may touch them during the call.
pub(crate) unsafe fn multiply_packed_into(
    out: *mut MaybeUninit<f32>,
    out_stride: usize,
    (lhs, [m, k]): (Matrix, [usize; 2]),
    (b, b_first_pair, cols): (&PackedB, usize, usize),
    scale: f32,
) {
    let kp = k.div_ceil(2);
    assert!(b_first_pair + kp <= b.pairs && cols <= b.cols && k > 0);
    if m == 0 || cols == 0 {
        return;
    }
    let a = PackedA::new(lhs, m, k, false);
    let job = Job {
        a: &a,
        b,
        b_first_pair,
        pairs: kp,
        cols,
        bias: None,
        scale,
    };
    for panel in 0..cols.div_ceil(BLOCKS * LANES) {
        let first_col = panel * BLOCKS * LANES;
        // SAFETY: the caller vouches for the m rows × cols; the job's operands cover them.
        unsafe { job.run(out.add(first_col).cast(), out_stride, 0..m, panel) };
    }
}

/// One product for the tiles: A's pairs `0..pairs` with B's `b_first_pair..`, C's first
/// `cols` columns.
#[derive(Clone, Copy)]
struct Job<'a> {
    a: &'a PackedA,
    b: &'a PackedB,
    b_first_pair: usize,
    pairs: usize,
    cols: usize,
    bias: Option<&'a [f32]>,
    scale: f32,
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

/// A's rows as bf16 pairs: pair p of row i at `words[i·row_stride + p·pair_stride]`. Rows
/// adjacent in memory pack row by row; columns adjacent in memory (`xᵀ`) pack pair by pair,
/// each pair of columns read as two runs.
struct PackedA {
    words: Vec<u32>,
    pairs: usize,
    row_stride: usize,
    pair_stride: usize,
}

impl PackedA {
    /// A, m×k, packed on every thread of the pool when `parallel`, else on this one.
    fn new(lhs: Matrix, m: usize, k: usize, parallel: bool) -> Self {
        let kp = k.div_ceil(2);
        // Every word is written below.
        let mut words = spare_words(m * kp);
        let pair_major = lhs.row_slice(0, k).is_none() && lhs.column_slice(0, m).is_some();
        let (chunk, strides) = if pair_major {
            (m, [1, m])
        } else {
            (kp, [kp, 1])
        };
        let pack = |(i, words): (usize, &mut [u32])| {
            if pair_major {
                // Pair i: columns 2i and 2i + 1.
                let even = lhs.column_slice(2 * i, m);
                let odd = (2 * i + 1 < k).then(|| lhs.column_slice(2 * i + 1, m));
                match (even, odd.flatten()) {
                    #[cfg(target_arch = "x86_64")]
                    // SAFETY: only called where the CPU has AVX512_BF16 (the products check).
                    (Some(even), odd) => unsafe { x86::interleave(words, even, odd) },
                    _ => unreachable!("the columns are adjacent in memory"),
                }
                return;
            }
            match lhs.row_slice(i, k) {
                #[cfg(target_arch = "x86_64")]
                // SAFETY: as above; the row is k floats, `words` kp words.
                Some(row) => unsafe { x86::pair_row(words, row) },
                _ => {
                    for (p, word) in words.iter_mut().enumerate() {
                        *word = pair(|x| lhs.at(i, x), k, p);
                    }
                }
            }
        };
        if parallel {
            words.par_chunks_mut(chunk).enumerate().for_each(pack);
        } else {
            words.chunks_mut(chunk).enumerate().for_each(pack);
        }
        Self {
            words,
            pairs: kp,
            row_stride: strides[0],
            pair_stride: strides[1],
        }
    }
}

/// B, k×n, packed in blocks of 16 columns: block jb holds, for each pair p, the 16 words
/// `round(B[2p, j]) | round(B[2p+1, j]) << 16` of its columns j (zero past n, and for the
/// missing row of an odd k).
pub(crate) struct PackedB {
    words: Vec<u32>,
    pairs: usize,
    cols: usize,
}

impl PackedB {
    /// B packed on every thread of the pool when `parallel`, else on this one.
    pub(crate) fn new(rhs: Matrix, [k, n]: [usize; 2], parallel: bool) -> Self {
        let (kp, blocks) = (k.div_ceil(2), n.div_ceil(LANES));
        // Every word is written below (the lanes past n too).
        let mut words = spare_words(blocks * kp * LANES);
        if rhs.row_slice(0, n).is_none() {
            let pack = |(jb, block): (usize, &mut [u32])| pack_columns(block, rhs, [k, n], jb);
            if parallel {
                words.par_chunks_mut(kp * LANES).enumerate().for_each(pack);
            } else {
                words.chunks_mut(kp * LANES).enumerate().for_each(pack);
            }
            return Self {
                words,
                pairs: kp,
                cols: n,
            };
        }
        // Rows adjacent: read in order, a slice of pairs of rows per task, each pair written
        // into every block. Block by block, a task read 64 bytes of every row (a TLB miss
        // each), and packing took a third of a weight gradient's time.
        let shared = SharedWords(words.as_mut_ptr(), words.len());
        let pack = |slice: usize| {
            let shared = &shared;
            let row = |r: usize| (r < k).then(|| rhs.row_slice(r, n)).flatten();
            for p in slice * ROW_PAIRS..((slice + 1) * ROW_PAIRS).min(kp) {
                let even = row(2 * p).expect("rows adjacent");
                assert!((blocks - 1) * kp * LANES + p * LANES + LANES <= shared.1);
                #[cfg(target_arch = "x86_64")]
                // SAFETY: only called where the CPU has AVX512_BF16 (the products check);
                // this task alone writes pair p's words, 16 in each block, which lie in the
                // buffer (checked).
                unsafe {
                    x86::pack_pair_of_rows(
                        shared.0.add(p * LANES),
                        kp * LANES,
                        even,
                        row(2 * p + 1),
                    )
                };
            }
        };
        let slices = kp.div_ceil(ROW_PAIRS);
        if parallel {
            (0..slices).into_par_iter().for_each(pack);
        } else {
            (0..slices).for_each(pack);
        }
        Self {
            words,
            pairs: kp,
            cols: n,
        }
    }
}

/// Pairs of rows of B per packing task.
const ROW_PAIRS: usize = 32;

/// The packed B while tasks write it, each its own pairs' words.
struct SharedWords(*mut u32, usize);

// SAFETY: reached only in `PackedB::new`, whose tasks write disjoint words.
unsafe impl Sync for SharedWords {}

/// Block `jb` of B packed from columns adjacent in memory (a transposed weight) or, for any
/// other layout, one value at a time; every word is written (zero past n).
fn pack_columns(block: &mut [u32], rhs: Matrix, [k, n]: [usize; 2], jb: usize) {
    let first = jb * LANES;
    let count = (n - first).min(LANES);
    let kp = k.div_ceil(2);
    let mut column = vec![0u32; kp];
    for lane in 0..count {
        let j = first + lane;
        match rhs.column_slice(j, k) {
            // Columns adjacent (a transposed weight): a column is a row of pairs.
            #[cfg(target_arch = "x86_64")]
            // SAFETY: only called where the CPU has AVX512_BF16 (the products check); the
            // column is k floats, `column` kp words.
            Some(values) => unsafe { x86::pair_row(&mut column, values) },
            _ => {
                for (p, word) in column.iter_mut().enumerate() {
                    *word = pair(|x| rhs.at(x, j), k, p);
                }
            }
        }
        for (p, &word) in column.iter().enumerate() {
            block[p * LANES + lane] = word;
        }
    }
    for words in block.chunks_exact_mut(LANES) {
        words[count..].fill(0);
    }
}

thread_local! {
    /// Packing buffers this thread is done with, for its next products: allocated afresh for
    /// every product, they cost page faults and clearing (a fifth of a small model's bf16 step
    /// went to packing, faults and memset).
    static SPARE: std::cell::RefCell<Vec<Vec<u32>>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The most words of spare buffers a thread keeps (32 MB).
const SPARE_WORDS: usize = 8 << 20;

/// `len` words whose values are whatever a spare buffer held (every caller writes all of
/// them): the smallest spare that fits, else a fresh buffer.
fn spare_words(len: usize) -> Vec<u32> {
    let spare = SPARE.with(|spare| {
        let mut spare = spare.borrow_mut();
        let fits = (0..spare.len())
            .filter(|&i| spare[i].capacity() >= len)
            .min_by_key(|&i| spare[i].capacity())?;
        Some(spare.swap_remove(fits))
    });
    let mut words = spare.unwrap_or_default();
    words.truncate(len);
    words.resize(len, 0);
    if cfg!(test) {
        // Two bf16 NaNs per word: a word a packer forgot to write shows in the comparisons.
        words.fill(0x7fc0_7fc0);
    }
    words
}

/// Keeps `words` for this thread's next products, within [`SPARE_WORDS`] (the smallest
/// buffers give way).
fn keep_spare(words: Vec<u32>) {
    if words.capacity() == 0 || words.capacity() > SPARE_WORDS {
        return;
    }
    SPARE.with(|spare| {
        let mut spare = spare.borrow_mut();
        spare.push(words);
        spare.sort_by_key(|w| std::cmp::Reverse(w.capacity()));
        let mut total = 0;
        spare.retain(|w| {
            total += w.capacity();
            total <= SPARE_WORDS
        });
    });
}

impl Drop for PackedA {
    fn drop(&mut self) {
        keep_spare(std::mem::take(&mut self.words));
    }
}

impl Drop for PackedB {
    fn drop(&mut self) {
        keep_spare(std::mem::take(&mut self.words));
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;
    use std::ops::Range;

    use super::{BLOCKS, Job, LANES, ROWS};

    /// The first `count` (at most 16) lanes' bits of a mask.
    fn lanes(count: usize) -> __mmask16 {
        ((1u32 << count.min(LANES)) - 1) as __mmask16
    }

    /// One row as bf16 pairs: `words[p] = round(row[2p]) | round(row[2p + 1]) << 16`, a zero
    /// past the row's end.
    #[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
    pub unsafe fn pair_row(words: &mut [u32], row: &[f32]) {
        let k = row.len();
        // 32 floats (16 words) at a time; masked lanes read as 0.0, which rounds to 0.
        for (chunk, w) in words.chunks_mut(LANES).enumerate() {
            let at = 2 * LANES * chunk;
            let mask = |from: usize| lanes(k.saturating_sub(from));
            // SAFETY: masked lanes are not read, the others lie inside the row; the store
            // writes the chunk's words only.
            unsafe {
                let low = _mm512_maskz_loadu_ps(mask(at), row.as_ptr().wrapping_add(at));
                let high =
                    _mm512_maskz_loadu_ps(mask(at + LANES), row.as_ptr().wrapping_add(at + LANES));
                let pairs: __m512i = std::mem::transmute(_mm512_cvtne2ps_pbh(high, low));
                _mm512_mask_storeu_epi32(w.as_mut_ptr().cast(), lanes(w.len()), pairs);
            }
        }
    }

    /// Two runs as pairs, element by element: `words[i] = round(even[i]) | round(odd[i]) <<
    /// 16` (a zero for a missing `odd`), sixteen at a time.
    #[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
    pub unsafe fn interleave(words: &mut [u32], even: &[f32], odd: Option<&[f32]>) {
        assert!(even.len() == words.len() && odd.is_none_or(|odd| odd.len() == words.len()));
        let widened = |run: &[f32], at: usize, mask: __mmask16| -> __m512i {
            // SAFETY: the mask's lanes lie inside the run; the others are not read.
            unsafe {
                let x = _mm512_maskz_loadu_ps(mask, run.as_ptr().add(at));
                _mm512_cvtepu16_epi32(std::mem::transmute::<__m256bh, __m256i>(
                    _mm512_cvtneps_pbh(x),
                ))
            }
        };
        for at in (0..words.len()).step_by(LANES) {
            let mask = lanes(words.len() - at);
            let low = widened(even, at, mask);
            let high = odd.map_or(_mm512_setzero_si512(), |odd| widened(odd, at, mask));
            let pair = _mm512_or_si512(low, _mm512_slli_epi32::<16>(high));
            // SAFETY: the mask's words lie inside `words`.
            unsafe { _mm512_mask_storeu_epi32(words.as_mut_ptr().add(at).cast(), mask, pair) };
        }
    }

    /// Pair p of B's rows into every block: `words` is the pair's first word in block 0, the
    /// blocks `stride` words apart; 16 columns of `even` and `odd` (zero when absent) per block.
    ///
    /// # Safety
    /// The CPU has AVX512_BF16; the 16 words at each block's offset are the caller's to write.
    #[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
    pub unsafe fn pack_pair_of_rows(
        words: *mut u32,
        stride: usize,
        even: &[f32],
        odd: Option<&[f32]>,
    ) {
        let n = even.len();
        for (jb, first) in (0..n).step_by(LANES).enumerate() {
            let mask = lanes(n - first);
            let widened = |run: &[f32]| -> __m512i {
                // SAFETY: the mask's lanes lie inside the row; the others are not read.
                unsafe {
                    let x = _mm512_maskz_loadu_ps(mask, run.as_ptr().add(first));
                    _mm512_cvtepu16_epi32(std::mem::transmute::<__m256bh, __m256i>(
                        _mm512_cvtneps_pbh(x),
                    ))
                }
            };
            let high = odd.map_or(_mm512_setzero_si512(), widened);
            let pair = _mm512_or_si512(widened(even), _mm512_slli_epi32::<16>(high));
            // SAFETY: the caller vouches for these 16 words.
            unsafe { _mm512_storeu_si512(words.add(jb * stride).cast(), pair) };
        }
    }

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
    /// slice's pairs from the bias or +0 (the first slice) or from C, then stored (the columns
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
                Some(bias) => {
                    _mm512_maskz_loadu_ps(mask(w), bias.as_ptr().add((first + w) * LANES))
                }
                None => _mm512_setzero_ps(),
            });
            let mut acc = [start; R];
            if slice[0] > 0 {
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
                    .add(((first + w) * b.pairs + b_first) * LANES)
            });
            for i in 0..slice[1] - slice[0] {
                let columns: [__m512bh; W] = std::array::from_fn(|w| {
                    std::mem::transmute::<__m512i, __m512bh>(_mm512_loadu_si512(
                        blocks[w].add(i * LANES).cast(),
                    ))
                });
                for (sums, a_row) in acc.iter_mut().zip(&a_rows) {
                    let pair: __m512bh = std::mem::transmute(_mm512_set1_epi32(
                        *a_row.add(i * a.pair_stride) as i32,
                    ));
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

    /// `rows × cols` values at `offset + r·row_stride + c·col_stride` of `data`, row-major.
    fn dense(view: Matrix, [rows, cols]: [usize; 2]) -> Vec<f32> {
        (0..rows)
            .flat_map(|r| (0..cols).map(move |c| view.at(r, c)))
            .collect()
    }

    #[test]
    fn operands_read_in_place_at_any_strides_and_the_bias_equal_the_reference() {
        let mut rng = ChaCha8Rng::seed_from_u64(38);
        let mut random =
            |len: usize| -> Vec<f32> { (0..len).map(|_| rng.random_range(-3.0..3.0)).collect() };
        for [m, k, n] in [[1, 1, 1], [7, 9, 5], [40, 33, 70], [100, 64, 17]] {
            // Row-major, transposed (columns adjacent: `xᵀ`, a transposed weight), and every
            // other element of a wider buffer (neither adjacent: the scalar path).
            let (a_rows, a_cols, a_sparse) = (random(m * k), random(m * k), random(4 * m * k));
            let (b_rows, b_cols, b_sparse) = (random(k * n), random(k * n), random(4 * k * n));
            let lhs = [
                Matrix::dense(&a_rows, k),
                Matrix::dense(&a_cols, m).transpose(),
                Matrix::new(&a_sparse, 1, 2 * k as isize, 2),
            ];
            let rhs = [
                Matrix::dense(&b_rows, n),
                Matrix::dense(&b_cols, k).transpose(),
                Matrix::new(&b_sparse, 3, 2 * n as isize, 2),
            ];
            let bias = random(n);
            for (x, lhs) in lhs.iter().enumerate() {
                for (y, rhs) in rhs.iter().enumerate() {
                    for bias in [None, Some(&bias[..])] {
                        if !crate::bf16::has_avx512_bf16() {
                            eprintln!("skipped: this CPU has no AVX512_BF16");
                            return;
                        }
                        let mut out = unwritten(m * n);
                        product(&mut out, [m, k, n], *lhs, *rhs, bias);
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
                    "{name} {what} {m}×{k}×{n}: bf16 {:.0} GFLOP/s ({:.0}% packing), f32 one thread {:.0}",
                    flops / best / 1e9,
                    100.0 * packing / best,
                    flops / f32_best / 1e9
                );
            }
        }
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
            // (B's first pair, A's k, columns taken, A's rows)
            for (first_pair, k, cols, m) in [
                (0, 150, 70, 9),
                (0, 64, 33, 64),
                (32, 85, 70, 7),
                (10, 1, 16, 3),
            ] {
                let a_values = random(m * k);
                for lhs in [
                    Matrix::dense(&a_values, k),
                    Matrix::dense(&a_values, m).transpose(),
                ] {
                    let stride = cols + 5;
                    let mut out = vec![MaybeUninit::new(f32::NAN); m * stride];
                    let scale = 0.125f32;
                    multiply_packed(
                        &mut out,
                        stride,
                        (lhs, [m, k]),
                        (&packed, first_pair, cols),
                        scale,
                    );
                    let rows: Vec<f32> = (0..k)
                        .flat_map(|r| {
                            let row = 2 * first_pair + r;
                            b[row * nb..row * nb + cols].to_vec()
                        })
                        .collect();
                    let expected = reference(&dense(lhs, [m, k]), &rows, [m, k, cols]);
                    for i in 0..m {
                        for j in 0..stride {
                            // SAFETY: every element started as NaN.
                            let got = unsafe { out[i * stride + j].assume_init() };
                            if j < cols {
                                let want = expected[i * cols + j] * scale;
                                assert_eq!(
                                    got.to_bits(),
                                    want.to_bits(),
                                    "{first_pair} {k} {cols}: {i},{j}"
                                );
                            } else {
                                assert!(got.is_nan(), "wrote past the columns at {i},{j}");
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
}
