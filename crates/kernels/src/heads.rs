//! Splitting the residual stream into attention heads and merging them back: shared by the
//! model's attention and the fused attention's plain fallback.

use burn::tensor::Tensor;

/// `[batch, time, n_embd]` → `[batch, head, time, d_head]`.
pub fn split_heads(x: Tensor<3>, n_head: usize) -> Tensor<4> {
    let [batch, t, c] = x.dims();
    x.reshape([batch, t, n_head, c / n_head]).swap_dims(1, 2)
}

/// `[batch, head, time, d_head]` → `[batch, time, n_embd]` (heads concatenated).
pub fn merge_heads(x: Tensor<4>) -> Tensor<3> {
    let [batch, n_head, t, d_head] = x.dims();
    x.swap_dims(1, 2).reshape([batch, t, n_head * d_head])
}
