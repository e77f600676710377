//! From a corpus to token splits: reading the input (one text file, or many documents),
//! choosing or training the tokenizer, then encoding through the token cache (reporting
//! progress through a callback, so a terminal can draw a bar).

use std::path::Path;
use std::time::Instant;

use crate::cache::{CacheInfo, load_or_encode, load_or_encode_documents};
use crate::collection::{Counts, Documents, VAL};
use crate::config::Format;
use crate::one_file::{Chars, OneFile, split_corpus};
use crate::sources::{self, Source};
use crate::store::hex;
use crate::tokenizer::bpe::{bpe_sample, train_bpe_on};
use crate::{CharTokenizer, DataConfig, DataError, Splits, Tokenizer};

/// A corpus as a run reads it.
pub enum Input {
    /// One text file: split by position (its last `val_fraction` is val), no document marks.
    OneFile(OneFile),
    /// Many documents, each followed by the end-of-text token, val by whole documents.
    Documents(Documents),
}

impl Input {
    /// The corpus of `config`; `seed` chooses the validation documents.
    pub fn open(config: &DataConfig, seed: u64) -> Result<Self, DataError> {
        let corpus = sources::resolve(&config.corpus, config.format, "data.corpus")?;
        if let (
            [
                Source {
                    path,
                    format: Format::Text,
                },
            ],
            None,
        ) = (&corpus[..], &config.val_corpus)
        {
            return Ok(Input::OneFile(OneFile::open(path)?));
        }
        let val = match &config.val_corpus {
            Some(spec) => sources::resolve(spec, config.format, "data.val_corpus")?,
            None => Vec::new(),
        };
        Ok(Input::Documents(Documents::of(corpus, val, config, seed)?))
    }

    /// The hex sha256 runs record to notice a changed corpus: of the text for one file, of
    /// every file's hash (and the validation choice) for documents.
    pub fn fingerprint(&self) -> String {
        match self {
            Input::OneFile(file) => hex(file.sha256()),
            Input::Documents(docs) => docs.fingerprint(),
        }
    }

    /// Bytes of input.
    pub fn bytes(&self) -> u64 {
        match self {
            Input::OneFile(file) => file.bytes(),
            Input::Documents(docs) => docs.bytes(),
        }
    }

    /// The distinct characters of the whole corpus (train and val).
    pub fn chars(&self) -> Result<std::collections::BTreeSet<char>, DataError> {
        match self {
            Input::OneFile(file) => file.chars(),
            Input::Documents(docs) => {
                let mut chars = Chars::default();
                // A conversation's role tokens are tokens of their own, not characters.
                let conversations = docs.are_conversations();
                docs.for_each(false, &mut |_, text, _| {
                    if conversations {
                        chars.add(&strip_role_tokens(text));
                    } else {
                        chars.add(text);
                    }
                    Ok(())
                })
                .map_err(crate::error::Failure::into_data)?;
                Ok(chars.into_set())
            }
        }
    }

    /// The tokenizer a new run uses, per `data.tokenizer`: `char`, `bpe` (trained here on
    /// train text only, never on val) or a path to a `tokenizer.json`.
    pub fn build_tokenizer(&self, config: &DataConfig) -> Result<Tokenizer, DataError> {
        let tokenizer = match (config.tokenizer.as_str(), self) {
            ("char", _) => {
                let chars = self.chars()?.into_iter().collect();
                let chars = CharTokenizer::from_vocab(chars).map_err(DataError::Config)?;
                match self {
                    Input::OneFile(_) => Tokenizer::Char(chars),
                    Input::Documents(_) => Tokenizer::Char(chars.with_end_of_text()),
                }
            }
            ("bpe", Input::OneFile(file)) => {
                let text = file.text()?;
                let (train, _) = split_corpus(text, config.val_fraction)?;
                let bpe =
                    train_bpe_on(&bpe_sample(train, config.bpe_sample_bytes), config.vocab_size);
                text.release(0..text.len());
                bpe?
            }
            ("bpe", Input::Documents(docs)) => {
                let sample = sample_documents(docs, config.bpe_sample_bytes)?;
                let sample: Vec<&str> = sample.iter().map(String::as_str).collect();
                train_bpe_on(&sample, config.vocab_size)?
            }
            (path, _) => Tokenizer::load(Path::new(path)).map_err(|e| {
                DataError::Config(format!(
                    "data.tokenizer = {path:?} is neither \"char\", \"bpe\" nor a readable tokenizer.json: {e}"
                ))
            })?,
        };
        // A chat corpus: the role tokens are reserved after the vocabulary's last id.
        Ok(match config.format {
            Some(Format::Chat) => tokenizer.with_chat_tokens(),
            _ => tokenizer,
        })
    }

    /// Train and val tokens, from the cache or freshly encoded, for a model of context
    /// `block_size`; `progress(done_bytes, total_bytes)` is called while encoding.
    pub fn encode(
        &self,
        config: &DataConfig,
        block_size: usize,
        tokenizer: &Tokenizer,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<Encoded, DataError> {
        let started = Instant::now();
        let (train, val, cache, counts) = match self {
            Input::OneFile(file) => {
                let (train, val, cache) =
                    load_or_encode(file, tokenizer, config.val_fraction, progress)?;
                (train, val, cache, None)
            }
            Input::Documents(docs) => {
                let end = tokenizer.end_of_text().ok_or_else(|| {
                    DataError::Config(format!(
                        "the tokenizer has no {:?} token to end each document with: a corpus of many documents needs data.tokenizer = \"char\", \"bpe\" or a tokenizer.json that has it",
                        crate::tokenizer::END_OF_TEXT
                    ))
                })?;
                let (train, val, cache, counts) =
                    load_or_encode_documents(docs, tokenizer, end, progress)?;
                (train, val, cache, counts)
            }
        };
        let seconds = started.elapsed().as_secs_f64();
        let splits = Splits::from_parts(train, val, block_size)?;
        Ok(Encoded {
            splits,
            cache,
            seconds,
            bytes: self.bytes() as usize,
            documents: match self {
                Input::OneFile { .. } => None,
                Input::Documents(docs) => Some(DocumentsSeen {
                    files: docs.files(),
                    counts,
                }),
            },
        })
    }

    /// One line naming the corpus: its path, or its files and size.
    pub fn describe(&self) -> String {
        match self {
            Input::OneFile(file) => format!(
                "{} ({:.2} MB)",
                file.path().display(),
                file.bytes() as f64 / 1e6
            ),
            Input::Documents(docs) => format!(
                "{} file(s), {} document ids, {:.2} MB",
                docs.files(),
                docs.corpus_documents(),
                docs.bytes() as f64 / 1e6
            ),
        }
    }
}

/// `text` without the chat template's role tokens.
fn strip_role_tokens(text: &str) -> String {
    crate::tokenizer::CHAT_TOKENS
        .iter()
        .fold(text.to_string(), |text, token| text.replace(token, ""))
}

/// A BPE's sample of a document corpus: every k-th train document (val never), k chosen so
/// that about `cap` bytes are taken from across the whole corpus, and never more than `cap`.
fn sample_documents(docs: &Documents, cap: usize) -> Result<Vec<String>, DataError> {
    let stride = docs.bytes().div_ceil(cap as u64).max(1);
    let (mut sample, mut taken, mut index) = (Vec::new(), 0usize, 0u64);
    let conversations = docs.are_conversations();
    docs.for_each(true, &mut |_, text, _| {
        if index % stride == 0 && taken + text.len() <= cap {
            taken += text.len();
            // Role tokens are added whole after training: no merges are spent on them.
            sample.push(match conversations {
                true => strip_role_tokens(text),
                false => text.to_string(),
            });
        }
        index += 1;
        Ok(())
    })
    .map_err(crate::error::Failure::into_data)?;
    Ok(sample)
}

/// Documents an encoding went through (a many-document corpus only).
pub struct DocumentsSeen {
    pub files: usize,
    /// `None` when the tokens came from the cache.
    pub counts: Option<Counts>,
}

/// What encoding the corpus took.
pub struct Encoded {
    pub splits: Splits,
    pub cache: CacheInfo,
    pub seconds: f64,
    pub bytes: usize,
    pub documents: Option<DocumentsSeen>,
}

impl Encoded {
    /// One line for the user: where the tokens came from and how fast they were made.
    pub fn describe(&self) -> String {
        let tokens = self.splits.train.len() + self.splits.val.len();
        let place = match (&self.cache.path, &self.cache.unwritten) {
            (Some(path), _) => path.display().to_string(),
            (None, why) => format!(
                "memory (the cache cannot be written: {})",
                why.as_deref().unwrap_or("unknown")
            ),
        };
        let mut line = if self.cache.reused {
            format!("tokens: {tokens} from the cache {place}")
        } else {
            format!(
                "tokens: encoded {:.1} MB into {tokens} tokens in {:.2}s ({:.1} MB/s), cached in {place}",
                self.bytes as f64 / 1e6,
                self.seconds,
                self.bytes as f64 / 1e6 / self.seconds.max(1e-9)
            )
        };
        if let Some(DocumentsSeen {
            counts: Some(counts),
            files,
        }) = &self.documents
        {
            line += &format!(
                "\ndocuments: {} train + {} val from {files} file(s)",
                counts.documents[0], counts.documents[VAL]
            );
            if counts.skipped > 0 {
                line += &format!(
                    ", {} skipped as unreadable (first: {})",
                    counts.skipped,
                    counts.first_skipped.as_deref().unwrap_or("?")
                );
            }
        }
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A BPE of 320 tokens trained for `text` with the default 10% val tail.
    fn bpe_for(text: &str) -> Tokenizer {
        let mut config = DataConfig::of("unused.txt");
        config.tokenizer = "bpe".into();
        config.vocab_size = 320;
        let input = Input::OneFile(OneFile::from_text(Path::new("unused.txt"), text.into()));
        input.build_tokenizer(&config).unwrap()
    }

    #[test]
    fn bpe_never_sees_the_val_split() {
        let common = "to be or not to be that is the question\n".repeat(90);
        let rare = "zyzzogeton quibbling\n".repeat(12);
        // `rare` is about 10% of the text: in the val tail it is unseen, in front it is learnt.
        let unseen = bpe_for(&(common.clone() + &rare));
        let seen = bpe_for(&(rare + &common));
        let word = "zyzzogeton";
        assert_eq!(
            seen.encode(word).unwrap().len(),
            1,
            "control: a seen word merges"
        );
        assert!(
            unseen.encode(word).unwrap().len() > 3,
            "{:?}",
            unseen.encode(word)
        );
    }
}
