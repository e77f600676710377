//! What the bf16 product's register tiles are given: the tile's shape and one product's
//! operands. The driver (matmul.rs) fills it and the tiles (x86.rs) read it, so the tiles
//! need nothing from the driver.

use super::super::packing::{PackedA, PackedB};

/// Rows of C per tile.
pub(super) const ROWS: usize = 6;
/// Blocks of 16 columns per tile.
pub(super) const BLOCKS: usize = 4;

/// One product for the tiles: A's pairs `0..pairs` with B's `b_first_pair..`, C's first
/// `cols` columns (B's from block `b_first_block` on); each sum starts at the bias or +0, or
/// at C's value when `accumulate`.
#[derive(Clone, Copy)]
pub(super) struct Job<'a> {
    pub(super) a: &'a PackedA,
    pub(super) b: &'a PackedB,
    pub(super) b_first_pair: usize,
    pub(super) b_first_block: usize,
    pub(super) pairs: usize,
    pub(super) cols: usize,
    pub(super) bias: Option<&'a [f32]>,
    pub(super) scale: f32,
    pub(super) accumulate: bool,
}
