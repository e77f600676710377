//! Moving data between host vectors and device tensors.

use burn::tensor::{Device, Int, Tensor, TensorData};
use tinygpt_data::Batch;
use tinygpt_model::{Gpt, cross_entropy, masked_cross_entropy};

/// Token ids `[rows, len]` as an Int tensor on `device`.
pub fn token_tensor(ids: &[i64], rows: usize, device: &Device) -> Tensor<2, Int> {
    let len = ids.len() / rows;
    Tensor::from_data(TensorData::new(ids.to_vec(), [rows, len]), device)
}

/// A batch's inputs and targets, each `[batch_size, block_size]`.
pub fn batch_tensors(batch: &Batch, device: &Device) -> (Tensor<2, Int>, Tensor<2, Int>) {
    (
        token_tensor(&batch.inputs, batch.batch_size, device),
        token_tensor(&batch.targets, batch.batch_size, device),
    )
}

/// The batch's loss: over every target, or over the ones it learns (a chat corpus).
pub fn batch_loss(model: &Gpt, batch: &Batch, device: &Device) -> Tensor<1> {
    let (inputs, targets) = batch_tensors(batch, device);
    let logits = model.forward(inputs);
    match &batch.learn {
        None => cross_entropy(logits, targets),
        Some(learn) => {
            let learned = learn.iter().filter(|&&w| w > 0.0).count();
            let shape = [batch.batch_size, batch.block_size];
            let learn = Tensor::from_data(TensorData::new(learn.clone(), shape), device);
            masked_cross_entropy(logits, targets, learn, learned)
        }
    }
}

/// Reads a one-element tensor (a loss, a norm) back to the host.
pub fn scalar(t: Tensor<1>) -> f64 {
    f64::from(t.into_scalar::<f32>())
}

/// Reads a float tensor back to the host as a flat vector.
pub fn to_vec<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data_as::<f32>()
        .as_slice::<f32>()
        .expect("converted to f32 above")
        .to_vec()
}
