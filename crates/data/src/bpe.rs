//! Training a byte-level BPE tokenizer (GPT-2's scheme) with the Hugging Face `tokenizers`
//! crate: text is split into bytes, so any string encodes without unknown tokens, and the most
//! frequent adjacent pairs are merged until the vocabulary has `vocab_size` entries.

use tokenizers::models::TrainerWrapper;
use tokenizers::models::bpe::{BPE, BpeTrainerBuilder};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::{AddedToken, Tokenizer as HfTokenizer};

use crate::DataError;
use crate::tokenizer::{END_OF_TEXT, Tokenizer};

/// 256 byte tokens plus the end-of-text token.
pub const MIN_BPE_VOCAB: usize = 257;

/// Trains on `text` (give it the training split only) a byte-level BPE of `vocab_size` tokens.
pub fn train_bpe(text: &str, vocab_size: usize) -> Result<Tokenizer, DataError> {
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
    tokenizer
        .train(&mut trainer, text.split_inclusive('\n'))
        .map_err(fail)?;
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
        tokenizer.save(&path).unwrap();
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
}
