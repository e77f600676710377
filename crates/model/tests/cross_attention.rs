//! Cross-attention: queries from one sequence over keys and values of another.

use burn::tensor::{Device, Distribution, Int, Tensor, TensorData};
use tinygpt_model::cross_attention::CrossAttention;
use tinygpt_model::init::Initializer;

fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data_as::<f32>().as_slice::<f32>().unwrap().to_vec()
}

fn setup() -> (CrossAttention, Tensor<3>, Tensor<3>) {
    let device = Device::flex();
    device.seed(0);
    let module = CrossAttention::new(16, 12, 4, &mut Initializer::new(3, &device));
    // Larger inputs than the 0.02 init gives, so the patterns are far from uniform.
    let x = Tensor::<3>::random([2, 5, 16], Distribution::Normal(0.0, 30.0), &device);
    let context = Tensor::<3>::random([2, 7, 12], Distribution::Normal(0.0, 30.0), &device);
    (module, x, context)
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn shapes_and_rows_summing_to_one_over_the_other_sequence() {
    let (module, x, context) = setup();
    let (out, pattern) = module.forward_explicit(x.clone(), context.clone());
    assert_eq!(out.dims(), [2, 5, 16]);
    assert_eq!(pattern.dims(), [2, 4, 5, 7]);
    let weights = values(pattern);
    for row in weights.chunks(7) {
        let sum: f32 = row.iter().sum();
        assert!((sum - 1.0).abs() < 1e-5, "{sum}");
        // No causal mask: every context position gets weight.
        assert!(row.iter().all(|&w| w > 0.0));
    }
    assert!(max_diff(&values(out), &values(module.forward(x, context))) < 1e-4);
}

#[test]
fn permuting_the_context_positions_changes_nothing() {
    let (module, x, context) = setup();
    let before = values(module.forward(x.clone(), context.clone()));
    let order = Tensor::<1, Int>::from_data(
        TensorData::new(vec![3i64, 0, 6, 1, 5, 2, 4], [7]),
        &context.device(),
    );
    let permuted = context.clone().select(1, order);
    let after = values(module.forward(x.clone(), permuted.clone()));
    assert!(
        max_diff(&before, &after) < 1e-4,
        "{}",
        max_diff(&before, &after)
    );
    // ...while permuting the queries permutes the output rows.
    let swap =
        Tensor::<1, Int>::from_data(TensorData::new(vec![4i64, 3, 2, 1, 0], [5]), &x.device());
    let reversed = values(module.forward(x.select(1, swap), context));
    for b in 0..2 {
        for t in 0..5 {
            let row = |v: &[f32], t: usize| v[(b * 5 + t) * 16..(b * 5 + t + 1) * 16].to_vec();
            assert!(max_diff(&row(&reversed, t), &row(&before, 4 - t)) < 1e-4);
        }
    }
}
