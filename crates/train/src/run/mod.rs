//! The run directory: everything one training run leaves behind.
//!
//! ```text
//! runs/<name>/
//!   tinygpt-run.json   the marker: written first, it is what makes a directory a run
//!   .tinygpt.lock      held (flock) by the one process writing the run; holds its pid
//!   config.toml        the fully resolved config (vocab_size and device filled in)
//!   tokenizer.json     the tokenizer the run trained with
//!   metrics.jsonl      one JSON object per logged step
//!   checkpoints/       step-NNNNNNN/ directories (see `checkpoint`)
//!   loss.png           loss curves, redrawn after every evaluation
//!   model.safetensors  final weights (with config and tokenizer: see `tinygpt export`)
//!   SHA256SUMS         sha256 of model.safetensors, checked whenever it is read
//! ```
//!
//! Nothing here ever deletes a file tinygpt did not write: `--overwrite` moves the old run
//! aside, and only once the new run has its first checkpoint deletes the files it knows are
//! its own, leaving anything else where it is with a warning.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

pub mod checkpoint;
pub mod files;
pub mod finite;
pub mod hash;
mod lock;
pub mod metrics;
mod names;
mod replaced;
pub mod weights;

pub use lock::holder_of_lock;
pub use names::{LOCK, MARKER};
pub use replaced::Replaced;

use files::write_atomic;
use lock::RunLock;
use replaced::aside_name;

/// The marker's format tag: no other program writes this file with this value.
const MARKER_FORMAT: &str = "tinygpt-run";

/// How a run came to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunKind {
    Trained,
    Imported,
}

#[derive(Debug, Serialize, Deserialize)]
struct Marker {
    format: String,
    version: u32,
    kind: RunKind,
    /// The tinygpt version that created the run.
    created_by: String,
}

/// The run's tokenizer file.
pub const TOKENIZER: &str = "tokenizer.json";

pub struct RunDir {
    pub path: PathBuf,
    /// Held while this process may write the run.
    _lock: Option<RunLock>,
}

impl RunDir {
    /// Checks, without touching anything, that [`RunDir::create`] may use `path`: so a
    /// command can refuse a bad `--out` before it spends minutes building a run.
    pub fn check_new(path: &Path, overwrite: bool) -> Result<()> {
        if !is_non_empty(path) {
            return Ok(());
        }
        let shown = path.display();
        // A run another process is writing (or creating) is judged by nothing but that.
        if let Some(pid) = holder_of_lock(path) {
            bail!(
                "{shown} is in use by another tinygpt process (pid {pid}): wait for it to finish or stop it, or choose another --out"
            );
        }
        if overwrite && path.is_symlink() {
            bail!(
                "--overwrite refused: {shown} is a link; tinygpt replaces only a run directory itself, never through a link: pass the directory it points to ({}), or choose another --out",
                std::fs::read_link(path).map_or("?".into(), |t| t.display().to_string())
            );
        }
        if !overwrite {
            if !is_run(path) {
                bail!(
                    "{shown} already exists, is not empty and is not a tinygpt run: choose another --out"
                );
            }
            if read_marker(path).is_ok_and(|m| m.kind == RunKind::Imported) {
                bail!(
                    "{shown} already holds an imported run: choose another --out, or pass --overwrite to replace it"
                );
            }
            if checkpoint::list(&path.join("checkpoints"))?.is_empty()
                && !path.join("model.safetensors").is_file()
            {
                bail!(
                    "{shown} holds a run that stopped before its first checkpoint, so it cannot be resumed: pass --overwrite to start it again, or choose another --out"
                );
            }
            bail!(
                "{shown} already holds a tinygpt run: continue it with `tinygpt train --resume {shown}`, choose another --out, or pass --overwrite to replace it"
            );
        }
        if let Some(what) = protected(path) {
            bail!(
                "--overwrite refused: {shown} is {what}; tinygpt only replaces a run directory, choose another --out"
            );
        }
        if !path.join(MARKER).is_file() {
            bail!(
                "--overwrite refused: {shown} has no {MARKER}, so it is not a run written by this tinygpt; move it away yourself or choose another --out"
            );
        }
        read_marker(path)?;
        Ok(())
    }

    /// Makes `path` a new run of `kind`, locked by this process. An existing run is moved
    /// aside (see [`Replaced`]) when `overwrite` is set and [`RunDir::check_new`] allows it.
    pub fn create(path: &Path, kind: RunKind, overwrite: bool) -> Result<(Self, Option<Replaced>)> {
        Self::check_new(path, overwrite)?;
        let replaced = if is_non_empty(path) {
            let lock = RunLock::acquire(path)?;
            let aside = aside_name(path);
            std::fs::rename(path, &aside).with_context(|| {
                format!(
                    "cannot move the old run {} aside to {}",
                    path.display(),
                    aside.display()
                )
            })?;
            // Written without eprintln!, which panics when stderr is a closed pipe.
            let _ = writeln!(
                std::io::stderr(),
                "note: the old run is moved to {} until the new one writes its first checkpoint",
                aside.display()
            );
            Some(Replaced::new(aside, lock))
        } else {
            None
        };
        std::fs::create_dir_all(path)
            .with_context(|| format!("cannot create run directory {}", path.display()))?;
        let lock = RunLock::acquire(path)?;
        if is_non_empty_besides_lock(path) {
            bail!(
                "{} filled up while this run was being created: choose another --out",
                path.display()
            );
        }
        let marker = Marker {
            format: MARKER_FORMAT.into(),
            version: 1,
            kind,
            created_by: format!("tinygpt {}", env!("CARGO_PKG_VERSION")),
        };
        write_atomic(
            &path.join(MARKER),
            serde_json::to_string_pretty(&marker)?.as_bytes(),
        )?;
        let run = Self {
            path: path.into(),
            _lock: Some(lock),
        };
        Ok((run, replaced))
    }

    /// An existing run, for reading only (sample, eval, export...).
    pub fn open(path: &Path) -> Result<Self> {
        if !path.is_dir() {
            bail!("run directory {} does not exist", path.display());
        }
        if !is_run(path) {
            bail!(
                "{} is not a tinygpt run directory (no {MARKER} or config.toml): pass a directory written by `tinygpt train`",
                path.display()
            );
        }
        Ok(Self {
            path: path.into(),
            _lock: None,
        })
    }

    /// An existing run, locked for writing (resume).
    pub fn open_for_writing(path: &Path) -> Result<Self> {
        let mut run = Self::open(path)?;
        run._lock = Some(RunLock::acquire(path)?);
        Ok(run)
    }

    /// How the run came to be (`None` for a run from before markers, always trained).
    pub fn kind(&self) -> Option<RunKind> {
        read_marker(&self.path).ok().map(|m| m.kind)
    }

    pub fn checkpoints(&self) -> PathBuf {
        self.path.join("checkpoints")
    }

    pub fn config(&self) -> PathBuf {
        self.path.join("config.toml")
    }

    pub fn tokenizer(&self) -> PathBuf {
        self.path.join(TOKENIZER)
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

/// A directory is a run when it has tinygpt's marker, or (runs from before markers) a
/// config.toml beside a checkpoints/ folder or final weights.
pub fn is_run(path: &Path) -> bool {
    if path.join(MARKER).is_file() {
        return true;
    }
    path.join("config.toml").is_file()
        && (path.join("checkpoints").is_dir() || path.join("model.safetensors").is_file())
}

fn read_marker(path: &Path) -> Result<Marker> {
    let file = path.join(MARKER);
    let text = std::fs::read_to_string(&file)
        .with_context(|| format!("cannot read {}", file.display()))?;
    let marker: Marker = serde_json::from_str(&text)
        .ok()
        .filter(|m: &Marker| m.format == MARKER_FORMAT)
        .with_context(|| {
            format!(
                "{} is not a tinygpt run marker: move the directory away yourself or choose another --out",
                file.display()
            )
        })?;
    Ok(marker)
}

fn is_non_empty(path: &Path) -> bool {
    path.read_dir()
        .map(|mut entries| entries.next().is_some())
        .unwrap_or(false)
}

fn is_non_empty_besides_lock(path: &Path) -> bool {
    path.read_dir().is_ok_and(|entries| {
        entries
            .flatten()
            .any(|e| e.file_name().to_str() != Some(LOCK))
    })
}

/// What `path` is, when it must never be replaced: the working directory or a folder above
/// it (`.`, `..`, `/`), or the home directory.
fn protected(path: &Path) -> Option<&'static str> {
    let path = path.canonicalize().ok()?;
    if path.parent().is_none() {
        return Some("the root directory");
    }
    if let Ok(cwd) = std::env::current_dir().and_then(|d| d.canonicalize())
        && cwd.starts_with(&path)
    {
        return Some("the working directory or a folder above it");
    }
    let home = std::env::var_os("HOME").and_then(|h| PathBuf::from(h).canonicalize().ok());
    if home.as_deref() == Some(path.as_path()) {
        return Some("your home directory");
    }
    None
}

#[cfg(test)]
mod tests;
