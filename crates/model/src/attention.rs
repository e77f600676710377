//! Multi-head causal self-attention: the transformer's heart.
//!
//! Every token's residual vector is mapped to a query ("what am I looking for?"), a key ("what
//! do I contain?") and a value ("what do I pass on if attended to?"). The dot product of a
//! query with each earlier key, scaled by 1/sqrt(d_head), is a score; future positions are
//! masked to -inf; a softmax over the keys turns each query's scores into its *attention
//! pattern*, a probability distribution over the tokens it may see. The pattern weighs the
//! values, and the output map (the "value up" half of the low-rank value/output pair) writes
//! the result back into the residual stream. `n_head` heads do this in parallel on
//! `n_embd / n_head`-dimensional slices.

use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::activation::softmax;
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Bool, Tensor, TensorData};

use tinygpt_kernels::heads::{merge_heads, split_heads};
use tinygpt_kernels::{self as fused, RotaryTables};

use crate::config::GptConfig;
use crate::init::Initializer;
use crate::kv_cache::LayerCache;
use crate::layers::{self, Role, linear};
use crate::norm::Norm;

/// What one layer's heads computed on the way, each `[batch, head, query, key]`.
#[derive(Debug, Clone)]
pub struct AttentionMaps {
    /// query·key / √d_head, with the future keys masked to −∞.
    pub scores: Tensor<4>,
    /// The softmax of the scores over keys: each row a distribution over keys ≤ query.
    pub pattern: Tensor<4>,
}

#[derive(Module, Debug)]
pub struct CausalSelfAttention {
    pub query: Linear,
    pub key: Linear,
    pub value: Linear,
    /// The output (value-up) map from the concatenated heads back to the residual stream.
    pub output: Linear,
    /// QK-norm: each head's queries and keys normalised over their `d_head` features.
    pub query_norm: Option<Norm>,
    pub key_norm: Option<Norm>,
    pub n_head: usize,
    /// Heads of keys and values: `n_head`, or fewer with grouped-query attention (each then
    /// serves `n_head / n_kv_head` query heads).
    pub n_kv_head: usize,
    /// How many positions each query sees, itself included (sliding-window attention); 0
    /// means every earlier one.
    pub window: usize,
}

impl CausalSelfAttention {
    /// Attention shaped by `config` whose queries see their last `window` positions (0: all).
    pub fn new(config: &GptConfig, window: usize, init: &mut Initializer) -> Self {
        let (c, kv) = (config.n_embd, config.kv_width());
        let qk_norm = || {
            config
                .qk_norm
                .then(|| layers::norm_over(init, config, config.head_size()))
        };
        let (query_norm, key_norm) = (qk_norm(), qk_norm());
        Self {
            query: linear(init, config, Role::Input, c, c),
            key: linear(init, config, Role::Input, c, kv),
            value: linear(init, config, Role::Input, c, kv),
            output: linear(init, config, Role::ResidualOutput, c, c),
            query_norm,
            key_norm,
            n_head: config.n_head,
            n_kv_head: config.kv_heads(),
            window,
        }
    }

    /// Fast path for training and evaluation. On `flex` (training, or evaluating without
    /// autodiff) queries, keys and values come from one product and go through one fused
    /// attention op (see [`fused`]); elsewhere burn's attention op with the causal flag.
    /// `rotary` holds RoPE's angles for the tokens' positions when the model rotates.
    pub fn forward(&self, x: Tensor<3>, rotary: Option<&RotaryTables>) -> Tensor<3> {
        let heads = if fused::applies(&x) {
            // One product gives queries, keys and values side by side: [batch, time, 3·n_embd]
            // (n_embd + 2·kv_width with GQA, whose keys and values are then shared out).
            let qkv = fused::linear_with(x, self.packed_weight(), self.packed_bias());
            let qkv = self.place_packed(qkv, rotary);
            fused::causal_self_attention(qkv, self.n_head, self.window)
        } else {
            let (query, key, value) = self.project(x, rotary);
            let (key, value) = (self.share(key), self.share(value));
            fused::plain_windowed_attention(query, key, value, self.window)
        };
        fused::linear(&self.output, merge_heads(heads))
    }

    /// `[W_query | W_key | W_value]`, `[n_embd, 3·n_embd]` (`n_embd + 2·kv_width` with GQA).
    fn packed_weight(&self) -> Tensor<2> {
        let weights = [&self.query, &self.key, &self.value].map(|l| l.weight.val());
        Tensor::cat(weights.to_vec(), 1)
    }

    /// The three biases side by side, when the projections have them.
    fn packed_bias(&self) -> Option<Tensor<1>> {
        let biases =
            [&self.query, &self.key, &self.value].map(|l| l.bias.as_ref().map(|b| b.val()));
        let biases: Option<Vec<Tensor<1>>> = biases.into_iter().collect();
        biases.map(|b| Tensor::cat(b, 0))
    }

    /// Explicit path, written as the math: returns the output, and the scores with the
    /// attention pattern they give (see [`AttentionMaps`]). The scores are those of the
    /// queries and keys as attention sees them: normalised and rotated when the model does so.
    pub fn forward_explicit(
        &self,
        x: Tensor<3>,
        rotary: Option<&RotaryTables>,
    ) -> (Tensor<3>, AttentionMaps) {
        let (query, key, value) = self.project(x, rotary);
        let (key, value) = (self.share(key), self.share(value));
        let [batch, n_head, t, d_head] = query.dims();

        let scores = query
            .matmul(key.transpose())
            .div_scalar((d_head as f64).sqrt());
        // The future, and with a window the keys too far back, are hidden.
        let hidden =
            fused::window_mask(t, t, self.window, &scores.device()).expand([batch, n_head, t, t]);
        let scores = scores.mask_fill(hidden, f32::NEG_INFINITY);
        let pattern = softmax(scores.clone(), 3);

        let heads = pattern.clone().matmul(value);
        let maps = AttentionMaps { scores, pattern };
        (self.output.forward(merge_heads(heads)), maps)
    }

    /// Generation path: the new tokens' queries attend to the cached keys and values plus
    /// their own. Either the cache is empty (a prompt, attended causally) or exactly one new
    /// token arrives (it may see every cached position, so no mask is needed). Keys are
    /// cached as attention uses them (rotated to their own positions).
    pub fn forward_cached(
        &self,
        x: Tensor<3>,
        cache: &mut LayerCache,
        rotary: Option<&RotaryTables>,
    ) -> Tensor<3> {
        let (query, key, value) = self.project(x, rotary);
        let first = cache.keys.is_none();
        let [_, _, t_new, _] = query.dims();
        assert!(
            first || t_new == 1,
            "a warm cache takes one token at a time"
        );
        // The cache keeps the key/value heads themselves: n_head / n_kv_head times smaller.
        let (mut key, mut value) = cache.extend(key, value);
        let [.., cached, _] = key.dims();
        let windowed = self.window > 0 && cached > self.window;
        if windowed && !first {
            // One new query: it sees the last `window` keys, so the rest are left out.
            let start = cached - self.window;
            key = key.narrow(2, start, self.window);
            value = value.narrow(2, start, self.window);
        }
        let (key, value) = (self.share(key), self.share(value));
        let hidden = (windowed && first)
            .then(|| fused::window_mask(t_new, cached, self.window, &key.device()));
        let options = AttentionModuleOptions {
            scale: None,
            softcap: None,
            is_causal: first && hidden.is_none(),
        };
        let heads = attention(query, key, value, hidden, None, options);
        self.output.forward(merge_heads(heads))
    }

    /// Decoding path for several sequences at once, one new token each: `x` is
    /// `[1, lanes, n_embd]` (the lanes along time, so each takes its own row of `rotary`, at its
    /// own position). Lane i's query attends to the slots of `cache` (`[lanes, kv_head,
    /// capacity, d_head]`, filled up to `slot`) that `open` (`[lanes, slot + 1]`) opens to
    /// it, its own new key among them, which is written at `slot`.
    pub fn forward_lanes(
        &self,
        x: Tensor<3>,
        cache: &mut LayerCache,
        slot: usize,
        open: &[bool],
        rotary: Option<&RotaryTables>,
    ) -> Tensor<3> {
        let (query, key, value) = self.project(x, rotary);
        let lanes_first = |x: Tensor<4>| x.swap_dims(0, 2);
        let (keys, values) = cache.write_slot(slot, lanes_first(key), lanes_first(value));
        let query = lanes_first(query);
        let [lanes, ..] = query.dims();
        let width = slot + 1;
        let windowed = (self.window > 0).then(|| last_open(open, width, self.window));
        let open = windowed.as_deref().unwrap_or(open);
        let heads = if lanes == 1 {
            // One lane: the very op `forward_cached` runs, so a lone request decodes exactly
            // as `Generator` does.
            let closed: Vec<bool> = open.iter().map(|o| !o).collect();
            let closed = Tensor::<4, Bool>::from_data(
                TensorData::new(closed, [1, 1, 1, width]),
                &query.device(),
            );
            let options = AttentionModuleOptions {
                scale: None,
                softcap: None,
                is_causal: false,
            };
            let (keys, values) = (
                self.share(keys.narrow(2, 0, width)),
                self.share(values.narrow(2, 0, width)),
            );
            attention(query, keys, values, Some(closed), None, options)
        } else {
            fused::lane_attention(query, keys, values, open, width)
        };
        let out = self.output.forward(merge_heads(heads));
        out.reshape([1, lanes, self.output.weight.dims()[1]])
    }

    /// The packed projection as attention takes it, `[batch, time, 3·n_embd]`: queries and
    /// keys placed (see [`Self::place`]), and with GQA (`[batch, time, n_embd + 2·kv_width]`
    /// in) each key and value head repeated for the query heads it serves, whose gradients the
    /// repeat's backward sums. Without GQA and QK-norm gains: one fused op on flex.
    fn place_packed(&self, qkv: Tensor<3>, rotary: Option<&RotaryTables>) -> Tensor<3> {
        let grouped = self.n_kv_head != self.n_head;
        if !grouped && !self.moves_queries_and_keys(rotary) {
            return qkv;
        }
        let gainless = [&self.query_norm, &self.key_norm]
            .iter()
            .all(|norm| norm.as_ref().is_none_or(|n| n.gamma.is_none()));
        let epsilon = self.query_norm.as_ref().map(|n| n.epsilon);
        if !grouped
            && gainless
            && let Some(placed) = fused::place_queries_and_keys(&qkv, self.n_head, epsilon, rotary)
        {
            return placed;
        }
        let [batch, t, width] = qkv.dims();
        let d_head = width / (self.n_head + 2 * self.n_kv_head);
        let (c, kv) = (self.n_head * d_head, self.n_kv_head * d_head);
        let query = self.place(
            qkv.clone().narrow(2, 0, c),
            &self.query_norm,
            rotary,
            self.n_head,
        );
        let key = self.place(
            qkv.clone().narrow(2, c, kv),
            &self.key_norm,
            rotary,
            self.n_kv_head,
        );
        let value = qkv.narrow(2, c + kv, kv);
        let share = |x: Tensor<3>| match grouped {
            false => x,
            true => {
                let groups = self.n_head / self.n_kv_head;
                x.reshape([batch, t, self.n_kv_head, 1, d_head])
                    .expand([batch, t, self.n_kv_head, groups, d_head])
                    .reshape([batch, t, c])
            }
        };
        Tensor::cat(vec![query, share(key), share(value)], 2)
    }

    /// Keys or values `[batch, n_kv_head, time, d_head]` with each head repeated for the query
    /// heads it serves: `[batch, n_head, time, d_head]`, query head h reading key/value head
    /// `h / (n_head / n_kv_head)` (Llama's `repeat_kv`). Unchanged without GQA.
    fn share(&self, x: Tensor<4>) -> Tensor<4> {
        if self.n_kv_head == self.n_head {
            return x;
        }
        let [batch, kv, t, d_head] = x.dims();
        let groups = self.n_head / kv;
        x.reshape([batch, kv, 1, t, d_head])
            .expand([batch, kv, groups, t, d_head])
            .reshape([batch, self.n_head, t, d_head])
    }

    /// Whether queries and keys change between their projection and the scores.
    fn moves_queries_and_keys(&self, rotary: Option<&RotaryTables>) -> bool {
        rotary.is_some() || self.query_norm.is_some()
    }

    /// Queries or keys `[batch, time, heads · d_head]` as attention uses them: each head's
    /// normalised (QK-norm), then turned by its position (RoPE).
    fn place(
        &self,
        x: Tensor<3>,
        norm: &Option<Norm>,
        rotary: Option<&RotaryTables>,
        n_heads: usize,
    ) -> Tensor<3> {
        if norm.is_none() && rotary.is_none() {
            return x;
        }
        let [batch, t, c] = x.dims();
        let mut heads = x.reshape([batch, t, n_heads, c / n_heads]);
        if let Some(norm) = norm {
            heads = norm.forward(heads);
        }
        if let Some(tables) = rotary {
            heads = fused::rotate(heads, tables);
        }
        heads.reshape([batch, t, c])
    }

    /// Queries, keys and values, each split into heads: `[batch, head, time, d_head]`, the
    /// keys and values in their own `n_kv_head` heads (see [`Self::share`]).
    fn project(
        &self,
        x: Tensor<3>,
        rotary: Option<&RotaryTables>,
    ) -> (Tensor<4>, Tensor<4>, Tensor<4>) {
        let query = self.place(
            fused::linear(&self.query, x.clone()),
            &self.query_norm,
            rotary,
            self.n_head,
        );
        let key = self.place(
            fused::linear(&self.key, x.clone()),
            &self.key_norm,
            rotary,
            self.n_kv_head,
        );
        (
            split_heads(query, self.n_head),
            split_heads(key, self.n_kv_head),
            split_heads(fused::linear(&self.value, x), self.n_kv_head),
        )
    }
}

/// Each lane's open slots (`[lanes, width]`) cut to its last `window`: a lane's slots are in
/// the order of its positions, so those are its newest keys.
fn last_open(open: &[bool], width: usize, window: usize) -> Vec<bool> {
    let mut cut = open.to_vec();
    for lane in cut.chunks_exact_mut(width) {
        let mut seen = 0;
        for slot in lane.iter_mut().rev().filter(|o| **o) {
            seen += 1;
            *slot = seen <= window;
        }
    }
    cut
}

#[cfg(test)]
mod tests;
