//! The optimizer: AdamW with decoupled weight decay on weight matrices only, or Muon for the
//! blocks' weight matrices with AdamW for the rest (`train.optimizer`); global-norm clipping.
//!
//! Written here rather than taken from burn-optim: burn's parameter groups could give decay
//! on 2-D parameters only, but its `GradientClipping::Norm` clips each tensor by its own norm,
//! not by the norm of *all* gradients at once, and GPT training also wants moments addressed
//! by parameter path (saved and restored exactly) and the one-pass update on `flex`
//! (`tinygpt_kernels::adamw`).

use std::collections::HashMap;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::Tensor;

use tinygpt_kernels::adamw::{self, Coefficients, Moments};

use crate::config::{OptimizerKind, TrainConfig};
use crate::muon::Muon;

#[derive(Debug, Clone)]
pub struct Optimizer {
    beta1: f64,
    beta2: f64,
    epsilon: f64,
    weight_decay: f64,
    /// Muon's peak learning rate over AdamW's: the schedule scales both alike.
    muon_lr_ratio: f64,
    /// Optimizer steps taken (Adam's `t`, for bias correction).
    pub steps: u64,
    /// AdamW's first and second moments per parameter path, flattened to 1-D.
    pub moments: HashMap<String, Moments>,
    /// Muon for the blocks' weight matrices, when `train.optimizer = "muon"`.
    pub muon: Option<Muon>,
}

impl Optimizer {
    pub fn new(train: &TrainConfig) -> Self {
        Self {
            beta1: train.beta1,
            beta2: train.beta2,
            epsilon: 1e-8,
            weight_decay: train.weight_decay,
            muon_lr_ratio: train.muon_lr / train.lr,
            steps: 0,
            moments: HashMap::new(),
            muon: (train.optimizer == OptimizerKind::Muon).then(|| Muon::new(train)),
        }
    }

    /// One update of every parameter that has a gradient, at AdamW's learning rate `lr` (Muon's
    /// is `lr · muon_lr / train.lr`). `grad_scale` (shape `[1]`) multiplies every gradient
    /// first: the global clipping factor, kept on the device.
    pub fn step<M: Module>(
        &mut self,
        module: M,
        lr: f64,
        grads: &mut GradientsParams,
        grad_scale: Option<Tensor<1>>,
    ) -> M {
        self.steps += 1;
        let directions = match self.muon.as_mut() {
            Some(muon) => {
                let muon_grads = take_muon_grads(&module, grads, grad_scale.as_ref());
                muon.directions(muon_grads, self.steps)
            }
            None => HashMap::new(),
        };
        let mut update = Update {
            optim: self,
            grads,
            grad_scale,
            lr,
            directions,
            path: Vec::new(),
        };
        module.map(&mut update)
    }
}

/// The gradients of the matrices Muon updates, by path, each times the clipping factor.
fn take_muon_grads<M: Module>(
    module: &M,
    grads: &mut GradientsParams,
    grad_scale: Option<&Tensor<1>>,
) -> Vec<(String, Tensor<2>)> {
    struct Collect<'a> {
        grads: &'a mut GradientsParams,
        grad_scale: Option<&'a Tensor<1>>,
        path: Vec<String>,
        taken: Vec<(String, Tensor<2>)>,
    }
    impl ModuleVisitor for Collect<'_> {
        fn enter_module(&mut self, name: &str, _container_type: &str) {
            self.path.push(name.to_string());
        }
        fn exit_module(&mut self, _name: &str, _container_type: &str) {
            self.path.pop();
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let key = self.path.join(".");
            if !takes_muon(&key, D) {
                return;
            }
            let Some(grad) = self.grads.remove::<D>(param.id) else {
                return;
            };
            let dims = grad.dims();
            let mut grad = grad.reshape([dims[0], dims[1]]);
            if let Some(scale) = self.grad_scale {
                grad = grad * scale.clone().unsqueeze();
            }
            self.taken.push((key, grad));
        }
    }
    let mut collect = Collect {
        grads,
        grad_scale,
        path: Vec::new(),
        taken: Vec::new(),
    };
    module.visit(&mut collect);
    collect.taken
}

/// Whether Muon updates the parameter at `path` of rank `rank`: the blocks' weight matrices
/// (queries, keys, values, outputs, the MLP's maps). Embeddings, the head, gains and biases
/// stay with AdamW.
pub fn takes_muon(path: &str, rank: usize) -> bool {
    rank == 2 && path.starts_with("blocks.")
}

struct Update<'a> {
    optim: &'a mut Optimizer,
    grads: &'a mut GradientsParams,
    grad_scale: Option<Tensor<1>>,
    lr: f64,
    /// Muon's orthogonalised step for each matrix it updates, by path.
    directions: HashMap<String, Tensor<2>>,
    path: Vec<String>,
}

impl ModuleMapper for Update<'_> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let (id, tensor, mapper) = param.consume();
        let key = self.path.join(".");
        let shape = tensor.shape();
        if let Some(direction) = self.directions.remove(&key)
            && let Some(muon) = &self.optim.muon
        {
            let dims = [shape[0], shape[1]];
            let muon_lr = self.lr * self.optim.muon_lr_ratio;
            let weight = muon.apply(tensor.inner().reshape(dims), direction, muon_lr);
            let updated = Tensor::from_inner(weight.reshape(shape)).require_grad();
            return Param::from_mapped_value(id, updated, mapper);
        }
        let Some(grad) = self.grads.remove::<D>(id) else {
            return Param::from_mapped_value(id, tensor, mapper);
        };
        let n = shape.num_elements();
        let weight = tensor.inner().reshape([n]);
        let grad = grad.reshape([n]);

        let Optimizer {
            beta1,
            beta2,
            epsilon,
            ..
        } = *self.optim;
        let t = self.optim.steps as i32;
        // m̂ / (√v̂ + ε) with the bias corrections folded into two scalars (PyTorch's form):
        // lr·m/(1−β₁ᵗ) / (√v/√(1−β₂ᵗ) + ε) = [lr·√(1−β₂ᵗ)/(1−β₁ᵗ)] · m / (√v + ε·√(1−β₂ᵗ)).
        // Two fewer passes over every parameter than dividing the moments first.
        let correction2 = (1.0 - beta2.powi(t)).sqrt();
        // Decay pulls weight matrices and embeddings towards zero; biases and LayerNorm
        // gains (1-D) are left alone, as in GPT-2 and nanoGPT.
        let decay = if D >= 2 { self.optim.weight_decay } else { 0.0 };
        let coefficients = Coefficients {
            beta1,
            beta2,
            step_size: self.lr * correction2 / (1.0 - beta1.powi(t)),
            epsilon: epsilon * correction2,
            keep: 1.0 - self.lr * decay,
        };
        let previous = self.optim.moments.remove(&key);
        let scale = self.grad_scale.as_ref();
        let (weight, moments) = adamw::update(weight, grad, previous, scale, &coefficients);
        self.optim.moments.insert(key, moments);

        let updated = Tensor::from_inner(weight.reshape(shape)).require_grad();
        Param::from_mapped_value(id, updated, mapper)
    }
}

/// The norm of all gradients together, `sqrt(Σ g²)`, as a `[1]` tensor on the device.
pub fn global_grad_norm<M: Module>(module: &M, grads: &GradientsParams) -> Tensor<1> {
    struct SumSquares<'a> {
        grads: &'a GradientsParams,
        total: Option<Tensor<1>>,
    }
    impl ModuleVisitor for SumSquares<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if let Some(grad) = self.grads.get::<D>(param.id) {
                let sum = grad.square().sum();
                self.total = Some(match self.total.take() {
                    Some(total) => total + sum,
                    None => sum,
                });
            }
        }
    }
    let mut visitor = SumSquares { grads, total: None };
    module.visit(&mut visitor);
    visitor.total.expect("the model has parameters").sqrt()
}

/// The factor `min(1, max_norm / norm)` that clips gradients to a global norm of `max_norm`.
pub fn clip_scale(norm: Tensor<1>, max_norm: f64) -> Tensor<1> {
    norm.add_scalar(1e-6)
        .recip()
        .mul_scalar(max_norm)
        .clamp_max(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::Linear;
    use burn::tensor::{Device, TensorData};

    use crate::tensors::to_vec;

    fn device() -> Device {
        Device::flex().autodiff()
    }

    /// A 2×2 linear layer with known weights, and gradients equal to known constants:
    /// loss = Σ W ⊙ Cw + Σ b ⊙ cb, so ∂loss/∂W = Cw and ∂loss/∂b = cb.
    fn layer_and_grads(cw: [f32; 4], cb: [f32; 2]) -> (Linear, GradientsParams) {
        let d = device();
        let layer = Linear {
            weight: Param::from_data(TensorData::new(vec![1.0f32, -2.0, 0.5, 4.0], [2, 2]), &d),
            bias: Some(Param::from_data(
                TensorData::new(vec![0.25f32, -1.0], [2]),
                &d,
            )),
        };
        let cw = Tensor::<2>::from_data(TensorData::new(cw.to_vec(), [2, 2]), &d);
        let cb = Tensor::<1>::from_data(TensorData::new(cb.to_vec(), [2]), &d);
        let loss =
            (layer.weight.val() * cw).sum() + (layer.bias.as_ref().unwrap().val() * cb).sum();
        let grads = GradientsParams::from_grads(loss.backward(), &layer);
        (layer, grads)
    }

    #[test]
    fn first_step_matches_hand_computation_with_decay_on_matrices_only() {
        let train = TrainConfig {
            beta1: 0.9,
            beta2: 0.99,
            weight_decay: 0.5,
            ..TrainConfig::default()
        };
        let (layer, mut grads) = layer_and_grads([3.0, -1.0, 0.0, 2.0], [-4.0, 1.0]);
        let mut optim = Optimizer::new(&train);
        let lr = 0.1;
        let layer = optim.step(layer, lr, &mut grads, None);
        // Step 1: m̂ = g, v̂ = g², so the Adam step is g/(|g| + ε) ≈ sign(g) (0 where g = 0).
        // Weights: w·(1 − lr·wd) − lr·sign(g). Biases: no decay.
        let w = to_vec(layer.weight.val());
        let expected_w = [
            1.0 * 0.95 - 0.1,
            -2.0 * 0.95 + 0.1,
            0.5 * 0.95,
            4.0 * 0.95 - 0.1,
        ];
        for (got, want) in w.iter().zip(expected_w) {
            assert!((got - want).abs() < 1e-6, "{w:?} vs {expected_w:?}");
        }
        let b = to_vec(layer.bias.unwrap().val());
        let expected_b = [0.25 + 0.1, -1.0 - 0.1];
        for (got, want) in b.iter().zip(expected_b) {
            assert!((got - want).abs() < 1e-6, "{b:?} vs {expected_b:?}");
        }
        assert_eq!(optim.steps, 1);
        assert_eq!(optim.moments.len(), 2);
    }

    #[test]
    fn second_step_uses_bias_corrected_moments() {
        let train = TrainConfig {
            beta1: 0.5,
            beta2: 0.75,
            weight_decay: 0.0,
            ..TrainConfig::default()
        };
        let mut optim = Optimizer::new(&train);
        let (layer, mut grads) = layer_and_grads([2.0, 2.0, 2.0, 2.0], [2.0, 2.0]);
        let layer = optim.step(layer, 0.0, &mut grads, None); // lr 0: only moments move
        let d = device();
        let loss = (layer.weight.val()
            * Tensor::<2>::from_data(TensorData::new(vec![4.0f32; 4], [2, 2]), &d))
        .sum();
        let mut grads = GradientsParams::from_grads(loss.backward(), &layer);
        let before = to_vec(layer.weight.val());
        let layer = optim.step(layer, 1.0, &mut grads, None);
        // m = 0.5·(0.5·2) + 0.5·4 = 2.5, m̂ = 2.5/(1−0.25) = 10/3
        // v = 0.75·(0.25·4) + 0.25·16 = 4.75, v̂ = 4.75/(1−0.5625) = 76/7
        let step = (10.0f64 / 3.0) / (76.0f64 / 7.0).sqrt();
        for (b, a) in before.iter().zip(to_vec(layer.weight.val())) {
            assert!(
                ((b - a) as f64 - step).abs() < 1e-5,
                "moved {} not {step}",
                b - a
            );
        }
    }

    #[test]
    fn global_norm_and_clip_scale() {
        let (layer, grads) = layer_and_grads([3.0, 0.0, 0.0, 0.0], [0.0, 4.0]);
        let norm = global_grad_norm(&layer, &grads);
        assert!((to_vec(norm.clone())[0] - 5.0).abs() < 1e-6);
        assert!((to_vec(clip_scale(norm.clone(), 1.0))[0] - 0.2).abs() < 1e-6);
        assert_eq!(to_vec(clip_scale(norm, 10.0))[0], 1.0);
    }

    #[test]
    fn clipping_scales_the_gradients_the_optimizer_sees() {
        // With β1 = β2 = 0 Adam's step is g/|g| whatever the scale, so use SGD-like
        // evidence instead: the second moment stored after one step is (scale·g)²·(1−β2).
        let train = TrainConfig {
            beta2: 0.5,
            ..TrainConfig::default()
        };
        let (layer, mut grads) = layer_and_grads([3.0, 0.0, 0.0, 0.0], [0.0, 4.0]);
        let scale = clip_scale(global_grad_norm(&layer, &grads), 1.0);
        let mut optim = Optimizer::new(&train);
        optim.step(layer, 0.0, &mut grads, Some(scale));
        let second = to_vec(optim.moments["weight"].second.clone());
        assert!(
            (second[0] - 0.6f32.powi(2) * 0.5).abs() < 1e-6,
            "{second:?}"
        );
    }
}
