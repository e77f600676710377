//! The tiled attention's products on AVX-512, read in place: `C = scale·A·B` (or `C +=`) for
//! the small matrices one tile multiplies (a block of queries against a block of keys, over a
//! head's width or over the block), and the exponentials beside them.
//!
//! Written by hand, not through gemm, for what happens *around* each product: gemm stores a
//! tile's sums and a separate pass reads them back to turn them into the pattern (or the
//! scores' gradient). Here the backward pass's pattern `e^(s·QKᵀ − L)` and its `P ⊙ (dP − D)`
//! are made from the sums while they are still in registers ([`pattern`],
//! [`scores_gradient`]), with the causal and window masks applied lane by lane, and the
//! exponential runs on fused multiply-adds (Cephes' steps, 18 vector operations where the
//! auto-vectorised one takes 28; [`exp_seen`] is the forward pass's). The products alone run
//! at gemm's speed, no faster (`time_the_tile_products`: 83–111 GFLOP/s a core, either way);
//! the gain is the passes saved (docs/performance.md, round 8).
//!
//! Each operand is read where it lies: A one element at a time, broadcast to a vector; B one
//! row of up to 64 columns at a time, as four vectors. A register tile of R rows × 16·J
//! columns takes R·J multiply-adds for every R + J loads and stays in registers while the inner
//! index runs. Every sum runs over the inner index in order, one fused multiply-add at a time,
//! so a result depends on neither the thread count nor the tile sizes.
//!
//! B's columns must be contiguous (`col_stride` 1): the tiled attention hands over Kᵀ and Vᵀ as
//! transposed copies ([`transposed`]). Anything else, any CPU below AVX-512 (or a
//! `TINYGPT_VECTOR_LEVEL` held lower), and `TINYGPT_TILE_GEMM=1` (to time the two side by
//! side) go through gemm and the row passes of [`super::tiles`].

use std::mem::MaybeUninit;

use super::fresh::rewritable;
use super::math::{Level, level};
use super::matrix::{Matrix, multiply as gemm_multiply};
use super::tiles::{exp_minus, scores_grad, seen_columns};

/// Which keys a tile's queries see: query `first_query + r` sees key `first_key + c` when it
/// is no later and within the last `window` positions (all when 0).
#[derive(Clone, Copy)]
pub(super) struct Seen {
    pub first_query: usize,
    pub first_key: usize,
    pub window: usize,
}

impl Seen {
    /// The columns `start..end` that row `r` sees, among `n`.
    fn columns(&self, r: usize, n: usize) -> (usize, usize) {
        seen_columns(self.first_query + r, self.window, self.first_key, n)
    }
}

/// What becomes of a product's sums before they are stored.
#[derive(Clone, Copy)]
enum Finish<'a> {
    /// `scale·sum`, or added to what is there.
    Store { accumulate: bool },
    /// The pattern recomputed: `e^(scale·sum − shift[r])` where row r sees the column, else 0.
    Pattern { shift: &'a [f32], seen: Seen },
    /// The scores' gradient from the pattern's: `scale·P ⊙ (sum − delta[r])`, P dense with the
    /// output's row stride.
    ScoresGrad {
        pattern: &'a [f32],
        delta: &'a [f32],
    },
}

/// `out[m×n] = scale · lhs[m×k] · rhs[k×n]`, or `+=` when `accumulate`, as
/// [`super::matrix::multiply`] (the same contract: without `accumulate` nothing is read from
/// `out`), on this file's AVX-512 tiles when they apply and through gemm otherwise.
pub(super) fn multiply(
    out: &mut [MaybeUninit<f32>],
    out_stride: usize,
    dims: [usize; 3],
    lhs: Matrix,
    rhs: Matrix,
    scale: f32,
    accumulate: bool,
) {
    let [m, n, k] = dims;
    if !(applies(rhs) && m > 0 && n > 0 && k > 0) {
        return gemm_multiply(out, out_stride, dims, lhs, rhs, scale, accumulate);
    }
    on_tiles(
        out,
        out_stride,
        dims,
        [lhs, rhs],
        scale,
        Finish::Store { accumulate },
    );
}

/// A tile of the pattern recomputed, `P = e^(scale·Q·Kᵀ − shift)` row by row (`shift`: each
/// query's log-sum-exp), 0 where a query does not see the key: `out` is `[m, n]`, row-major.
pub(super) fn pattern(
    out: &mut [f32],
    dims: [usize; 3],
    [query, keys_t]: [Matrix; 2],
    scale: f32,
    shift: &[f32],
    seen: Seen,
) {
    let [m, n, k] = dims;
    assert!(shift.len() >= m);
    if !(applies(keys_t) && m > 0 && n > 0 && k > 0) {
        gemm_multiply(rewritable(out), n, dims, query, keys_t, scale, false);
        for (r, row) in out.chunks_exact_mut(n).take(m).enumerate() {
            let (start, end) = seen.columns(r, n);
            exp_minus(row, start, end, shift[r]);
        }
        return;
    }
    let finish = Finish::Pattern { shift, seen };
    on_tiles(rewritable(out), n, dims, [query, keys_t], scale, finish);
}

/// A tile of the scores' gradient, `dS = scale·P ⊙ (dO·Vᵀ − delta)` row by row (`delta`: each
/// query's rowsum(dO ⊙ O)), from the tile's pattern `P` (`[m, n]`, row-major, as `out`).
pub(super) fn scores_gradient(
    out: &mut [f32],
    dims: [usize; 3],
    [d_out, values_t]: [Matrix; 2],
    pattern: &[f32],
    delta: &[f32],
    scale: f32,
) {
    let [m, n, k] = dims;
    assert!(delta.len() >= m && pattern.len() >= m * n);
    if !(applies(values_t) && m > 0 && n > 0 && k > 0) {
        gemm_multiply(rewritable(out), n, dims, d_out, values_t, 1.0, false);
        let rows = out.chunks_exact_mut(n).zip(pattern.chunks_exact(n));
        for (r, (ds, p)) in rows.take(m).enumerate() {
            scores_grad(ds, p, delta[r], scale);
        }
        return;
    }
    let finish = Finish::ScoresGrad { pattern, delta };
    on_tiles(rewritable(out), n, dims, [d_out, values_t], scale, finish);
}

/// [`super::tiles::exp_seen`] (one row of the forward pass's scores to `e^(s − m')`, the new
/// maximum and the row's sum) with the exponential on fused multiply-adds where the tiles run.
pub(super) fn exp_seen(row: &mut [f32], start: usize, end: usize, max: f32) -> (f32, f32) {
    #[cfg(target_arch = "x86_64")]
    if tiles_on() {
        // SAFETY: `tiles_on` saw AVX-512 on this CPU.
        return unsafe { x86::exp_seen(row, start, end, max) };
    }
    super::tiles::exp_seen(row, start, end, max)
}

/// The product on this file's AVX-512 tiles, for a CPU where [`applies`] holds.
fn on_tiles(
    out: &mut [MaybeUninit<f32>],
    out_stride: usize,
    [m, n, k]: [usize; 3],
    [lhs, rhs]: [Matrix; 2],
    scale: f32,
    finish: Finish,
) {
    assert!(out.len() >= (m - 1) * out_stride + n);
    assert!(lhs.covers(m, k) && rhs.covers(k, n));
    #[cfg(target_arch = "x86_64")]
    {
        let (a_rows, a_inner) = lhs.strides();
        let operands = x86::Operands {
            c: out.as_mut_ptr().cast(),
            c_stride: out_stride,
            a: lhs.start(),
            a_rows,
            a_inner,
            b: rhs.start(),
            b_rows: rhs.strides().0,
            k,
            scale,
            finish,
        };
        // SAFETY: `applies` saw AVX-512 on this CPU; the asserts above put every element the
        // product reads (m×k of lhs, k×n of rhs, m×n of a pattern, which its callers check)
        // and writes (m×n of out) inside the buffers.
        unsafe { x86::multiply(&operands, m, n) }
    }
}

/// Whether the AVX-512 tiles take a product with this right-hand side.
fn applies(rhs: Matrix) -> bool {
    tiles_on() && rhs.strides().1 == 1
}

/// Whether this thread runs the AVX-512 tiles.
fn tiles_on() -> bool {
    static GEMM: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let gemm = *GEMM.get_or_init(|| std::env::var("TINYGPT_TILE_GEMM").is_ok());
    !gemm && cfg!(target_arch = "x86_64") && level() == Level::Avx512
}

/// Row stride of [`transposed`] copies for `rows` columns of the original: padded past a
/// multiple of 16 so that the copy's rows, read together by one tile, do not all fall in the
/// same cache sets (a power-of-two stride such as 8,192 floats would).
pub(super) fn transposed_stride(rows: usize) -> usize {
    rows.next_multiple_of(16) + 16
}

/// `m`'s first `rows` rows and `cols` columns transposed: `cols` rows of
/// [`transposed_stride`]`(rows)` floats, the padding zero.
pub(super) fn transposed(m: Matrix, rows: usize, cols: usize) -> Vec<f32> {
    let stride = transposed_stride(rows);
    let mut out = vec![0.0f32; cols * stride];
    for (c, row) in out.chunks_exact_mut(stride).enumerate() {
        for (r, x) in row[..rows].iter_mut().enumerate() {
            *x = m.at(r, c);
        }
    }
    out
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::Finish;

    const LANES: usize = 16;
    /// Columns per tile at most: four vectors.
    const WIDTH: usize = 4 * LANES;

    /// Where the operands lie: A's element (r, p) at `a + r·a_rows + p·a_inner`, B's (p, j) at
    /// `b + p·b_rows + j`, C's (r, j) at `c + r·c_stride + j`.
    pub(super) struct Operands<'a> {
        pub c: *mut f32,
        pub c_stride: usize,
        pub a: *const f32,
        pub a_rows: isize,
        pub a_inner: isize,
        pub b: *const f32,
        pub b_rows: isize,
        pub k: usize,
        pub scale: f32,
        pub finish: Finish<'a>,
    }

    /// Rows of a tile for J vectors of columns: R·J accumulators, at most 24 of the 32
    /// registers, so B's J vectors and A's broadcast fit beside them.
    macro_rules! row_tiles {
        ($op:expr, $m:expr, $col:expr, $mask:expr, $j:literal, [$($r:literal),+]) => {{
            const MOST: usize = [$($r),+].len();
            let mut row = 0;
            while row < $m {
                let rows = ($m - row).min(MOST);
                // SAFETY: rows row..row+rows and the tile's columns lie inside the product.
                unsafe {
                    match rows {
                        $($r => tile::<$r, $j>($op, row, $col, $mask),)+
                        _ => unreachable!(),
                    }
                }
                row += rows;
            }
        }};
    }

    /// The product, in tiles of up to 64 columns (the last one masked) and R rows.
    ///
    /// # Safety
    /// The CPU has AVX-512F; `op` describes an m×n product whose every element read and written
    /// lies inside live buffers, and no other thread touches C's elements meanwhile.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn multiply(op: &Operands, m: usize, n: usize) {
        let mut col = 0;
        while col < n {
            let width = (n - col).min(WIDTH);
            let vectors = width.div_ceil(LANES);
            let tail = width - (vectors - 1) * LANES;
            let mask: __mmask16 = if tail == LANES { !0 } else { (1 << tail) - 1 };
            match vectors {
                1 => row_tiles!(op, m, col, mask, 1, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]),
                2 => row_tiles!(op, m, col, mask, 2, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]),
                3 => row_tiles!(op, m, col, mask, 3, [1, 2, 3, 4, 5, 6, 7, 8]),
                _ => row_tiles!(op, m, col, mask, 4, [1, 2, 3, 4, 5, 6]),
            }
            col += width;
        }
    }

    /// C's rows `row..row + R`, columns `col..` (J vectors, the last under `mask`): the sums
    /// over p held in registers, then scaled and stored (added to C's values when
    /// accumulating).
    #[target_feature(enable = "avx512f")]
    unsafe fn tile<const R: usize, const J: usize>(
        op: &Operands,
        row: usize,
        col: usize,
        mask: __mmask16,
    ) {
        let masks: [__mmask16; J] = std::array::from_fn(|j| if j + 1 < J { !0 } else { mask });
        let mut acc = [[_mm512_setzero_ps(); J]; R];
        // SAFETY (every pointer below): the caller vouches that rows row..row+R of A over
        // p < k, rows p < k of B over the tile's columns, and the tile of C lie in their
        // buffers; masked lanes are neither read nor written.
        unsafe {
            let a = op.a.offset(row as isize * op.a_rows);
            let b = op.b.add(col);
            for p in 0..op.k {
                let b_row = b.offset(p as isize * op.b_rows);
                let columns: [__m512; J] =
                    std::array::from_fn(|j| _mm512_maskz_loadu_ps(masks[j], b_row.add(j * LANES)));
                let a_column = a.offset(p as isize * op.a_inner);
                for (r, sums) in acc.iter_mut().enumerate() {
                    let x = _mm512_set1_ps(*a_column.offset(r as isize * op.a_rows));
                    for (sum, column) in sums.iter_mut().zip(&columns) {
                        *sum = _mm512_fmadd_ps(x, *column, *sum);
                    }
                }
            }
            let scale = _mm512_set1_ps(op.scale);
            for (r, sums) in acc.iter().enumerate() {
                let c_row = op.c.add((row + r) * op.c_stride + col);
                for (j, sum) in sums.iter().enumerate() {
                    let at = c_row.add(j * LANES);
                    let value = match op.finish {
                        Finish::Store { accumulate: true } => {
                            _mm512_fmadd_ps(*sum, scale, _mm512_maskz_loadu_ps(masks[j], at))
                        }
                        Finish::Store { accumulate: false } => _mm512_mul_ps(*sum, scale),
                        Finish::Pattern { shift, seen } => {
                            let (start, end) = seen.columns(row + r, usize::MAX);
                            let lanes = lanes_between(start, end, col + j * LANES);
                            let shift = _mm512_set1_ps(*shift.get_unchecked(row + r));
                            let x = _mm512_fmsub_ps(*sum, scale, shift);
                            _mm512_maskz_mov_ps(lanes, exp(x))
                        }
                        Finish::ScoresGrad { pattern, delta } => {
                            let p = pattern
                                .as_ptr()
                                .add((row + r) * op.c_stride + col + j * LANES);
                            let p = _mm512_maskz_loadu_ps(masks[j], p);
                            let delta = _mm512_set1_ps(*delta.get_unchecked(row + r));
                            _mm512_mul_ps(_mm512_mul_ps(scale, p), _mm512_sub_ps(*sum, delta))
                        }
                    };
                    _mm512_mask_storeu_ps(at, masks[j], value);
                }
            }
        }
    }

    /// The lanes of the vector at column `col` whose columns lie in `start..end`.
    fn lanes_between(start: usize, end: usize, col: usize) -> __mmask16 {
        let below = |limit: usize| -> u32 {
            match limit.saturating_sub(col) {
                n if n >= LANES => 0xFFFF,
                n => (1u32 << n) - 1,
            }
        };
        (below(end) & !below(start)) as __mmask16
    }

    /// e^x in every lane: [`super::super::math::exp`]'s steps (Cephes' `expf`), with fused
    /// multiply-adds.
    #[target_feature(enable = "avx512f")]
    fn exp(x: __m512) -> __m512 {
        let f = _mm512_set1_ps;
        let x = _mm512_min_ps(_mm512_max_ps(x, f(-87.0)), f(88.0));
        let n = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC }>(
            _mm512_fmadd_ps(x, f(std::f32::consts::LOG2_E), f(0.5)),
        );
        let r = _mm512_fnmadd_ps(n, f(0.693_359_4), x);
        let r = _mm512_fmadd_ps(n, f(2.121_944_4e-4), r);
        let mut poly = f(1.987_569_1e-4);
        for c in [
            1.398_199_9e-3,
            8.333_452e-3,
            4.166_579_6e-2,
            1.666_666_5e-1,
            0.5,
        ] {
            poly = _mm512_fmadd_ps(poly, r, f(c));
        }
        let e_r = _mm512_add_ps(_mm512_fmadd_ps(poly, _mm512_mul_ps(r, r), r), f(1.0));
        let n = _mm512_cvtps_epi32(n);
        let two_n = _mm512_slli_epi32::<23>(_mm512_add_epi32(n, _mm512_set1_epi32(127)));
        _mm512_mul_ps(e_r, _mm512_castsi512_ps(two_n))
    }

    /// See [`super::exp_seen`]: the maximum over `start..end`, then `e^(s − m')` and its sum in
    /// one pass (sixteen partial sums, added lane by lane at the end), the rest of the row 0.
    ///
    /// # Safety
    /// The CPU has AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn exp_seen(
        row: &mut [f32],
        start: usize,
        end: usize,
        max: f32,
    ) -> (f32, f32) {
        let seen = &mut row[start..end];
        let mut most = _mm512_set1_ps(max);
        let mut chunks = seen.chunks_exact(LANES);
        for chunk in &mut chunks {
            // SAFETY: the chunk holds 16 floats.
            most = _mm512_max_ps(most, unsafe { _mm512_loadu_ps(chunk.as_ptr()) });
        }
        let new_max = chunks
            .remainder()
            .iter()
            .fold(_mm512_reduce_max_ps(most), |m, &x| m.max(x));
        let shift = _mm512_set1_ps(new_max);
        let mut sums = _mm512_setzero_ps();
        for chunk in seen.chunks_mut(LANES) {
            let lanes: __mmask16 = ((1u32 << chunk.len()) - 1) as __mmask16;
            // SAFETY: the mask covers the chunk's floats only.
            unsafe {
                let x = _mm512_maskz_loadu_ps(lanes, chunk.as_ptr());
                let e = _mm512_maskz_mov_ps(lanes, exp(_mm512_sub_ps(x, shift)));
                _mm512_mask_storeu_ps(chunk.as_mut_ptr(), lanes, e);
                sums = _mm512_add_ps(sums, e);
            }
        }
        row[..start].fill(0.0);
        row[end..].fill(0.0);
        (new_max, _mm512_reduce_add_ps(sums))
    }
}
