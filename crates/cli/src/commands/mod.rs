//! One file per subcommand. The options several commands share live here; no command
//! imports another.

pub mod attention;
pub mod bench;
pub mod chat;
pub mod devices;
pub mod eval;
pub mod export;
pub mod params;
pub mod plot;
pub mod report;
pub mod runs;
pub mod sample;
pub mod serve;
pub mod tokenize;
pub mod train;

use std::path::PathBuf;

use anyhow::Result;
use tinygpt_train::run::weights::{TrainedRun, open_trained_run};

/// The options that pick a trained run, its weights and the device, shared by the commands
/// that compute with a trained model.
#[derive(Debug, clap::Args)]
pub struct RunSelection {
    /// Run directory written by `tinygpt train`.
    #[arg(long)]
    pub run: PathBuf,
    /// Weights to use: latest, best or step-N [default: the final weights, else latest].
    #[arg(long)]
    pub checkpoint: Option<String>,
    /// Compute device: auto, flex, ndarray, wgpu or wgpu:KIND (see `tinygpt devices`) [default: the run's].
    #[arg(long)]
    pub device: Option<String>,
}

impl RunSelection {
    pub fn open(&self) -> Result<TrainedRun> {
        open_trained_run(
            &self.run,
            self.device.as_deref(),
            self.checkpoint.as_deref(),
        )
    }
}
