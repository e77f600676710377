//! Reading a corpus: one UTF-8 text file, in memory when small and memory-mapped when large,
//! so a corpus bigger than RAM can still be hashed, tokenized and cached.

use std::io::Read;
use std::ops::Deref;
use std::path::Path;

use memmap2::Mmap;

use crate::DataError;

/// Files at least this large are mapped instead of read.
pub(crate) const MAP_FROM_BYTES: u64 = 256 << 20;

/// A corpus's text, validated as UTF-8.
pub struct Corpus(Bytes);

enum Bytes {
    Read(String),
    Mapped(Mmap),
}

impl Deref for Corpus {
    type Target = str;

    fn deref(&self) -> &str {
        match &self.0 {
            Bytes::Read(text) => text,
            // SAFETY: `read_corpus` checked these bytes are UTF-8 when it mapped them.
            Bytes::Mapped(map) => unsafe { std::str::from_utf8_unchecked(map) },
        }
    }
}

impl From<String> for Corpus {
    fn from(text: String) -> Self {
        Corpus(Bytes::Read(text))
    }
}

impl std::fmt::Debug for Corpus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Corpus({} bytes)", self.len())
    }
}

/// Reads the whole corpus, refusing missing, empty and non-UTF-8 files with a clear error.
pub fn read_corpus(path: &Path) -> Result<Corpus, DataError> {
    read(path, MAP_FROM_BYTES)
}

/// [`read_corpus`], mapping files of at least `map_from_bytes`.
pub(crate) fn read_corpus_mapping_from(
    path: &Path,
    map_from_bytes: u64,
) -> Result<Corpus, DataError> {
    read(path, map_from_bytes)
}

fn read(path: &Path, map_from_bytes: u64) -> Result<Corpus, DataError> {
    let unreadable = |source: std::io::Error| match source.kind() {
        std::io::ErrorKind::NotFound => DataError::CorpusMissing { path: path.into() },
        _ => DataError::CorpusUnreadable {
            path: path.into(),
            source,
        },
    };
    let not_utf8 = |offset| DataError::CorpusNotUtf8 {
        path: path.into(),
        offset,
    };
    let mut file = std::fs::File::open(path).map_err(unreadable)?;
    let size = file.metadata().map_err(unreadable)?.len();
    if size == 0 {
        return Err(DataError::CorpusEmpty { path: path.into() });
    }
    if size >= map_from_bytes {
        // SAFETY: the map is read-only; a corpus rewritten while tinygpt reads it is caught
        // by the corpus hash that runs and caches are keyed by.
        let map = unsafe { Mmap::map(&file) }.map_err(unreadable)?;
        std::str::from_utf8(&map).map_err(|e| not_utf8(e.valid_up_to()))?;
        return Ok(Corpus(Bytes::Mapped(map)));
    }
    let mut bytes = Vec::with_capacity(size as usize);
    file.read_to_end(&mut bytes).map_err(unreadable)?;
    String::from_utf8(bytes)
        .map(|text| Corpus(Bytes::Read(text)))
        .map_err(|e| not_utf8(e.utf8_error().valid_up_to()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scratch file holding `bytes`, removed when the returned path is dropped.
    fn temp(name: &str, bytes: &[u8]) -> tempfile::TempPath {
        let path = tempfile::Builder::new()
            .suffix(name)
            .tempfile()
            .unwrap()
            .into_temp_path();
        std::fs::write(&path, bytes).unwrap();
        path
    }

    #[test]
    fn reads_text_and_refuses_bad_files() {
        assert_eq!(&*read_corpus(&temp("ok.txt", b"hi\n")).unwrap(), "hi\n");
        let err = read_corpus(&temp("empty.txt", b"")).unwrap_err();
        assert!(matches!(err, DataError::CorpusEmpty { .. }), "{err}");
        let err = read_corpus(&temp("latin1.txt", b"caf\xe9")).unwrap_err();
        assert!(
            matches!(err, DataError::CorpusNotUtf8 { offset: 3, .. }),
            "{err}"
        );
        let err = read_corpus(Path::new("/nonexistent/corpus.txt")).unwrap_err();
        assert!(err.to_string().contains("set data.corpus"), "{err}");
    }

    #[test]
    fn large_files_are_mapped_and_checked_the_same_way() {
        let text = "naïve café\n".repeat(50);
        let mapped = read(&temp("mapped.txt", text.as_bytes()), 1).unwrap();
        assert!(matches!(mapped.0, Bytes::Mapped(_)));
        assert_eq!(&*mapped, text);
        let err = read(&temp("mapped-latin1.txt", b"ok caf\xe9"), 1).unwrap_err();
        assert!(
            matches!(err, DataError::CorpusNotUtf8 { offset: 6, .. }),
            "{err}"
        );
    }
}
