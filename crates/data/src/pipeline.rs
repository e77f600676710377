//! From a corpus to token splits: choosing or training the tokenizer, then encoding through
//! the token cache (reporting progress through a callback, so a terminal can draw a bar).

use std::path::Path;
use std::time::Instant;

use crate::bpe::{bpe_sample, train_bpe_on};
use crate::cache::{CacheInfo, load_or_encode};
use crate::{CharTokenizer, DataConfig, DataError, Splits, Tokenizer, split_text};

/// The tokenizer a new run uses, per `data.tokenizer`: `char`, `bpe` (trained here on the
/// train split only, never on val) or a path to a `tokenizer.json`.
pub fn build_tokenizer(config: &DataConfig, text: &str) -> Result<Tokenizer, DataError> {
    match config.tokenizer.as_str() {
        "char" => Ok(Tokenizer::Char(CharTokenizer::from_corpus(text))),
        "bpe" => {
            let (train, _) = split_text(text, config.val_fraction)?;
            train_bpe_on(&bpe_sample(train, config.bpe_sample_bytes), config.vocab_size)
        }
        path => Tokenizer::load(Path::new(path)).map_err(|e| {
            DataError::Config(format!(
                "data.tokenizer = {path:?} is neither \"char\", \"bpe\" nor a readable tokenizer.json: {e}"
            ))
        }),
    }
}

/// What encoding the corpus took.
pub struct Encoded {
    pub splits: Splits,
    pub cache: CacheInfo,
    pub seconds: f64,
    pub bytes: usize,
}

impl Encoded {
    /// One line for the user: where the tokens came from and how fast they were made.
    pub fn describe(&self) -> String {
        let tokens = self.splits.train.len() + self.splits.val.len();
        let place = self
            .cache
            .path
            .as_ref()
            .map_or("memory (cache directory not writable)".to_string(), |p| {
                p.display().to_string()
            });
        if self.cache.reused {
            format!("tokens: {tokens} from the cache {place}")
        } else {
            format!(
                "tokens: encoded {:.1} MB into {tokens} tokens in {:.2}s ({:.1} MB/s), cached in {place}",
                self.bytes as f64 / 1e6,
                self.seconds,
                self.bytes as f64 / 1e6 / self.seconds.max(1e-9)
            )
        }
    }
}

/// Train and val tokens of the corpus `text`, from the cache or freshly encoded, for a model
/// of context `block_size`; `progress(done_bytes, total_bytes)` is called while encoding.
pub fn encode_corpus(
    config: &DataConfig,
    block_size: usize,
    tokenizer: &Tokenizer,
    text: &str,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Encoded, DataError> {
    let started = Instant::now();
    let (train, val, cache) = load_or_encode(
        &config.corpus,
        text,
        tokenizer,
        config.val_fraction,
        progress,
    )?;
    let seconds = started.elapsed().as_secs_f64();
    let splits = Splits::from_parts(train, val, block_size)?;
    Ok(Encoded {
        splits,
        cache,
        seconds,
        bytes: text.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A BPE of 320 tokens trained for `text` with the default 10% val tail.
    fn bpe_for(text: &str) -> Tokenizer {
        let config = DataConfig {
            corpus: "unused.txt".into(),
            tokenizer: "bpe".into(),
            vocab_size: 320,
            val_fraction: 0.1,
            bpe_sample_bytes: 256_000_000,
        };
        build_tokenizer(&config, text).unwrap()
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
