//! tinygpt's training library: everything to train, resume, evaluate and reopen a run, with
//! no terminal in sight (the `tinygpt` binary in `crates/cli` draws the progress bar and
//! handles signals; this crate reports through [`trainer::TrainObserver`]).
//!
//! - [`collective`]: what data-parallel ranks share (the binary implements it over MPI).
//! - [`config`]: the run config (`[model]`, `[data]`, `[train]`), `--set` overrides, resumable keys.
//! - [`session`]: a new or resumed run, built and checked before anything is written.
//! - [`trainer`]: the loop: batches, AdamW steps, evaluation, checkpoints, divergence.
//! - [`optim`], [`schedule`], [`eval`]: the optimizer, the learning rate, scoring text.
//! - [`device`]: the one table of backends and `--device` names.
//! - [`run`]: the run directory: marker, lock, checkpoints, metrics, weights, manifests.
//! - [`model_config`]: the `[model]` section alone, for `params` and `bench`.
//! - [`footprint`]: the memory estimate that refuses impossible sizes up front.
//! - [`init_from`]: fine-tuning's starting point (`train --init-from`).
//! - [`interop`]: Hugging Face and GGUF model files, written and read.

pub mod attention_probe;
pub mod collective;
pub mod config;
/// The CPU's widest vectors and its measured fp32 peak (for `bench`'s MFU and `devices`).
pub use tinygpt_kernels::cpu;
/// What a training step's products take (`train.precision`).
pub use tinygpt_kernels::{Precision, with_precision};
pub mod device;
pub mod eval;
pub mod footprint;
pub mod init_from;
pub mod interop;
pub mod model_config;
pub mod muon;
pub mod optim;
pub mod run;
pub mod schedule;
pub mod session;
pub mod tensors;
pub mod trainer;

#[cfg(test)]
mod device_parity;
