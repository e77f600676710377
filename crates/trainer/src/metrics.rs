//! `metrics.jsonl`: one JSON object per logged step, appended and flushed as training goes.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

/// One line of `metrics.jsonl`. Step 0 carries only the initial `val_loss`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MetricsLine {
    pub step: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub train_loss: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub val_loss: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lr: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grad_norm: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokens_per_sec: Option<f64>,
    /// Training tokens consumed so far.
    pub tokens: u64,
    /// Seconds since training started (evaluation included).
    pub elapsed_s: f64,
}

pub struct MetricsWriter {
    file: BufWriter<File>,
}

impl MetricsWriter {
    pub fn create(path: &Path) -> Result<Self> {
        let file =
            File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
        Ok(Self {
            file: BufWriter::new(file),
        })
    }

    pub fn write(&mut self, line: &MetricsLine) -> Result<()> {
        serde_json::to_writer(&mut self.file, line)?;
        self.file.write_all(b"\n")?;
        self.file.flush().context("cannot write metrics.jsonl")
    }
}

/// Reads every line of a `metrics.jsonl`.
#[cfg(test)]
pub fn read_metrics(path: &Path) -> Result<Vec<MetricsLine>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    text.lines()
        .enumerate()
        .map(|(i, line)| {
            serde_json::from_str(line)
                .with_context(|| format!("{} line {}: not a metrics record", path.display(), i + 1))
        })
        .collect()
}
