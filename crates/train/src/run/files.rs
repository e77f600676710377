//! Writing files so that a crash never leaves a half-written one, and `SHA256SUMS` manifests
//! that let every later read prove a file is the one tinygpt wrote.
//!
//! A manifest is in `sha256sum`'s own format (`<hex>  <name>` per line), so a user can check a
//! run or a checkpoint by hand with `sha256sum -c SHA256SUMS`.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{Context, Result, bail};

use crate::run::hash::sha256_hex;

/// The manifest file of a run directory and of each checkpoint.
pub const SUMS: &str = "SHA256SUMS";

/// Writes `bytes` to `path` and waits until they are on disk.
pub fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut file =
        File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))
}

/// The temporaries being written now (by [`write_atomic`], or a folder built aside): what a
/// signal that ends the process removes first ([`remove_temporaries`]).
static WRITING: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

fn writing() -> std::sync::MutexGuard<'static, Vec<PathBuf>> {
    WRITING.lock().unwrap_or_else(|e| e.into_inner())
}

/// Removes a file, or a folder and what it holds.
fn remove(path: &Path) {
    if path.is_dir() {
        let _ = std::fs::remove_dir_all(path);
    } else {
        let _ = std::fs::remove_file(path);
    }
}

/// A temporary file or folder being written: listed for [`remove_temporaries`] while it lives,
/// and removed when dropped unless [`Temporary::placed`] says it was renamed into place. Every
/// way out of a failed write (an error, a full disk, a signal) leaves nothing behind.
pub struct Temporary {
    pub path: PathBuf,
    placed: bool,
}

impl Temporary {
    pub fn new(path: PathBuf) -> Self {
        writing().push(path.clone());
        Self {
            path,
            placed: false,
        }
    }

    /// The temporary was renamed into place: nothing is left to remove.
    pub fn placed(mut self) {
        self.placed = true;
    }
}

impl Drop for Temporary {
    fn drop(&mut self) {
        writing().retain(|p| p != &self.path);
        if !self.placed {
            remove(&self.path);
        }
    }
}

/// Removes every temporary being written: called when a signal ends the process, so an
/// interrupted export leaves nothing behind.
pub fn remove_temporaries() {
    for path in writing().drain(..) {
        remove(&path);
    }
}

/// Replaces `path` with `bytes` atomically: a temporary sibling, fsynced, then renamed over
/// it. A reader sees the old file or the new one, never a mixture.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    // A full disk leaves the old file as it was and no temporary beside it.
    let tmp = Temporary::new(temporary_sibling(path));
    write_synced(&tmp.path, bytes)?;
    std::fs::rename(&tmp.path, path).with_context(|| format!("cannot write {}", path.display()))?;
    tmp.placed();
    if let Some(dir) = path.parent() {
        sync_dir(dir)?;
    }
    Ok(())
}

/// `dir/.NAME.tmp` for `dir/NAME`: where a file is written before it is renamed into place.
pub fn temporary_sibling(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp"))
}

/// Refuses to replace an existing file unless `force`: an output path that names a file the
/// user wrote (a config, a picture of another run) must not silently swallow it. Even with
/// `force` only a regular file (or a link to one, which is replaced, not written through) can
/// be replaced: never a folder, a device such as `/dev/null`, a named pipe or a socket.
pub fn refuse_existing(path: &Path, flag: &str, force: bool) -> Result<()> {
    if let Ok(meta) = std::fs::metadata(path)
        && !meta.is_file()
    {
        bail!(
            "{} is {}, not a regular file: choose another {flag} (a new file's path)",
            path.display(),
            kind_of(&meta)
        );
    }
    if !force && (path.exists() || path.is_symlink()) {
        bail!(
            "{} already exists: choose another {flag} or pass --force to replace it",
            path.display()
        );
    }
    Ok(())
}

/// What a path that is not a regular file is, in words.
fn kind_of(meta: &std::fs::Metadata) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        let kind = meta.file_type();
        if kind.is_block_device() || kind.is_char_device() {
            return "a device";
        }
        if kind.is_fifo() {
            return "a named pipe";
        }
        if kind.is_socket() {
            return "a socket";
        }
    }
    if meta.is_dir() {
        "a folder"
    } else {
        "not a regular file"
    }
}

/// Flushes a directory's entries (a rename inside it) to disk.
pub fn sync_dir(dir: &Path) -> Result<()> {
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("cannot sync {}", dir.display()))
}

/// The sha256 of each file named in a directory's manifest.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Manifest {
    pub files: BTreeMap<String, String>,
}

impl Manifest {
    pub fn insert(&mut self, name: &str, bytes: &[u8]) {
        self.files.insert(name.into(), sha256_hex(bytes));
    }

    /// The manifest of `dir`, or `None` when it has none.
    pub fn read(dir: &Path) -> Result<Option<Self>> {
        let path = dir.join(SUMS);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        let mut files = BTreeMap::new();
        for line in text.lines() {
            let parsed = line.split_once("  ").filter(|(hex, name)| {
                hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) && !name.is_empty()
            });
            let Some((hex, name)) = parsed else {
                bail!(
                    "{} is damaged (line {line:?} is not `<sha256>  <file>`): restore it or use another checkpoint",
                    path.display()
                );
            };
            files.insert(name.to_string(), hex.to_ascii_lowercase());
        }
        Ok(Some(Self { files }))
    }

    /// Writes the manifest into `dir` atomically.
    pub fn write(&self, dir: &Path) -> Result<()> {
        let text: String = self
            .files
            .iter()
            .map(|(name, hex)| format!("{hex}  {name}\n"))
            .collect();
        write_atomic(&dir.join(SUMS), text.as_bytes())
    }

    /// Reads `dir/name` and checks it against the manifest: the bytes, if they are the ones
    /// tinygpt wrote. `fix` tells the user what to do when they are not.
    pub fn read_verified(&self, dir: &Path, name: &str, fix: &str) -> Result<Vec<u8>> {
        let path = dir.join(name);
        let Some(expected) = self.files.get(name) else {
            bail!(
                "{} does not list {name}: it cannot be verified; {fix}",
                dir.join(SUMS).display()
            );
        };
        let bytes = std::fs::read(&path)
            .with_context(|| format!("{} is missing or unreadable", path.display()))?;
        if &sha256_hex(&bytes) != expected {
            bail!(
                "{} is corrupted or was edited (its sha256 differs from {}): {fix}",
                path.display(),
                SUMS
            );
        }
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_round_trips_in_sha256sum_format_and_catches_one_flipped_bit() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.bin"), b"abc").unwrap();
        let mut manifest = Manifest::default();
        manifest.insert("a.bin", b"abc");
        manifest.write(dir.path()).unwrap();
        let text = std::fs::read_to_string(dir.path().join(SUMS)).unwrap();
        assert_eq!(
            text,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad  a.bin\n"
        );
        let read = Manifest::read(dir.path()).unwrap().unwrap();
        assert_eq!(read, manifest);
        assert_eq!(
            read.read_verified(dir.path(), "a.bin", "fix").unwrap(),
            b"abc"
        );

        std::fs::write(dir.path().join("a.bin"), b"abd").unwrap();
        let err = read.read_verified(dir.path(), "a.bin", "fix").unwrap_err();
        assert!(err.to_string().contains("corrupted"), "{err}");
        let err = read.read_verified(dir.path(), "b.bin", "fix").unwrap_err();
        assert!(err.to_string().contains("does not list b.bin"), "{err}");
        assert_eq!(Manifest::read(&dir.path().join("none")).unwrap(), None);
    }

    #[test]
    fn atomic_write_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1);
    }
}
