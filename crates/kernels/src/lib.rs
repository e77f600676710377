//! Fused training ops for the `flex` CPU backend.
//!
//! Under autodiff, burn builds several things from many small tensor ops, each a full pass
//! over memory into a fresh buffer: causal attention (matmul, scale, mask, softmax, matmul,
//! and their backward passes), linear maps (a matmul into a zeroed, then copied buffer, plus
//! a pass for the bias) and LayerNorm (mean, variance, subtract, divide, scale, shift). GELU
//! calls libm's scalar `erff`, and dropout draws its mask one element at a time. On `flex`
//! with autodiff each of these runs instead as one forward and one backward kernel, written
//! with the gemm crate burn-flex itself uses. On `flex` without autodiff (evaluation and
//! sampling) the same forward kernels run alone. Other devices, and `TINYGPT_PLAIN_OPS=1`,
//! take burn's plain ops; tests check that both paths give the same outputs and gradients.
//!
//! The optimizer's AdamW update ([`adamw`]) is here too, beside its plain twin, under the
//! same switch.

pub mod adamw;
mod attention;
mod batched;
pub mod bf16;
pub mod cpu;
mod dropout;
mod features;
mod fresh;
mod gelu;
mod lane_attention;
mod layer_norm;
mod linear;
mod math;
mod matrix;
mod placed;
mod precision;
mod rms_norm;
mod rotary;
mod tiled_attention;
mod tiles;

pub mod heads;

pub use batched::bf16_batched_matmul;
pub(crate) use precision::precision;
pub use precision::{Precision, bf16_products, with_precision};

use std::sync::OnceLock;

use burn::backend::Autodiff;
use burn::backend::Flex;
use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, NodeGuard, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::nn::{Dropout, Linear};
use burn::tensor::activation;
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Bool, DType, Device, Tensor, TensorData};

use crate::heads::split_heads;

/// LayerNorm's default ε: GPT-2's and PyTorch's (`model.layer_norm_eps` sets another).
pub const LAYER_NORM_EPSILON: f64 = 1e-5;

type FlexAutodiff = Autodiff<Flex>;

/// Whether the fused ops are on: yes unless `TINYGPT_PLAIN_OPS` is set to something other
/// than `0` (for benchmarking the plain path with the same binary).
pub fn enabled() -> bool {
    static ENABLED: OnceLock<bool> = OnceLock::new();
    *ENABLED.get_or_init(|| std::env::var("TINYGPT_PLAIN_OPS").map_or(true, |v| v == "0"))
}

/// Whether tensors like `x` take the fused ops: f32 on `flex`, with autodiff (training: forward
/// and backward kernels) or without (evaluation and sampling: the forward kernels alone), and
/// fused ops on.
pub fn applies<const D: usize>(x: &Tensor<D>) -> bool {
    enabled() && (on_flex_autodiff(x).is_some() || on_flex(x).is_some())
}

/// Causal self-attention `softmax(QKᵀ/√d_head, future masked)·V` per head, from queries, keys
/// and values packed side by side, `[batch, time, 3·n_embd]`, each query seeing its last
/// `window` positions (itself included; 0 = every earlier one). Returns the heads' outputs,
/// `[batch, head, time, d_head]`.
///
/// On flex, short full-context sequences keep their attention pattern for the backward pass
/// (see [`keeps_pattern`]: at most [`STORED_PATTERN_MAX`]² floats per head, which is cheaper than recomputing it);
/// longer ones, and every windowed one, go through the tiled kernel, whose memory grows
/// linearly in the sequence's length.
pub fn causal_self_attention(qkv: Tensor<3>, n_head: usize, window: usize) -> Tensor<4> {
    let [_, t, _] = qkv.dims();
    // A window as long as the sequence hides nothing.
    let window = if window >= t { 0 } else { window };
    if enabled() {
        let output = match keeps_pattern(t, window) {
            true => attention::causal_attention(&qkv, n_head),
            false => tiled_attention::tiled_attention(&qkv, n_head, window),
        };
        if let Some(output) = output {
            return output;
        }
    }
    plain_causal_self_attention(qkv, n_head, window)
}

/// The longest sequence whose attention pattern the fused kernel keeps (256² floats per head,
/// 256 KiB): the default and nanogpt-char shapes, whose results stay as they were.
pub const STORED_PATTERN_MAX: usize = 256;

/// Whether the fused attention keeps the pattern of sequences of `t` tokens whose queries see
/// `window` positions (full attention over at most [`STORED_PATTERN_MAX`]), rather than tiling.
pub fn keeps_pattern(t: usize, window: usize) -> bool {
    (window == 0 || window >= t) && t <= STORED_PATTERN_MAX
}

/// [`causal_self_attention`] through burn's ops: the packed projections split into queries,
/// keys and values, then burn's attention op.
pub fn plain_causal_self_attention(qkv: Tensor<3>, n_head: usize, window: usize) -> Tensor<4> {
    let [.., width] = qkv.dims();
    let c = width / 3;
    let [query, key, value] =
        [0, 1, 2].map(|part| split_heads(qkv.clone().narrow(2, part * c, c), n_head));
    plain_windowed_attention(query, key, value, window)
}

/// burn's own attention op with the causal flag: the plain path.
pub fn plain_causal_attention(query: Tensor<4>, key: Tensor<4>, value: Tensor<4>) -> Tensor<4> {
    let options = AttentionModuleOptions {
        scale: None, // 1/sqrt(d_head)
        softcap: None,
        is_causal: true,
    };
    attention(query, key, value, None, None, options)
}

/// burn's attention op with each query seeing its last `window` positions (0: every earlier
/// one, the causal flag alone).
pub fn plain_windowed_attention(
    query: Tensor<4>,
    key: Tensor<4>,
    value: Tensor<4>,
    window: usize,
) -> Tensor<4> {
    let [.., t, _] = query.dims();
    if window == 0 || window >= t {
        return plain_causal_attention(query, key, value);
    }
    let hidden = window_mask(t, t, window, &query.device());
    let options = AttentionModuleOptions {
        scale: None,
        softcap: None,
        is_causal: false,
    };
    attention(query, key, value, Some(hidden), None, options)
}

/// `[1, 1, queries, keys]`, true where a key is hidden from a query: in its future, or more
/// than `window` positions back (0: no window). The queries are the last of the keys.
pub fn window_mask(queries: usize, keys: usize, window: usize, device: &Device) -> Tensor<4, Bool> {
    let offset = keys - queries;
    let hidden: Vec<bool> = (0..queries)
        .flat_map(|r| {
            let i = offset + r;
            (0..keys).map(move |j| j > i || (window > 0 && j + window <= i))
        })
        .collect();
    Tensor::from_data(TensorData::new(hidden, [1, 1, queries, keys]), device)
}

/// The exact (erf) GELU, `x·Φ(x)`.
pub fn gelu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    if enabled()
        && let Some(output) = gelu::gelu(&x, false)
    {
        return output;
    }
    activation::gelu(x)
}

/// GPT-2's GELU (`gelu_new` in Hugging Face's code): `½x(1 + tanh(√(2/π)(x + 0.044715x³)))`.
pub fn gelu_tanh<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    if enabled()
        && let Some(output) = gelu::gelu(&x, true)
    {
        return output;
    }
    activation::gelu_approximate(x)
}

/// The layer's dropout: while training, each element is zeroed with probability `p` and the
/// rest scaled by `1/(1 − p)`; otherwise the identity.
pub fn dropout<const D: usize>(layer: &Dropout, x: Tensor<D>) -> Tensor<D> {
    if enabled()
        && layer.prob > 0.0
        && layer.training.is_enabled()
        && let Some(output) = dropout::dropout(&x, layer.prob)
    {
        return output;
    }
    layer.forward(x)
}

/// The layer's `x·W + b` over the last dimension of `x`.
pub fn linear<const D: usize>(layer: &Linear, x: Tensor<D>) -> Tensor<D> {
    let bias = layer.bias.as_ref().map(|b| b.val());
    linear_with(x, layer.weight.val(), bias)
}

/// `x·W (+ b)` over the last dimension of `x`, for a weight that is not a [`Linear`]'s (the
/// tied unembedding).
pub fn linear_with<const D: usize>(
    x: Tensor<D>,
    weight: Tensor<2>,
    bias: Option<Tensor<1>>,
) -> Tensor<D> {
    if enabled()
        && let Some(output) = linear::linear(&x, &weight, bias.as_ref())
    {
        return output;
    }
    burn::tensor::module::linear(x, weight, bias)
}

/// LayerNorm over the last dimension, `(x − mean)/√(var + ε)·γ (+ β)`: the fused op when there
/// is a shift, else burn's (the op burn's own `LayerNorm` module calls).
pub fn layer_norm<const D: usize>(
    x: Tensor<D>,
    gamma: Tensor<1>,
    beta: Option<Tensor<1>>,
    epsilon: f64,
) -> Tensor<D> {
    if enabled()
        && let Some(beta) = &beta
        && let Some(output) = layer_norm::layer_norm(&x, &gamma, beta, epsilon as f32)
    {
        return output;
    }
    burn::tensor::module::layer_norm(x, gamma, beta, epsilon)
}

/// RMSNorm over the last dimension, `x/√(mean(x²) + ε) (·γ)`.
pub fn rms_norm<const D: usize>(x: Tensor<D>, gamma: Option<Tensor<1>>, epsilon: f64) -> Tensor<D> {
    if enabled()
        && let Some(output) = rms_norm::rms_norm(&x, gamma.as_ref(), epsilon as f32)
    {
        return output;
    }
    rms_norm::plain_rms_norm(x, gamma, epsilon)
}

/// ReLU², `max(0, x)²`.
pub fn relu2<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    if enabled()
        && let Some(output) = gelu::relu2(&x)
    {
        return output;
    }
    plain_relu2(x)
}

/// SwiGLU's gating, `silu(gate) ⊙ up`.
pub fn swiglu<const D: usize>(gate: Tensor<D>, up: Tensor<D>) -> Tensor<D> {
    activation::silu(gate) * up
}

/// Soft-capping, `cap·tanh(z/cap)`: every value inside (−cap, cap), near-identity for small z.
pub fn softcap<const D: usize>(z: Tensor<D>, cap: f64) -> Tensor<D> {
    if enabled()
        && let Some(output) = gelu::softcap(&z, cap as f32)
    {
        return output;
    }
    plain_softcap(z, cap)
}

/// [`softcap`] through burn's ops.
pub fn plain_softcap<const D: usize>(z: Tensor<D>, cap: f64) -> Tensor<D> {
    z.div_scalar(cap).tanh().mul_scalar(cap)
}

/// [`relu2`] through burn's ops.
pub fn plain_relu2<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    activation::relu(x).square()
}

pub use lane_attention::{lane_attention, plain_lane_attention};
pub use rotary::{RotaryTables, rotate};

/// The packed `[batch, time, 3·n_embd]` projection with each head's queries and keys
/// RMS-normalised without a gain (when `qk_norm_epsilon` is set) and then rotated by `rotary`,
/// as one fused op; `None` off `flex` (the caller then takes burn's ops).
pub fn place_queries_and_keys(
    qkv: &Tensor<3>,
    n_head: usize,
    qk_norm_epsilon: Option<f64>,
    rotary: Option<&RotaryTables>,
) -> Option<Tensor<3>> {
    if !enabled() {
        return None;
    }
    placed::place(qkv, n_head, qk_norm_epsilon, rotary)
}

/// The tensor's `flex`-with-autodiff primitive when it is an f32 tensor there, else `None`.
fn on_flex_autodiff<const D: usize>(tensor: &Tensor<D>) -> Option<FloatTensor<FlexAutodiff>> {
    if tensor.dtype() != DType::F32 || !tensor.is_autodiff() {
        return None;
    }
    tensor.clone().try_into_primitive::<FlexAutodiff>().ok()
}

/// The tensor's plain `flex` primitive when it is an f32 tensor there without autodiff (a
/// model being evaluated or sampled), else `None`.
fn on_flex<const D: usize>(tensor: &Tensor<D>) -> Option<FlexTensor> {
    // Asked first by every fused op: an autodiff tensor (each op of a training step) is turned
    // away here, before a conversion that would fail by formatting an error message.
    if tensor.dtype() != DType::F32 || tensor.is_autodiff() {
        return None;
    }
    tensor.clone().try_into_primitive::<Flex>().ok()
}

/// Records a fused op in the autodiff graph and wraps its output: with `state` for the op's
/// backward pass when any of `parents` needs a gradient, without it otherwise.
fn track<Op: Backward<Flex, N>, const N: usize, const D: usize>(
    op: Op,
    parents: [NodeGuard; N],
    state: Op::State,
    output: FlexTensor,
) -> Tensor<D> {
    let output = match op
        .prepare::<NoCheckpointing>(parents)
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish(state, output),
        OpsKind::UnTracked(prep) => prep.finish(output),
    };
    Tensor::from_primitive::<FlexAutodiff>(output)
}

/// Registers each gradient for its parent, skipping parents that do not need one.
fn register<const N: usize>(
    grads: &mut Gradients,
    parents: &[Option<NodeId>],
    values: [FlexTensor; N],
) {
    for (parent, value) in parents.iter().zip(values) {
        if let Some(id) = parent {
            grads.register::<Flex>(*id, value);
        }
    }
}

/// The row-major values of a contiguous f32 `flex` tensor (for CPU kernels outside this crate
/// too, such as the optimizer's).
pub fn values(tensor: &FlexTensor) -> &[f32] {
    let (start, end) = tensor
        .layout()
        .contiguous_offsets()
        .expect("made contiguous first");
    &tensor.storage::<f32>()[start..end]
}

#[cfg(test)]
mod tests;
