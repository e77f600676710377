//! The token cache: a corpus is encoded once into a binary file of token ids (u16 when the
//! vocabulary fits, else u32) keyed by the hash of the corpus bytes and the tokenizer; later
//! runs memory-map it instead of encoding again, and a changed corpus or tokenizer gets a new
//! file.
//!
//! ```text
//! offset  size  field
//!      0     8  magic "TGTOKENS"
//!      8     4  format version (1), little-endian
//!     12     4  bytes per token id (2 or 4)
//!     16     8  train tokens
//!     24     8  val tokens
//!     32    32  key: sha256 of (corpus sha256, tokenizer JSON, val_fraction), or for
//!                 documents of (every file's path, size, count and sha256, the validation
//!                 choice, the tokenizer JSON)
//!     64     …  train ids, then val ids, little-endian
//! ```

use std::path::{Path, PathBuf};

use memmap2::Mmap;
use sha2::{Digest, Sha256};

mod writer;

use writer::{CHUNK, CacheWriter, Emit, encode_documents, encode_in_batches};

use crate::collection::{Counts, Documents};
use crate::error::Failure;
use crate::one_file::{OneFile, split_corpus};
use crate::store::{CACHE_DIR, create_cache_dir, hex};
use crate::tokens::Tokens;
use crate::{DataError, Tokenizer};

/// The directory beside a corpus that holds its token caches.
const MAGIC: &[u8; 8] = b"TGTOKENS";
const VERSION: u32 = 1;
const HEADER: usize = 64;
/// Where the train and val token counts sit in the header.
const COUNTS_AT: u64 = 16;

/// How the tokens were obtained.
#[derive(Debug, Clone, PartialEq)]
pub struct CacheInfo {
    /// `None` when the cache could not be written (tokens then live in memory).
    pub path: Option<PathBuf>,
    pub reused: bool,
    /// Why the cache could not be written (`No space left on device`, a read-only folder).
    pub unwritten: Option<String>,
}

/// Train and val tokens of a one-file corpus: from the cache when it holds this corpus and
/// tokenizer (the text is not read then), else encoded (calling `progress(done_bytes,
/// total_bytes)`) and cached for next time.
pub fn load_or_encode(
    corpus: &OneFile,
    tokenizer: &Tokenizer,
    val_fraction: f64,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<(Tokens, Tokens, CacheInfo), DataError> {
    let key = cache_key(corpus.sha256(), tokenizer, val_fraction)?;
    let path = cache_path(corpus.path(), &key);
    let total = corpus.bytes() as usize;
    let (train, val, info) = load_or_write(path, key, tokenizer, &mut |emit| {
        let text = corpus.text()?;
        let val_from = split_corpus(text, val_fraction)?.0.len();
        for (part, range) in [0..val_from, val_from..text.len()].into_iter().enumerate() {
            let mut done = |offset| progress(offset, total);
            encode_in_batches(tokenizer, text, range, &mut done, &mut |ids| {
                emit(part, ids)
            })?;
        }
        Ok(())
    })?;
    Ok((train, val, info))
}

/// Train and val tokens of a corpus of documents, each followed by `end` (the end-of-text
/// id), from the cache or encoded into it; the counts when they were encoded.
pub fn load_or_encode_documents(
    docs: &Documents,
    tokenizer: &Tokenizer,
    end: u32,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<(Tokens, Tokens, CacheInfo, Option<Counts>), DataError> {
    let tokenizer_json =
        serde_json::to_string(tokenizer).map_err(|e| DataError::Tokenizer(e.to_string()))?;
    let mut hasher = Sha256::new();
    hasher.update(docs.key_material());
    hasher.update(format!("chunk {CHUNK} end {end}\n"));
    hasher.update(tokenizer_json.as_bytes());
    let key: [u8; 32] = hasher.finalize().into();
    let path = cache_path(&docs.cache_stem(), &key);
    let mut counts = None;
    let (train, val, info) = load_or_write(path, key, tokenizer, &mut |emit| {
        counts = Some(encode_documents(docs, tokenizer, end, progress, emit)?);
        Ok(())
    })?;
    Ok((train, val, info, counts))
}

/// The cache file `path` when it holds `key`, else what `encode` emits, written there (or
/// kept in memory when the directory is not writable).
fn load_or_write(
    path: PathBuf,
    key: [u8; 32],
    tokenizer: &Tokenizer,
    encode: &mut dyn FnMut(&mut Emit) -> Result<(), Failure>,
) -> Result<(Tokens, Tokens, CacheInfo), DataError> {
    let vocab = tokenizer.vocab_size();
    if let Ok((train, val)) = open(&path, &key, vocab) {
        let info = CacheInfo {
            path: Some(path),
            reused: true,
            unwritten: None,
        };
        return Ok((train, val, info));
    }
    let width = if vocab <= 1 << 16 { 2 } else { 4 };
    match encode_to_file(&path, &key, width, encode) {
        Ok(()) => {
            let (train, val) = open(&path, &key, vocab)?;
            let info = CacheInfo {
                path: Some(path),
                reused: false,
                unwritten: None,
            };
            Ok((train, val, info))
        }
        Err(Failure::Data(e)) => Err(e),
        // A read-only corpus directory (or a full disk) still trains, from memory.
        Err(Failure::Io(why)) => {
            let mut ids = [Vec::new(), Vec::new()];
            encode(&mut |part, batch| {
                ids[part].extend_from_slice(batch);
                Ok(())
            })
            .map_err(Failure::into_data)?;
            let [train, val] = ids;
            let info = CacheInfo {
                path: None,
                reused: false,
                unwritten: Some(why.to_string()),
            };
            Ok((Tokens::from(train), Tokens::from(val), info))
        }
    }
}

/// Writes what `encode` emits into the cache file `path`, streaming (see
/// [`writer`]).
fn encode_to_file(
    path: &Path,
    key: &[u8; 32],
    width: usize,
    encode: &mut dyn FnMut(&mut Emit) -> Result<(), Failure>,
) -> Result<(), Failure> {
    create_cache_dir(path.parent().expect("cache path has a directory"))?;
    let mut header = Vec::with_capacity(HEADER);
    header.extend_from_slice(MAGIC);
    header.extend(VERSION.to_le_bytes());
    header.extend((width as u32).to_le_bytes());
    header.extend([0u8; 16]); // token counts, written last
    header.extend_from_slice(key);
    let mut writer = CacheWriter::create(path, &header, width)?;
    if let Err(e) = encode(&mut |part, ids| Ok(writer.append(part, ids)?)) {
        writer.abandon();
        return Err(e);
    }
    Ok(writer.finish(COUNTS_AT)?)
}

fn cache_key(
    corpus_sha256: &[u8; 32],
    tokenizer: &Tokenizer,
    val_fraction: f64,
) -> Result<[u8; 32], DataError> {
    let tokenizer_json =
        serde_json::to_string(tokenizer).map_err(|e| DataError::Tokenizer(e.to_string()))?;
    let mut hasher = Sha256::new();
    hasher.update(corpus_sha256);
    hasher.update(tokenizer_json.as_bytes());
    hasher.update(val_fraction.to_le_bytes());
    Ok(hasher.finalize().into())
}

/// `<corpus dir>/.tinygpt-cache/<corpus file name>-<first 16 hex digits of the key>.tokens`.
pub fn cache_path(corpus: &Path, key: &[u8; 32]) -> PathBuf {
    let dir = corpus.parent().unwrap_or(Path::new(".")).join(CACHE_DIR);
    let name = corpus
        .file_name()
        .map_or("corpus".into(), |n| n.to_string_lossy().into_owned());
    let hex = hex(&key[..8]);
    dir.join(format!("{name}-{hex}.tokens"))
}

/// Maps a cache file, checking its header against `key` and every id against the
/// vocabulary (a damaged file must be re-encoded, not fed to the embedding's gather).
fn open(path: &Path, key: &[u8; 32], vocab_size: usize) -> Result<(Tokens, Tokens), DataError> {
    let bad = |reason: &str| DataError::Cache {
        path: path.into(),
        reason: reason.into(),
    };
    let file = std::fs::File::open(path).map_err(|e| bad(&e.to_string()))?;
    // SAFETY: cache files are written once, to a temporary name, and renamed into place;
    // nothing modifies a file after it has its final name, so the mapping stays valid.
    let map = unsafe { Mmap::map(&file) }.map_err(|e| bad(&e.to_string()))?;
    if map.len() < HEADER || &map[..8] != MAGIC {
        return Err(bad("not a tinygpt token cache"));
    }
    let u32_at = |at: usize| u32::from_le_bytes(map[at..at + 4].try_into().expect("4 bytes"));
    let u64_at =
        |at: usize| u64::from_le_bytes(map[at..at + 8].try_into().expect("8 bytes")) as usize;
    let (version, width) = (u32_at(8), u32_at(12) as usize);
    let (n_train, n_val) = (u64_at(16), u64_at(24));
    if version != VERSION || !(width == 2 || width == 4) || &map[32..64] != key {
        return Err(bad("stale cache"));
    }
    let expected = n_train
        .checked_add(n_val)
        .and_then(|n| n.checked_mul(width))
        .and_then(|n| n.checked_add(HEADER));
    if expected != Some(map.len()) {
        return Err(bad("truncated"));
    }
    // Read, not through the map: a check of every id should not leave the whole file
    // resident in this process (training then maps in only the windows it samples).
    let max_id = max_id_in(&file, width).map_err(|e| bad(&e.to_string()))?;
    if max_id.is_some_and(|id| id as usize >= vocab_size) {
        return Err(bad("holds token ids outside the vocabulary"));
    }
    let all = Tokens::mapped(map, HEADER, width, n_train + n_val);
    Ok((all.slice(0..n_train), all.slice(n_train..n_train + n_val)))
}

/// The largest id of a cache file, read in blocks of 4 MB after the header.
fn max_id_in(file: &std::fs::File, width: usize) -> std::io::Result<Option<u32>> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = file;
    file.seek(SeekFrom::Start(HEADER as u64))?;
    let mut block = Vec::with_capacity(4 << 20);
    let mut largest = None;
    loop {
        block.clear();
        file.take(4 << 20).read_to_end(&mut block)?;
        if block.is_empty() {
            return Ok(largest);
        }
        largest = largest.max(max_id(&block, width));
    }
}

/// The largest of the little-endian ids of `width` bytes in `bytes` (one pass the compiler
/// vectorises: about a millisecond per million tokens).
fn max_id(bytes: &[u8], width: usize) -> Option<u32> {
    if width == 2 {
        bytes
            .chunks_exact(2)
            .map(|c| u32::from(u16::from_le_bytes([c[0], c[1]])))
            .max()
    } else {
        bytes
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .max()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CharTokenizer;

    /// `text`'s tokens as the corpus file `corpus`, from or into its cache.
    fn load(corpus: &Path, text: &str, tokenizer: &Tokenizer) -> (Tokens, Tokens, CacheInfo) {
        let corpus = OneFile::from_text(corpus, text.into());
        load_or_encode(&corpus, tokenizer, 0.1, &mut |_, _| {}).unwrap()
    }

    #[test]
    fn reused_when_unchanged_rebuilt_when_the_corpus_changes() {
        let scratch = tempfile::tempdir().unwrap();
        let dir = scratch.path();
        let corpus = dir.join("corpus.txt");
        let text = "hello world\n".repeat(100);
        let tokenizer = Tokenizer::Char(CharTokenizer::from_corpus(&text));
        let mut calls = 0;
        let mut progress = |_: usize, _: usize| calls += 1;

        let (train, val, first) = load_or_encode(
            &OneFile::from_text(&corpus, text.clone()),
            &tokenizer,
            0.1,
            &mut progress,
        )
        .unwrap();
        assert!(!first.reused);
        assert_eq!(train.len() + val.len(), text.len());
        assert_eq!(
            tokenizer.decode(&train.all()).unwrap() + &tokenizer.decode(&val.all()).unwrap(),
            text
        );

        let (train2, _, second) = load(&corpus, &text, &tokenizer);
        assert!(second.reused);
        assert_eq!(second.path, first.path);
        assert_eq!(train2.all(), train.all());

        let changed = text.replace("world", "lower");
        let (_, _, third) = load(&corpus, &changed, &tokenizer);
        assert!(!third.reused);
        assert_ne!(third.path, first.path);

        // A damaged cache file is not trusted: it is rebuilt.
        let path = first.path.clone().unwrap();
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 2]).unwrap();
        let (train3, _, fourth) = load(&corpus, &text, &tokenizer);
        assert!(!fourth.reused);
        assert_eq!(train3.all(), train.all());
        assert!(calls > 0);
        assert_eq!(
            std::fs::read_to_string(path.with_file_name(".gitignore")).unwrap(),
            "*\n"
        );
    }

    #[test]
    fn a_cache_with_an_id_outside_the_vocabulary_is_rebuilt_not_used() {
        let scratch = tempfile::tempdir().unwrap();
        let corpus = scratch.path().join("corpus.txt");
        let text = "abcabc\n".repeat(50);
        let tokenizer = Tokenizer::Char(CharTokenizer::from_corpus(&text));
        let (train, _, first) = load(&corpus, &text, &tokenizer);
        // A copy: `train` maps the file this test is about to damage in place.
        let train = train.all();
        let path = first.path.unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        // The header is intact; one id (u16) in the middle becomes 999 of a 4-token vocab.
        let at = HEADER + 2 * 100;
        bytes[at..at + 2].copy_from_slice(&999u16.to_le_bytes());
        std::fs::write(&path, &bytes).unwrap();
        let (train2, _, again) = load(&corpus, &text, &tokenizer);
        assert!(!again.reused, "the damaged cache must not be used");
        assert_eq!(train2.all(), train);
        assert!(
            train2
                .all()
                .iter()
                .all(|&id| (id as usize) < tokenizer.vocab_size())
        );
    }

    #[test]
    fn vocabularies_past_u16_are_stored_as_u32() {
        let scratch = tempfile::tempdir().unwrap();
        let dir = scratch.path();
        // 70,000 distinct characters: more ids than a u16 holds.
        let text: String = (0x100..0x30000)
            .filter_map(char::from_u32)
            .take(70_000)
            .collect::<String>()
            .repeat(2);
        let tokenizer = Tokenizer::Char(CharTokenizer::from_corpus(&text));
        assert!(tokenizer.vocab_size() > 1 << 16);
        let corpus = dir.join("wide.txt");
        let (train, val, info) = load(&corpus, &text, &tokenizer);
        let bytes = std::fs::read(info.path.unwrap()).unwrap();
        assert_eq!(u32::from_le_bytes(bytes[12..16].try_into().unwrap()), 4);
        assert_eq!(bytes.len(), HEADER + 4 * (train.len() + val.len()));
        let decoded =
            tokenizer.decode(&train.all()).unwrap() + &tokenizer.decode(&val.all()).unwrap();
        assert_eq!(decoded, text);
        assert!(train.all().iter().any(|&id| id > u16::MAX as u32));
        let _ = std::fs::remove_dir_all(dir);
    }
}
