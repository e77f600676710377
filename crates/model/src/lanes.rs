//! Several sequences generating together (continuous batching): each decode step feeds one new
//! token of every live sequence — a *lane* — through the model at once, so the weights are
//! read once per step however many sequences there are. Sequences join (after their own
//! prompt pass) and leave between steps.
//!
//! The lanes share one key/value cache per block, `[lanes, kv_head, slot, d_head]`. A step
//! appends one slot for every lane; a joining lane brings its prompt's keys as slots of its
//! own, padded to the cache's width. So lane i's keys are the slots it owns, marked in
//! `owned[i]`; the rest are masked out of its attention. Attention does not care where a key
//! sits — each key was rotated to its own position when it was made — so a lane sees exactly
//! the keys and values [`crate::Generator`] would, and picks the same tokens.
//!
//! Each lane keeps [`crate::Generator`]'s context window: when its context would pass
//! `block_size`, it leaves, and rejoins with its newest `block_size / 2` tokens recomputed.

use burn::tensor::{Bool, Device, Int, Tensor, TensorData};

use crate::gpt::Gpt;
use crate::kv_cache::{KvCache, LayerCache};

/// Names a lane for as long as it lives (rows move as other lanes leave).
pub type LaneId = u64;

struct Lane {
    id: LaneId,
    /// Every token so far, prompt included.
    tokens: Vec<u32>,
    /// Where the context starts in `tokens`: the model sees `tokens[window_start..]`.
    window_start: usize,
    /// The slots of the shared cache that hold this lane's keys.
    owned: Vec<bool>,
    /// Logits for the token after `tokens`.
    logits: Vec<f32>,
}

impl Lane {
    fn context_len(&self) -> usize {
        self.tokens.len() - self.window_start
    }
}

/// The live lanes of one model, their shared cache, and one step for all of them.
pub struct Lanes<'a> {
    model: &'a Gpt,
    device: Device,
    lanes: Vec<Lane>,
    /// One cache per block; `None` while no lane lives.
    cache: Option<Vec<LayerCache>>,
    slots: usize,
    next_id: LaneId,
}

impl<'a> Lanes<'a> {
    pub fn new(model: &'a Gpt, device: &Device) -> Self {
        Self {
            model,
            device: device.clone(),
            lanes: Vec::new(),
            cache: None,
            slots: 0,
            next_id: 0,
        }
    }

    /// A new lane for `prompt` (non-empty, at most `block_size` tokens): its prompt pass runs
    /// now, so its first logits are ready.
    pub fn add(&mut self, prompt: &[u32]) -> LaneId {
        assert!(!prompt.is_empty() && prompt.len() <= self.model.block_size);
        let id = self.next_id;
        self.next_id += 1;
        let lane = Lane {
            id,
            tokens: prompt.to_vec(),
            window_start: 0,
            owned: Vec::new(),
            logits: Vec::new(),
        };
        self.join(lane);
        id
    }

    pub fn len(&self) -> usize {
        self.lanes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lanes.is_empty()
    }

    /// The lanes' ids, in row order.
    pub fn ids(&self) -> Vec<LaneId> {
        self.lanes.iter().map(|lane| lane.id).collect()
    }

    /// Next-token logits of a lane (`[vocab]`).
    pub fn logits(&self, id: LaneId) -> &[f32] {
        &self.lanes[self.row(id)].logits
    }

    /// All tokens of a lane so far, prompt included.
    pub fn tokens(&self, id: LaneId) -> &[u32] {
        &self.lanes[self.row(id)].tokens
    }

    /// Ends a lane; its slots stay until the next compaction, masked from everyone.
    pub fn remove(&mut self, id: LaneId) {
        self.take(id);
    }

    /// Adds `next[i]` to every lane (one entry per live lane, any order) and computes every
    /// lane's next logits in one pass through the model.
    pub fn advance(&mut self, next: &[(LaneId, u32)]) {
        assert_eq!(next.len(), self.lanes.len(), "every lane advances together");
        let mut sliding = Vec::new();
        for &(id, token) in next {
            let row = self.row(id);
            let lane = &mut self.lanes[row];
            lane.tokens.push(token);
            if lane.context_len() > self.model.block_size {
                sliding.push(id);
            }
        }
        // Lanes whose window slides leave, the others step together, and the sliders
        // rejoin with their newest tokens recomputed.
        let sliders: Vec<Lane> = sliding.into_iter().map(|id| self.take(id)).collect();
        if !self.lanes.is_empty() {
            self.step();
        }
        for mut lane in sliders {
            lane.window_start = lane.tokens.len() - (self.model.block_size / 2).max(1);
            self.join(lane);
        }
        if self.slots >= 2 * self.model.block_size {
            self.compact();
        }
    }

    fn row(&self, id: LaneId) -> usize {
        self.lanes
            .iter()
            .position(|lane| lane.id == id)
            .unwrap_or_else(|| panic!("no lane {id}"))
    }

    /// Takes a lane out of the batch (and its row out of the shared cache).
    fn take(&mut self, id: LaneId) -> Lane {
        let row = self.row(id);
        let lane = self.lanes.remove(row);
        if self.lanes.is_empty() {
            self.cache = None;
            self.slots = 0;
        } else {
            let keep: Vec<usize> = (0..=self.lanes.len()).filter(|&r| r != row).collect();
            self.select_rows(&keep);
        }
        lane
    }

    /// Runs a lane's context through the model on its own (its logits are then ready) and
    /// adds its keys and values to the batch as slots it owns.
    fn join(&mut self, mut lane: Lane) {
        let context = &lane.tokens[lane.window_start..];
        let mut own = KvCache::new(self.model.blocks.len());
        let ids: Vec<i64> = context.iter().map(|&t| i64::from(t)).collect();
        let input =
            Tensor::<2, Int>::from_data(TensorData::new(ids, [1, context.len()]), &self.device);
        lane.logits = to_vec(self.model.forward_cached(input, &mut own));
        let len = own.len;
        // Pad whichever is narrower, the batch or the newcomer, with unowned slots.
        let width = self.slots.max(len);
        let layers: Vec<LayerCache> = own
            .layers
            .into_iter()
            .map(|layer| LayerCache {
                keys: layer.keys.map(|k| pad_slots(k, width)),
                values: layer.values.map(|v| pad_slots(v, width)),
            })
            .collect();
        lane.owned = (0..width).map(|s| s < len).collect();
        self.cache = Some(match self.cache.take() {
            None => layers,
            Some(cache) => {
                for other in &mut self.lanes {
                    other.owned.resize(width, false);
                }
                cache
                    .into_iter()
                    .zip(layers)
                    .map(|(shared, mine)| LayerCache {
                        keys: cat_lanes(shared.keys, mine.keys, width),
                        values: cat_lanes(shared.values, mine.values, width),
                    })
                    .collect()
            }
        });
        self.slots = width;
        self.lanes.push(lane);
    }

    /// One decode step of every lane, their newest tokens at their own positions.
    fn step(&mut self) {
        let tokens: Vec<u32> = self
            .lanes
            .iter()
            .map(|l| *l.tokens.last().unwrap())
            .collect();
        let positions: Vec<usize> = self.lanes.iter().map(|l| l.context_len() - 1).collect();
        let hidden = self.hidden();
        let cache = self.cache.as_mut().expect("lanes have a cache");
        let logits = self.model.forward_lanes(&tokens, &positions, cache, hidden);
        let [_, vocab] = logits.dims();
        let values = to_vec(logits);
        self.slots += 1;
        for (lane, row) in self.lanes.iter_mut().zip(values.chunks(vocab)) {
            lane.owned.push(true);
            lane.logits = row.to_vec();
        }
    }

    /// `[lanes, n_head, 1, slots + 1]`: true where a slot is not the lane's (the last slot,
    /// the new token's own key, is everyone's).
    fn hidden(&self) -> Tensor<4, Bool> {
        let lanes = self.lanes.len();
        let width = self.slots + 1;
        let mut mask = Vec::with_capacity(lanes * width);
        for lane in &self.lanes {
            mask.extend(lane.owned.iter().map(|&own| !own));
            mask.push(false);
        }
        let n_head = self.model.blocks[0].attn.n_head;
        Tensor::<4, Bool>::from_data(TensorData::new(mask, [lanes, 1, 1, width]), &self.device)
            .expand([lanes, n_head, 1, width])
    }

    /// Keeps the given rows (in that order) of the shared cache.
    fn select_rows(&mut self, rows: &[usize]) {
        let index = Tensor::<1, Int>::from_data(
            TensorData::new(
                rows.iter().map(|&r| r as i64).collect::<Vec<_>>(),
                [rows.len()],
            ),
            &self.device,
        );
        if let Some(cache) = &mut self.cache {
            for layer in cache.iter_mut() {
                layer.keys = layer.keys.take().map(|k| k.select(0, index.clone()));
                layer.values = layer.values.take().map(|v| v.select(0, index.clone()));
            }
        }
    }

    /// Moves every lane's slots to the front, dropping slots no lane owns.
    fn compact(&mut self) {
        let width = self
            .lanes
            .iter()
            .map(|l| l.owned.iter().filter(|&&o| o).count())
            .max();
        let Some(width) = width.filter(|&w| w < self.slots) else {
            return;
        };
        let lanes = self.lanes.len();
        let mut index = Vec::with_capacity(lanes * width);
        for lane in &mut self.lanes {
            let mut own: Vec<i64> = (0..self.slots)
                .filter(|&s| lane.owned[s])
                .map(|s| s as i64)
                .collect();
            let count = own.len();
            own.resize(width, 0);
            index.extend(own);
            lane.owned = (0..width).map(|s| s < count).collect();
        }
        let cache = self.cache.as_mut().expect("lanes have a cache");
        for layer in cache.iter_mut() {
            for tensor in [&mut layer.keys, &mut layer.values] {
                *tensor = tensor.take().map(|t| {
                    let [_, kv, _, d] = t.dims();
                    let index = Tensor::<4, Int>::from_data(
                        TensorData::new(index.clone(), [lanes, 1, width, 1]),
                        &self.device,
                    )
                    .expand([lanes, kv, width, d]);
                    t.gather(2, index)
                });
            }
        }
        self.slots = width;
    }
}

fn to_vec(logits: Tensor<2>) -> Vec<f32> {
    logits
        .into_data_as::<f32>()
        .as_slice::<f32>()
        .expect("f32 data")
        .to_vec()
}

/// `[1, kv, len, d]` → `[1, kv, width, d]`, zeros after.
fn pad_slots(x: Tensor<4>, width: usize) -> Tensor<4> {
    let [b, kv, len, d] = x.dims();
    if len == width {
        return x;
    }
    let zeros = Tensor::<4>::zeros([b, kv, width - len, d], &x.device());
    Tensor::cat(vec![x, zeros], 2)
}

/// The shared cache (padded to `width` slots) with the newcomer's row below it.
fn cat_lanes(
    shared: Option<Tensor<4>>,
    mine: Option<Tensor<4>>,
    width: usize,
) -> Option<Tensor<4>> {
    match (shared, mine) {
        (Some(shared), Some(mine)) => {
            let [lanes, kv, slots, d] = shared.dims();
            let shared = if slots < width {
                let zeros = Tensor::<4>::zeros([lanes, kv, width - slots, d], &shared.device());
                Tensor::cat(vec![shared, zeros], 2)
            } else {
                shared
            };
            Some(Tensor::cat(vec![shared, mine], 0))
        }
        (shared, mine) => shared.or(mine),
    }
}
