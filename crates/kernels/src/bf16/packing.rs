//! The bf16 product's operands packed for its tiles: A as pairs along its rows, B in blocks of
//! 16 columns, each converted from f32 sixteen or thirty-two values at a time by
//! `VCVTNE(2)PS2BF16` (which rounds exactly as [`super::round`] does), read in place at any
//! strides, in buffers each thread keeps for its next products.

use rayon::prelude::*;

use super::round;
use crate::matrix::Matrix;

/// Columns per vector.
pub(super) const LANES: usize = 16;

/// `(x[2p], x[2p+1])` of one row as bf16 pairs, low half the even one; a zero pads an odd
/// length.
pub(super) fn pairs(row: impl Fn(usize) -> f32, k: usize) -> Vec<u32> {
    (0..k.div_ceil(2)).map(|p| pair(&row, k, p)).collect()
}

/// Pair `p` of a row of `k` elements: `round(x[2p]) | round(x[2p+1]) << 16`, a zero past k.
pub(super) fn pair(row: impl Fn(usize) -> f32, k: usize, p: usize) -> u32 {
    let even = round(row(2 * p));
    let odd = if 2 * p + 1 < k {
        round(row(2 * p + 1))
    } else {
        0
    };
    u32::from(even) | u32::from(odd) << 16
}

/// A's rows as bf16 pairs: pair p of row i at `words[i·row_stride + p·pair_stride]`. Rows
/// adjacent in memory pack row by row; columns adjacent in memory (`xᵀ`) pack pair by pair,
/// each pair of columns read as two runs.
pub(super) struct PackedA {
    pub(super) words: Vec<u32>,
    pub(super) pairs: usize,
    pub(super) row_stride: usize,
    pub(super) pair_stride: usize,
}

impl PackedA {
    /// A, m×k, packed on every thread of the pool when `parallel`, else on this one.
    pub(super) fn new(lhs: Matrix, m: usize, k: usize, parallel: bool) -> Self {
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
    pub(super) words: Vec<u32>,
    pub(super) pairs: usize,
    pub(super) cols: usize,
}

impl PackedB {
    /// B packed on every thread of the pool when `parallel`, else on this one.
    pub(crate) fn new(rhs: Matrix, [k, n]: [usize; 2], parallel: bool) -> Self {
        Self::padded(rhs, [k, n], parallel, 1)
    }

    /// [`PackedB::new`] with zero pairs after B's own up to a multiple of `pair_multiple` in
    /// every block (AMX tiles take 16 pairs at a time); `pairs` counts them.
    pub(super) fn padded(
        rhs: Matrix,
        [k, n]: [usize; 2],
        parallel: bool,
        pair_multiple: usize,
    ) -> Self {
        let (kp, blocks) = (k.div_ceil(2), n.div_ceil(LANES));
        let stride = kp.div_ceil(pair_multiple) * pair_multiple;
        // Every word is written below (the lanes past n and the padding pairs too).
        let mut words = spare_words(blocks * stride * LANES);
        for block in words.chunks_exact_mut(stride * LANES) {
            block[kp * LANES..].fill(0);
        }
        if rhs.row_slice(0, n).is_none() {
            let pack = |(jb, block): (usize, &mut [u32])| {
                pack_columns(&mut block[..kp * LANES], rhs, [k, n], jb)
            };
            if parallel {
                words
                    .par_chunks_mut(stride * LANES)
                    .enumerate()
                    .for_each(pack);
            } else {
                words.chunks_mut(stride * LANES).enumerate().for_each(pack);
            }
            return Self {
                words,
                pairs: stride,
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
                assert!((blocks - 1) * stride * LANES + p * LANES + LANES <= shared.1);
                #[cfg(target_arch = "x86_64")]
                // SAFETY: only called where the CPU has AVX512_BF16 (the products check);
                // this task alone writes pair p's words, 16 in each block, which lie in the
                // buffer (checked).
                unsafe {
                    x86::pack_pair_of_rows(
                        shared.0.add(p * LANES),
                        stride * LANES,
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
            pairs: stride,
            cols: n,
        }
    }
}

/// Pairs of rows of B per packing task.
const ROW_PAIRS: usize = 32;

/// The packed B while tasks write it, each its own pairs' words.
struct SharedWords(*mut u32, usize);

// SAFETY: reached only in `PackedB::padded`, whose tasks write disjoint words.
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
pub(super) fn spare_words(len: usize) -> Vec<u32> {
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
pub(super) fn keep_spare(words: Vec<u32>) {
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
pub(super) mod x86 {
    use std::arch::x86_64::*;

    use super::LANES;

    /// The first `count` (at most 16) lanes' bits of a mask.
    pub fn lanes(count: usize) -> __mmask16 {
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
}
