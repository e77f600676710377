//! Output buffers that a kernel writes in full, handed out without zeroing them first.
//!
//! `vec![0.0; n]` zeroes memory that the kernel then overwrites: a whole extra pass over every
//! output, and on a machine whose memory is slow next to its FMA units that pass is not free
//! (`memset` was 4.8% of a default training step). A buffer here starts as
//! `MaybeUninit<f32>`, the kernel writes each element, and [`written`] turns it into values.
//! In this crate's own tests a fresh buffer is full of NaN instead, so an element a kernel
//! forgets to write shows up in the comparisons with burn's plain ops. [`SharedRows`] hands
//! out blocks of one such buffer to threads that each write their own.

use std::mem::{ManuallyDrop, MaybeUninit};

/// `len` values still to be written.
pub(crate) fn unwritten(len: usize) -> Vec<MaybeUninit<f32>> {
    if cfg!(test) {
        return vec![MaybeUninit::new(f32::NAN); len];
    }
    let mut values = Vec::with_capacity(len);
    // SAFETY: `MaybeUninit` needs no initialisation, and the capacity is `len`.
    unsafe { values.set_len(len) };
    values
}

/// The values, now that each one has been written.
///
/// # Safety
/// Every element of `values` must have been written.
pub(crate) unsafe fn written(values: Vec<MaybeUninit<f32>>) -> Vec<f32> {
    let mut values = ManuallyDrop::new(values);
    let (pointer, len, capacity) = (values.as_mut_ptr(), values.len(), values.capacity());
    // SAFETY: `MaybeUninit<f32>` has the layout of `f32`, the allocation is handed over whole,
    // and the caller vouches that every element is an initialised `f32`.
    unsafe { Vec::from_raw_parts(pointer.cast::<f32>(), len, capacity) }
}

/// Part of a buffer, seen as the values written into it.
///
/// # Safety
/// Every element of `values` must have been written.
pub(crate) unsafe fn written_part(values: &mut [MaybeUninit<f32>]) -> &mut [f32] {
    // SAFETY: same layout, and the caller vouches that every element is initialised.
    unsafe { &mut *(values as *mut [MaybeUninit<f32>] as *mut [f32]) }
}

/// Values already written, seen as a buffer to write again (for kernels that take either).
pub(crate) fn rewritable(values: &mut [f32]) -> &mut [MaybeUninit<f32>] {
    // SAFETY: same layout; only initialised `f32`s can be written through `MaybeUninit::write`,
    // so the values stay initialised.
    unsafe { &mut *(values as *mut [f32] as *mut [MaybeUninit<f32>]) }
}

/// A buffer that several threads write at once, each its own elements.
pub(crate) struct SharedRows {
    start: *mut MaybeUninit<f32>,
    len: usize,
}

// SAFETY: the buffer is only reached through `block`'s pointers, through which each caller
// writes only its own elements.
unsafe impl Sync for SharedRows {}

impl SharedRows {
    pub(crate) fn new(buffer: &mut [MaybeUninit<f32>]) -> Self {
        Self {
            start: buffer.as_mut_ptr(),
            len: buffer.len(),
        }
    }

    /// A pointer to the `rows × cols` block that starts at element `offset`, its rows
    /// `row_stride` apart, after checking that the whole block lies inside the buffer.
    pub(crate) fn block(
        &self,
        offset: usize,
        [rows, cols]: [usize; 2],
        row_stride: usize,
    ) -> *mut MaybeUninit<f32> {
        assert!(rows > 0 && cols > 0 && offset + (rows - 1) * row_stride + cols <= self.len);
        // SAFETY: `offset` lies inside the buffer (the block's first element).
        unsafe { self.start.add(offset) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fresh_buffer_is_nan_in_tests_so_an_unwritten_element_cannot_pass_for_zero() {
        let values = unwritten(37);
        assert_eq!(values.len(), 37);
        // SAFETY: in tests `unwritten` initialises every element (to NaN).
        let values = unsafe { written(values) };
        assert!(values.iter().all(|v| v.is_nan()));
    }

    #[test]
    fn written_values_come_back_in_place_and_rewritable_writes_through() {
        let mut buffer = unwritten(5);
        for (i, v) in buffer.iter_mut().enumerate() {
            v.write(i as f32 * 1.5);
        }
        // SAFETY: all five were written above.
        let mut values = unsafe { written(buffer) };
        assert_eq!(values, [0.0, 1.5, 3.0, 4.5, 6.0]);
        rewritable(&mut values)[2].write(-1.0);
        assert_eq!(values, [0.0, 1.5, -1.0, 4.5, 6.0]);
        let mut part = unwritten(3);
        part[1].write(2.0);
        // SAFETY: element 1 was just written.
        let middle = unsafe { written_part(&mut part[1..2]) };
        middle[0] *= 3.0;
        assert_eq!(middle, [6.0]);
    }
}
