//! From a corpus to token splits: choosing or training the tokenizer, then encoding through
//! the token cache (with a progress bar on large files).

use std::io::IsTerminal;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use tinygpt_data::cache::{CacheInfo, load_or_encode};
use tinygpt_data::{CharTokenizer, Splits, Tokenizer, split_text, train_bpe};

use crate::config::RunConfig;

/// The tokenizer a new run uses, per `data.tokenizer`: `char`, `bpe` (trained here on the
/// train split only, never on val) or a path to a `tokenizer.json`.
pub fn build_tokenizer(config: &RunConfig, text: &str) -> Result<Tokenizer> {
    match config.data.tokenizer.as_str() {
        "char" => Ok(Tokenizer::Char(CharTokenizer::from_corpus(text))),
        "bpe" => {
            let (train, _) = split_text(text, config.data.val_fraction)?;
            Ok(train_bpe(train, config.data.vocab_size)?)
        }
        path => Tokenizer::load(Path::new(path)).with_context(|| {
            format!("data.tokenizer = {path:?} is neither \"char\", \"bpe\" nor a readable tokenizer.json")
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

/// Train and val tokens of the corpus `text`, from the cache or freshly encoded.
pub fn encode_corpus(config: &RunConfig, tokenizer: &Tokenizer, text: &str) -> Result<Encoded> {
    let bar = if std::io::stderr().is_terminal() && text.len() > 1 << 20 {
        let bar = ProgressBar::new(text.len() as u64);
        bar.set_style(
            ProgressStyle::with_template(
                "encoding {bar:30.cyan/blue} {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
            )
            .expect("template is valid"),
        );
        bar
    } else {
        ProgressBar::hidden()
    };
    let started = Instant::now();
    let (train, val, cache) = load_or_encode(
        &config.data.corpus,
        text,
        tokenizer,
        config.data.val_fraction,
        &mut |done, _| bar.set_position(done as u64),
    )?;
    bar.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    let splits = Splits::from_parts(train, val, config.model.block_size)?;
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

    /// A BPE trained for `text` with the default 10% val tail.
    fn bpe_for(text: &str) -> Tokenizer {
        let config = RunConfig::load(
            Path::new(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../configs/shakespeare-bpe.toml"
            )),
            &["data.vocab_size=320".into()],
        )
        .unwrap();
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
