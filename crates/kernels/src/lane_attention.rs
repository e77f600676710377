//! Attention for lanes decoding together (continuous batching): one query per lane and head,
//! against the slots of a shared key/value buffer the lane owns. On `flex` one pass over the
//! owned slots alone, in parallel over lanes; an attention op would run two tiny matrix
//! products per lane and head, and the plain twin's elementwise ops read every slot of the
//! buffer. Elsewhere, and as the fused one's oracle, the plain twin.

use burn::backend::Flex;
use burn::backend::flex::FlexTensor;
use burn::tensor::activation::softmax;
use burn::tensor::{Bool, Tensor, TensorData};
use rayon::prelude::*;

use super::{on_flex, values};

/// `query` `[lanes, head, 1, d]`; `keys` and `values` `[lanes, kv_head, capacity, d]`, of
/// which the first `width` slots count; `open[lane · width + slot]` says whether the lane
/// attends to that slot. Query head h reads key/value head `h / (head / kv_head)`. Returns
/// `[lanes, head, 1, d]`.
pub fn lane_attention(
    query: Tensor<4>,
    keys: Tensor<4>,
    values: Tensor<4>,
    open: &[bool],
    width: usize,
) -> Tensor<4> {
    if let (Some(q), Some(k), Some(v)) = (on_flex(&query), on_flex(&keys), on_flex(&values)) {
        return Tensor::from_primitive::<Flex>(fused(&q, &k, &v, open, width));
    }
    plain_lane_attention(query, keys, values, open, width)
}

/// [`lane_attention`] through burn's ops: scores as a product and a sum over each head's
/// features, the closed slots masked to −∞, a softmax over slots, the values weighed.
pub fn plain_lane_attention(
    query: Tensor<4>,
    keys: Tensor<4>,
    values: Tensor<4>,
    open: &[bool],
    width: usize,
) -> Tensor<4> {
    let [lanes, heads, _, d] = query.dims();
    let kv = keys.dims()[1];
    let share = |x: Tensor<4>| {
        let x = x.narrow(2, 0, width);
        if kv == heads {
            return x;
        }
        x.reshape([lanes, kv, 1, width, d])
            .expand([lanes, kv, heads / kv, width, d])
            .reshape([lanes, heads, width, d])
    };
    let closed: Vec<bool> = open.iter().map(|o| !o).collect();
    let closed = Tensor::<4, Bool>::from_data(
        TensorData::new(closed, [lanes, 1, width, 1]),
        &query.device(),
    )
    .expand([lanes, heads, width, 1]);
    let scores = (query * share(keys))
        .sum_dim(3)
        .div_scalar((d as f64).sqrt())
        .mask_fill(closed, f32::NEG_INFINITY);
    (softmax(scores, 2) * share(values)).sum_dim(2)
}

fn fused(
    query: &FlexTensor,
    keys: &FlexTensor,
    values_: &FlexTensor,
    open: &[bool],
    width: usize,
) -> FlexTensor {
    let (query, keys, values_) = (
        query.to_contiguous(),
        keys.to_contiguous(),
        values_.to_contiguous(),
    );
    let shape = query.layout().shape().clone();
    let (lanes, heads, d) = (shape[0], shape[1], shape[3]);
    let kv_shape = keys.layout().shape().clone();
    let (kv, capacity) = (kv_shape[1], kv_shape[2]);
    let (q, k, v) = (values(&query), values(&keys), values(&values_));
    let scale = 1.0 / (d as f32).sqrt();
    let group = heads / kv;
    let mut out = vec![0.0f32; lanes * heads * d];
    out.par_chunks_mut(heads * d)
        .enumerate()
        .for_each(|(lane, out)| {
            let open = &open[lane * width..(lane + 1) * width];
            let mut scores: Vec<(usize, f32)> = Vec::with_capacity(width);
            for (head, out) in out.chunks_exact_mut(d).enumerate() {
                let q = &q[(lane * heads + head) * d..][..d];
                let base = (lane * kv + head / group) * capacity * d;
                scores.clear();
                let mut max = f32::NEG_INFINITY;
                for slot in (0..width).filter(|&s| open[s]) {
                    let k = &k[base + slot * d..][..d];
                    let score = dot(q, k) * scale;
                    max = max.max(score);
                    scores.push((slot, score));
                }
                let mut sum = 0.0f32;
                for &(slot, score) in &scores {
                    let p = (score - max).exp();
                    sum += p;
                    for (o, v) in out.iter_mut().zip(&v[base + slot * d..][..d]) {
                        *o += p * v;
                    }
                }
                for o in out.iter_mut() {
                    *o /= sum;
                }
            }
        });
    FlexTensor::from_data(TensorData::new(out, [lanes, heads, 1, d]))
}

/// q·k in eight running sums (a sum the compiler can keep in vector registers).
fn dot(q: &[f32], k: &[f32]) -> f32 {
    let mut sums = [0.0f32; 8];
    let (q8, k8) = (q.chunks_exact(8), k.chunks_exact(8));
    let tail: f32 = q8
        .remainder()
        .iter()
        .zip(k8.remainder())
        .map(|(a, b)| a * b)
        .sum();
    for (q, k) in q8.zip(k8) {
        for i in 0..8 {
            sums[i] += q[i] * k[i];
        }
    }
    sums.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Device;
    use rand::{Rng, SeedableRng};

    fn random(shape: [usize; 4], seed: u64) -> Tensor<4> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let n = shape.iter().product();
        let v: Vec<f32> = (0..n).map(|_| rng.random_range(-1.0..1.0)).collect();
        Tensor::from_data(TensorData::new(v, shape), &Device::flex())
    }

    #[test]
    fn fused_equals_plain_with_closed_slots_and_grouped_heads() {
        for (heads, kv) in [(4, 4), (4, 2), (4, 1)] {
            let (lanes, capacity, width, d) = (5, 11, 9, 16);
            let query = random([lanes, heads, 1, d], 1);
            let keys = random([lanes, kv, capacity, d], 2);
            let values = random([lanes, kv, capacity, d], 3);
            // Each lane owns a different set of slots, at least one.
            let open: Vec<bool> = (0..lanes * width)
                .map(|i| (i % width) == width - 1 || (i * 7 + i / width) % 3 == 0)
                .collect();
            let fast = lane_attention(query.clone(), keys.clone(), values.clone(), &open, width);
            let plain = plain_lane_attention(query, keys, values, &open, width);
            let a = fast.into_data().try_to_vec::<f32>().unwrap();
            let b = plain.into_data().try_to_vec::<f32>().unwrap();
            let diff = a
                .iter()
                .zip(&b)
                .map(|(x, y)| (x - y).abs())
                .fold(0.0, f32::max);
            assert!(diff < 1e-5, "{heads}/{kv} heads: {diff}");
        }
    }
}
