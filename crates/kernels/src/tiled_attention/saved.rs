//! What the tiled attention's backward pass reads from its forward pass: O(T·d), no pattern.

use burn::backend::flex::FlexTensor;

use crate::Precision;

/// What the backward pass reads: the packed projections, the output and each row's
/// log-sum-exp `[batch, head, time]`, and the products' precision. No pattern.
#[derive(Debug, Clone)]
pub(crate) struct Saved {
    pub(super) qkv: FlexTensor,
    pub(super) output: FlexTensor,
    pub(super) log_sum_exp: Vec<f32>,
    pub(super) n_head: usize,
    pub(super) window: usize,
    pub(super) precision: Precision,
}

impl Saved {
    #[cfg(test)]
    /// The bytes this state holds: the projections' and output's buffers and the log-sum-exps.
    pub(crate) fn bytes(&self) -> usize {
        let floats = |t: &FlexTensor| t.storage::<f32>().len();
        4 * (floats(&self.qkv) + floats(&self.output) + self.log_sum_exp.len())
    }
}
