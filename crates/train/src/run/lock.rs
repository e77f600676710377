//! One writer per run: an exclusive advisory lock (`flock`, through std's `File::try_lock`)
//! on the run's `.tinygpt.lock`, which holds the writer's pid for the message a second writer
//! gets.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Write};
use std::path::Path;

use anyhow::{Context, Result, bail};

use super::names::LOCK;

/// The pid written in the run's lock while some process holds it (`"unknown"` when it holds
/// it but has not written its pid yet), `None` when nobody does.
pub fn holder_of_lock(dir: &Path) -> Option<String> {
    let mut file = OpenOptions::new().read(true).open(dir.join(LOCK)).ok()?;
    match file.try_lock() {
        Ok(()) => None,
        Err(TryLockError::WouldBlock) => {
            let mut pid = String::new();
            let _ = file.read_to_string(&mut pid);
            let pid = pid.trim();
            Some(if pid.is_empty() { "unknown" } else { pid }.to_string())
        }
        Err(TryLockError::Error(_)) => None,
    }
}

/// An exclusive advisory lock (`flock`) on a run's `.tinygpt.lock`, holding the owner's pid.
/// The kernel drops it when the process ends, however it ends: a killed run never leaves a
/// lock behind that blocks the next one.
pub(super) struct RunLock {
    _file: File,
}

impl RunLock {
    pub(super) fn acquire(dir: &Path) -> Result<Self> {
        let path = dir.join(LOCK);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .with_context(|| format!("cannot open the run lock {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => {
                file.set_len(0)
                    .and_then(|()| file.write_all(format!("{}\n", std::process::id()).as_bytes()))
                    .with_context(|| format!("cannot write {}", path.display()))?;
                Ok(Self { _file: file })
            }
            Err(TryLockError::WouldBlock) => {
                let mut pid = String::new();
                let _ = file.read_to_string(&mut pid);
                let pid = pid.trim();
                let pid = if pid.is_empty() { "unknown" } else { pid };
                bail!(
                    "run {} is in use by another tinygpt process (pid {pid}): wait for it to finish or stop it, then try again",
                    dir.display()
                )
            }
            Err(TryLockError::Error(e)) => {
                Err(e).with_context(|| format!("cannot lock {}", path.display()))
            }
        }
    }
}
