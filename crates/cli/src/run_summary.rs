//! Where one run stands: its steps, best validation loss, tokens, time and state, as
//! `tinygpt runs` lists it and `tinygpt report` shows it.

use std::path::Path;

use anyhow::Result;

use tinygpt_train::config::RunConfig;
use tinygpt_train::run::checkpoint;
use tinygpt_train::run::metrics::{MetricsLine, read_metrics};
use tinygpt_train::run::weights::read_run_model;
use tinygpt_train::run::{RunDir, RunKind, holder_of_lock};

#[derive(Debug, PartialEq)]
pub struct RunRow {
    pub name: String,
    pub steps: usize,
    pub max_steps: usize,
    pub best_val_loss: Option<f64>,
    pub best_val_bpb: Option<f64>,
    /// The step of the best val loss.
    pub best_val_step: Option<usize>,
    pub tokens: u64,
    pub wall_s: f64,
    pub device: String,
    pub state: RunState,
}

/// Where a run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunState {
    /// Final weights, verified against the run's SHA256SUMS.
    Finished,
    /// Checkpoints but no final weights yet: `train --resume` continues it.
    Stopped,
    /// A process holds the run's lock right now.
    Running,
    /// Made by `tinygpt import`: weights, no training history.
    Imported,
    /// Unreadable config, final weights that fail verification, no metrics for a trained
    /// run, or nothing to resume from.
    Broken,
}

impl RunState {
    pub fn label(self) -> &'static str {
        match self {
            Self::Finished => "finished",
            Self::Stopped => "stopped",
            Self::Running => "running",
            Self::Imported => "imported",
            Self::Broken => "broken",
        }
    }
}

impl RunRow {
    /// The row of the run at `path`; a run whose files are damaged is broken, not an error.
    pub fn of(path: &Path) -> Result<Self> {
        let lines = read_metrics(&RunDir::open(path)?.metrics()).unwrap_or_default();
        Self::with_metrics(path, &lines)
    }

    /// The same, from the run's metrics already read.
    pub fn with_metrics(path: &Path, lines: &[MetricsLine]) -> Result<Self> {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let run = RunDir::open(path)?;
        let Ok(config) = RunConfig::load(&run.config(), &[]) else {
            return Ok(Self {
                name,
                steps: 0,
                max_steps: 0,
                best_val_loss: None,
                best_val_bpb: None,
                best_val_step: None,
                tokens: 0,
                wall_s: 0.0,
                device: "-".into(),
                state: RunState::Broken,
            });
        };
        let best = lines
            .iter()
            .filter_map(|l| l.val_loss.map(|v| (v, l)))
            .min_by(|a, b| a.0.total_cmp(&b.0))
            .map(|(_, l)| l);
        let last = lines.last();
        Ok(Self {
            name,
            steps: last.map_or(0, |l| l.step),
            max_steps: config.train.max_steps,
            best_val_loss: best.and_then(|l| l.val_loss),
            best_val_bpb: best.and_then(|l| l.val_bpb),
            best_val_step: best.map(|l| l.step),
            tokens: last.map_or(0, |l| l.tokens),
            wall_s: last.map_or(0.0, |l| l.elapsed_s),
            device: config.train.device,
            // A trained run without its metrics has lost its record: not "finished at 0".
            state: match state_of(&run) {
                RunState::Finished if lines.is_empty() => RunState::Broken,
                state => state,
            },
        })
    }
}

fn state_of(run: &RunDir) -> RunState {
    if holder_of_lock(&run.path).is_some() {
        return RunState::Running;
    }
    let weights_ok = run.model().is_file() && read_run_model(run).is_ok();
    if run.kind() == Some(RunKind::Imported) {
        return if weights_ok {
            RunState::Imported
        } else {
            RunState::Broken
        };
    }
    if weights_ok {
        RunState::Finished
    } else if !run.model().is_file()
        && checkpoint::list(&run.checkpoints()).is_ok_and(|c| !c.is_empty())
    {
        RunState::Stopped
    } else {
        RunState::Broken
    }
}
