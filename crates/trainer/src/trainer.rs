//! The training loop: sample a batch, predict every next token, step AdamW; evaluate on fixed
//! validation batches; log to the progress bar and `metrics.jsonl`.

use std::time::Instant;

use anyhow::Result;
use burn::module::Module;
use burn::optim::{GradientsAccumulator, GradientsParams};
use burn::tensor::{Device, Tensor};
use tinygpt_data::{Batch, BatchSampler, Splits, fixed_batches};
use tinygpt_model::{Gpt, cross_entropy};

use crate::config::RunConfig;
use crate::metrics::{MetricsLine, MetricsWriter};
use crate::optim::{AdamW, clip_scale, global_grad_norm};
use crate::progress::Progress;
use crate::schedule::learning_rate;
use crate::tensors::{batch_tensors, scalar};

/// How a run ended, for the summary line.
pub struct Summary {
    pub steps: usize,
    pub train_loss: f64,
    pub val_loss: f64,
    pub initial_val_loss: f64,
    pub wall_s: f64,
    pub tokens_per_sec: f64,
}

pub struct Trainer<'a> {
    pub config: &'a RunConfig,
    pub splits: &'a Splits,
    /// An autodiff device.
    pub device: Device,
}

impl Trainer<'_> {
    pub fn run(
        &self,
        mut model: Gpt,
        metrics: &mut MetricsWriter,
        progress: &mut Progress,
    ) -> Result<(Gpt, Summary)> {
        let train = &self.config.train;
        let mut optim = AdamW::new(train);
        let mut sampler = BatchSampler::new(
            train.seed.wrapping_add(1),
            train.batch_size,
            self.config.model.block_size,
        );
        let val_batches = fixed_batches(
            &self.splits.val,
            train.eval_batches,
            train.batch_size,
            self.config.model.block_size,
        );
        let tokens_per_step =
            (train.batch_size * self.config.model.block_size * train.grad_accum) as u64;

        let started = Instant::now();
        let initial_val_loss = self.evaluate(&model, &val_batches);
        let first = MetricsLine {
            step: 0,
            val_loss: Some(initial_val_loss),
            elapsed_s: started.elapsed().as_secs_f64(),
            ..Default::default()
        };
        metrics.write(&first)?;
        progress.log(&first);

        let mut train_seconds = 0.0;
        let (mut window_start, mut window_tokens) = (Instant::now(), 0u64);
        let mut last = first;
        for step in 1..=train.max_steps {
            let lr = learning_rate(step, train);
            let (next, loss, grad_norm) = self.step(model, &mut optim, &mut sampler, lr);
            model = next;
            window_tokens += tokens_per_step;

            let is_eval = step % train.eval_interval == 0 || step == train.max_steps;
            if step % train.log_interval != 0 && !is_eval {
                continue;
            }
            // Reading the loss waits for the device: only done on logged steps.
            let train_loss = scalar(loss);
            let grad_norm = scalar(grad_norm);
            let window_s = window_start.elapsed().as_secs_f64();
            train_seconds += window_s;
            let mut line = MetricsLine {
                step,
                train_loss: Some(train_loss),
                lr: Some(lr),
                grad_norm: Some(grad_norm),
                tokens_per_sec: Some(window_tokens as f64 / window_s),
                tokens: step as u64 * tokens_per_step,
                ..Default::default()
            };
            if is_eval {
                line.val_loss = Some(self.evaluate(&model, &val_batches));
            }
            line.elapsed_s = started.elapsed().as_secs_f64();
            metrics.write(&line)?;
            progress.log(&line);
            last = line;
            (window_start, window_tokens) = (Instant::now(), 0);
        }

        let steps = train.max_steps;
        let summary = Summary {
            steps,
            train_loss: last.train_loss.unwrap_or(f64::NAN),
            val_loss: last.val_loss.unwrap_or(f64::NAN),
            initial_val_loss,
            wall_s: started.elapsed().as_secs_f64(),
            tokens_per_sec: (steps as u64 * tokens_per_step) as f64 / train_seconds,
        };
        Ok((model, summary))
    }

    /// One optimizer step over `grad_accum` micro-batches. Returns the updated model, the
    /// mean micro-batch loss and the gradient norm before clipping (both still on the device).
    fn step(
        &self,
        model: Gpt,
        optim: &mut AdamW,
        sampler: &mut BatchSampler,
        lr: f64,
    ) -> (Gpt, Tensor<1>, Tensor<1>) {
        let accum = self.config.train.grad_accum;
        let mut accumulator = GradientsAccumulator::<Gpt>::new();
        let mut loss_sum: Option<Tensor<1>> = None;
        for _ in 0..accum {
            let (inputs, targets) =
                batch_tensors(&sampler.sample(&self.splits.train), &self.device);
            // Dividing by `accum` makes the summed gradients those of the mean loss.
            let loss = cross_entropy(model.forward(inputs), targets).div_scalar(accum as f64);
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            accumulator.accumulate(&model, grads);
            let loss = loss.detach().inner();
            loss_sum = Some(match loss_sum {
                Some(sum) => sum + loss,
                None => loss,
            });
        }
        let mut grads = accumulator.grads();
        let grad_norm = global_grad_norm(&model, &grads);
        let max_norm = self.config.train.grad_clip;
        let scale = (max_norm > 0.0).then(|| clip_scale(grad_norm.clone(), max_norm));
        let model = optim.step(model, lr, &mut grads, scale);
        (model, loss_sum.expect("grad_accum >= 1"), grad_norm)
    }

    /// Mean loss over the fixed validation batches, without dropout or autodiff.
    fn evaluate(&self, model: &Gpt, batches: &[Batch]) -> f64 {
        let model = model.valid();
        let inner = self.device.clone().inner();
        let total: f64 = batches
            .iter()
            .map(|batch| {
                let (inputs, targets) = batch_tensors(batch, &inner);
                scalar(cross_entropy(model.forward(inputs), targets))
            })
            .sum();
        total / batches.len() as f64
    }
}
