//! Training a byte-level BPE tokenizer (GPT-2's scheme) with the Hugging Face `tokenizers`
//! crate: text is split into bytes, so any string encodes without unknown tokens, and the most
//! frequent adjacent pairs are merged until the vocabulary has `vocab_size` entries.

use tokenizers::models::TrainerWrapper;
use tokenizers::models::bpe::{BPE, BpeTrainerBuilder};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::{AddedToken, Tokenizer as HfTokenizer};

use super::Tokenizer;
use super::special::END_OF_TEXT;
use crate::DataError;
use crate::config::MIN_BPE_VOCAB;

/// Trains on `text` (give it the training split only) a byte-level BPE of `vocab_size` tokens.
pub fn train_bpe(text: &str, vocab_size: usize) -> Result<Tokenizer, DataError> {
    train_bpe_on(&[text], vocab_size)
}

/// Size of the windows [`bpe_sample`] takes.
const SAMPLE_WINDOW: usize = 1 << 20;

/// The text a BPE learns from: all of `train` when it is at most `cap` bytes, else `cap`
/// bytes of it in evenly spaced windows of about 1 MB, each cut after a newline, so the sample
/// spans the whole split (and the same split always gives the same sample).
pub fn bpe_sample(train: &str, cap: usize) -> Vec<&str> {
    if train.len() <= cap {
        return vec![train];
    }
    let windows = (cap / SAMPLE_WINDOW).max(1);
    let stride = train.len() / windows;
    let after_newline = |at: usize| {
        let mut at = at.min(train.len());
        while !train.is_char_boundary(at) {
            at += 1;
        }
        train[at..].find('\n').map_or(train.len(), |i| at + i + 1)
    };
    (0..windows)
        .map(|w| {
            let start = if w == 0 { 0 } else { after_newline(w * stride) };
            let end = after_newline(start + SAMPLE_WINDOW).max(start);
            &train[start..end]
        })
        .filter(|window| !window.is_empty())
        .collect()
}

/// Trains a byte-level BPE of `vocab_size` tokens on the lines of `texts`, streamed to the
/// trainer (which keeps word counts, not text).
pub fn train_bpe_on(texts: &[&str], vocab_size: usize) -> Result<Tokenizer, DataError> {
    if vocab_size < MIN_BPE_VOCAB {
        return Err(DataError::BpeVocabTooSmall(vocab_size));
    }
    let fail = |e: tokenizers::Error| DataError::Tokenizer(e.to_string());
    let byte_level = ByteLevel::default().add_prefix_space(false);
    let mut tokenizer = HfTokenizer::new(BPE::default());
    tokenizer
        .with_pre_tokenizer(Some(byte_level))
        .with_decoder(Some(byte_level))
        .with_post_processor(Some(byte_level));
    let mut trainer = TrainerWrapper::BpeTrainer(
        BpeTrainerBuilder::new()
            .vocab_size(vocab_size)
            .min_frequency(2)
            .show_progress(false)
            .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
            .special_tokens(vec![AddedToken::from(END_OF_TEXT, true)])
            .build(),
    );
    // Lines keep their newline, so newlines are counted as bytes like any other.
    let lines = texts.iter().flat_map(|text| text.split_inclusive('\n'));
    tokenizer.train(&mut trainer, lines).map_err(fail)?;
    Ok(Tokenizer::Hf(Box::new(tokenizer)))
}

/// GPT-2's original tokenizer files (`vocab.json`, `merges.txt`) as the byte-level BPE they
/// describe, with `<|endoftext|>` special when the vocabulary has it.
pub fn byte_level_from_files(
    vocab: &std::path::Path,
    merges: &std::path::Path,
) -> Result<Tokenizer, DataError> {
    let fail = |e: tokenizers::Error| DataError::TokenizerFile {
        path: vocab.into(),
        reason: format!("with {}: {e}", merges.display()),
    };
    let model = BPE::from_file(&vocab.display().to_string(), &merges.display().to_string())
        .build()
        .map_err(fail)?;
    let byte_level = ByteLevel::default().add_prefix_space(false);
    let mut tokenizer = HfTokenizer::new(model);
    tokenizer
        .with_pre_tokenizer(Some(byte_level))
        .with_decoder(Some(byte_level))
        .with_post_processor(Some(byte_level));
    if tokenizer.token_to_id(END_OF_TEXT).is_some() {
        tokenizer.add_special_tokens(&[AddedToken::from(END_OF_TEXT, true)]);
    }
    Ok(Tokenizer::Hf(Box::new(tokenizer)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "the cat sat on the mat\nthe cat ate the rat\nthe rat sat on the cat\n";

    #[test]
    fn merges_frequent_pairs_and_round_trips_anything() {
        let tokenizer = train_bpe(&TEXT.repeat(20), 300).unwrap();
        assert!(tokenizer.vocab_size() <= 300 && tokenizer.vocab_size() > MIN_BPE_VOCAB);
        let ids = tokenizer.encode("the cat").unwrap();
        assert!(ids.len() < "the cat".len(), "no merges: {ids:?}");
        for text in ["the cat", "naïve café — ✓ 東京 🦀\n\ttabs", ""] {
            let ids = tokenizer.encode(text).unwrap();
            assert_eq!(tokenizer.decode(&ids).unwrap(), text);
        }
    }

    #[test]
    fn vocab_too_small_for_the_byte_alphabet_is_an_error() {
        let err = train_bpe(TEXT, 100).unwrap_err();
        assert!(err.to_string().contains("at least 257"), "{err}");
    }

    #[test]
    fn saves_and_loads_as_a_standard_tokenizer_json() {
        let tokenizer = train_bpe(&TEXT.repeat(20), 280).unwrap();
        let scratch = tempfile::tempdir().unwrap();
        let path = scratch.path().join("tokenizer.json");
        std::fs::write(&path, tokenizer.to_json().unwrap()).unwrap();
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(json["model"]["type"], "BPE");
        assert_eq!(json["pre_tokenizer"]["type"], "ByteLevel");
        assert_eq!(json["added_tokens"][0]["content"], END_OF_TEXT);
        let loaded = Tokenizer::load(&path).unwrap();
        let text = "the rat ate the mat";
        assert_eq!(
            loaded.encode(text).unwrap(),
            tokenizer.encode(text).unwrap()
        );
    }

    #[test]
    fn gpt2_vocab_and_merges_files_give_the_same_tokenizer() {
        let trained = train_bpe(&TEXT.repeat(20), 300).unwrap();
        let Tokenizer::Hf(hf) = &trained else {
            unreachable!("a BPE is a Hugging Face tokenizer")
        };
        let scratch = tempfile::tempdir().unwrap();
        let json: serde_json::Value = serde_json::from_str(&hf.to_string(false).unwrap()).unwrap();
        std::fs::write(
            scratch.path().join("vocab.json"),
            json["model"]["vocab"].to_string(),
        )
        .unwrap();
        let merges: Vec<String> = json["model"]["merges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| match m {
                serde_json::Value::String(s) => s.clone(),
                pair => format!(
                    "{} {}",
                    pair[0].as_str().unwrap(),
                    pair[1].as_str().unwrap()
                ),
            })
            .collect();
        let merges = format!("#version: 0.2\n{}\n", merges.join("\n"));
        std::fs::write(scratch.path().join("merges.txt"), merges).unwrap();
        let loaded = byte_level_from_files(
            &scratch.path().join("vocab.json"),
            &scratch.path().join("merges.txt"),
        )
        .unwrap();
        let text = format!("the rat ate{END_OF_TEXT} naïve\n");
        assert_eq!(
            loaded.encode(&text).unwrap(),
            trained.encode(&text).unwrap()
        );
        assert_eq!(loaded.end_of_text(), trained.end_of_text());
    }

    #[test]
    fn a_large_train_split_is_sampled_in_evenly_spaced_whole_lines() {
        let line = "twenty-four bytes line.\n";
        let train = line.repeat(500_000); // 12 MB
        assert_eq!(bpe_sample(&train, train.len()), vec![train.as_str()]);
        let sample = bpe_sample(&train, 4 << 20);
        assert_eq!(sample.len(), 4);
        let total: usize = sample.iter().map(|w| w.len()).sum();
        assert!(
            total >= 4 << 20 && total < (4 << 20) + 4 * line.len(),
            "{total}"
        );
        for window in &sample {
            assert!(window.ends_with('\n') && window.lines().all(|l| l == line.trim_end()));
        }
        // Spread over the split, not its head: the last window starts past the middle.
        let last = sample[3].as_ptr() as usize - train.as_ptr() as usize;
        assert!(last > train.len() / 2, "{last}");
        assert_eq!(bpe_sample(&train, 4 << 20), sample, "deterministic");
    }
}
