//! The old run `--overwrite` moves aside: kept whole until the new run has a checkpoint, then
//! cleared of the files tinygpt wrote, and only those.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::checkpoint::step_of;
use super::files::SUMS;
use super::lock::RunLock;
use super::names::{LOCK, MARKER};

/// An old run moved aside by `--overwrite`, kept until the new run has a checkpoint.
pub struct Replaced {
    pub aside: PathBuf,
    _lock: RunLock,
}

impl Replaced {
    pub(super) fn new(aside: PathBuf, lock: RunLock) -> Self {
        Self { aside, _lock: lock }
    }
}

impl Replaced {
    /// The new run has a checkpoint: delete the files the old run's tinygpt wrote, and the
    /// folder if nothing else is in it. Returns what was left (files tinygpt did not write).
    pub fn discard(self) -> Result<Vec<PathBuf>> {
        let aside = &self.aside;
        for name in RUN_FILES {
            remove_file_if_present(&aside.join(name))?;
        }
        let checkpoints = aside.join("checkpoints");
        if let Ok(entries) = std::fs::read_dir(&checkpoints) {
            for entry in entries {
                let dir = entry?.path();
                let name = dir.file_name().map(|n| n.to_string_lossy().into_owned());
                // Only the names tinygpt writes: `step-0000500`, and `.tmp-step-0000500` for
                // one it was writing; `step-0000500.bak` is the user's.
                let ours =
                    name.is_some_and(|n| step_of(n.strip_prefix(".tmp-").unwrap_or(&n)).is_some());
                if ours && dir.is_dir() {
                    for file in CHECKPOINT_FILES {
                        remove_file_if_present(&dir.join(file))?;
                    }
                    let _ = std::fs::remove_dir(&dir);
                }
            }
            let _ = std::fs::remove_dir(&checkpoints);
        }
        let mut left = Vec::new();
        collect_files(aside, &mut left);
        if left.is_empty() {
            let _ = std::fs::remove_dir(aside);
        }
        Ok(left)
    }
}

impl Replaced {
    /// [`Replaced::discard`], as one warning for the user when something was left or went
    /// wrong (`None` when the old run is gone entirely).
    pub fn discard_with_warning(self) -> Option<String> {
        let aside = self.aside.clone();
        match self.discard() {
            Ok(left) if left.is_empty() => None,
            Ok(left) => {
                let names: Vec<String> = left
                    .iter()
                    .filter_map(|p| p.file_name())
                    .map(|n| n.to_string_lossy().into_owned())
                    .collect();
                Some(format!(
                    "the replaced run held files tinygpt did not write; they are kept in {}: {}",
                    aside.display(),
                    names.join(", ")
                ))
            }
            Err(e) => Some(format!(
                "the replaced run in {} could not be cleared ({e:#}); remove it yourself",
                aside.display()
            )),
        }
    }
}

/// Every file tinygpt writes at the top of a run directory (temporaries included).
const RUN_FILES: &[&str] = &[
    MARKER,
    LOCK,
    "config.toml",
    "tokenizer.json",
    "metrics.jsonl",
    "loss.png",
    "model.safetensors",
    SUMS,
    ".tinygpt-run.json.tmp",
    ".config.toml.tmp",
    ".model.safetensors.tmp",
    ".SHA256SUMS.tmp",
    ".loss.png.tmp",
    // Written by tinygpt before it used hidden temporaries.
    "model.safetensors.tmp",
];

/// Every file tinygpt writes in a checkpoint directory.
const CHECKPOINT_FILES: &[&str] = &[
    "model.safetensors",
    "optimizer.safetensors",
    "state.json",
    SUMS,
    ".SHA256SUMS.tmp",
];

fn remove_file_if_present(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("cannot remove {}", path.display()))
        }
        _ => Ok(()),
    }
}

fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        out.push(entry.path());
    }
    out.sort();
}

/// `NAME.replaced-<unix seconds>` beside `path`, not yet taken.
pub(super) fn aside_name(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "run".into());
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut n = 0;
    loop {
        let suffix = if n == 0 {
            String::new()
        } else {
            format!("-{n}")
        };
        let candidate = path.with_file_name(format!("{name}.replaced-{secs}{suffix}"));
        if !candidate.exists() {
            return candidate;
        }
        n += 1;
    }
}
