//! The norm every block, the final layer and (optionally) the embedding and the queries and
//! keys use: LayerNorm or RMSNorm, with or without a learned gain (γ) and shift (β).
//!
//! Parameters keep the names burn's `LayerNorm` gives them (`gamma`, `beta`), so weights files
//! of the GPT-2 recipe read as before.

use burn::module::{Module, Param};
use burn::tensor::Tensor;

use crate::config::NormKind;
use crate::init::Initializer;
use tinygpt_kernels as fused;

#[derive(Module, Debug)]
pub struct Norm {
    pub gamma: Option<Param<Tensor<1>>>,
    /// LayerNorm's shift (RMSNorm has none).
    pub beta: Option<Param<Tensor<1>>>,
    #[module(skip)]
    pub kind: NormKind,
    pub epsilon: f64,
}

impl Norm {
    /// Gain 1 (when `weight`), shift 0 (when `bias` and a LayerNorm), over `width` features.
    pub fn new(
        init: &Initializer,
        kind: NormKind,
        width: usize,
        weight: bool,
        bias: bool,
        epsilon: f64,
    ) -> Self {
        Self {
            gamma: weight.then(|| init.constant([width], 1.0)),
            beta: (bias && kind == NormKind::LayerNorm).then(|| init.constant([width], 0.0)),
            kind,
            epsilon,
        }
    }

    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let gamma = self.gamma.as_ref().map(|g| g.val());
        match self.kind {
            NormKind::LayerNorm => {
                let width = x.dims()[D - 1];
                let gamma = gamma.unwrap_or_else(|| Tensor::ones([width], &x.device()));
                let beta = self.beta.as_ref().map(|b| b.val());
                fused::layer_norm(x, gamma, beta, self.epsilon)
            }
            NormKind::RmsNorm => fused::rms_norm(x, gamma, self.epsilon),
        }
    }
}
