//! Moving data between host vectors and device tensors.

use burn::tensor::{Device, Int, Tensor, TensorData};
use tinygpt_data::Batch;

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
