//! What a file's hash and document count were, remembered by its size, modification time and
//! inode, so a corpus of gigabytes is not read through again each time a run starts from its
//! token cache (as `git status` trusts its index). A file whose size, mtime or inode changed is
//! read again; so is one modified within two seconds of being recorded (its mtime may not have
//! ticked since). The memo is `<cache dir>/files.json`; without it everything is read.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::DataError;
use crate::config::Format;
use crate::documents::{self, FileFacts};
use crate::sources::Source;
use crate::store::{create_cache_dir, hex, unhex};

/// Entries younger than this (mtime against now) are not trusted later.
const SETTLED: Duration = Duration::from_secs(2);

/// The memo's format: 2 counts a JSONL file's non-blank lines and an empty file as no
/// document (a memo of another version is read as empty).
const VERSION: u32 = 2;

#[derive(Default, Serialize, Deserialize)]
pub struct FileMemo {
    #[serde(default)]
    version: u32,
    files: BTreeMap<String, Entry>,
    #[serde(skip)]
    changed: bool,
}

#[derive(Clone, PartialEq, Serialize, Deserialize)]
struct Entry {
    format: Format,
    bytes: u64,
    mtime_ns: u128,
    inode: u64,
    documents: u64,
    sha256: String,
}

/// Size, mtime (ns since the epoch) and inode of `path`.
fn stamp(path: &Path) -> Option<(u64, u128, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    let mtime = meta
        .modified()
        .ok()?
        .duration_since(SystemTime::UNIX_EPOCH)
        .ok()?;
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(&meta);
    #[cfg(not(unix))]
    let inode = 0;
    Some((meta.len(), mtime.as_nanos(), inode))
}

impl FileMemo {
    /// The memo in `path`, or an empty one.
    pub fn load(path: &Path) -> Self {
        std::fs::read(path)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .filter(|memo: &FileMemo| memo.version == VERSION)
            .unwrap_or(FileMemo {
                version: VERSION,
                ..FileMemo::default()
            })
    }

    /// `source`'s facts: remembered when its stamp matches, else read (and remembered).
    pub fn facts(&mut self, source: &Source) -> Result<FileFacts, DataError> {
        let key = std::fs::canonicalize(&source.path)
            .unwrap_or_else(|_| source.path.clone())
            .display()
            .to_string();
        let before = stamp(&source.path);
        if let (Some(entry), Some((bytes, mtime_ns, inode))) = (self.files.get(&key), before)
            && (entry.format, entry.bytes, entry.mtime_ns, entry.inode)
                == (source.format, bytes, mtime_ns, inode)
            && let Some(sha256) = unhex(&entry.sha256)
        {
            return Ok(FileFacts {
                bytes,
                sha256,
                documents: entry.documents,
            });
        }
        let facts = documents::facts(source)?;
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        // Remember only what did not change while it was read and has settled.
        if let Some((bytes, mtime_ns, inode)) = before
            && stamp(&source.path) == before
            && bytes == facts.bytes
            && mtime_ns + SETTLED.as_nanos() < now
        {
            let sha256 = hex(&facts.sha256);
            let entry = Entry {
                format: source.format,
                bytes,
                mtime_ns,
                inode,
                documents: facts.documents,
                sha256,
            };
            self.files.insert(key, entry);
            self.changed = true;
        }
        Ok(facts)
    }

    /// Writes the memo to `path` when it learnt something; a directory that cannot be
    /// written to only means the files are read again next time.
    pub fn save(&self, path: &Path) {
        if !self.changed {
            return;
        }
        let Ok(json) = serde_json::to_vec(self) else {
            return;
        };
        let Some(dir) = path.parent() else {
            return;
        };
        if create_cache_dir(dir).is_err() {
            return;
        }
        let tmp = path.with_extension(format!("{}.tmp", std::process::id()));
        if std::fs::write(&tmp, json).is_ok() && std::fs::rename(&tmp, path).is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settled_files_are_remembered_and_a_changed_one_is_read_again() {
        let scratch = tempfile::tempdir().unwrap();
        let path = scratch.path().join("a.jsonl");
        std::fs::write(&path, "{\"text\": \"one\"}\n{\"text\": \"two\"}\n").unwrap();
        let source = Source {
            path: path.clone(),
            format: Format::Jsonl,
        };
        // Just written: read, but not remembered (its mtime may not have ticked yet).
        let memo_path = scratch.path().join(".tinygpt-cache/files.json");
        let mut memo = FileMemo::load(&memo_path);
        let fresh = memo.facts(&source).unwrap();
        assert!(memo.files.is_empty());
        // Settled (mtime set back a minute): remembered, and the memo is what is used.
        let old = SystemTime::now() - Duration::from_secs(60);
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(old)
            .unwrap();
        assert_eq!(memo.facts(&source).unwrap(), fresh);
        memo.save(&memo_path);
        let mut memo = FileMemo::load(&memo_path);
        assert_eq!(memo.files.len(), 1);
        let key = memo.files.keys().next().unwrap().clone();
        memo.files.get_mut(&key).unwrap().documents = 99; // only the memo says 99
        assert_eq!(memo.facts(&source).unwrap().documents, 99);
        // Rewritten (same size, new mtime): read again.
        std::fs::write(&path, "{\"text\": \"uno\"}\n{\"text\": \"dos\"}\n").unwrap();
        let again = memo.facts(&source).unwrap();
        assert_eq!(again.documents, 2);
        assert_ne!(again.sha256, fresh.sha256);
    }
}
