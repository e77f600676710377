//! The character tokenizer: one token per distinct character, plus `<|endoftext|>` after the
//! characters for a corpus of documents, and the chat template's role tokens after that for a
//! chat model.

use std::collections::{BTreeSet, HashMap};

use super::special::{CHAT_TOKENS, ChatTokens, END_OF_TEXT};
use crate::DataError;

/// One token per distinct character of the corpus, ids in sorted character order; a corpus of
/// many documents adds `<|endoftext|>` after the characters, to mark where each one ends.
#[derive(Debug, Clone, PartialEq)]
pub struct CharTokenizer {
    pub(crate) vocab: Vec<char>,
    ids: HashMap<char, u32>,
    pub(crate) end_of_text: bool,
    /// The six role tokens follow `<|endoftext|>` (which a chat vocabulary always has).
    pub(crate) chat: bool,
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
            chat: false,
        })
    }

    /// This vocabulary with `<|endoftext|>` after its characters (id = number of characters).
    pub fn with_end_of_text(mut self) -> Self {
        self.end_of_text = true;
        self
    }

    /// This vocabulary with `<|endoftext|>` and then the six role tokens after its characters.
    pub fn with_chat_tokens(mut self) -> Self {
        self.end_of_text = true;
        self.chat = true;
        self
    }

    /// The id of `<|endoftext|>`, when the vocabulary has it.
    pub fn end_of_text(&self) -> Option<u32> {
        self.end_of_text.then_some(self.vocab.len() as u32)
    }

    /// The role tokens' ids, when the vocabulary has them.
    pub fn chat_tokens(&self) -> Option<ChatTokens> {
        let first = self.vocab.len() as u32 + 1;
        self.chat.then(|| ChatTokens {
            ids: std::array::from_fn(|i| first + i as u32),
        })
    }

    /// Characters, plus the end-of-text token and the role tokens when there are.
    pub fn vocab_size(&self) -> usize {
        self.vocab.len() + usize::from(self.end_of_text) + 6 * usize::from(self.chat)
    }

    /// The characters, in id order.
    pub fn vocab(&self) -> &[char] {
        &self.vocab
    }

    /// One id per character, role tokens' names included (as characters, which the
    /// vocabulary may lack): a message's text, never read as a role token.
    pub fn encode_plain(&self, text: &str) -> Result<Vec<u32>, DataError> {
        Self::encode_with(self, text, None)
    }

    /// One id per character; with role tokens, each role token's text (`<|user_start|>`)
    /// is its one id, as a Hugging Face tokenizer reads its special tokens.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, DataError> {
        Self::encode_with(self, text, self.chat_tokens())
    }

    fn encode_with(&self, text: &str, chat: Option<ChatTokens>) -> Result<Vec<u32>, DataError> {
        let mut unknown = BTreeSet::new();
        let mut ids = Vec::with_capacity(text.len());
        let mut rest = text;
        while let Some(c) = rest.chars().next() {
            if let Some(chat) = &chat
                && c == '<'
                && let Some(i) = CHAT_TOKENS.iter().position(|t| rest.starts_with(t))
            {
                ids.push(chat.ids[i]);
                rest = &rest[CHAT_TOKENS[i].len()..];
                continue;
            }
            match self.ids.get(&c) {
                Some(&id) => ids.push(id),
                None => {
                    unknown.insert(c);
                }
            }
            rest = &rest[c.len_utf8()..];
        }
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
                None if let Some(i) = self.chat_index(id) => text.push_str(CHAT_TOKENS[i]),
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

    /// Which role token `id` is, if it is one.
    fn chat_index(&self, id: u32) -> Option<usize> {
        let chat = self.chat_tokens()?;
        chat.ids.iter().position(|&c| c == id)
    }
}
