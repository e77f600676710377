//! The key/value cache for generation: each block keeps the keys and values of the tokens
//! already seen, so a new token computes only its own query, key and value and attends to the
//! cached ones — cost per token grows linearly with the context, not quadratically.

use burn::tensor::Tensor;

/// Cached keys and values of one block, `[batch, head, time, d_head]` each.
#[derive(Debug, Clone, Default)]
pub struct LayerCache {
    pub keys: Option<Tensor<4>>,
    pub values: Option<Tensor<4>>,
}

impl LayerCache {
    /// Appends the new keys and values along time; returns all keys and values so far.
    pub fn extend(&mut self, keys: Tensor<4>, values: Tensor<4>) -> (Tensor<4>, Tensor<4>) {
        let keys = match self.keys.take() {
            Some(cached) => Tensor::cat(vec![cached, keys], 2),
            None => keys,
        };
        let values = match self.values.take() {
            Some(cached) => Tensor::cat(vec![cached, values], 2),
            None => values,
        };
        self.keys = Some(keys.clone());
        self.values = Some(values.clone());
        (keys, values)
    }

    /// Writes one new key and value per lane at `slot` of the preallocated
    /// `[lanes, kv_head, capacity, d_head]` buffers — in place, since between steps the
    /// buffers are this cache's alone — and returns the buffers.
    pub fn write_slot(
        &mut self,
        slot: usize,
        keys: Tensor<4>,
        values: Tensor<4>,
    ) -> (Tensor<4>, Tensor<4>) {
        let write = |buffer: Option<Tensor<4>>, new: Tensor<4>| {
            let buffer = buffer.expect("lanes preallocate their cache");
            let [lanes, kv, _, d] = buffer.dims();
            buffer.slice_assign([0..lanes, 0..kv, slot..slot + 1, 0..d], new)
        };
        let keys = write(self.keys.take(), keys);
        let values = write(self.values.take(), values);
        self.keys = Some(keys.clone());
        self.values = Some(values.clone());
        (keys, values)
    }
}

/// One [`LayerCache`] per block, and how many positions they hold.
#[derive(Debug, Clone)]
pub struct KvCache {
    pub layers: Vec<LayerCache>,
    pub len: usize,
}

impl KvCache {
    pub fn new(n_layer: usize) -> Self {
        Self {
            layers: vec![LayerCache::default(); n_layer],
            len: 0,
        }
    }

    pub fn clear(&mut self) {
        let n_layer = self.layers.len();
        *self = Self::new(n_layer);
    }
}
