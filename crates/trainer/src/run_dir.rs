//! The run directory: everything one training run leaves behind.
//!
//! ```text
//! runs/<name>/
//!   config.toml      the fully resolved config (vocab_size and device filled in)
//!   tokenizer.json   the tokenizer the run trained with
//!   metrics.jsonl    one JSON object per logged step
//!   checkpoints/     step-NNNNNNN/ directories (see `checkpoint`)
//!   loss.png         loss curves, redrawn after every evaluation
//!   model.safetensors  final weights (with config and tokenizer: see `tinygpt export`)
//! ```

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

pub struct RunDir {
    pub path: PathBuf,
}

impl RunDir {
    /// Creates `path` for a new run. An existing, non-empty directory is refused unless
    /// `overwrite` is set and it holds a tinygpt run (so `--overwrite` never wipes a
    /// directory that is not ours).
    pub fn create(path: &Path, overwrite: bool) -> Result<Self> {
        let run = Self { path: path.into() };
        let non_empty = path
            .read_dir()
            .map(|mut entries| entries.next().is_some())
            .unwrap_or(false);
        if non_empty {
            if !overwrite {
                bail!(
                    "run directory {} already exists and is not empty: choose another --out, or pass --overwrite to replace it",
                    path.display()
                );
            }
            if !run.config().is_file() || !run.metrics().is_file() {
                bail!(
                    "--overwrite refused: {} does not look like a tinygpt run (no config.toml and metrics.jsonl); remove it yourself or choose another --out",
                    path.display()
                );
            }
            std::fs::remove_dir_all(path)
                .with_context(|| format!("cannot remove old run {}", path.display()))?;
        }
        std::fs::create_dir_all(path)
            .with_context(|| format!("cannot create run directory {}", path.display()))?;
        Ok(run)
    }

    /// An existing run, for resuming.
    pub fn open(path: &Path) -> Result<Self> {
        let run = Self { path: path.into() };
        if !path.is_dir() {
            bail!("run directory {} does not exist", path.display());
        }
        if !run.config().is_file() {
            bail!(
                "{} is not a tinygpt run directory (no config.toml): pass a directory written by `tinygpt train`",
                path.display()
            );
        }
        Ok(run)
    }

    pub fn checkpoints(&self) -> PathBuf {
        self.path.join("checkpoints")
    }

    pub fn config(&self) -> PathBuf {
        self.path.join("config.toml")
    }

    pub fn tokenizer(&self) -> PathBuf {
        self.path.join("tokenizer.json")
    }

    pub fn metrics(&self) -> PathBuf {
        self.path.join("metrics.jsonl")
    }

    pub fn loss_plot(&self) -> PathBuf {
        self.path.join("loss.png")
    }

    pub fn model(&self) -> PathBuf {
        self.path.join("model.safetensors")
    }
}
