//! `metrics.jsonl`: one JSON object per logged step, appended and flushed as training goes.

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

/// One line of `metrics.jsonl`. Step 0 carries only the initial `val_loss`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MetricsLine {
    pub step: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub train_loss: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub val_loss: Option<f64>,
    /// Val loss in bits per byte of text: val_loss / ln 2 / (bytes per token).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub val_bpb: Option<f64>,
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
    /// Processes training together (data-parallel ranks); written only when more than one.
    /// `tokens` and `tokens_per_sec` count all ranks' tokens.
    #[serde(default = "one", skip_serializing_if = "at_most_one")]
    pub ranks: usize,
}

fn one() -> usize {
    1
}

fn at_most_one(ranks: &usize) -> bool {
    *ranks <= 1
}

pub struct MetricsWriter {
    /// None for a data-parallel follower rank: only rank 0 writes the run's metrics.
    file: Option<File>,
    /// Bytes in the file so far: recorded in checkpoints so a resume can cut back to it.
    len: u64,
}

/// Nats per token → bits per byte.
pub fn bits_per_byte(loss: f64, bytes_per_token: f64) -> f64 {
    loss / std::f64::consts::LN_2 / bytes_per_token
}

impl MetricsWriter {
    pub fn create(path: &Path) -> Result<Self> {
        let file =
            File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
        Ok(Self {
            file: Some(file),
            len: 0,
        })
    }

    /// A writer that keeps nothing, for the ranks other than 0.
    pub fn discard() -> Self {
        Self { file: None, len: 0 }
    }

    /// Continues a resumed run's metrics: lines written after its checkpoint (by a process
    /// that went on past it before it stopped) are cut, so no step appears twice.
    pub fn append(path: &Path, len: u64) -> Result<Self> {
        let mut file = OpenOptions::new()
            .write(true)
            .open(path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        let actual = file.metadata()?.len();
        if actual < len {
            bail!(
                "{} is shorter ({actual} bytes) than when the checkpoint was taken ({len} bytes): it was edited or truncated",
                path.display()
            );
        }
        file.set_len(len)?;
        file.seek(SeekFrom::End(0))?;
        Ok(Self {
            file: Some(file),
            len,
        })
    }

    /// Appends one line; it is in the file (not a buffer) when this returns.
    pub fn write(&mut self, line: &MetricsLine) -> Result<()> {
        let mut text = serde_json::to_string(line)?;
        text.push('\n');
        if let Some(file) = &mut self.file {
            file.write_all(text.as_bytes())
                .context("cannot write metrics.jsonl")?;
        }
        self.len += text.len() as u64;
        Ok(())
    }

    pub fn bytes_written(&self) -> u64 {
        self.len
    }
}

/// Reads every line of a `metrics.jsonl`.
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

#[cfg(test)]
mod bits_per_byte_tests {
    use super::bits_per_byte;

    #[test]
    fn bits_per_byte_by_hand() {
        // Uniform over 4 tokens: ln 4 nats = 2 bits per token; tokens of 2 bytes → 1 bit/byte.
        assert!((bits_per_byte(4f64.ln(), 2.0) - 1.0).abs() < 1e-12);
        // Char level (1 byte per token): bits per byte is loss in bits. 1.7072 nats → 2.4630.
        assert!((bits_per_byte(1.7072, 1.0) - 2.462969).abs() < 1e-6);
    }
}
