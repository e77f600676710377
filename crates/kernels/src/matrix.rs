//! Strided matrices read in place, and their product through the gemm crate (the one
//! burn-flex itself uses), on the calling thread.

use std::mem::MaybeUninit;

use burn::backend::flex::FlexTensor;

/// A read-only f32 matrix inside a buffer: element (r, c) is at
/// `offset + r·row_stride + c·col_stride`.
#[derive(Clone, Copy)]
pub(super) struct Matrix<'a> {
    data: &'a [f32],
    offset: isize,
    row_stride: isize,
    col_stride: isize,
}

impl<'a> Matrix<'a> {
    pub(super) fn new(
        data: &'a [f32],
        offset: isize,
        row_stride: isize,
        col_stride: isize,
    ) -> Self {
        Self {
            data,
            offset,
            row_stride,
            col_stride,
        }
    }

    /// Row-major values with `cols` columns.
    pub(super) fn dense(data: &'a [f32], cols: usize) -> Self {
        Self::new(data, 0, cols as isize, 1)
    }

    /// A 2-D tensor read in place through its layout.
    pub(super) fn of(tensor: &'a FlexTensor) -> Self {
        let layout = tensor.layout();
        let strides = layout.strides();
        Self::new(
            tensor.storage::<f32>(),
            layout.start_offset() as isize,
            strides[0],
            strides[1],
        )
    }

    /// Matrix `i` of a 3-D tensor `[n, rows, cols]`, read in place through its layout.
    pub(super) fn of_batch(tensor: &'a FlexTensor, i: usize) -> Self {
        let layout = tensor.layout();
        let strides = layout.strides();
        let offset = layout.start_offset() as isize + i as isize * strides[0];
        Self::new(tensor.storage::<f32>(), offset, strides[1], strides[2])
    }

    /// The submatrix from row `r` and column `c` on.
    pub(super) fn from(self, r: usize, c: usize) -> Self {
        Self {
            offset: self.offset + r as isize * self.row_stride + c as isize * self.col_stride,
            ..self
        }
    }

    /// Element (r, c).
    pub(super) fn at(&self, r: usize, c: usize) -> f32 {
        let index = self.offset + r as isize * self.row_stride + c as isize * self.col_stride;
        self.data[index as usize]
    }

    /// Row `r`'s first `len` elements, when a row's elements are adjacent in memory.
    pub(super) fn row_slice(&self, r: usize, len: usize) -> Option<&'a [f32]> {
        if self.col_stride != 1 && len > 1 {
            return None;
        }
        let start = (self.offset + r as isize * self.row_stride) as usize;
        Some(&self.data[start..start + len])
    }

    /// Column `c`'s first `len` elements, when a column's elements are adjacent in memory.
    pub(super) fn column_slice(&self, c: usize, len: usize) -> Option<&'a [f32]> {
        self.transpose().row_slice(c, len)
    }

    pub(super) fn transpose(self) -> Self {
        Self {
            row_stride: self.col_stride,
            col_stride: self.row_stride,
            ..self
        }
    }
}

/// `out[m×n] = scale · lhs[m×k] · rhs[k×n]`, or `+=` when `accumulate`; `out` is row-major
/// with row stride `out_stride`. Without `accumulate` every one of the m×n elements is written
/// and none is read first, so `out` may be unwritten memory. Runs on the calling thread.
pub(super) fn multiply(
    out: &mut [MaybeUninit<f32>],
    out_stride: usize,
    dims: [usize; 3],
    lhs: Matrix,
    rhs: Matrix,
    scale: f32,
    accumulate: bool,
) {
    let [m, n, _] = dims;
    assert!(m == 0 || out.len() >= (m - 1) * out_stride + n);
    // SAFETY: the m×n elements lie inside `out`, which this call borrows alone.
    unsafe {
        multiply_into(
            out.as_mut_ptr(),
            out_stride,
            dims,
            lhs,
            rhs,
            scale,
            accumulate,
        )
    }
}

/// [`multiply`] into memory that other threads write too, each its own elements (heads
/// writing their own columns of shared rows).
///
/// # Safety
/// `out` must be valid for writes of the m×n elements at row stride `out_stride` (and for
/// reads too when `accumulate`), and no other thread may touch those elements during the call.
pub(super) unsafe fn multiply_into(
    out: *mut MaybeUninit<f32>,
    out_stride: usize,
    [m, n, k]: [usize; 3],
    lhs: Matrix,
    rhs: Matrix,
    scale: f32,
    accumulate: bool,
) {
    // An empty sum: gemm would leave `out` as it is, which is not zero if it was unwritten.
    assert!(k > 0, "a product over zero terms");
    // SAFETY: the caller vouches for `out`; lhs and rhs come from live tensors (or dense
    // slices) whose layouts cover m×k and k×n elements at their offsets and strides. gemm
    // reads `out` only when told to accumulate and writes each element as an f32.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            out.cast::<f32>(),
            1,
            out_stride as isize,
            accumulate,
            lhs.data.as_ptr().offset(lhs.offset),
            lhs.col_stride,
            lhs.row_stride,
            rhs.data.as_ptr().offset(rhs.offset),
            rhs.col_stride,
            rhs.row_stride,
            if accumulate { 1.0 } else { 0.0 },
            scale,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}
