//! The fused causal attention against narrow + split + burn's attention: outputs and
//! gradients, causality, and the merged heads' layout.

use burn::tensor::{Device, Tensor, TensorData};

use super::{max_abs_diff, random, training_device};
use crate::attention;
use crate::heads::split_heads;
use crate::plain_causal_self_attention;

/// The heads' outputs and the gradient with respect to packed `[batch, time, 3·n_embd]`
/// projections, through the fused op or through narrow + split + burn's attention, with an
/// upstream gradient that weighs every output differently.
fn attention_with_grads(fused: bool, n_head: usize, time: usize) -> (Tensor<4>, Tensor<3>) {
    let device = training_device();
    let c = 24;
    let qkv = Tensor::<3>::from_data(random([2, time, 3 * c], 1), &device).require_grad();
    let output = if fused {
        attention::causal_attention(&qkv, n_head).expect("flex autodiff takes the fused path")
    } else {
        plain_causal_self_attention(qkv.clone(), n_head, 0)
    };
    let weights = split_heads(
        Tensor::<3>::from_data(random([2, time, c], 4), &device),
        n_head,
    );
    let grads = (output.clone() * weights).sum().backward();
    (output, qkv.grad(&grads).expect("leaf gradient"))
}

#[test]
fn fused_attention_matches_plain_attention_and_its_gradients() {
    // 150 positions: two full query tiles and a partial one.
    for (n_head, time) in [(1, 17), (3, 17), (4, 17), (2, 150)] {
        let (fused_out, fused_grad) = attention_with_grads(true, n_head, time);
        let (plain_out, plain_grad) = attention_with_grads(false, n_head, time);
        let diff = max_abs_diff(fused_out, plain_out);
        assert!(
            diff < 1e-5,
            "{n_head} heads, {time} positions: outputs differ by {diff}"
        );
        let diff = max_abs_diff(fused_grad, plain_grad);
        assert!(
            diff < 1e-5,
            "{n_head} heads, {time} positions: dqkv differs by {diff}"
        );
    }
}

#[test]
fn fused_attention_never_lets_a_query_see_the_future() {
    // Changing the keys and values from position 70 on (inside the second query tile) leaves
    // outputs 0..70 unchanged.
    let device = training_device();
    let (time, c) = (130, 8);
    let run = |seed: u64| {
        let mut qkv = random([1, time, 3 * c], 2).try_to_vec::<f32>().unwrap();
        let other = random([1, time, 3 * c], seed).try_to_vec::<f32>().unwrap();
        for t in 70..time {
            let row = t * 3 * c;
            // Keys and values only: the queries stay.
            qkv[row + c..row + 3 * c].copy_from_slice(&other[row + c..row + 3 * c]);
        }
        let qkv = Tensor::from_data(TensorData::new(qkv, [1, time, 3 * c]), &device);
        attention::causal_attention(&qkv, 2).unwrap()
    };
    let (a, b) = (run(10), run(11));
    let past = |t: Tensor<4>| t.slice([0..1, 0..2, 0..70]);
    assert_eq!(max_abs_diff(past(a.clone()), past(b.clone())), 0.0);
    assert!(
        max_abs_diff(a, b) > 1e-3,
        "the future did change later outputs"
    );
}

#[test]
fn merging_the_fused_attentions_heads_copies_nothing() {
    // The heads come back as a view of one [batch, time, n_embd] buffer, so swap_dims and
    // reshape (merge_heads) only relabel it.
    use burn::backend::Flex;
    for device in [Device::flex(), training_device()] {
        let packed = Tensor::<3>::from_data(random([2, 70, 3 * 24], 8), &device);
        let heads = attention::causal_attention(&packed, 3).expect("flex takes the fused path");
        let merged = crate::heads::merge_heads(heads.clone());
        let (heads, merged) = (
            heads.inner().try_into_primitive::<Flex>().unwrap(),
            merged.inner().try_into_primitive::<Flex>().unwrap(),
        );
        assert!(merged.is_contiguous());
        assert_eq!(merged.layout().shape().dims::<3>(), [2, 70, 24]);
        assert_eq!(
            merged.storage::<f32>().as_ptr(),
            heads.storage::<f32>().as_ptr(),
            "merge_heads copied the attention output"
        );
    }
}
