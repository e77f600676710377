//! The shape of a GPT: everything needed to build one, and nothing else.

use serde::{Deserialize, Serialize};

/// Model hyper-parameters, as they appear in the `[model]` section of a run config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GptConfig {
    /// Number of distinct tokens (rows of the embedding matrix). In a run config, 0 or
    /// absent means "as many as the tokenizer has".
    #[serde(default)]
    pub vocab_size: usize,
    /// Context length: the most tokens a query can look back over.
    pub block_size: usize,
    /// Number of residual blocks.
    pub n_layer: usize,
    /// Attention heads per block.
    pub n_head: usize,
    /// Width of the residual stream.
    pub n_embd: usize,
    /// Dropout probability on embeddings and residual branches.
    #[serde(default)]
    pub dropout: f64,
    /// Biases in the linear maps and LayerNorms.
    #[serde(default = "default_true")]
    pub bias: bool,
    /// Share the token embedding with the unembedding.
    #[serde(default = "default_true")]
    pub tie_embeddings: bool,
    /// The MLP's nonlinearity: `"gelu"` (exact, erf) or `"gelu_tanh"` (GPT-2's approximation,
    /// Hugging Face's `gelu_new`).
    #[serde(default)]
    pub activation: Activation,
    /// Width of the MLP's hidden layer (Hugging Face's `intermediate_size`). 0 (the default)
    /// means GPT-2's 4 × `n_embd`.
    #[serde(default, skip_serializing_if = "is_default")]
    pub mlp_width: usize,
    /// The ε every norm (LayerNorm or RMSNorm, blocks, final, queries and keys) adds to the
    /// variance or mean square (GPT-2's 1e-5 unless set).
    #[serde(default = "default_layer_norm_eps")]
    pub layer_norm_eps: f64,
    /// Where a token's position enters: `"learned"` (a position embedding added to the token
    /// embedding, GPT-2) or `"rope"` (queries and keys rotated by their position, no table).
    #[serde(default, skip_serializing_if = "is_default")]
    pub positions: Positions,
    /// RoPE's base: pair `i` of a head turns by `position · rope_base^(−2i/d_head)`.
    #[serde(
        default = "default_rope_base",
        skip_serializing_if = "is_default_rope_base"
    )]
    pub rope_base: f64,
    /// `"layer_norm"` (centre, then scale to unit variance) or `"rms_norm"` (scale to unit
    /// root mean square; no shift, whatever `bias` says).
    #[serde(default, skip_serializing_if = "is_default")]
    pub norm: NormKind,
    /// Whether norms carry a learned gain (nanochat's have no parameters at all).
    #[serde(default = "default_true", skip_serializing_if = "is_true")]
    pub norm_weight: bool,
    /// A norm right after the embedding, before the first block.
    #[serde(default, skip_serializing_if = "is_default")]
    pub embedding_norm: bool,
    /// RMS-normalise each head's queries and keys (before the rotation, as Qwen3 does; a
    /// rotation keeps the root mean square, so without a gain the order does not matter).
    #[serde(default, skip_serializing_if = "is_default")]
    pub qk_norm: bool,
    /// Grouped-query attention: heads of keys and values, each shared by `n_head / n_kv_head`
    /// query heads (1 is multi-query attention); the KV cache shrinks by the same factor.
    /// 0 (the default) means `n_head`: every query head has keys and values of its own.
    #[serde(default, skip_serializing_if = "is_default")]
    pub n_kv_head: usize,
    /// Sliding-window attention: each query sees its last `attention_window` positions, itself
    /// included (1 is itself alone), in the layers `window_pattern` names; its cost is then
    /// O(T·W), not O(T²). 0 (the default) means every earlier position.
    #[serde(default, skip_serializing_if = "is_default")]
    pub attention_window: usize,
    /// Which layers take the window: one letter per layer, `S` (short: the window) or `L`
    /// (long: full attention), repeated over the layers, with the last layer always full, as
    /// nanochat does (`"SSSL"`). Empty (the default): every layer takes the window.
    #[serde(default, skip_serializing_if = "is_default")]
    pub window_pattern: String,
    /// Logit soft-capping `c·tanh(z/c)`: logits stay inside (−c, c). 0 turns it off.
    #[serde(default, skip_serializing_if = "is_default")]
    pub logit_softcap: f64,
    /// How the weights start: `"gpt2"` (normal 0.02, residual projections scaled by 1/√(2L))
    /// or `"modern"` (nanochat's: uniform projections in, zero projections out, a unit-scale
    /// embedding and a near-zero head).
    #[serde(default, skip_serializing_if = "is_default")]
    pub init: Init,
}

/// Where positions enter the model.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Positions {
    #[default]
    Learned,
    Rope,
}

/// Which normalisation the blocks, the final norm and (for the gain) QK-norm use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NormKind {
    #[default]
    LayerNorm,
    RmsNorm,
}

/// The initialisation scheme.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Init {
    #[default]
    Gpt2,
    Modern,
}

/// The MLP's nonlinearity.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    /// `x·Φ(x)`, with the exact normal CDF.
    #[default]
    Gelu,
    /// `½x(1 + tanh(√(2/π)(x + 0.044715x³)))`, as GPT-2 was trained.
    GeluTanh,
    /// `max(0, x)²` (modded-nanogpt, nanochat).
    Relu2,
    /// `silu(x·W_gate) ⊙ (x·W_up)`: a gated MLP with a third matrix (Llama, Qwen).
    Swiglu,
}

fn is_default<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
}

fn is_true(value: &bool) -> bool {
    *value
}

/// RoPE's usual base (the RoFormer paper's, Llama's).
pub const ROPE_BASE: f64 = 10_000.0;

fn default_rope_base() -> f64 {
    ROPE_BASE
}

fn is_default_rope_base(value: &f64) -> bool {
    *value == ROPE_BASE
}

fn default_true() -> bool {
    true
}

fn default_layer_norm_eps() -> f64 {
    tinygpt_kernels::LAYER_NORM_EPSILON
}

impl Default for GptConfig {
    /// The default run's shape (4 layers of 4 heads, 128 wide, context 64) with GPT-2's
    /// recipe; `vocab_size` 0 until a tokenizer says.
    fn default() -> Self {
        Self {
            vocab_size: 0,
            block_size: 64,
            n_layer: 4,
            n_head: 4,
            n_embd: 128,
            dropout: 0.0,
            bias: true,
            tie_embeddings: true,
            activation: Activation::default(),
            mlp_width: 0,
            layer_norm_eps: default_layer_norm_eps(),
            positions: Positions::default(),
            rope_base: ROPE_BASE,
            norm: NormKind::default(),
            norm_weight: true,
            embedding_norm: false,
            qk_norm: false,
            n_kv_head: 0,
            attention_window: 0,
            window_pattern: String::new(),
            logit_softcap: 0.0,
            init: Init::default(),
        }
    }
}

impl GptConfig {
    /// Size of one attention head: the query/key space each head works in.
    pub fn head_size(&self) -> usize {
        self.n_embd / self.n_head
    }

    /// Heads of keys and values (`n_kv_head`, or `n_head` when it is 0).
    pub fn kv_heads(&self) -> usize {
        if self.n_kv_head == 0 {
            self.n_head
        } else {
            self.n_kv_head
        }
    }

    /// Width of the MLP's hidden layer: `mlp_width`, or 4 × `n_embd` when it is 0.
    pub fn mlp_hidden(&self) -> usize {
        if self.mlp_width == 0 {
            4 * self.n_embd
        } else {
            self.mlp_width
        }
    }

    /// How many positions layer `layer`'s queries see (0: every earlier one), from
    /// `attention_window` and `window_pattern`.
    pub fn layer_window(&self, layer: usize) -> usize {
        let pattern = self.window_pattern.as_bytes();
        let short = match pattern.is_empty() {
            true => true,
            false => layer + 1 < self.n_layer && pattern[layer % pattern.len()] == b'S',
        };
        if short { self.attention_window } else { 0 }
    }

    /// How many layers take the window (see [`Self::layer_window`]), counted without a loop
    /// over the layers.
    pub fn windowed_layers(&self) -> usize {
        let pattern = self.window_pattern.as_bytes();
        if self.attention_window == 0 || self.n_layer == 0 {
            return 0;
        }
        if pattern.is_empty() {
            return self.n_layer;
        }
        // Every layer but the last follows the pattern.
        let layers = self.n_layer - 1;
        let short = |p: &[u8]| p.iter().filter(|&&c| c == b'S').count();
        let (cycles, rest) = (layers / pattern.len(), layers % pattern.len());
        cycles * short(pattern) + short(&pattern[..rest])
    }

    /// Width of the keys (and of the values): `kv_heads · head_size`.
    pub fn kv_width(&self) -> usize {
        self.kv_heads() * self.head_size()
    }
}
