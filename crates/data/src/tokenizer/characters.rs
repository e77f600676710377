//! The character tokenizer: one token per distinct character, plus `<|endoftext|>` after the
//! characters for a corpus of documents.

use std::collections::{BTreeSet, HashMap};

use super::special::END_OF_TEXT;
use crate::DataError;

/// One token per distinct character of the corpus, ids in sorted character order; a corpus of
/// many documents adds `<|endoftext|>` after the characters, to mark where each one ends.
#[derive(Debug, Clone, PartialEq)]
pub struct CharTokenizer {
    pub(crate) vocab: Vec<char>,
    ids: HashMap<char, u32>,
    pub(crate) end_of_text: bool,
}

impl CharTokenizer {
    /// The sorted set of characters in `text`.
    pub fn from_corpus(text: &str) -> Self {
        let chars: BTreeSet<char> = text.chars().collect();
        Self::from_vocab(chars.into_iter().collect()).expect("a set has no duplicates")
    }

    pub fn from_vocab(vocab: Vec<char>) -> Result<Self, String> {
        let ids: HashMap<char, u32> = vocab
            .iter()
            .enumerate()
            .map(|(i, &c)| (c, i as u32))
            .collect();
        if ids.len() != vocab.len() {
            return Err("vocabulary lists a character twice".into());
        }
        if vocab.is_empty() {
            return Err("vocabulary is empty: list its characters in \"vocab\"".into());
        }
        Ok(Self {
            vocab,
            ids,
            end_of_text: false,
        })
    }

    /// This vocabulary with `<|endoftext|>` after its characters (id = number of characters).
    pub fn with_end_of_text(mut self) -> Self {
        self.end_of_text = true;
        self
    }

    /// The id of `<|endoftext|>`, when the vocabulary has it.
    pub fn end_of_text(&self) -> Option<u32> {
        self.end_of_text.then_some(self.vocab.len() as u32)
    }

    /// Characters, plus the end-of-text token when there is one.
    pub fn vocab_size(&self) -> usize {
        self.vocab.len() + usize::from(self.end_of_text)
    }

    /// The characters, in id order.
    pub fn vocab(&self) -> &[char] {
        &self.vocab
    }

    pub fn encode(&self, text: &str) -> Result<Vec<u32>, DataError> {
        let mut unknown = BTreeSet::new();
        let ids: Vec<u32> = text
            .chars()
            .filter_map(|c| {
                let id = self.ids.get(&c).copied();
                if id.is_none() {
                    unknown.insert(c);
                }
                id
            })
            .collect();
        if unknown.is_empty() {
            Ok(ids)
        } else {
            Err(DataError::UnknownChars {
                chars: unknown.into_iter().collect(),
            })
        }
    }

    /// The text of `ids`; the end-of-text token reads as `<|endoftext|>`.
    pub fn decode(&self, ids: &[u32]) -> Result<String, DataError> {
        let mut text = String::with_capacity(ids.len());
        for &id in ids {
            match self.vocab.get(id as usize) {
                Some(&c) => text.push(c),
                None if Some(id) == self.end_of_text() => text.push_str(END_OF_TEXT),
                None => {
                    return Err(DataError::UnknownToken {
                        id,
                        vocab_size: self.vocab_size(),
                    });
                }
            }
        }
        Ok(text)
    }
}
