//! Rotary position embeddings (RoPE), through burn's ops (on every device).
//!
//! RoPE turns pair `i` of a head's query and key — dimensions `i` and `i + d/2`, the halves
//! convention of transformers' Llama — by the angle `position · base^(−2i/d)`. A query at
//! position m and a key at position n then score `q·R(n−m)·k`: only their distance counts.

use std::sync::Arc;

use burn::tensor::{Device, Tensor, TensorData};

/// cos and sin of every (position, pair) angle for positions `offset..offset + time`, each
/// `[1, time, 1, d_head/2]` so they broadcast over batch and heads of `[batch, time, head, d]`.
#[derive(Debug, Clone)]
pub struct RotaryTables {
    pub cos: Tensor<4>,
    pub sin: Tensor<4>,
    /// The same values on the host, `[time, d_head/2]` row-major (for the fused kernel, which
    /// shares them with every layer's op and backward pass instead of copying).
    pub cos_values: Arc<[f32]>,
    pub sin_values: Arc<[f32]>,
}

impl RotaryTables {
    /// Angles in f64, rounded once to f32 (positions far out keep their precision).
    pub fn new(offset: usize, time: usize, d_head: usize, base: f64, device: &Device) -> Self {
        let positions: Vec<usize> = (offset..offset + time).collect();
        Self::at(&positions, d_head, base, device)
    }

    /// The tables for any positions, one row each (several sequences decoding together, each
    /// at its own position, take one row apiece).
    pub fn at(positions: &[usize], d_head: usize, base: f64, device: &Device) -> Self {
        let (time, half) = (positions.len(), d_head / 2);
        let mut cos = Vec::with_capacity(time * half);
        let mut sin = Vec::with_capacity(time * half);
        for &position in positions {
            for i in 0..half {
                let frequency = base.powf(-2.0 * i as f64 / d_head as f64);
                let angle = position as f64 * frequency;
                cos.push(angle.cos() as f32);
                sin.push(angle.sin() as f32);
            }
        }
        let table = |values: &[f32]| {
            Tensor::<4>::from_data(TensorData::new(values.to_vec(), [1, time, 1, half]), device)
        };
        Self {
            cos: table(&cos),
            sin: table(&sin),
            cos_values: cos.into(),
            sin_values: sin.into(),
        }
    }
}

/// `x` `[batch, time, head, d_head]` with each head's pairs turned by their position's angles:
/// `(x₁, x₂) ↦ (x₁·cos − x₂·sin, x₂·cos + x₁·sin)`.
pub fn rotate(x: Tensor<4>, tables: &RotaryTables) -> Tensor<4> {
    let [.., d_head] = x.dims();
    let half = d_head / 2;
    let x1 = x.clone().narrow(3, 0, half);
    let x2 = x.narrow(3, half, half);
    let (cos, sin) = (tables.cos.clone(), tables.sin.clone());
    let y1 = x1.clone() * cos.clone() - x2.clone() * sin.clone();
    let y2 = x2 * cos + x1 * sin;
    Tensor::cat(vec![y1, y2], 3)
}
