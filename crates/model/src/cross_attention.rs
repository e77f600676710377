//! Multi-head cross-attention, the lecture's other kind of head: queries come from one
//! sequence, keys and values from another (say, an encoder's output), and nothing is masked —
//! every query may look at every position of the other sequence. Not used by the GPT, which is
//! decoder-only; here so the mechanism can be built, inspected and tested beside self-attention.

use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::Tensor;
use burn::tensor::activation::softmax;
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;

use crate::init::Initializer;
use crate::layers::{INIT_STD, normal_linear};
use tinygpt_kernels::heads::{merge_heads, split_heads};

#[derive(Module, Debug)]
pub struct CrossAttention {
    pub query: Linear,
    pub key: Linear,
    pub value: Linear,
    pub output: Linear,
    pub n_head: usize,
}

impl CrossAttention {
    /// Queries from an `n_embd`-wide stream; keys and values from a `d_context`-wide one.
    pub fn new(n_embd: usize, d_context: usize, n_head: usize, init: &mut Initializer) -> Self {
        assert!(
            n_embd.is_multiple_of(n_head),
            "n_embd must be divisible by n_head"
        );
        Self {
            query: normal_linear(init, n_embd, n_embd, true, INIT_STD),
            key: normal_linear(init, d_context, n_embd, true, INIT_STD),
            value: normal_linear(init, d_context, n_embd, true, INIT_STD),
            output: normal_linear(init, n_embd, n_embd, true, INIT_STD),
            n_head,
        }
    }

    /// `x`: `[batch, t_query, n_embd]`, `context`: `[batch, t_context, d_context]` →
    /// `[batch, t_query, n_embd]`, through the fused attention op.
    pub fn forward(&self, x: Tensor<3>, context: Tensor<3>) -> Tensor<3> {
        let (query, key, value) = self.project(x, context);
        let options = AttentionModuleOptions {
            scale: None,
            softcap: None,
            is_causal: false,
        };
        self.output.forward(merge_heads(attention(
            query, key, value, None, None, options,
        )))
    }

    /// The same, written out; also returns the pattern `[batch, head, t_query, t_context]`,
    /// each row a distribution over the context's positions.
    pub fn forward_explicit(&self, x: Tensor<3>, context: Tensor<3>) -> (Tensor<3>, Tensor<4>) {
        let (query, key, value) = self.project(x, context);
        let [_, _, _, d_head] = query.dims();
        let scores = query
            .matmul(key.transpose())
            .div_scalar((d_head as f64).sqrt());
        let pattern = softmax(scores, 3);
        let heads = pattern.clone().matmul(value);
        (self.output.forward(merge_heads(heads)), pattern)
    }

    fn project(&self, x: Tensor<3>, context: Tensor<3>) -> (Tensor<4>, Tensor<4>, Tensor<4>) {
        (
            split_heads(self.query.forward(x), self.n_head),
            split_heads(self.key.forward(context.clone()), self.n_head),
            split_heads(self.value.forward(context), self.n_head),
        )
    }
}
