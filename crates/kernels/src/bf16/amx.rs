//! The bf16 product of the linear maps on AMX tiles (`TDPBF16PS`), where the CPU has them:
//! eight tile registers of 16 rows × 64 bytes, one instruction multiplying a 16×32 bf16 tile
//! of A by a 32×16 one of B into 16×16 f32 sums, 1,024 FLOPs per core per cycle, eight times
//! `VDPBF16PS` on two ports.
//!
//! The operands are those of the `VDPBF16PS` product (bf16 rounded to nearest-even from f32,
//! every sum in f32), but the sums are not the same: measured here (a Sapphire Rapids Xeon),
//! `TDPBF16PS` adds a tile's 32 products to C neither in the SDM's order (even then odd, each
//! rounded) nor in any other sequential order of f32 additions tried (2 000 of 51 200 sums of
//! random tiles disagreed with the best of them), and Intel documents no other. So this kernel
//! is tested against the exact sum of the same bf16 products (in f64), within a bound that
//! every order of f32 additions meets, rather than to the bit; it is deterministic (each sum
//! is one core's, over the pairs in order, whatever the thread count), so runs and resumes on
//! the same CPU repeat to the bit. `TINYGPT_VECTOR_LEVEL=avx512bf16` keeps a bf16 run on the
//! `VDPBF16PS` kernel, whose bits every AVX512_BF16 CPU shares.
//!
//! Rust's AMX intrinsics are unstable (rust-lang/rust#126622), so the tiles are reached with
//! `asm!`; Linux grants a process the tiles' 8 KB of state only on request (`arch_prctl`).

use std::mem::MaybeUninit;

use rayon::prelude::*;

use super::packing::{LANES, PackedB};
pub use crate::features::amx_permitted as permitted;
use crate::fresh::SharedRows;
use crate::matrix::Matrix;
use packing::{PAIRS, TileA};

/// Tiles of 16 rows of C per task: 256 rows, whose A (k = 1536: 768 KB in bf16) stays in the
/// core's L2 cache while the task's thread runs over the panels of B.
const CHUNK_TILES: usize = 16;

/// `out = lhs·rhs (+ bias in every row)` on tiles, lhs m×k and rhs k×n read in place at any
/// strides, `out` m×n row-major written in full, on every thread of the pool. The work is
/// shared out as chunks of 256 rows × panels of 32 columns, chunk by chunk, so that each
/// thread's consecutive tasks reuse one chunk of A from L2.
///
/// # Panics
/// Where [`permitted`] is false.
pub(crate) fn product(
    out: &mut [MaybeUninit<f32>],
    [m, k, n]: [usize; 3],
    lhs: Matrix,
    rhs: Matrix,
    bias: Option<&[f32]>,
) {
    assert!(
        permitted(),
        "an AMX product where this process has no AMX tiles"
    );
    assert_eq!(out.len(), m * n);
    assert!(m > 0 && k > 0 && n > 0);
    let a = TileA::new(lhs, m, k);
    let b = PackedB::padded(rhs, [k, n], true, PAIRS);
    let blocks = n.div_ceil(LANES);
    // The bias as whole blocks of 16, each tile's starting rows (or none: zeros).
    let bias: Option<Vec<f32>> = bias.map(|bias| {
        let mut padded = bias.to_vec();
        padded.resize(blocks * LANES, 0.0);
        padded
    });
    let job = tiles::Job {
        a: &a,
        b: &b,
        bias: bias.as_deref(),
        rows: m,
        cols: n,
    };
    let out = SharedRows::new(out);
    let panels = blocks.div_ceil(tiles::BLOCKS);
    let chunks = m.div_ceil(PAIRS * CHUNK_TILES);
    (0..chunks * panels).into_par_iter().for_each(|task| {
        let (chunk, panel) = (task / panels, task % panels);
        let first_row = chunk * CHUNK_TILES * LANES;
        let rows = (CHUNK_TILES * LANES).min(m - first_row);
        let first_col = panel * tiles::BLOCKS * LANES;
        let cols = (tiles::BLOCKS * LANES).min(n - first_col);
        let c = out.block(first_row * n + first_col, [rows, cols], n);
        // SAFETY: `block` checked that the task's rows × columns lie in C, rows n apart,
        // which this task alone writes; this process may run tiles (asserted above).
        unsafe { tiles::panel(c.cast(), n, &job, first_row..first_row + rows, panel) };
    });
}

/// FLOPs of one round of [`peak_loop`]: four tiles of 16 × 16 sums, each over 32 products.
pub(crate) const PEAK_FLOPS_PER_ROUND: usize = 4 * 16 * 16 * 32 * 2;

/// `iterations` rounds of four independent `TDPBF16PS` in registers (the AMX peak's loop).
///
/// # Panics
/// Where [`permitted`] is false.
pub(crate) fn peak_loop(iterations: u64) -> f32 {
    assert!(permitted(), "AMX tiles where this process has none");
    // SAFETY: this process may run tiles (asserted).
    unsafe { tiles::peak_loop(iterations) }
}

mod packing;
mod tiles;

#[cfg(test)]
mod tests;
