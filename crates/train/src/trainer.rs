//! The training loop: sample a batch, predict every next token, step AdamW; evaluate on fixed
//! validation batches; log to the progress bar and `metrics.jsonl`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Instant;

use anyhow::Result;
use burn::module::Module;
use burn::tensor::{Device, Tensor};
use tinygpt_data::{Batch, BatchSampler, ChatSplits, Splits, fixed_batches};
use tinygpt_model::Gpt;

use crate::collective::Collective;
use crate::config::RunConfig;
use crate::optim::Optimizer;
use crate::run::checkpoint::{self, TrainState};
use crate::run::metrics::{MetricsLine, MetricsWriter, bits_per_byte};
use crate::schedule::learning_rate;
use crate::tensors::{batch_loss, scalar};

/// The number of the first stopping signal received (Ctrl-C, SIGTERM...), 0 while none has
/// been: whoever handles signals sets it, and the loop stops with a checkpoint.
pub type InterruptFlag = Arc<AtomicI32>;

/// What the loop reports as it goes: a terminal draws a bar, a test stays quiet.
pub trait TrainObserver {
    /// A metrics line was written (every `log_interval` steps and at evaluations).
    fn logged(&mut self, _line: &MetricsLine) {}
    /// An evaluation finished and its line is in `metrics.jsonl`.
    fn evaluated(&mut self) {}
    /// A checkpoint was completed in `dir`.
    fn checkpointed(&mut self, _dir: &Path) {}
}

/// An observer that ignores everything.
pub struct Quiet;

impl TrainObserver for Quiet {}

/// Where training starts: a fresh model at step 0, or everything a checkpoint restored.
pub struct Start {
    pub model: Gpt,
    pub optim: Optimizer,
    pub sampler: BatchSampler,
    pub step: usize,
    pub best_val_loss: Option<f64>,
    pub elapsed_s: f64,
    pub train_seconds: f64,
}

impl Start {
    pub fn fresh(model: Gpt, config: &RunConfig) -> Self {
        let train = &config.train;
        Self {
            model,
            optim: Optimizer::new(train),
            // Its own stream, distinct from the model init's.
            sampler: BatchSampler::new(
                train.seed.wrapping_add(1),
                train.batch_size,
                config.model.block_size,
            ),
            step: 0,
            best_val_loss: None,
            elapsed_s: 0.0,
            train_seconds: 0.0,
        }
    }
}

/// What ties checkpoints to the data they were trained on.
#[derive(Debug, Clone)]
pub struct Hashes {
    pub corpus_sha256: String,
    pub tokenizer_sha256: String,
}

/// Why a run stopped before `max_steps`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// Ctrl-C, SIGTERM or SIGHUP: the signal's number.
    Interrupted(i32),
    /// `--stop-at-step`.
    AtStep,
}

/// How a run ended, for the summary line.
pub struct Summary {
    pub steps: usize,
    pub train_loss: f64,
    pub val_loss: f64,
    pub initial_val_loss: Option<f64>,
    pub wall_s: f64,
    pub tokens_per_sec: f64,
    pub stopped: Option<Stopped>,
    pub checkpoint: Option<PathBuf>,
}

pub struct Trainer<'a> {
    pub config: &'a RunConfig,
    pub splits: &'a Splits,
    /// An autodiff device.
    pub device: Device,
    pub checkpoints: PathBuf,
    pub hashes: Hashes,
    /// Stop (with a checkpoint) after this step, without changing the schedule.
    pub stop_at_step: Option<usize>,
    /// Set by the Ctrl-C / SIGTERM handler.
    pub interrupt: InterruptFlag,
    /// UTF-8 bytes per token of the val split, for bits per byte.
    pub val_bytes_per_token: f64,
    /// The processes training together ([`Alone`] for one): each takes its share of the
    /// micro-batches and of the val batches; rank 0 alone writes metrics and checkpoints.
    pub collective: &'a dyn Collective,
    /// A chat corpus: windows start at conversations and learn the assistant's turns only.
    pub conversations: Option<ChatSplits>,
}

impl Trainer<'_> {
    pub fn run(
        &self,
        start: Start,
        metrics: &mut MetricsWriter,
        observer: &mut dyn TrainObserver,
    ) -> Result<(Gpt, Summary)> {
        let train = &self.config.train;
        let Start {
            mut model,
            mut optim,
            mut sampler,
            step: first_step,
            mut best_val_loss,
            elapsed_s: elapsed_before,
            mut train_seconds,
        } = start;
        let val_batches = match &self.conversations {
            None => fixed_batches(
                &self.splits.val,
                train.eval_batches,
                train.batch_size,
                self.config.model.block_size,
            ),
            Some(c) => c.val.fixed_batches(
                &self.splits.val,
                train.eval_batches,
                train.batch_size,
                self.config.model.block_size,
            ),
        };
        let ranks = self.collective.ranks();
        let leader = self.collective.is_leader();
        let tokens_per_step =
            (train.batch_size * self.config.model.block_size * train.grad_accum * ranks) as u64;
        let end = self
            .stop_at_step
            .map_or(train.max_steps, |s| s.min(train.max_steps));

        let started = Instant::now();
        let elapsed = || elapsed_before + started.elapsed().as_secs_f64();
        let mut initial_val_loss = None;
        let mut last_val_loss = None;
        let mut last = MetricsLine::default();
        if first_step == 0 {
            let val_loss = self.evaluate(&model, &val_batches);
            initial_val_loss = Some(val_loss);
            last_val_loss = Some(val_loss);
            best_val_loss = Some(val_loss);
            last = MetricsLine {
                step: 0,
                val_loss: Some(val_loss),
                val_bpb: Some(bits_per_byte(val_loss, self.val_bytes_per_token)),
                elapsed_s: elapsed(),
                ranks,
                ..Default::default()
            };
            if leader {
                metrics.write(&last)?;
                observer.logged(&last);
            }
        }

        let (mut window_start, mut window_tokens) = (Instant::now(), 0u64);
        let mut stopped = None;
        let mut saved: Option<PathBuf> = None;
        let mut last_step = first_step;
        for step in first_step + 1..=end {
            let lr = learning_rate(step, train);
            let (next, loss, grad_norm) = self.step(model, &mut optim, &mut sampler, step, lr);
            model = next;
            window_tokens += tokens_per_step;
            // One scalar a step: a diverged run stops here, before anything non-finite can
            // reach a checkpoint.
            let grad_norm = scalar(grad_norm);
            if !grad_norm.is_finite() {
                return Err(self.diverged(step, scalar(loss), grad_norm));
            }

            let is_eval = step % train.eval_interval == 0 || step == train.max_steps;
            let mut val_loss = None;
            if step % train.log_interval == 0 || is_eval {
                // The loss is read on logged steps only (the gradient norm above already
                // waited for the device this step).
                let train_loss = scalar(loss);
                if !train_loss.is_finite() {
                    return Err(self.diverged(step, train_loss, grad_norm));
                }
                let window_s = window_start.elapsed().as_secs_f64();
                train_seconds += window_s;
                if is_eval {
                    let val = self.evaluate(&model, &val_batches);
                    best_val_loss = Some(best_val_loss.map_or(val, |b| b.min(val)));
                    val_loss = Some(val);
                    last_val_loss = val_loss;
                }
                last = MetricsLine {
                    step,
                    train_loss: Some(train_loss),
                    val_loss,
                    val_bpb: val_loss.map(|v| bits_per_byte(v, self.val_bytes_per_token)),
                    lr: Some(lr),
                    grad_norm: Some(grad_norm),
                    tokens_per_sec: Some(window_tokens as f64 / window_s),
                    tokens: step as u64 * tokens_per_step,
                    elapsed_s: elapsed(),
                    ranks,
                };
                if leader {
                    metrics.write(&last)?;
                    observer.logged(&last);
                    if is_eval {
                        observer.evaluated();
                    }
                }
                (window_start, window_tokens) = (Instant::now(), 0);
            }

            last_step = step;
            // A signal to any rank stops them all, at the same step.
            let signal = self.interrupt.load(Ordering::SeqCst) as u32;
            let signal = self.collective.max_u64(u64::from(signal)) as i32;
            if signal != 0 {
                stopped = Some(Stopped::Interrupted(signal));
            } else if step == end && end < train.max_steps {
                stopped = Some(Stopped::AtStep);
            }
            let checkpoint_due =
                step % train.checkpoint_interval == 0 || step == end || stopped.is_some();
            if checkpoint_due && leader {
                let state = TrainState {
                    format: checkpoint::FORMAT,
                    step,
                    sampler: sampler.clone(),
                    val_loss,
                    best_val_loss,
                    elapsed_s: elapsed(),
                    train_seconds,
                    metrics_bytes: metrics.bytes_written(),
                    corpus_sha256: self.hashes.corpus_sha256.clone(),
                    tokenizer_sha256: self.hashes.tokenizer_sha256.clone(),
                    config: self.config.clone(),
                    ranks,
                    files: Default::default(),
                };
                saved = Some(checkpoint::save(
                    &self.checkpoints,
                    state,
                    &model.valid(),
                    &optim,
                )?);
                checkpoint::rotate(&self.checkpoints, train.keep_checkpoints)?;
                if let Some(dir) = &saved {
                    observer.checkpointed(dir);
                }
            }
            if stopped.is_some() {
                break;
            }
        }

        let steps = last_step;
        let tokens_run = (steps - first_step) as u64 * tokens_per_step;
        let summary = Summary {
            steps,
            train_loss: last.train_loss.unwrap_or(f64::NAN),
            val_loss: last_val_loss.unwrap_or(f64::NAN),
            initial_val_loss,
            wall_s: elapsed(),
            tokens_per_sec: tokens_run as f64 / train_seconds.max(1e-9),
            stopped,
            checkpoint: saved,
        };
        Ok((model, summary))
    }

    /// Stops a run whose loss or gradient norm is no longer finite, naming the way back.
    fn diverged(&self, step: usize, loss: f64, grad_norm: f64) -> anyhow::Error {
        let last = checkpoint::list(&self.checkpoints).unwrap_or_default();
        let lr = self.config.train.lr;
        let fix = match last.last() {
            Some((at, dir)) => format!(
                "its last checkpoint ({}, step {at}) is intact: continue from it with a lower rate, e.g. `tinygpt train --resume RUN --checkpoint step-{at} --set train.lr={}`",
                dir.display(),
                lr / 10.0
            ),
            _ => format!(
                "no checkpoint was written; start again with a lower train.lr (now {lr}), e.g. --set train.lr={} --overwrite",
                lr / 10.0
            ),
        };
        anyhow::anyhow!(
            "training diverged at step {step} (loss {loss}, gradient norm {grad_norm}): {fix}"
        )
    }

    /// One optimizer step over `grad_accum` micro-batches on each rank. All ranks draw the
    /// step's micro-batches from the same stream and each trains on its own consecutive
    /// `grad_accum` of them, so N ranks see exactly the batches one process with
    /// `grad_accum × N` would, and the sampler's state does not depend on the rank count.
    fn step(
        &self,
        model: Gpt,
        optim: &mut Optimizer,
        sampler: &mut BatchSampler,
        step: usize,
        lr: f64,
    ) -> (Gpt, Tensor<1>, Tensor<1>) {
        let train = &self.config.train;
        let per_rank = train.grad_accum;
        let total = per_rank * self.collective.ranks();
        let first = per_rank * self.collective.rank();
        let mut micro_batches = Vec::with_capacity(per_rank);
        for k in 0..total {
            let mine = (first..first + per_rank).contains(&k);
            match (&self.conversations, mine) {
                (None, true) => micro_batches.push(sampler.sample(&self.splits.train)),
                (None, false) => sampler.skip(&self.splits.train),
                (Some(c), true) => {
                    micro_batches.push(sampler.sample_conversations(&self.splits.train, &c.train))
                }
                (Some(c), false) => sampler.skip_conversations(&c.train),
            }
        }
        let shard = Shard {
            batches: &micro_batches,
            first,
            total,
            // Dropout masks are a function of the step, so a resumed run draws the same ones.
            dropout_seed: Some(train.seed.wrapping_add(step as u64)),
            precision: train.precision,
        };
        data_parallel_step(
            model,
            optim,
            &shard,
            lr,
            train.grad_clip,
            &self.device,
            self.collective,
        )
    }

    /// Mean loss over the fixed validation batches, without dropout or autodiff. Each rank
    /// scores every N-th batch; the sum over ranks is the same on all of them.
    fn evaluate(&self, model: &Gpt, batches: &[Batch]) -> f64 {
        let model = model.valid();
        let inner = self.device.clone().inner();
        let (rank, ranks) = (self.collective.rank(), self.collective.ranks());
        let mut total = [batches
            .iter()
            .skip(rank)
            .step_by(ranks)
            .map(|batch| scalar(batch_loss(&model, batch, &inner)))
            .sum::<f64>()];
        self.collective.sum_f64(&mut total);
        total[0] / batches.len() as f64
    }
}

mod step;
pub use step::{Shard, data_parallel_step, optimizer_step};

#[cfg(test)]
mod tests;
