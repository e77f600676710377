//! A corpus of many documents: the files `data.corpus` names (and `data.val_corpus`), their
//! hashes and document counts, which documents are held out for validation, and a stream of
//! the documents in order.
//!
//! Validation takes whole documents: `val_fraction` of them, chosen from the seed (the same
//! seed, files and counts always choose the same ones), or every document of
//! `data.val_corpus`. A document's id is its position in the corpus: files in order, and within
//! a file its ordinal (JSONL line, Parquet row), so bad or empty documents keep ids too.

use std::collections::HashSet;
use std::path::PathBuf;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};

use crate::config::check_val_fraction;
use crate::corpus::MAP_FROM_BYTES;
use crate::documents::{self, FileFacts, Item};
use crate::error::Failure;
use crate::file_memo::FileMemo;
use crate::sources::{self, Source, cache_dir, common_dir};
use crate::store::hex;
use crate::{Corpus, DataConfig, DataError, Format};

/// Train (0) or val (1).
pub type Part = usize;
pub const TRAIN: Part = 0;
pub const VAL: Part = 1;

/// Mixed into the seed so the validation choice draws from a stream of its own.
const VAL_CHOICE_SALT: u64 = 0x7661_6c5f_646f_6373; // "val_docs"

pub struct Documents {
    /// The corpus's files, then `val_corpus`'s.
    files: Vec<(Source, FileFacts)>,
    /// How many of `files` are the corpus's (the rest are all validation).
    corpus_files: usize,
    /// When val is a fraction of the corpus: bit `id` is set for a validation document.
    val_ids: Option<Vec<u64>>,
    text_field: String,
    skip_bad: bool,
    /// Text files at least this large are mapped, not read (lowered by tests).
    map_from_bytes: u64,
    key_material: Vec<u8>,
}

/// What a pass over the documents saw.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Counts {
    /// Documents read, per part.
    pub documents: [u64; 2],
    /// Bytes of document text, per part.
    pub text_bytes: [u64; 2],
    /// Documents skipped as unreadable (with `skip_bad_documents`).
    pub skipped: u64,
    /// The first skipped document's problem.
    pub first_skipped: Option<String>,
}

impl Documents {
    /// The files of `config`, hashed and counted, and the validation choice for `seed`.
    pub fn open(config: &DataConfig, seed: u64) -> Result<Self, DataError> {
        let corpus = sources::resolve(&config.corpus, config.format, "data.corpus")?;
        let val = match &config.val_corpus {
            Some(spec) => sources::resolve(spec, config.format, "data.val_corpus")?,
            None => Vec::new(),
        };
        Self::of(corpus, val, config, seed)
    }

    pub(crate) fn of(
        corpus: Vec<Source>,
        val: Vec<Source>,
        config: &DataConfig,
        seed: u64,
    ) -> Result<Self, DataError> {
        // Validation on text the model trains on would measure memory, not generalisation.
        let real = |s: &Source| std::fs::canonicalize(&s.path).unwrap_or_else(|_| s.path.clone());
        let trained: HashSet<PathBuf> = corpus.iter().map(real).collect();
        if let Some(both) = val.iter().find(|s| trained.contains(&real(s))) {
            return Err(DataError::Config(format!(
                "data.val_corpus names {}, which data.corpus also holds: validation would measure text the model trains on; name files that are not in data.corpus",
                both.path.display()
            )));
        }
        let corpus_files = corpus.len();
        let has_val_corpus = !val.is_empty();
        let sources: Vec<Source> = corpus.into_iter().chain(val).collect();
        let memo_path = cache_dir(&sources).join("files.json");
        let mut memo = FileMemo::load(&memo_path);
        let files = sources
            .into_iter()
            .map(|source| memo.facts(&source).map(|facts| (source, facts)))
            .collect::<Result<Vec<_>, _>>()?;
        memo.save(&memo_path);
        if !config.skip_bad_documents
            && let Some(error) = files
                .iter()
                .filter(|(s, f)| s.format == Format::Parquet && f.documents == 0)
                .find_map(|(s, _)| documents::parquet_problem(&s.path))
        {
            return Err(error); // a damaged file, not an empty one
        }
        let mut key = b"tinygpt documents v1\n".to_vec();
        for (i, (source, facts)) in files.iter().enumerate() {
            let role = if i < corpus_files { "corpus" } else { "val" };
            key.extend(
                format!("{role} {} {} ", source.format.name(), source.path.display()).bytes(),
            );
            key.extend(facts.bytes.to_le_bytes());
            key.extend(facts.documents.to_le_bytes());
            key.extend(facts.sha256);
        }
        key.extend(
            format!(
                "field {:?} skip {}\n",
                config.text_field, config.skip_bad_documents
            )
            .bytes(),
        );
        let val_ids = if has_val_corpus {
            None
        } else {
            let n: u64 = files.iter().map(|(_, f)| f.documents).sum();
            key.extend(format!("val_fraction {} seed {seed}\n", config.val_fraction).bytes());
            Some(choose_val(n, config.val_fraction, seed)?)
        };
        Ok(Self {
            files,
            corpus_files,
            val_ids,
            text_field: config.text_field.clone(),
            skip_bad: config.skip_bad_documents,
            map_from_bytes: MAP_FROM_BYTES,
            key_material: key,
        })
    }

    /// Maps text files from `bytes` on (tests lower it to exercise the large-file path).
    pub fn map_from_bytes(mut self, bytes: u64) -> Self {
        self.map_from_bytes = bytes;
        self
    }

    /// Everything the documents' tokens depend on, tokenizer aside: each file's path, format,
    /// size, document count and sha256, the text field, and the validation choice.
    pub fn key_material(&self) -> &[u8] {
        &self.key_material
    }

    /// The hex sha256 of [`Self::key_material`]: what runs record as their corpus.
    pub fn fingerprint(&self) -> String {
        hex(&Sha256::digest(&self.key_material))
    }

    pub fn files(&self) -> usize {
        self.files.len()
    }

    /// Bytes of all files (the progress bar's total).
    pub fn bytes(&self) -> u64 {
        self.files.iter().map(|(_, f)| f.bytes).sum()
    }

    /// Documents (ids) in the corpus's files, bad and empty ones included.
    pub fn corpus_documents(&self) -> u64 {
        self.files[..self.corpus_files]
            .iter()
            .map(|(_, f)| f.documents)
            .sum()
    }

    /// Whether corpus document `id` is held out for validation.
    pub fn is_val(&self, id: u64) -> bool {
        self.val_ids
            .as_ref()
            .is_some_and(|bits| (bits[(id / 64) as usize] >> (id % 64)) & 1 == 1)
    }

    /// Where the token cache goes, as a corpus path: `<name>-documents` in the deepest
    /// directory holding every file, `<name>` being that one file's or that directory's.
    pub fn cache_stem(&self) -> PathBuf {
        let dir = common_dir(self.files.iter().map(|(s, _)| s));
        let name = match &self.files[..] {
            [(only, _)] => only.path.file_name(),
            _ => dir.file_name(),
        }
        .map_or("corpus".into(), |n| n.to_string_lossy().into_owned());
        dir.join(format!("{name}-documents"))
    }

    /// Whether the documents are conversations (`data.format = "chat"`), whose text holds the
    /// role tokens' names.
    pub fn are_conversations(&self) -> bool {
        self.files.iter().any(|(s, _)| s.format == Format::Chat)
    }

    /// Calls `visit(part, text, bytes_read)` for every readable document in order (only the
    /// train documents when `train_only`); bad documents stop the pass with their error, or
    /// are counted when skipping is on.
    pub(crate) fn for_each(
        &self,
        train_only: bool,
        visit: &mut dyn FnMut(Part, &Corpus, u64) -> Result<(), Failure>,
    ) -> Result<Counts, Failure> {
        let mut counts = Counts::default();
        let (mut first_id, mut bytes_before) = (0u64, 0u64);
        for (i, (source, facts)) in self.files.iter().enumerate() {
            let in_corpus = i < self.corpus_files;
            if train_only && !in_corpus {
                break;
            }
            documents::read(
                source,
                &self.text_field,
                self.map_from_bytes,
                &mut |item| match item {
                    Item::Document {
                        ordinal,
                        text,
                        consumed,
                    } => {
                        let part = if in_corpus && !self.is_val(first_id + ordinal) {
                            0
                        } else {
                            1
                        };
                        if train_only && part == VAL || text.is_empty() {
                            return Ok(());
                        }
                        counts.documents[part] += 1;
                        counts.text_bytes[part] += text.len() as u64;
                        visit(part, text, bytes_before + consumed)
                    }
                    Item::Bad { count, error, .. } => {
                        if !self.skip_bad {
                            return Err(error.into());
                        }
                        counts.skipped += count;
                        counts
                            .first_skipped
                            .get_or_insert_with(|| error.to_string());
                        Ok(())
                    }
                },
            )?;
            if in_corpus {
                first_id += facts.documents;
            }
            bytes_before += facts.bytes;
        }
        Ok(counts)
    }
}

/// The validation ids among `n` documents: `round(n × fraction)` of them (at least one, and
/// at least one left to train on), drawn without replacement from `seed`.
fn choose_val(n: u64, fraction: f64, seed: u64) -> Result<Vec<u64>, DataError> {
    check_val_fraction(fraction)?;
    if n < 2 {
        return Err(DataError::Config(format!(
            "data.corpus holds {n} document(s): holding out whole documents for validation needs at least 2; add documents or name validation files in data.val_corpus"
        )));
    }
    let k = ((n as f64 * fraction).round() as u64).clamp(1, n - 1);
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ VAL_CHOICE_SALT);
    let n_usize = usize::try_from(n).expect("document count fits in memory");
    let mut bits = vec![0u64; n_usize.div_ceil(64)];
    for id in rand::seq::index::sample(&mut rng, n_usize, k as usize) {
        bits[id / 64] |= 1 << (id % 64);
    }
    Ok(bits)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(bits: &[u64], n: u64) -> Vec<u64> {
        (0..n)
            .filter(|&i| (bits[(i / 64) as usize] >> (i % 64)) & 1 == 1)
            .collect()
    }

    /// Every (part, text) a pass over `docs` sees.
    fn texts(docs: &Documents) -> Vec<(Part, String)> {
        let mut seen = Vec::new();
        docs.for_each(false, &mut |part, text, _| {
            seen.push((part, text.to_string()));
            Ok(())
        })
        .map_err(Failure::into_data)
        .unwrap();
        seen
    }

    #[test]
    fn large_files_are_mapped_and_give_the_same_documents() {
        // The memory-mapping path big corpora take, with its threshold lowered to one byte.
        let scratch = tempfile::tempdir().unwrap();
        for (name, text) in [
            ("a.txt", "first ✓\n"),
            ("b.txt", "second\n"),
            ("c.md", "third"),
        ] {
            std::fs::write(scratch.path().join(name), text).unwrap();
        }
        let config = DataConfig {
            val_fraction: 0.3,
            ..DataConfig::of(scratch.path().to_path_buf())
        };
        let read = Documents::open(&config, 3).unwrap();
        let mapped = Documents::open(&config, 3).unwrap().map_from_bytes(1);
        let seen = texts(&read);
        assert_eq!(seen.len(), 3);
        assert_eq!(seen.iter().filter(|(part, _)| *part == VAL).count(), 1);
        assert_eq!(texts(&mapped), seen);
        assert_eq!(read.corpus_documents(), 3);
        assert_eq!(
            read.cache_stem(),
            scratch.path().join(format!(
                "{}-documents",
                scratch.path().file_name().unwrap().to_string_lossy()
            ))
        );
    }

    #[test]
    fn validation_is_a_seeded_fraction_of_whole_documents() {
        let a = choose_val(1000, 0.1, 7).unwrap();
        assert_eq!(ids(&a, 1000).len(), 100);
        assert_eq!(
            a,
            choose_val(1000, 0.1, 7).unwrap(),
            "same seed, same choice"
        );
        assert_ne!(a, choose_val(1000, 0.1, 8).unwrap());
        // Never all documents, never none.
        assert_eq!(ids(&choose_val(3, 0.01, 1).unwrap(), 3).len(), 1);
        assert_eq!(ids(&choose_val(3, 0.99, 1).unwrap(), 3).len(), 2);
        assert!(
            choose_val(1, 0.1, 1)
                .unwrap_err()
                .to_string()
                .contains("data.val_corpus")
        );
    }
}
