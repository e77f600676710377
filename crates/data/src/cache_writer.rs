//! Encoding a corpus straight into its token-cache file, a batch of pieces at a time, so
//! memory holds one batch of ids, never the corpus's tokens (a 1 GB corpus is about 250 M
//! BPE tokens: 1 GB as u32 in memory, which the file takes instead).
//!
//! The file is written under a temporary name that carries the writer's process id and renamed
//! into place only when complete and synced: a tokenizer killed halfway leaves a temporary that
//! no run ever reads (the next encoding of that corpus removes it), never a cache.

use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::{DataError, Tokenizer};

/// Text is encoded in pieces of about this many bytes, cut after a newline. A BPE's tokens
/// can differ at a cut (a run of whitespace after it is split differently), so this size is
/// part of what a cache holds: changing it changes BPE token streams.
pub const CHUNK: usize = 1 << 18;

/// Why the cache could not be written: the disk (then tokens stay in memory) or the text.
pub enum Failure {
    Io(std::io::Error),
    Data(DataError),
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Self {
        Failure::Io(e)
    }
}

impl From<DataError> for Failure {
    fn from(e: DataError) -> Self {
        Failure::Data(e)
    }
}

/// Encodes `text` in newline-cut pieces, a batch at a time, handing each batch's ids to
/// `emit` and the bytes done so far to `progress`.
pub fn encode_in_batches(
    tokenizer: &Tokenizer,
    text: &str,
    progress: &mut dyn FnMut(usize),
    emit: &mut dyn FnMut(&[u32]) -> Result<(), Failure>,
) -> Result<(), Failure> {
    let mut pieces = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let mut end = rest.len().min(CHUNK);
        while !rest.is_char_boundary(end) {
            end += 1;
        }
        if let Some(newline) = rest[end..].find('\n') {
            end += newline + 1;
        } else {
            end = rest.len();
        }
        let (piece, tail) = rest.split_at(end);
        pieces.push(piece);
        rest = tail;
    }
    // Pieces encoded together, in parallel for a BPE: one per core, at least four. The
    // `tokenizers` crate's encodings carry offsets and token strings, about 40 bytes per byte
    // of text, so the batch (about 10 MB of memory per piece) bounds memory.
    let batch = std::thread::available_parallelism().map_or(4, |n| n.get().max(4));
    let mut done = 0;
    for batch in pieces.chunks(batch) {
        emit(&tokenizer.encode_many(batch)?)?;
        done += batch.iter().map(|p| p.len()).sum::<usize>();
        progress(done);
    }
    Ok(())
}

/// The cache file being written: header, then ids as they come, then the counts.
pub struct CacheWriter {
    path: PathBuf,
    tmp: PathBuf,
    file: BufWriter<std::fs::File>,
    width: usize,
    counts: [u64; 2],
}

impl CacheWriter {
    /// Starts `path`'s temporary with `header` (whose token counts are filled in by
    /// [`Self::finish`]).
    pub fn create(path: &Path, header: &[u8], width: usize) -> std::io::Result<Self> {
        remove_abandoned_temporaries(path);
        let tmp = temporary(path, std::process::id());
        // One with this pid can only be a dead process's whose pid was reused.
        let _ = std::fs::remove_file(&tmp);
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        let mut file = BufWriter::with_capacity(1 << 20, file);
        file.write_all(header)?;
        Ok(Self {
            path: path.into(),
            tmp,
            file,
            width,
            counts: [0; 2],
        })
    }

    /// Appends ids to part 0 (train) or 1 (val); parts are written in order.
    pub fn append(&mut self, part: usize, ids: &[u32]) -> std::io::Result<()> {
        let mut bytes = Vec::with_capacity(ids.len() * self.width);
        for &id in ids {
            if self.width == 2 {
                bytes.extend((id as u16).to_le_bytes());
            } else {
                bytes.extend(id.to_le_bytes());
            }
        }
        self.counts[part] += ids.len() as u64;
        self.file.write_all(&bytes)
    }

    /// Writes the counts at `counts_at`, syncs, and renames the file into place.
    pub fn finish(self, counts_at: u64) -> std::io::Result<()> {
        let mut file = self.file.into_inner().map_err(|e| e.into_error())?;
        file.seek(SeekFrom::Start(counts_at))?;
        file.write_all(&self.counts[0].to_le_bytes())?;
        file.write_all(&self.counts[1].to_le_bytes())?;
        file.sync_all()?;
        std::fs::rename(&self.tmp, &self.path)
    }

    /// Removes the temporary (after a failure).
    pub fn abandon(self) {
        drop(self.file);
        let _ = std::fs::remove_file(&self.tmp);
    }
}

fn temporary(path: &Path, pid: u32) -> PathBuf {
    let name = path
        .file_name()
        .map_or_else(Default::default, |n| n.to_os_string());
    let mut tmp = name;
    tmp.push(format!(".{pid}.tmp"));
    path.with_file_name(tmp)
}

/// Removes temporaries of `path` left by writers that no longer run (killed halfway), so a
/// corpus tokenized again after a crash does not keep a dead copy on disk. Where processes
/// cannot be checked (no `/proc`), temporaries are left alone.
fn remove_abandoned_temporaries(path: &Path) {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return;
    };
    if !Path::new("/proc/self").exists() {
        return;
    }
    let prefix = format!("{}.", name.to_string_lossy());
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let file = entry.file_name().to_string_lossy().into_owned();
        let pid = file
            .strip_prefix(&prefix)
            .and_then(|rest| rest.strip_suffix(".tmp"))
            .and_then(|pid| pid.parse::<u32>().ok());
        if let Some(pid) = pid
            && !Path::new(&format!("/proc/{pid}")).exists()
        {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporaries_of_dead_writers_are_removed_and_live_ones_kept() {
        let scratch = tempfile::tempdir().unwrap();
        let path = scratch.path().join("corpus.txt-0123.tokens");
        // No process has the largest pid; this one is alive.
        let dead = temporary(&path, u32::MAX);
        let alive = temporary(&path, std::process::id());
        let other = scratch.path().join("other.txt-0123.tokens.7.tmp");
        for file in [&dead, &alive, &other] {
            std::fs::write(file, b"partial").unwrap();
        }
        remove_abandoned_temporaries(&path);
        assert!(!dead.exists());
        assert!(alive.exists());
        assert!(
            other.exists(),
            "another corpus's temporary is not this cache's business"
        );
    }
}
