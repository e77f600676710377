//! A product's operands in each layout the bf16 kernels read, for the tests that hold a
//! kernel to its reference on every one.

use crate::matrix::Matrix;

/// An m×k A and a k×n B, each in three layouts: row-major, transposed (columns adjacent: `xᵀ`,
/// a transposed weight), and every other element of a wider buffer (neither adjacent: the
/// scalar path).
pub(crate) struct Layouts {
    a: [Vec<f32>; 3],
    b: [Vec<f32>; 3],
    dims: [usize; 3],
}

impl Layouts {
    /// A's three buffers drawn from `random`, then B's.
    pub(crate) fn new(random: &mut impl FnMut(usize) -> Vec<f32>, [m, k, n]: [usize; 3]) -> Self {
        let a = [random(m * k), random(m * k), random(4 * m * k)];
        let b = [random(k * n), random(k * n), random(4 * k * n)];
        Self {
            a,
            b,
            dims: [m, k, n],
        }
    }

    pub(crate) fn lhs(&self) -> [Matrix<'_>; 3] {
        let [m, k, _] = self.dims;
        [
            Matrix::dense(&self.a[0], k),
            Matrix::dense(&self.a[1], m).transpose(),
            Matrix::new(&self.a[2], 1, 2 * k as isize, 2),
        ]
    }

    pub(crate) fn rhs(&self) -> [Matrix<'_>; 3] {
        let [_, k, n] = self.dims;
        [
            Matrix::dense(&self.b[0], n),
            Matrix::dense(&self.b[1], k).transpose(),
            Matrix::new(&self.b[2], 3, 2 * n as isize, 2),
        ]
    }
}

/// `rows × cols` values of a view, row-major.
pub(crate) fn dense(view: Matrix, [rows, cols]: [usize; 2]) -> Vec<f32> {
    (0..rows)
        .flat_map(|r| (0..cols).map(move |c| view.at(r, c)))
        .collect()
}
