//! Encoding a corpus straight into its token-cache file, a batch of pieces at a time, so
//! memory holds one batch of ids, never the corpus's tokens (a 1 GB corpus is about 250 M
//! BPE tokens: 1 GB as u32 in memory, which the file takes instead).
//!
//! The file is written under a temporary name that carries the writer's process id and renamed
//! into place only when complete and synced: a tokenizer killed halfway leaves a temporary that
//! no run ever reads (the next encoding of that corpus removes it), never a cache.

use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};

use crate::collection::{Counts, Documents, Part};
use crate::error::Failure;
use crate::{Corpus, Tokenizer};

/// Text is encoded in pieces of about this many bytes, cut after a newline. A BPE's tokens
/// can differ at a cut (a run of whitespace after it is split differently), so this size is
/// part of what a cache holds: changing it changes BPE token streams.
pub const CHUNK: usize = 1 << 18;

/// Where encoded ids go: `emit(part, ids)`, part 0 train, 1 val.
pub type Emit<'a> = dyn FnMut(Part, &[u32]) -> Result<(), Failure> + 'a;

/// `text` in pieces of about [`CHUNK`] bytes, each cut after a newline, found as they are
/// needed (finding every cut up front would page in a little of every 256 KB of a mapped
/// corpus, and the kernel maps in its neighbours: about half the file).
fn pieces(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
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
        rest = tail;
        Some(piece)
    })
}

/// Pieces encoded together, in parallel for a BPE: one per core, at least four. The
/// `tokenizers` crate's encodings carry offsets and token strings, about 40 bytes per byte of
/// text, so the batch (about 10 MB of memory per piece) bounds memory.
fn pieces_per_batch() -> usize {
    std::thread::available_parallelism().map_or(4, |n| n.get().max(4))
}

/// Encodes `corpus[range]` in newline-cut pieces, a batch at a time, handing each batch's ids
/// to `emit` and the corpus offset reached to `progress`. The text behind is released as it
/// goes, so a mapped corpus never becomes resident.
pub fn encode_in_batches(
    tokenizer: &Tokenizer,
    corpus: &Corpus,
    range: Range<usize>,
    progress: &mut dyn FnMut(usize),
    emit: &mut dyn FnMut(&[u32]) -> Result<(), Failure>,
) -> Result<(), Failure> {
    let mut pieces = pieces(&corpus[range.clone()]);
    let mut done = range.start;
    loop {
        let batch: Vec<&str> = pieces.by_ref().take(pieces_per_batch()).collect();
        if batch.is_empty() {
            return Ok(());
        }
        emit(&tokenizer.encode_many(&batch)?)?;
        let end = done + batch.iter().map(|p| p.len()).sum::<usize>();
        corpus.release(done..end);
        done = end;
        progress(done);
    }
}

/// Encodes every document of `docs` (each cut into pieces like a text), the documents of a
/// batch together, and emits each document's ids followed by `end` to its part, in order.
/// A document larger than a batch is encoded on its own, straight from its text.
pub fn encode_documents(
    docs: &Documents,
    tokenizer: &Tokenizer,
    end: u32,
    progress: &mut dyn FnMut(usize, usize),
    emit: &mut Emit,
) -> Result<Counts, Failure> {
    let total = docs.bytes() as usize;
    let batch_bytes = pieces_per_batch() * CHUNK;
    let mut batch: Vec<(Part, String)> = Vec::new();
    let mut held = 0;
    let counts = docs.for_each(false, &mut |part, text, read| {
        if text.len() >= batch_bytes {
            encode_batch(&mut batch, tokenizer, end, emit)?;
            held = 0;
            let whole = 0..text.len();
            encode_in_batches(tokenizer, text, whole, &mut |_| {}, &mut |ids| {
                emit(part, ids)
            })?;
            emit(part, &[end])?;
        } else {
            batch.push((part, text.to_string()));
            held += text.len();
            if held < batch_bytes {
                return Ok(());
            }
            encode_batch(&mut batch, tokenizer, end, emit)?;
            held = 0;
        }
        progress(read as usize, total);
        Ok(())
    })?;
    encode_batch(&mut batch, tokenizer, end, emit)?;
    progress(total, total);
    Ok(counts)
}

/// Encodes and emits a batch of documents, and empties it.
fn encode_batch(
    batch: &mut Vec<(Part, String)>,
    tokenizer: &Tokenizer,
    end: u32,
    emit: &mut Emit,
) -> Result<(), Failure> {
    let mut all = Vec::new();
    let mut owners = Vec::new();
    for (doc, (_, text)) in batch.iter().enumerate() {
        for piece in pieces(text) {
            all.push(piece);
            owners.push(doc);
        }
    }
    let mut encoded = tokenizer
        .encode_each(&all)?
        .into_iter()
        .zip(owners)
        .peekable();
    let mut out = [Vec::new(), Vec::new()];
    for (doc, (part, _)) in batch.iter().enumerate() {
        while let Some((ids, _)) = encoded.next_if(|(_, owner)| *owner == doc) {
            out[*part].extend(ids);
        }
        out[*part].push(end);
    }
    batch.clear();
    for (part, ids) in out.iter().enumerate() {
        if !ids.is_empty() {
            emit(part, ids)?;
        }
    }
    Ok(())
}

/// The cache file being written: header, then ids as they come, then the counts.
pub struct CacheWriter {
    path: PathBuf,
    tmp: PathBuf,
    file: BufWriter<std::fs::File>,
    /// Val ids, which may arrive between train ids, wait in a file of their own until the
    /// train ids are all written.
    val_tmp: PathBuf,
    val: BufWriter<std::fs::File>,
    width: usize,
    counts: [u64; 2],
}

impl CacheWriter {
    /// Starts `path`'s temporary with `header` (whose token counts are filled in by
    /// [`Self::finish`]).
    pub fn create(path: &Path, header: &[u8], width: usize) -> std::io::Result<Self> {
        remove_abandoned_temporaries(path);
        let tmp = temporary(path, std::process::id());
        let val_tmp = tmp.with_extension("val.tmp");
        let create = |path: &Path| {
            // One with this pid can only be a dead process's whose pid was reused.
            let _ = std::fs::remove_file(path);
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(path)?;
            Ok::<_, std::io::Error>(BufWriter::with_capacity(1 << 20, file))
        };
        let mut file = create(&tmp)?;
        file.write_all(header)?;
        let val = create(&val_tmp).inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp);
        })?;
        Ok(Self {
            path: path.into(),
            tmp,
            file,
            val_tmp,
            val,
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
        if part == 0 {
            self.file.write_all(&bytes)
        } else {
            self.val.write_all(&bytes)
        }
    }

    /// Writes the counts at `counts_at`, syncs, and renames the file into place.
    pub fn finish(self, counts_at: u64) -> std::io::Result<()> {
        let (tmp, val_tmp) = (self.tmp.clone(), self.val_tmp.clone());
        let finished = self.write_out(counts_at);
        if finished.is_err() {
            // A full disk at the end leaves nothing behind either.
            let _ = std::fs::remove_file(&tmp);
            let _ = std::fs::remove_file(&val_tmp);
        }
        finished
    }

    fn write_out(mut self, counts_at: u64) -> std::io::Result<()> {
        let mut val = self.val.into_inner().map_err(|e| e.into_error())?;
        val.seek(SeekFrom::Start(0))?;
        std::io::copy(&mut val, &mut self.file)?;
        drop(val);
        let _ = std::fs::remove_file(&self.val_tmp);
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
        drop(self.val);
        let _ = std::fs::remove_file(&self.tmp);
        let _ = std::fs::remove_file(&self.val_tmp);
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
            .map(|rest| rest.strip_suffix(".val").unwrap_or(rest))
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
        let dead_val = dead.with_extension("val.tmp");
        let alive = temporary(&path, std::process::id());
        let other = scratch.path().join("other.txt-0123.tokens.7.tmp");
        for file in [&dead, &dead_val, &alive, &other] {
            std::fs::write(file, b"partial").unwrap();
        }
        remove_abandoned_temporaries(&path);
        assert!(!dead.exists());
        assert!(!dead_val.exists());
        assert!(alive.exists());
        assert!(
            other.exists(),
            "another corpus's temporary is not this cache's business"
        );
    }
}
