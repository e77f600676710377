//! Products of batches of plain matrices with bf16 operands and f32 sums: Muon's Newton–Schulz
//! iteration in a bf16 run, as modded-nanogpt and nanochat run it.

use burn::backend::Flex;
use burn::backend::flex::FlexTensor;
use burn::tensor::{Tensor, TensorData};

use super::bf16::has_avx512_bf16;
use super::bf16::matmul::product;
use super::fresh::{unwritten, written};
use super::matrix::Matrix;
use super::on_flex;

/// `a·b` for each matrix of a batch, `[n, m, k]·[n, k, p] → [n, m, p]`, the operands read in
/// place at any strides (a transposed view is not copied), each product equal to
/// [`crate::bf16::matmul::reference`] on its matrices to the bit. `None` off `flex`, for
/// autodiff tensors, or on a CPU without AVX512_BF16.
pub fn bf16_batched_matmul(a: &Tensor<3>, b: &Tensor<3>) -> Option<Tensor<3>> {
    if !has_avx512_bf16() {
        return None;
    }
    let (a, b) = (on_flex(a)?, on_flex(b)?);
    let [n, m, k] = a.layout().shape().dims::<3>();
    let [n_b, k_b, p] = b.layout().shape().dims::<3>();
    assert!(n == n_b && k == k_b, "[{n}, {m}, {k}]·[{n_b}, {k_b}, {p}]");
    let mut out = unwritten(n * m * p);
    if m * p > 0 {
        for (i, c) in out.chunks_exact_mut(m * p).enumerate() {
            let (lhs, rhs) = (Matrix::of_batch(&a, i), Matrix::of_batch(&b, i));
            product(c, [m, k, p], lhs, rhs, None);
        }
    }
    // SAFETY: each entry's product wrote its m·p values (an empty sum writes +0).
    let out = unsafe { written(out) };
    let out = FlexTensor::from_data(TensorData::new(out, [n, m, p]));
    Some(Tensor::from_primitive::<Flex>(out))
}
