//! The tile loops: C in four 16×16 tiles (32 rows × 32 columns), two tiles of A and two of
//! B loaded per 16 pairs, four `TDPBF16PS`. Tile registers are outside Rust's register
//! allocator (nothing else in this program uses them), so each instruction is its own `asm!`
//! and their state carries from one to the next on this thread.

use std::arch::asm;
use std::ops::Range;

use super::super::packing::{LANES, PackedB};
use super::packing::{PAIRS, TILE_WORDS, TileA};

/// Blocks of 16 columns per panel (two C tiles across).
pub(super) const BLOCKS: usize = 2;

/// One product for the tiles: C (`rows` × `cols`) = A·B (+ the bias, padded to B's blocks).
pub(super) struct Job<'a> {
    pub(super) a: &'a TileA,
    pub(super) b: &'a PackedB,
    pub(super) bias: Option<&'a [f32]>,
    pub(super) rows: usize,
    pub(super) cols: usize,
}

/// The tile shape `ldtilecfg` reads: palette 1, every tile 16 rows × 64 bytes.
#[repr(C, align(64))]
struct Config {
    palette: u8,
    start_row: u8,
    reserved: [u8; 14],
    bytes_per_row: [u16; 16],
    rows: [u8; 16],
}

const CONFIG: Config = Config {
    palette: 1,
    start_row: 0,
    reserved: [0; 14],
    bytes_per_row: [64, 64, 64, 64, 64, 64, 64, 64, 0, 0, 0, 0, 0, 0, 0, 0],
    rows: [16, 16, 16, 16, 16, 16, 16, 16, 0, 0, 0, 0, 0, 0, 0, 0],
};

/// C's rows `rows` × panel `panel` (two blocks of 16 columns, cut at the job's columns), into
/// `c`: their first element, rows `c_stride` apart; 32 rows at a time, each over all pairs.
///
/// # Safety
/// This process may run AMX tiles; `c` holds those rows × columns, which no other thread
/// touches; the job's operands cover them.
pub(super) unsafe fn panel(
    c: *mut f32,
    c_stride: usize,
    job: &Job,
    rows: Range<usize>,
    panel: usize,
) {
    let first = panel * BLOCKS;
    let wide = BLOCKS.min(job.cols.div_ceil(LANES) - first);
    // SAFETY: the configuration is a valid palette-1 one; the tiles are this thread's.
    unsafe { asm!("ldtilecfg [{}]", in(reg) &CONFIG, options(nostack, readonly)) };
    let mut row = rows.start;
    while row < rows.end {
        let tall = (rows.end - row).div_ceil(PAIRS).min(2);
        let at = (c.wrapping_add((row - rows.start) * c_stride), row, first);
        // SAFETY: as the caller vouches, for these rows and blocks.
        unsafe {
            match (tall, wide) {
                (2, 2) => block::<2, 2>(job, c_stride, at),
                (2, _) => block::<2, 1>(job, c_stride, at),
                (_, 2) => block::<1, 2>(job, c_stride, at),
                _ => block::<1, 1>(job, c_stride, at),
            }
        }
        row += tall * PAIRS;
    }
    // SAFETY: drops this thread's tile state (the kernel need not save it any more).
    unsafe { asm!("tilerelease", options(nostack, nomem)) };
}

/// `T` rows of tiles × `W` blocks from C's `row` and block `first` (at `c`): sums from the
/// bias (each tile loads the bias's 16 columns into every row: stride 0) or zero, over every
/// 16 pairs, then stored, through a buffer where the tile runs past C.
#[inline(always)]
unsafe fn block<const T: usize, const W: usize>(
    job: &Job,
    c_stride: usize,
    (c, row, first): (*mut f32, usize, usize),
) {
    let (a, b) = (job.a, job.b);
    let a_row = |r: usize| {
        let tile_row = row / PAIRS + r;
        a.words
            .as_ptr()
            .wrapping_add(tile_row * a.steps * TILE_WORDS)
    };
    let b_block = |w: usize| b.words.as_ptr().wrapping_add((first + w) * b.pairs * LANES);
    let a_stride = PAIRS * 4;
    // SAFETY (every tile load): A's padded rows row.. and B's padded pairs exist for every
    // 16 pairs (both are packed to multiples of 16); the bias has whole blocks.
    unsafe {
        match job.bias {
            Some(bias) => {
                let start = |w: usize| bias.as_ptr().add((first + w) * LANES);
                asm!("tileloadd tmm0, [{}+{}]", in(reg) start(0), in(reg) 0usize, options(nostack, readonly));
                if W == 2 {
                    asm!("tileloadd tmm1, [{}+{}]", in(reg) start(1), in(reg) 0usize, options(nostack, readonly));
                }
                if T == 2 {
                    asm!("tileloadd tmm2, [{}+{}]", in(reg) start(0), in(reg) 0usize, options(nostack, readonly));
                }
                if T == 2 && W == 2 {
                    asm!("tileloadd tmm3, [{}+{}]", in(reg) start(1), in(reg) 0usize, options(nostack, readonly));
                }
            }
            None => asm!(
                "tilezero tmm0",
                "tilezero tmm1",
                "tilezero tmm2",
                "tilezero tmm3",
                options(nostack, nomem)
            ),
        }
        for step in 0..a.steps {
            let (p, tile) = (step * PAIRS, step * TILE_WORDS);
            asm!("tileloadd tmm4, [{}+{}]", in(reg) a_row(0).add(tile), in(reg) a_stride, options(nostack, readonly));
            if T == 2 {
                asm!("tileloadd tmm5, [{}+{}]", in(reg) a_row(1).add(tile), in(reg) a_stride, options(nostack, readonly));
            }
            asm!("tileloadd tmm6, [{}+{}]", in(reg) b_block(0).add(p * LANES), in(reg) 64usize, options(nostack, readonly));
            if W == 2 {
                asm!("tileloadd tmm7, [{}+{}]", in(reg) b_block(1).add(p * LANES), in(reg) 64usize, options(nostack, readonly));
            }
            asm!("tdpbf16ps tmm0, tmm4, tmm6", options(nostack, nomem));
            if W == 2 {
                asm!("tdpbf16ps tmm1, tmm4, tmm7", options(nostack, nomem));
            }
            if T == 2 {
                asm!("tdpbf16ps tmm2, tmm5, tmm6", options(nostack, nomem));
            }
            if T == 2 && W == 2 {
                asm!("tdpbf16ps tmm3, tmm5, tmm7", options(nostack, nomem));
            }
        }
    }
    for r in 0..T {
        for w in 0..W {
            let tall = (job.rows - row - r * PAIRS).min(PAIRS);
            let wide = (job.cols - (first + w) * LANES).min(LANES);
            let corner = c.wrapping_add(r * PAIRS * c_stride + w * LANES);
            // SAFETY: a whole tile lies in C (the caller's) when it is 16 × 16; else it goes
            // to the buffer and only C's part is copied.
            unsafe {
                if tall == PAIRS && wide == LANES {
                    store(2 * r + w, corner, c_stride * 4);
                } else {
                    let mut tile = [0.0f32; PAIRS * LANES];
                    store(2 * r + w, tile.as_mut_ptr(), LANES * 4);
                    for i in 0..tall {
                        std::ptr::copy_nonoverlapping(
                            tile.as_ptr().add(i * LANES),
                            corner.add(i * c_stride),
                            wide,
                        );
                    }
                }
            }
        }
    }
}

/// Stores C tile `tile` (0..4) at `at`, rows `stride` bytes apart.
#[inline(always)]
unsafe fn store(tile: usize, at: *mut f32, stride: usize) {
    // SAFETY: the caller vouches for 16 rows of 64 bytes at `at`, `stride` apart.
    unsafe {
        match tile {
            0 => asm!("tilestored [{}+{}], tmm0", in(reg) at, in(reg) stride, options(nostack)),
            1 => asm!("tilestored [{}+{}], tmm1", in(reg) at, in(reg) stride, options(nostack)),
            2 => asm!("tilestored [{}+{}], tmm2", in(reg) at, in(reg) stride, options(nostack)),
            _ => asm!("tilestored [{}+{}], tmm3", in(reg) at, in(reg) stride, options(nostack)),
        }
    }
}

/// `iterations` rounds of four independent `TDPBF16PS` (C tiles 0–3 from A tiles 4–5 and
/// B tiles 6–7, all zero) in registers: the AMX peak's loop. Returns an element of C so that
/// nothing is optimised away.
///
/// # Safety
/// This process may run AMX tiles.
pub(super) unsafe fn peak_loop(iterations: u64) -> f32 {
    let mut out = [0.0f32; PAIRS * LANES];
    // SAFETY: a valid configuration; the tiles are this thread's; the store fits `out`.
    unsafe {
        asm!("ldtilecfg [{}]", in(reg) &CONFIG, options(nostack, readonly));
        asm!(
            "tilezero tmm0",
            "tilezero tmm1",
            "tilezero tmm2",
            "tilezero tmm3",
            "tilezero tmm4",
            "tilezero tmm5",
            "tilezero tmm6",
            "tilezero tmm7",
            options(nostack, nomem)
        );
        for _ in 0..iterations {
            asm!(
                "tdpbf16ps tmm0, tmm4, tmm6",
                "tdpbf16ps tmm1, tmm4, tmm7",
                "tdpbf16ps tmm2, tmm5, tmm6",
                "tdpbf16ps tmm3, tmm5, tmm7",
                options(nostack, nomem)
            );
        }
        store(0, out.as_mut_ptr(), LANES * 4);
        asm!("tilerelease", options(nostack, nomem));
    }
    out[0]
}
