//! Tokenizers: text ↔ token ids.
//!
//! [`Tokenizer`] is the one interface the rest of tinygpt uses. Two kinds sit behind it:
//! characters (one token per distinct character, saved as tinygpt's own small JSON with
//! `"kind": "char"`) and anything the Hugging Face `tokenizers` crate reads — in particular the
//! byte-level BPE tinygpt trains itself, saved as a standard `tokenizer.json` that Python's
//! `tokenizers` loads unchanged.

use std::path::Path;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub mod bpe;
mod characters;
mod hf;
mod special;

pub use characters::CharTokenizer;
pub use special::{CHAT_TOKENS, ChatTokens, END_OF_TEXT, Role};

use crate::DataError;

#[derive(Debug, Clone)]
pub enum Tokenizer {
    Char(CharTokenizer),
    /// A Hugging Face tokenizer (tinygpt's byte-level BPE, or a loaded `tokenizer.json`).
    Hf(Box<tokenizers::Tokenizer>),
}

impl Tokenizer {
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, DataError> {
        match self {
            Tokenizer::Char(t) => t.encode(text),
            Tokenizer::Hf(t) => Ok(t
                .encode(text, false)
                .map_err(|e| DataError::Tokenizer(e.to_string()))?
                .get_ids()
                .to_vec()),
        }
    }

    /// Encodes many texts (in parallel for a Hugging Face tokenizer), ids concatenated.
    pub fn encode_many(&self, texts: &[&str]) -> Result<Vec<u32>, DataError> {
        match self {
            Tokenizer::Char(t) => Ok(texts
                .iter()
                .map(|x| t.encode(x))
                .collect::<Result<Vec<_>, _>>()?
                .concat()),
            Tokenizer::Hf(t) => {
                let encodings = t
                    .encode_batch(texts.to_vec(), false)
                    .map_err(|e| DataError::Tokenizer(e.to_string()))?;
                Ok(encodings
                    .iter()
                    .flat_map(|e| e.get_ids().iter().copied())
                    .collect())
            }
        }
    }

    /// Encodes many texts (in parallel for a Hugging Face tokenizer), the ids of each apart.
    pub fn encode_each(&self, texts: &[&str]) -> Result<Vec<Vec<u32>>, DataError> {
        match self {
            Tokenizer::Char(t) => texts.iter().map(|x| t.encode(x)).collect(),
            Tokenizer::Hf(t) => Ok(t
                .encode_batch(texts.to_vec(), false)
                .map_err(|e| DataError::Tokenizer(e.to_string()))?
                .iter()
                .map(|e| e.get_ids().to_vec())
                .collect()),
        }
    }

    pub fn decode(&self, ids: &[u32]) -> Result<String, DataError> {
        match self {
            Tokenizer::Char(t) => t.decode(ids),
            Tokenizer::Hf(t) => {
                let vocab_size = t.get_vocab_size(true);
                if let Some(&id) = ids.iter().find(|&&id| id as usize >= vocab_size) {
                    return Err(DataError::UnknownToken { id, vocab_size });
                }
                t.decode(ids, false)
                    .map_err(|e| DataError::Tokenizer(e.to_string()))
            }
        }
    }

    pub fn vocab_size(&self) -> usize {
        match self {
            Tokenizer::Char(t) => t.vocab_size(),
            Tokenizer::Hf(t) => t.get_vocab_size(true),
        }
    }

    /// Average UTF-8 bytes of text per token over `ids`: turns a loss in nats per token into
    /// bits per byte, which compares across tokenizers.
    pub fn bytes_per_token(&self, ids: &[u32]) -> f64 {
        let bytes: usize = match self {
            Tokenizer::Char(t) => ids
                .iter()
                .map(|&id| t.vocab.get(id as usize).map_or(0, |c| c.len_utf8()))
                .sum(),
            Tokenizer::Hf(t) => t.decode(ids, false).map_or(0, |s| s.len()),
        };
        bytes as f64 / ids.len().max(1) as f64
    }

    /// The tokenizer file's text (callers write it atomically, beside the file it replaces).
    pub fn to_json(&self) -> Result<String, DataError> {
        serde_json::to_string_pretty(self).map_err(|e| DataError::Tokenizer(e.to_string()))
    }

    /// Loads a tinygpt char tokenizer or any Hugging Face `tokenizer.json`.
    pub fn load(path: &Path) -> Result<Self, DataError> {
        let fail = |reason: String| DataError::TokenizerFile {
            path: path.into(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
        let tokenizer: Self =
            serde_json::from_str(&text).map_err(|e| fail(format!("not a tokenizer file ({e})")))?;
        if tokenizer.vocab_size() == 0 {
            return Err(fail(
                "its vocabulary is empty: use a tokenizer.json with tokens in it".into(),
            ));
        }
        Ok(tokenizer)
    }
}

/// A prompt as tokens, and how many of its first tokens were dropped to fit the context.
#[derive(Debug, Clone, PartialEq)]
pub struct Prompt {
    pub tokens: Vec<u32>,
    pub dropped: usize,
}

/// The prompt as tokens: an empty prompt starts from a newline (or token 0 when the
/// vocabulary has none); a long one keeps its last `block_size` tokens (the caller tells the
/// user about `dropped`).
pub fn prompt_tokens(
    tokenizer: &Tokenizer,
    text: &str,
    block_size: usize,
) -> Result<Prompt, DataError> {
    let mut tokens = tokenizer.encode(text)?;
    if tokens.is_empty() {
        tokens = tokenizer.encode("\n").unwrap_or_else(|_| vec![0]);
    }
    let dropped = tokens.len().saturating_sub(block_size);
    tokens.drain(..dropped);
    Ok(Prompt { tokens, dropped })
}

/// Char tokenizers serialise as `{"kind": "char", "vocab": [...]}`; Hugging Face ones as their
/// own standard JSON.
impl Serialize for Tokenizer {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Tokenizer::Char(t) => CharFile {
                kind: "char".into(),
                vocab: t.vocab.clone(),
                end_of_text: t.end_of_text,
                chat: t.chat,
            }
            .serialize(serializer),
            Tokenizer::Hf(t) => t.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for Tokenizer {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let value = serde_json::Value::deserialize(deserializer)?;
        if value.get("kind").is_some() {
            let file: CharFile = serde_json::from_value(value).map_err(D::Error::custom)?;
            if file.kind != "char" {
                return Err(D::Error::custom(format!(
                    "unknown tokenizer kind {:?}",
                    file.kind
                )));
            }
            CharTokenizer::from_vocab(file.vocab)
                .map(|t| match (file.end_of_text, file.chat) {
                    (_, true) => t.with_chat_tokens(),
                    (true, false) => t.with_end_of_text(),
                    (false, false) => t,
                })
                .map(Tokenizer::Char)
                .map_err(D::Error::custom)
        } else {
            let hf: tokenizers::Tokenizer =
                serde_json::from_value(value).map_err(D::Error::custom)?;
            Ok(Tokenizer::Hf(Box::new(hf)))
        }
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CharFile {
    kind: String,
    vocab: Vec<char>,
    /// The vocabulary ends with `<|endoftext|>` (after the characters).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    end_of_text: bool,
    /// The six role tokens of the chat template follow `<|endoftext|>`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    chat: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vocabulary_is_sorted_unique_chars() {
        let t = CharTokenizer::from_corpus("hello, world");
        assert_eq!(t.vocab, vec![' ', ',', 'd', 'e', 'h', 'l', 'o', 'r', 'w']);
        assert_eq!(t.encode("hello").unwrap(), vec![4, 3, 5, 5, 6]);
    }

    #[test]
    fn round_trip_and_save_load() {
        let text = "To be, or not to be: that is the question.\nÆsop's café — ✓";
        let tokenizer = Tokenizer::Char(CharTokenizer::from_corpus(text));
        let ids = tokenizer.encode(text).unwrap();
        assert_eq!(ids.len(), text.chars().count());
        assert_eq!(tokenizer.decode(&ids).unwrap(), text);

        let scratch = tempfile::tempdir().unwrap();
        let path = scratch.path().join("tokenizer.json");
        std::fs::write(&path, tokenizer.to_json().unwrap()).unwrap();
        let loaded = Tokenizer::load(&path).unwrap();
        assert_eq!(loaded.encode(text).unwrap(), ids);
        assert_eq!(loaded.vocab_size(), tokenizer.vocab_size());
    }

    #[test]
    fn an_end_of_text_token_follows_the_characters_and_survives_saving() {
        let chars = CharTokenizer::from_corpus("ab").with_end_of_text();
        assert_eq!((chars.end_of_text(), chars.vocab_size()), (Some(2), 3));
        let tokenizer = Tokenizer::Char(chars);
        assert_eq!(tokenizer.end_of_text(), Some(2));
        assert_eq!(tokenizer.encode("ba").unwrap(), [1, 0]);
        assert_eq!(tokenizer.decode(&[0, 2, 1]).unwrap(), "a<|endoftext|>b");
        assert!(tokenizer.decode(&[3]).is_err());
        let scratch = tempfile::tempdir().unwrap();
        let path = scratch.path().join("tokenizer.json");
        std::fs::write(&path, tokenizer.to_json().unwrap()).unwrap();
        let loaded = Tokenizer::load(&path).unwrap();
        assert_eq!(loaded.end_of_text(), Some(2));
        assert_eq!(loaded.vocab_size(), 3);
        // Without one, the file is exactly what it always was.
        let plain = Tokenizer::Char(CharTokenizer::from_corpus("ab"));
        std::fs::write(&path, plain.to_json().unwrap()).unwrap();
        assert!(
            !std::fs::read_to_string(&path)
                .unwrap()
                .contains("end_of_text")
        );
    }

    #[test]
    fn bytes_per_token_counts_utf8() {
        let tokenizer = Tokenizer::Char(CharTokenizer::from_corpus("aé✓"));
        // 'a' 1 byte, 'é' 2, '✓' 3
        let ids = tokenizer.encode("aé✓✓").unwrap();
        assert_eq!(
            tokenizer.bytes_per_token(&ids),
            (1.0 + 2.0 + 3.0 + 3.0) / 4.0
        );
    }

    #[test]
    fn unknown_chars_are_listed_once_each() {
        let tokenizer = Tokenizer::Char(CharTokenizer::from_corpus("abc"));
        let err = tokenizer.encode("abzcyz").unwrap_err();
        assert!(matches!(&err, DataError::UnknownChars { chars } if chars == &['y', 'z']));
        assert_eq!(
            err.to_string(),
            "text has 2 character(s) the tokenizer does not know: 'y' 'z'"
        );
        assert!(tokenizer.decode(&[7]).is_err());
    }

    #[test]
    fn load_refuses_an_empty_vocabulary() {
        let scratch = tempfile::tempdir().unwrap();
        let path = scratch.path().join("tokenizer.json");
        std::fs::write(&path, r#"{"kind": "char", "vocab": []}"#).unwrap();
        let err = Tokenizer::load(&path).unwrap_err().to_string();
        assert!(err.contains("vocabulary is empty"), "{err}");
    }

    #[test]
    fn load_refuses_foreign_json() {
        let file = tempfile::Builder::new().suffix(".json").tempfile().unwrap();
        std::fs::write(file.path(), r#"{"model": {"type": "BPE"}}"#).unwrap();
        let err = Tokenizer::load(file.path()).unwrap_err().to_string();
        assert!(err.contains("not a tokenizer file"), "{err}");
    }
}
