//! Reading a corpus: one UTF-8 text file, in memory when small and memory-mapped when large,
//! so a corpus bigger than RAM can still be hashed, tokenized and cached.
//!
//! A mapped corpus is read front to back in passes (checking it is UTF-8, counting characters,
//! encoding) and hands back the pages each pass has gone through: otherwise every page read
//! stays mapped into the process and its resident memory grows to the file's size.

use std::io::Read;
use std::ops::{ControlFlow, Deref, Range};
use std::path::Path;

use memmap2::Mmap;

use crate::DataError;

/// Files at least this large are mapped instead of read.
pub(crate) const MAP_FROM_BYTES: u64 = 256 << 20;

/// A pass over a mapped corpus goes this many bytes at a time, releasing each window after.
const WINDOW: usize = 16 << 20;

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
            // SAFETY: `read` checked these bytes are UTF-8 when it mapped them.
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

impl Corpus {
    /// Hands the mapped pages of `range` back to the kernel (a read corpus keeps its memory).
    /// They stay in the page cache, and a later read maps them in again.
    pub fn release(&self, range: Range<usize>) {
        let Bytes::Mapped(map) = &self.0 else {
            return;
        };
        let (start, end) = (range.start, range.end.min(map.len()));
        if end <= start {
            return;
        }
        #[cfg(unix)]
        // SAFETY: `Mmap::map` is a shared, read-only file mapping: a dropped page is read back
        // from the file on its next access, with the same bytes, so slices still borrowed from
        // it stay valid (DONTNEED loses only private or anonymous pages' contents).
        unsafe {
            let _ =
                map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, start, end - start);
        }
    }

    /// Calls `visit(offset, window)` with the text in consecutive windows of about 16 MB cut
    /// at character boundaries, releasing each window's pages after it, until `visit` breaks.
    pub fn in_windows(&self, visit: &mut dyn FnMut(usize, &str) -> ControlFlow<()>) {
        self.in_windows_of(WINDOW, visit)
    }

    fn in_windows_of(&self, window: usize, visit: &mut dyn FnMut(usize, &str) -> ControlFlow<()>) {
        let text: &str = self;
        let mut start = 0;
        while start < text.len() {
            let mut end = (start + window).min(text.len());
            while !text.is_char_boundary(end) {
                end += 1;
            }
            let flow = visit(start, &text[start..end]);
            self.release(start..end);
            if flow.is_break() {
                return;
            }
            start = end;
        }
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
        let corpus = Corpus(Bytes::Mapped(map));
        check_utf8(corpus.as_bytes(), WINDOW, &|window| corpus.release(window))
            .map_err(not_utf8)?;
        return Ok(corpus);
    }
    let mut bytes = Vec::with_capacity(size as usize);
    file.read_to_end(&mut bytes).map_err(unreadable)?;
    String::from_utf8(bytes)
        .map(|text| Corpus(Bytes::Read(text)))
        .map_err(|e| not_utf8(e.utf8_error().valid_up_to()))
}

/// Checks `bytes` are UTF-8 a window at a time, calling `done(window)` after each window; the
/// offset of the first invalid byte otherwise.
fn check_utf8(bytes: &[u8], window: usize, done: &dyn Fn(Range<usize>)) -> Result<(), usize> {
    let mut start = 0;
    while start < bytes.len() {
        let end = (start + window.max(4)).min(bytes.len());
        let checked = match std::str::from_utf8(&bytes[start..end]) {
            Ok(_) => end,
            // A character cut by the window's end: the next window starts with it.
            Err(e) if e.error_len().is_none() && end < bytes.len() => start + e.valid_up_to(),
            Err(e) => return Err(start + e.valid_up_to()),
        };
        done(start..checked);
        start = checked;
    }
    Ok(())
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
        assert!(matches!(mapped.0, Bytes::Mapped { .. }));
        assert_eq!(&*mapped, text);
        let err = read(&temp("mapped-latin1.txt", b"ok caf\xe9"), 1).unwrap_err();
        assert!(
            matches!(err, DataError::CorpusNotUtf8 { offset: 6, .. }),
            "{err}"
        );
    }

    #[test]
    fn utf8_is_checked_across_window_edges() {
        // Windows of 5 bytes cut 2-byte characters in every possible place.
        let text = "naïve café — ok\n".repeat(7);
        for window in 4..12 {
            assert_eq!(
                check_utf8(text.as_bytes(), window, &|_| {}),
                Ok(()),
                "{window}"
            );
            for nth in [0, 2, 30, 31] {
                let at = text.char_indices().nth(nth).unwrap().0;
                let mut bad = text.as_bytes().to_vec();
                bad[at] = 0xff;
                assert_eq!(check_utf8(&bad, window, &|_| {}), Err(at), "{window} {nth}");
            }
            // A character cut off by the end of the file.
            let cut = &text.as_bytes()[..text.len() - 2 - "ok\n".len()];
            assert!(check_utf8(cut, window, &|_| {}).is_err());
        }
    }

    #[test]
    fn windows_cover_the_text_in_order_and_stop_when_asked() {
        let text = "naïve café — ok\n".repeat(40);
        let corpus = read(&temp("windows.txt", text.as_bytes()), 1).unwrap();
        let mut joined = String::new();
        corpus.in_windows_of(7, &mut |offset, window| {
            assert_eq!(offset, joined.len());
            joined += window;
            ControlFlow::Continue(())
        });
        assert_eq!(joined, text);
        let mut seen = 0;
        corpus.in_windows_of(7, &mut |_, _| {
            seen += 1;
            if seen == 3 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        });
        assert_eq!(seen, 3);
    }

    /// Resident kB of the mapping that holds `address`, from /proc/self/smaps.
    #[cfg(target_os = "linux")]
    fn resident_kb(address: usize) -> usize {
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let mut inside = false;
        for line in smaps.lines() {
            if let Some((range, _)) = line.split_once(' ')
                && let Some((from, to)) = range.split_once('-')
                && let (Ok(from), Ok(to)) = (
                    usize::from_str_radix(from, 16),
                    usize::from_str_radix(to, 16),
                )
            {
                inside = (from..to).contains(&address);
            } else if inside && let Some(kb) = line.strip_prefix("Rss:") {
                return kb.trim().trim_end_matches(" kB").trim().parse().unwrap();
            }
        }
        panic!("no mapping holds {address:#x}")
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_pass_over_a_mapped_corpus_hands_its_pages_back() {
        let text = "a line of text to map\n".repeat(3 << 20); // 66 MB
        let corpus = read(&temp("big.txt", text.as_bytes()), 1).unwrap();
        let address = corpus.as_ptr() as usize;
        // The UTF-8 check has gone through every page and released them all.
        assert!(resident_kb(address) < 1024, "{} kB", resident_kb(address));
        // Reading pages in without releasing them (what the passes used to do) keeps them.
        let newlines = corpus.bytes().filter(|&b| b == b'\n').count();
        assert_eq!(newlines, 3 << 20);
        assert!(
            resident_kb(address) > 60 << 10,
            "{} kB",
            resident_kb(address)
        );
        corpus.release(0..corpus.len() / 2);
        let half = resident_kb(address);
        assert!((30 << 10..36 << 10).contains(&half), "{half} kB");
        // A pass in windows leaves none resident, and released text reads the same again.
        let mut lines = 0;
        corpus.in_windows(&mut |_, window| {
            lines += window.matches('\n').count();
            ControlFlow::Continue(())
        });
        assert_eq!(lines, 3 << 20);
        assert!(resident_kb(address) < 1024, "{} kB", resident_kb(address));
        corpus.release(0..10);
        assert_eq!(&corpus[..10], &text[..10]);
    }
}
