//! AdamW with decoupled weight decay on weight matrices only, and global-norm clipping.
//!
//! Written here rather than taken from burn-optim because GPT training needs three things
//! burn's `AdamW` does not offer together: decay on 2-D parameters but not on biases and
//! LayerNorm gains, clipping by the norm of *all* gradients at once, and moments addressed by
//! parameter path so they can be saved and restored exactly.

use std::collections::HashMap;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::Tensor;

use crate::config::TrainConfig;

#[derive(Debug, Clone)]
pub struct AdamW {
    beta1: f64,
    beta2: f64,
    epsilon: f64,
    weight_decay: f64,
    /// Optimizer steps taken (Adam's `t`, for bias correction).
    pub steps: u64,
    /// First and second moments per parameter path, flattened to 1-D.
    pub moments: HashMap<String, Moments>,
}

#[derive(Debug, Clone)]
pub struct Moments {
    pub first: Tensor<1>,
    pub second: Tensor<1>,
}

impl AdamW {
    pub fn new(train: &TrainConfig) -> Self {
        Self {
            beta1: train.beta1,
            beta2: train.beta2,
            epsilon: 1e-8,
            weight_decay: train.weight_decay,
            steps: 0,
            moments: HashMap::new(),
        }
    }

    /// One update of every parameter that has a gradient. `grad_scale` (shape `[1]`)
    /// multiplies every gradient first: the global clipping factor, kept on the device.
    pub fn step<M: Module>(
        &mut self,
        module: M,
        lr: f64,
        grads: &mut GradientsParams,
        grad_scale: Option<Tensor<1>>,
    ) -> M {
        self.steps += 1;
        let mut update = Update {
            optim: self,
            grads,
            grad_scale,
            lr,
            path: Vec::new(),
        };
        module.map(&mut update)
    }
}

struct Update<'a> {
    optim: &'a mut AdamW,
    grads: &'a mut GradientsParams,
    grad_scale: Option<Tensor<1>>,
    lr: f64,
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
        let Some(grad) = self.grads.remove::<D>(id) else {
            return Param::from_mapped_value(id, tensor, mapper);
        };
        let shape = tensor.shape();
        let n = shape.num_elements();
        let weight = tensor.inner().reshape([n]);
        let mut grad = grad.reshape([n]);
        if let Some(scale) = &self.grad_scale {
            grad = grad * scale.clone();
        }

        let AdamW {
            beta1: b1,
            beta2: b2,
            epsilon,
            ..
        } = *self.optim;
        let t = self.optim.steps as i32;
        let key = self.path.join(".");
        let moments = match self.optim.moments.remove(&key) {
            Some(Moments { first, second }) => Moments {
                first: first.mul_scalar(b1) + grad.clone().mul_scalar(1.0 - b1),
                second: second.mul_scalar(b2) + grad.square().mul_scalar(1.0 - b2),
            },
            None => Moments {
                first: grad.clone().mul_scalar(1.0 - b1),
                second: grad.square().mul_scalar(1.0 - b2),
            },
        };
        let first_hat = moments.first.clone().div_scalar(1.0 - b1.powi(t));
        let second_hat = moments.second.clone().div_scalar(1.0 - b2.powi(t));
        let step = first_hat / second_hat.sqrt().add_scalar(epsilon);

        // Decay pulls weight matrices and embeddings towards zero; biases and LayerNorm
        // gains (1-D) are left alone, as in GPT-2 and nanoGPT.
        let decay = if D >= 2 { self.optim.weight_decay } else { 0.0 };
        let weight = weight.mul_scalar(1.0 - self.lr * decay) - step.mul_scalar(self.lr);
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
