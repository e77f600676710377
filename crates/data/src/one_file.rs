//! A corpus that is one text file, split by position (its last `val_fraction` is val) with no
//! document marks. Its size and hash come from the file memo, so a run that finds its tokens
//! in the cache starts without reading the file; the text is read (or mapped) only when
//! something needs it: encoding, or building a tokenizer.

use std::cell::OnceCell;
use std::collections::BTreeSet;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::config::{Format, check_val_fraction};
use crate::documents::FileFacts;
use crate::file_memo::FileMemo;
use crate::sources::{Source, cache_dir};
use crate::{Corpus, DataError, read_corpus};

pub struct OneFile {
    path: PathBuf,
    facts: FileFacts,
    /// Where `facts` may have come from (forgotten if they turn out stale).
    memo_path: Option<PathBuf>,
    text: OnceCell<Corpus>,
}

impl OneFile {
    /// The corpus file `path`: hashed, or its hash remembered, but not yet read.
    pub fn open(path: &Path) -> Result<Self, DataError> {
        let source = Source {
            path: path.to_path_buf(),
            format: Format::Text,
        };
        let memo_path = cache_dir(std::slice::from_ref(&source)).join("files.json");
        let mut memo = FileMemo::load(&memo_path);
        let facts = memo.facts(&source)?;
        if facts.bytes == 0 {
            return Err(DataError::CorpusEmpty { path: path.into() });
        }
        memo.save(&memo_path);
        Ok(Self {
            path: path.into(),
            facts,
            memo_path: Some(memo_path),
            text: OnceCell::new(),
        })
    }

    /// A corpus already in memory, as if read from `path`.
    pub fn from_text(path: &Path, text: String) -> Self {
        let facts = FileFacts {
            bytes: text.len() as u64,
            sha256: Sha256::digest(text.as_bytes()).into(),
            documents: 1,
        };
        Self {
            path: path.into(),
            facts,
            memo_path: None,
            text: OnceCell::from(Corpus::from(text)),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn bytes(&self) -> u64 {
        self.facts.bytes
    }

    /// The sha256 of the file's bytes.
    pub fn sha256(&self) -> &[u8; 32] {
        &self.facts.sha256
    }

    /// The text, read on first use and checked against the hash it was opened with (a file
    /// changed since is refused, and the memo that vouched for it forgotten).
    pub fn text(&self) -> Result<&Corpus, DataError> {
        if let Some(text) = self.text.get() {
            return Ok(text);
        }
        let text = read_corpus(&self.path)?;
        let mut hasher = Sha256::new();
        text.in_windows(&mut |_, window| {
            hasher.update(window.as_bytes());
            ControlFlow::Continue(())
        });
        if <[u8; 32]>::from(hasher.finalize()) != self.facts.sha256 {
            if let Some(memo) = &self.memo_path {
                let _ = std::fs::remove_file(memo);
            }
            return Err(DataError::CorpusChanged {
                path: self.path.clone(),
            });
        }
        Ok(self.text.get_or_init(|| text))
    }

    /// The distinct characters of the text, read a window at a time.
    pub fn chars(&self) -> Result<BTreeSet<char>, DataError> {
        let mut chars = Chars::default();
        self.text()?.in_windows(&mut |_, window| {
            chars.add(window);
            ControlFlow::Continue(())
        });
        Ok(chars.into_set())
    }
}

/// Distinct characters, gathered with a table for ASCII (most text) and a set for the rest.
pub(crate) struct Chars {
    ascii: [bool; 128],
    other: BTreeSet<char>,
}

impl Default for Chars {
    fn default() -> Self {
        Self {
            ascii: [false; 128],
            other: BTreeSet::new(),
        }
    }
}

impl Chars {
    pub fn add(&mut self, text: &str) {
        for c in text.chars() {
            if c.is_ascii() {
                self.ascii[c as usize] = true;
            } else {
                self.other.insert(c);
            }
        }
    }

    pub fn into_set(self) -> BTreeSet<char> {
        let mut set = self.other;
        set.extend(
            (0u8..128)
                .filter(|&b| self.ascii[b as usize])
                .map(char::from),
        );
        set
    }
}

/// Splits text into its train head and val tail at a character boundary, the last
/// `val_fraction` of the characters going to val. Tokenizers are trained on the head only.
pub fn split_text(text: &str, val_fraction: f64) -> Result<(&str, &str), DataError> {
    let at = split_point(val_fraction, &mut |visit| {
        let _ = visit(0, text);
    })?;
    Ok(text.split_at(at))
}

/// [`split_text`] of a corpus, counting its characters a window at a time (a mapped corpus
/// is not left resident).
pub fn split_corpus(corpus: &Corpus, val_fraction: f64) -> Result<(&str, &str), DataError> {
    let at = split_point(val_fraction, &mut |visit| corpus.in_windows(visit))?;
    Ok(corpus.split_at(at))
}

/// A pass over a text's consecutive windows: calls its argument with each window's byte
/// offset and text until that breaks.
type Walk<'a> = dyn FnMut(&mut dyn FnMut(usize, &str) -> ControlFlow<()>) + 'a;

/// The byte offset where the last `val_fraction` of the characters `walk` shows begins.
fn split_point(val_fraction: f64, walk: &mut Walk) -> Result<usize, DataError> {
    check_val_fraction(val_fraction)?;
    let (mut n_chars, mut len) = (0, 0);
    walk(&mut |offset, window| {
        n_chars += window.chars().count();
        len = offset + window.len();
        ControlFlow::Continue(())
    });
    let n_val = (n_chars as f64 * val_fraction).round() as usize;
    let (mut before, mut at) = (n_chars - n_val, len);
    walk(
        &mut |offset, window| match window.char_indices().nth(before) {
            Some((i, _)) => {
                at = offset + i;
                ControlFlow::Break(())
            }
            None => {
                before -= window.chars().count();
                ControlFlow::Continue(())
            }
        },
    );
    Ok(at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::load_or_encode;
    use crate::{CharTokenizer, Tokenizer};
    use std::time::{Duration, SystemTime};

    /// Sets `path`'s mtime to one fixed instant long past, so the memo trusts it (and a file
    /// settled twice keeps the same mtime).
    fn settle(path: &Path) {
        let old = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let file = std::fs::File::options().write(true).open(path).unwrap();
        file.set_modified(old).unwrap();
    }

    #[test]
    fn the_text_is_read_when_needed_and_must_match_the_hash_it_was_opened_with() {
        let scratch = tempfile::tempdir().unwrap();
        let path = scratch.path().join("corpus.txt");
        std::fs::write(&path, "naïve café\n".repeat(20)).unwrap();
        settle(&path);
        let corpus = OneFile::open(&path).unwrap();
        let whole = OneFile::from_text(&path, "naïve café\n".repeat(20));
        assert_eq!(
            (corpus.sha256(), corpus.bytes()),
            (whole.sha256(), whole.bytes())
        );
        assert!(
            corpus.text.get().is_none(),
            "opening does not read the text"
        );
        assert_eq!(&**corpus.text().unwrap(), &**whole.text().unwrap());
        let expected: BTreeSet<char> = whole.text().unwrap().chars().collect();
        assert_eq!(corpus.chars().unwrap(), expected);

        // Rewritten after opening, same size: the text no longer has the hash the run
        // recorded, so it is refused, and the memo that would vouch for the old hash goes.
        let memo = scratch.path().join(".tinygpt-cache/files.json");
        assert!(memo.exists(), "a settled file is remembered");
        let stale = OneFile::open(&path).unwrap();
        std::fs::write(&path, "naive cafe!!\n".repeat(20)).unwrap();
        let err = stale.text().unwrap_err();
        assert!(matches!(err, DataError::CorpusChanged { .. }), "{err}");
        assert!(!memo.exists());
        let fresh = OneFile::open(&path).unwrap();
        assert_ne!(fresh.sha256(), whole.sha256());
        assert_eq!(&**fresh.text().unwrap(), "naive cafe!!\n".repeat(20));
    }

    #[test]
    fn an_empty_file_is_refused_when_opened() {
        let scratch = tempfile::tempdir().unwrap();
        let path = scratch.path().join("empty.txt");
        std::fs::write(&path, "").unwrap();
        let err = OneFile::open(&path).err().unwrap();
        assert!(matches!(err, DataError::CorpusEmpty { .. }), "{err}");
    }

    #[test]
    fn a_run_that_finds_its_tokens_cached_does_not_read_the_corpus() {
        let scratch = tempfile::tempdir().unwrap();
        let corpus = scratch.path().join("corpus.txt");
        let text = "hello world\n".repeat(100);
        std::fs::write(&corpus, &text).unwrap();
        settle(&corpus);
        let tokenizer = Tokenizer::Char(CharTokenizer::from_corpus(&text));
        let encode = || {
            let file = OneFile::open(&corpus).unwrap();
            load_or_encode(&file, &tokenizer, 0.1, &mut |_, _| {})
        };
        let (train, _, first) = encode().unwrap();
        assert!(!first.reused);
        // Other text behind the same size, mtime and inode (which no editor leaves): the
        // memo vouches for the file, the cache holds its tokens, and the text is never read.
        std::fs::write(&corpus, text.replace('h', "j")).unwrap();
        settle(&corpus);
        let (train2, _, second) = encode().unwrap();
        assert!(second.reused);
        assert_eq!(train2.all(), train.all());
        // With the cache gone the text is read, and its hash no longer matches the memo's.
        std::fs::remove_file(first.path.unwrap()).unwrap();
        let err = encode().unwrap_err();
        assert!(matches!(err, DataError::CorpusChanged { .. }), "{err}");
    }

    #[test]
    fn text_split_is_by_characters() {
        let (train, val) = split_text("abcdéfghij", 0.3).unwrap();
        assert_eq!((train, val), ("abcdéfg", "hij"));
        assert!(split_text("abc", 1.0).is_err());
    }

    #[test]
    fn a_split_counted_in_windows_falls_where_counting_it_whole_does() {
        let text = "naïve café — ok\n".repeat(13);
        let n = text.chars().count();
        for window in [1, 2, 3, 5, 8, 17, 1000] {
            for fraction in [0.004, 0.1, 0.37, 0.5, 0.99] {
                let before = n - (n as f64 * fraction).round() as usize;
                let expected = text
                    .char_indices()
                    .nth(before)
                    .map_or(text.len(), |(i, _)| i);
                let at = split_point(fraction, &mut |visit| {
                    let mut start = 0;
                    while start < text.len() {
                        let mut end = (start + window).min(text.len());
                        while !text.is_char_boundary(end) {
                            end += 1;
                        }
                        if visit(start, &text[start..end]).is_break() {
                            return;
                        }
                        start = end;
                    }
                })
                .unwrap();
                assert_eq!(at, expected, "window {window}, fraction {fraction}");
            }
        }
    }
}
