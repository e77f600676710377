//! Several sequences generating together (continuous batching): each decode step feeds one new
//! token of every live sequence — a *lane* — through the model at once, so the weights are
//! read once per step however many sequences there are. Sequences join (after their own
//! prompt pass) and leave between steps.
//!
//! The lanes share one key/value cache per block, `[lanes, kv_head, slot, d_head]`, allocated
//! for `2·block_size + 1` slots so that a step writes its slot in place. A step fills one slot
//! for every lane; a joining lane brings its prompt's keys as slots of its own. So lane i's
//! keys are the slots it owns, marked in `owned[i]`; the rest are masked out of its attention. Attention does not care where a key
//! sits — each key was rotated to its own position when it was made — so a lane sees exactly
//! the keys and values its own `Generator` would, and picks the same tokens.
//!
//! Each lane keeps `Generator`'s context window: when its context would pass
//! `block_size`, its newest `block_size / 2` tokens are recomputed into its own row.

use burn::tensor::{Device, Int, Tensor, TensorData};

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

    /// Ends a lane (its row leaves the shared cache).
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
        if self.lanes.is_empty() {
            return;
        }
        // Lanes whose window slides ride along in the step on a stand-in token that nothing
        // reads, then have their newest tokens recomputed together, into their own rows. (A
        // sliding lane owns block_size slots, so its window always fits in its row.)
        self.step(&sliding);
        if !sliding.is_empty() {
            let window = (self.model.block_size / 2).max(1);
            let rows: Vec<usize> = sliding.iter().map(|&id| self.row(id)).collect();
            for &row in &rows {
                let lane = &mut self.lanes[row];
                lane.window_start = lane.tokens.len() - window;
            }
            self.refill(&rows);
        }
        if self.slots >= 2 * self.model.block_size {
            self.compact();
        }
    }

    /// Recomputes the contexts of the lanes in `rows` (all as long: a window after a slide)
    /// in one pass, and writes each one's keys and values over the first slots of its row
    /// (in place), which become the only slots it owns.
    fn refill(&mut self, rows: &[usize]) {
        let ids: Vec<i64> = rows
            .iter()
            .flat_map(|&r| {
                let lane = &self.lanes[r];
                lane.tokens[lane.window_start..]
                    .iter()
                    .map(|&t| i64::from(t))
            })
            .collect();
        let len = ids.len() / rows.len();
        let input =
            Tensor::<2, Int>::from_data(TensorData::new(ids, [rows.len(), len]), &self.device);
        let mut own = KvCache::new(self.model.blocks.len());
        let logits = to_vec(self.model.forward_cached(input, &mut own));
        let vocab = logits.len() / rows.len();
        for (i, &row) in rows.iter().enumerate() {
            let lane = &mut self.lanes[row];
            lane.logits = logits[i * vocab..(i + 1) * vocab].to_vec();
            lane.owned = (0..self.slots).map(|s| s < len).collect();
        }
        let cache = self.cache.as_mut().expect("lanes have a cache");
        for (shared, mine) in cache.iter_mut().zip(own.layers) {
            for (buffer, new) in [
                (&mut shared.keys, mine.keys),
                (&mut shared.values, mine.values),
            ] {
                let (Some(mut b), Some(new)) = (buffer.take(), new) else {
                    unreachable!("every layer caches keys and values");
                };
                let [_, kv, _, d] = b.dims();
                for (i, &row) in rows.iter().enumerate() {
                    let part = new.clone().slice([i..i + 1, 0..kv, 0..len, 0..d]);
                    b = b.slice_assign([row..row + 1, 0..kv, 0..len, 0..d], part);
                }
                *buffer = Some(b);
            }
        }
    }

    /// A lane's context through the model on its own: the logits after it, and its keys and
    /// values.
    fn prompt_pass(&self, lane: &Lane) -> (Vec<f32>, KvCache) {
        let context = &lane.tokens[lane.window_start..];
        let mut own = KvCache::new(self.model.blocks.len());
        let ids: Vec<i64> = context.iter().map(|&t| i64::from(t)).collect();
        let input =
            Tensor::<2, Int>::from_data(TensorData::new(ids, [1, context.len()]), &self.device);
        let logits = to_vec(self.model.forward_cached(input, &mut own));
        (logits, own)
    }

    /// Slots the shared cache has room for: compaction keeps the width below it.
    fn capacity(&self) -> usize {
        2 * self.model.block_size + 1
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
        let (logits, own) = self.prompt_pass(&lane);
        lane.logits = logits;
        let len = own.len;
        // The newcomer's slots are its own; the batch's logical width is the wider one's.
        let width = self.slots.max(len);
        let capacity = self.capacity();
        let layers: Vec<LayerCache> = own
            .layers
            .into_iter()
            .map(|layer| LayerCache {
                keys: layer.keys.map(|k| pad_slots(k, capacity)),
                values: layer.values.map(|v| pad_slots(v, capacity)),
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
                        keys: cat_lanes(shared.keys, mine.keys),
                        values: cat_lanes(shared.values, mine.values),
                    })
                    .collect()
            }
        });
        self.slots = width;
        self.lanes.push(lane);
    }

    /// One decode step of every lane, their newest tokens at their own positions; the lanes in
    /// `standing_in` are about to be refilled, and step on a stand-in that nothing reads.
    fn step(&mut self, standing_in: &[LaneId]) {
        let lanes = self.lanes.len();
        let (mut tokens, mut positions) = (Vec::with_capacity(lanes), Vec::with_capacity(lanes));
        let mut open = Vec::with_capacity(lanes * (self.slots + 1));
        for lane in &self.lanes {
            if standing_in.contains(&lane.id) {
                tokens.push(0);
                positions.push(0);
                open.extend(std::iter::repeat_n(false, self.slots));
            } else {
                tokens.push(*lane.tokens.last().expect("a lane has tokens"));
                positions.push(lane.context_len() - 1);
                open.extend(&lane.owned);
            }
            // Its own new key, at the slot this step writes.
            open.push(true);
        }
        let cache = self.cache.as_mut().expect("lanes have a cache");
        let logits =
            self.model
                .forward_lanes(&tokens, &positions, cache, self.slots, &open, &self.device);
        let [_, vocab] = logits.dims();
        let values = to_vec(logits);
        self.slots += 1;
        for (lane, row) in self.lanes.iter_mut().zip(values.chunks(vocab)) {
            lane.owned.push(true);
            lane.logits = row.to_vec();
        }
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

    /// Moves every lane's slots to the front of its row, in order, so the width shrinks to the
    /// most any lane owns. A lane owns a few runs of slots (its prompt's, then one per step),
    /// so this is a few in-place copies per lane, not a gather over the whole cache.
    fn compact(&mut self) {
        let width = self
            .lanes
            .iter()
            .map(|l| l.owned.iter().filter(|&&o| o).count())
            .max();
        let Some(width) = width.filter(|&w| w < self.slots) else {
            return;
        };
        let device = self.device.clone();
        let cache = self.cache.as_mut().expect("lanes have a cache");
        for (row, lane) in self.lanes.iter_mut().enumerate() {
            let mut runs: Vec<(usize, usize)> = Vec::new();
            for (slot, _) in lane.owned.iter().enumerate().filter(|(_, o)| **o) {
                match runs.last_mut() {
                    Some((_, end)) if *end == slot => *end += 1,
                    _ => runs.push((slot, slot + 1)),
                }
            }
            let mut to = 0;
            for (from, end) in runs {
                let len = end - from;
                if from != to {
                    for layer in cache.iter_mut() {
                        for buffer in [&mut layer.keys, &mut layer.values] {
                            let b = buffer.take().expect("every layer caches keys and values");
                            let [_, kv, _, d] = b.dims();
                            // A copy of the run first, so the buffer is the cache's alone
                            // again (and written in place) when the run lands.
                            let run = b.clone().slice([row..row + 1, 0..kv, from..end, 0..d]);
                            let run = Tensor::<4>::from_data(run.into_data(), &device);
                            *buffer = Some(
                                b.slice_assign([row..row + 1, 0..kv, to..to + len, 0..d], run),
                            );
                        }
                    }
                }
                to += len;
            }
            lane.owned = (0..width).map(|s| s < to).collect();
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

/// `[lanes, kv, len, d]` → `[lanes, kv, width, d]`, zeros after.
fn pad_slots(x: Tensor<4>, width: usize) -> Tensor<4> {
    let [b, kv, len, d] = x.dims();
    if len == width {
        return x;
    }
    let zeros = Tensor::<4>::zeros([b, kv, width - len, d], &x.device());
    Tensor::cat(vec![x, zeros], 2)
}

/// The shared cache with the newcomer's row below it (both as wide as the capacity).
fn cat_lanes(shared: Option<Tensor<4>>, mine: Option<Tensor<4>>) -> Option<Tensor<4>> {
    match (shared, mine) {
        (Some(shared), Some(mine)) => Some(Tensor::cat(vec![shared, mine], 0)),
        (shared, mine) => shared.or(mine),
    }
}
