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

    /// One optimizer step over `grad_accum` micro-batches drawn from the train split.
    fn step(
        &self,
        model: Gpt,
        optim: &mut AdamW,
        sampler: &mut BatchSampler,
        lr: f64,
    ) -> (Gpt, Tensor<1>, Tensor<1>) {
        let micro_batches: Vec<Batch> = (0..self.config.train.grad_accum)
            .map(|_| sampler.sample(&self.splits.train))
            .collect();
        optimizer_step(
            model,
            optim,
            &micro_batches,
            lr,
            self.config.train.grad_clip,
            &self.device,
        )
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

/// One AdamW step on the summed gradients of `micro_batches` (each loss divided by their
/// number, so the step is that of the mean loss). Returns the updated model, the mean loss and
/// the gradient norm before clipping, both still on the device. `max_norm` 0 means no clipping.
pub fn optimizer_step(
    model: Gpt,
    optim: &mut AdamW,
    micro_batches: &[Batch],
    lr: f64,
    max_norm: f64,
    device: &Device,
) -> (Gpt, Tensor<1>, Tensor<1>) {
    let n = micro_batches.len() as f64;
    let mut accumulator = GradientsAccumulator::<Gpt>::new();
    let mut loss_sum: Option<Tensor<1>> = None;
    for batch in micro_batches {
        let (inputs, targets) = batch_tensors(batch, device);
        let loss = cross_entropy(model.forward(inputs), targets).div_scalar(n);
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
    let scale = (max_norm > 0.0).then(|| clip_scale(grad_norm.clone(), max_norm));
    let model = optim.step(model, lr, &mut grads, scale);
    (
        model,
        loss_sum.expect("at least one micro-batch"),
        grad_norm,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TrainConfig;
    use crate::tensors::to_vec;
    use tinygpt_model::GptConfig;

    fn model_config() -> GptConfig {
        GptConfig {
            vocab_size: 13,
            block_size: 12,
            n_layer: 2,
            n_head: 2,
            n_embd: 32,
            dropout: 0.0,
            bias: true,
            tie_embeddings: true,
        }
    }

    fn device() -> Device {
        Device::flex().autodiff()
    }

    fn tokens(n: usize) -> Vec<u32> {
        // A stream with some structure but no short period.
        (0..n).map(|i| ((i * 7 + i / 5) % 13) as u32).collect()
    }

    #[test]
    fn overfits_one_fixed_batch() {
        let device = device();
        let mut model = Gpt::new(&model_config(), 0, &device).unwrap();
        let mut optim = AdamW::new(&TrainConfig {
            weight_decay: 0.0,
            ..TrainConfig::default()
        });
        let batch = BatchSampler::new(0, 4, 12).sample(&tokens(500));
        let mut loss = f64::INFINITY;
        for _ in 0..300 {
            let (next, l, _) = optimizer_step(
                model,
                &mut optim,
                std::slice::from_ref(&batch),
                3e-3,
                1.0,
                &device,
            );
            model = next;
            loss = scalar(l);
        }
        assert!(loss < 0.1, "loss after 300 steps on one batch: {loss}");
    }

    #[test]
    fn accumulating_two_half_batches_equals_one_full_batch() {
        let device = device();
        let data = tokens(2000);
        let full = BatchSampler::new(9, 8, 12).sample(&data);
        let mut halves = BatchSampler::new(9, 4, 12);
        let halves = [halves.sample(&data), halves.sample(&data)];
        // The sampler draws window starts in order, so the halves are the full batch split.
        assert_eq!(halves[0].inputs, full.inputs[..48]);

        let train = TrainConfig::default();
        let run = |batches: &[Batch]| {
            let model = Gpt::new(&model_config(), 1, &device).unwrap();
            let mut optim = AdamW::new(&train);
            let (model, loss, norm) =
                optimizer_step(model, &mut optim, batches, 1e-2, 1.0, &device);
            let (model, _, _) = optimizer_step(model, &mut optim, batches, 1e-2, 1.0, &device);
            (
                to_vec(model.blocks[0].attn.query.weight.val()),
                scalar(loss),
                scalar(norm),
            )
        };
        let (w_full, loss_full, norm_full) = run(&[full]);
        let (w_acc, loss_acc, norm_acc) = run(&halves);
        assert!(
            (loss_full - loss_acc).abs() < 1e-5,
            "{loss_full} vs {loss_acc}"
        );
        assert!(
            (norm_full - norm_acc).abs() < 1e-4,
            "{norm_full} vs {norm_acc}"
        );
        let max_diff = w_full
            .iter()
            .zip(&w_acc)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(max_diff < 1e-5, "weights differ by {max_diff}");
    }

    #[test]
    fn validation_loss_falls_when_training_on_structured_data() {
        let device = device();
        let config = RunConfig {
            model: model_config(),
            data: crate::config::DataConfig {
                corpus: "unused".into(),
                tokenizer: "char".into(),
                val_fraction: 0.1,
            },
            train: TrainConfig {
                batch_size: 8,
                max_steps: 40,
                lr: 3e-3,
                warmup_steps: 5,
                eval_interval: 20,
                eval_batches: 2,
                log_interval: 10,
                ..TrainConfig::default()
            },
        };
        let splits = Splits::new(tokens(3000), 0.1, 12).unwrap();
        let trainer = Trainer {
            config: &config,
            splits: &splits,
            device: device.clone(),
        };
        let dir = std::env::temp_dir().join(format!("tinygpt-trainer-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut metrics = MetricsWriter::create(&dir.join("metrics.jsonl")).unwrap();
        let model = Gpt::new(&config.model, 0, &device).unwrap();
        let (_, summary) = trainer
            .run(model, &mut metrics, &mut Progress::quiet(40))
            .unwrap();
        assert!(
            summary.val_loss < summary.initial_val_loss - 0.5,
            "{} -> {}",
            summary.initial_val_loss,
            summary.val_loss
        );

        let lines = crate::metrics::read_metrics(&dir.join("metrics.jsonl")).unwrap();
        let steps: Vec<usize> = lines.iter().map(|l| l.step).collect();
        assert_eq!(steps, vec![0, 10, 20, 30, 40]);
        let evals: Vec<usize> = lines
            .iter()
            .filter(|l| l.val_loss.is_some())
            .map(|l| l.step)
            .collect();
        assert_eq!(evals, vec![0, 20, 40]);
        assert!(
            lines[1..]
                .iter()
                .all(|l| l.train_loss.is_some() && l.lr.is_some() && l.tokens_per_sec.is_some())
        );
        assert_eq!(lines[4].tokens, 40 * 8 * 12);
    }
}
