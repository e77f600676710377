//! Any tinygpt tokenizer as a standard Hugging Face `tokenizer.json`, for exports that
//! `transformers.AutoTokenizer` (through `PreTrainedTokenizerFast`) and Python's `tokenizers`
//! load as they are.
//!
//! A byte-level BPE already is one. A character vocabulary becomes a `WordLevel` model whose
//! words are single characters: a `Split` pre-tokenizer isolates every character (the pattern
//! `[\s\S]` matches any one, newlines included, in both the Rust and the Oniguruma regex
//! engines), each is looked up in the vocabulary with tinygpt's ids, and a `Fuse` decoder joins
//! the pieces back without spaces. A character outside the vocabulary is refused there, as it
//! is here (the unknown token is not in the vocabulary).

use tokenizers::SplitDelimiterBehavior;
use tokenizers::decoders::fuse::Fuse;
use tokenizers::models::wordlevel::WordLevel;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};

use super::special::{CHAT_TOKENS, ChatTokens, END_OF_TEXT};
use super::{CharTokenizer, Tokenizer};
use crate::DataError;

/// Matches any single character.
const ONE_CHARACTER: &str = r"[\s\S]";

/// The unknown token a `WordLevel` model must name; deliberately not in the vocabulary.
const UNKNOWN: &str = "<unk>";

impl Tokenizer {
    /// This tokenizer as a Hugging Face one that gives the same ids and decodes them the same.
    pub fn to_hf(&self) -> Result<tokenizers::Tokenizer, DataError> {
        match self {
            Tokenizer::Hf(t) => Ok((**t).clone()),
            Tokenizer::Char(t) => char_as_word_level(t),
        }
    }

    /// The id of `<|endoftext|>`, when the vocabulary has it (a character vocabulary does not).
    pub fn end_of_text(&self) -> Option<u32> {
        match self {
            Tokenizer::Hf(t) => t.token_to_id(END_OF_TEXT),
            Tokenizer::Char(t) => t.end_of_text(),
        }
    }

    /// The chat template's role tokens, when the vocabulary has all six.
    pub fn chat_tokens(&self) -> Option<ChatTokens> {
        match self {
            Tokenizer::Char(t) => t.chat_tokens(),
            Tokenizer::Hf(t) => {
                let ids: Option<Vec<u32>> = CHAT_TOKENS.iter().map(|n| t.token_to_id(n)).collect();
                Some(ChatTokens {
                    ids: ids?.try_into().ok()?,
                })
            }
        }
    }

    /// This vocabulary with the role tokens (and `<|endoftext|>`) it lacks reserved after its
    /// last id, as special tokens: a chat model's vocabulary. Unchanged when it has them.
    pub fn with_chat_tokens(self) -> Tokenizer {
        if self.chat_tokens().is_some() && self.end_of_text().is_some() {
            return self;
        }
        match self {
            Tokenizer::Char(t) => Tokenizer::Char(t.with_chat_tokens()),
            Tokenizer::Hf(mut t) => {
                let missing: Vec<tokenizers::AddedToken> = std::iter::once(END_OF_TEXT)
                    .chain(CHAT_TOKENS)
                    .filter(|n| t.token_to_id(n).is_none())
                    .map(|n| tokenizers::AddedToken::from(n, true))
                    .collect();
                t.add_special_tokens(&missing);
                Tokenizer::Hf(t)
            }
        }
    }

    /// Every token's text, in id order: characters, or a BPE's byte-level strings.
    pub fn tokens(&self) -> Vec<String> {
        match self {
            Tokenizer::Char(t) => t
                .vocab()
                .iter()
                .map(|c| c.to_string())
                .chain(t.end_of_text().map(|_| END_OF_TEXT.to_string()))
                .chain(
                    t.chat_tokens()
                        .into_iter()
                        .flat_map(|_| CHAT_TOKENS.map(String::from)),
                )
                .collect(),
            Tokenizer::Hf(t) => (0..t.get_vocab_size(true) as u32)
                .map(|id| t.id_to_token(id).unwrap_or_default())
                .collect(),
        }
    }
}

impl Tokenizer {
    /// A Hugging Face tokenizer that is exactly a character vocabulary in the form
    /// [`Tokenizer::to_hf`] writes (as tinygpt's Hugging Face exports carry it) becomes a char
    /// tokenizer again; anything else is returned as it is.
    pub fn into_char_when_possible(self) -> Self {
        let Tokenizer::Hf(hf) = &self else {
            return self;
        };
        let Ok(json) = hf.to_string(false) else {
            return self;
        };
        let Ok(json) = serde_json::from_str::<serde_json::Value>(&json) else {
            return self;
        };
        let shape_matches = json["model"]["type"] == "WordLevel"
            && json["pre_tokenizer"]["type"] == "Split"
            && json["pre_tokenizer"]["pattern"]["Regex"] == ONE_CHARACTER
            && json["pre_tokenizer"]["behavior"] == "Isolated"
            && json["pre_tokenizer"]["invert"] == false
            && json["decoder"]["type"] == "Fuse"
            && json["normalizer"].is_null()
            && json["post_processor"].is_null()
            && json["added_tokens"].is_array();
        let size = hf.get_vocab_size(true) as u32;
        // The added tokens a char export may carry, last: `<|endoftext|>`, then the six role
        // tokens of a chat vocabulary.
        let added: Vec<&str> = json["added_tokens"]
            .as_array()
            .map(|a| a.iter().filter_map(|t| t["content"].as_str()).collect())
            .unwrap_or_default();
        let chat: Vec<&str> = std::iter::once(END_OF_TEXT).chain(CHAT_TOKENS).collect();
        let (end_of_text, with_chat) = match added.len() {
            0 => (false, false),
            1 if added == [END_OF_TEXT] => (true, false),
            7 if added == chat => (true, true),
            _ => return self,
        };
        let specials = added.len() as u32;
        let in_place = added
            .iter()
            .enumerate()
            .all(|(i, n)| hf.token_to_id(n) == Some(size - specials + i as u32));
        if !in_place {
            return self;
        }
        let chars: Option<Vec<char>> = (0..size - specials)
            .map(|id| {
                let token = hf.id_to_token(id)?;
                let mut chars = token.chars();
                let c = chars.next()?;
                chars.next().is_none().then_some(c)
            })
            .collect();
        match chars
            .filter(|_| shape_matches)
            .map(CharTokenizer::from_vocab)
        {
            Some(Ok(t)) if with_chat => Tokenizer::Char(t.with_chat_tokens()),
            Some(Ok(t)) if end_of_text => Tokenizer::Char(t.with_end_of_text()),
            Some(Ok(t)) => Tokenizer::Char(t),
            _ => self,
        }
    }
}

fn char_as_word_level(t: &CharTokenizer) -> Result<tokenizers::Tokenizer, DataError> {
    let fail = |e: tokenizers::Error| DataError::Tokenizer(e.to_string());
    let vocab = Tokenizer::Char(t.clone())
        .tokens()
        .into_iter()
        .enumerate()
        .map(|(id, token)| (token, id as u32))
        .collect();
    let model = WordLevel::builder()
        .vocab(vocab)
        .unk_token(UNKNOWN.into())
        .build()
        .map_err(fail)?;
    let split = Split::new(
        SplitPattern::Regex(ONE_CHARACTER.into()),
        SplitDelimiterBehavior::Isolated,
        false,
    )
    .map_err(fail)?;
    let mut hf = tokenizers::Tokenizer::new(model);
    hf.with_pre_tokenizer(Some(split));
    hf.with_decoder(Some(Fuse::new()));
    if t.end_of_text().is_some() {
        hf.add_special_tokens(&[tokenizers::AddedToken::from(END_OF_TEXT, true)]);
    }
    if t.chat_tokens().is_some() {
        let roles = CHAT_TOKENS.map(|n| tokenizers::AddedToken::from(n, true));
        hf.add_special_tokens(&roles);
    }
    Ok(hf)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "To be, or not to be:\n\tthat is the question. Æsop's café — ✓ \r\n";

    #[test]
    fn a_char_vocabulary_as_word_level_gives_the_same_ids_and_text() {
        let ours = Tokenizer::Char(CharTokenizer::from_corpus(TEXT));
        let theirs = ours.to_hf().unwrap();
        let ids = ours.encode(TEXT).unwrap();
        assert_eq!(theirs.encode(TEXT, false).unwrap().get_ids(), &ids[..]);
        assert_eq!(theirs.decode(&ids, false).unwrap(), TEXT);
        assert_eq!(theirs.get_vocab_size(true), ours.vocab_size());
        // Through its JSON, as a file would carry it.
        let json = theirs.to_string(false).unwrap();
        let reloaded: tokenizers::Tokenizer = json.parse().unwrap();
        assert_eq!(reloaded.encode(TEXT, false).unwrap().get_ids(), &ids[..]);
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(value["model"]["type"], "WordLevel");
        assert_eq!(value["decoder"]["type"], "Fuse");
    }

    #[test]
    fn the_word_level_form_turns_back_into_the_char_tokenizer() {
        let ours = Tokenizer::Char(CharTokenizer::from_corpus(TEXT));
        let back = Tokenizer::Hf(Box::new(ours.to_hf().unwrap())).into_char_when_possible();
        assert!(matches!(&back, Tokenizer::Char(t) if t == match &ours {
            Tokenizer::Char(c) => c,
            Tokenizer::Hf(_) => unreachable!(),
        }));
        // A BPE stays what it is.
        let bpe = crate::train_bpe(&TEXT.repeat(30), 260).unwrap();
        assert!(matches!(bpe.into_char_when_possible(), Tokenizer::Hf(_)));
    }

    #[test]
    fn role_tokens_are_reserved_after_the_last_id_of_char_and_bpe_vocabularies() {
        let turn = "<|user_start|>to be<|user_end|><|assistant_start|>or not<|assistant_end|>";
        let chars = Tokenizer::Char(CharTokenizer::from_corpus(TEXT));
        let bpe = crate::train_bpe(&TEXT.repeat(30), 260).unwrap();
        for plain in [chars, bpe] {
            let before = plain.vocab_size() as u32;
            let had_end = plain.end_of_text().is_some();
            let chat = plain.clone().with_chat_tokens();
            let roles = chat.chat_tokens().unwrap();
            // Appended, in CHAT_TOKENS order, after <|endoftext|> (added too when missing).
            let first = before + u32::from(!had_end);
            assert_eq!(roles.ids, std::array::from_fn(|i| first + i as u32));
            assert_eq!(chat.vocab_size() as u32, first + 6);
            assert_eq!(
                chat.encode("to be").unwrap(),
                plain.encode("to be").unwrap()
            );
            // Each role token's text is its one id, here and in the Hugging Face form.
            let ids = chat.encode(turn).unwrap();
            assert_eq!(ids[0], roles.start(super::super::Role::User));
            assert_eq!(
                *ids.last().unwrap(),
                roles.end(super::super::Role::Assistant)
            );
            assert_eq!(chat.decode(&ids).unwrap(), turn);
            let hf = chat.to_hf().unwrap();
            assert_eq!(hf.encode(turn, false).unwrap().get_ids(), &ids[..]);
            // Saved and loaded, and a char vocabulary back from its Hugging Face form.
            let back: Tokenizer = serde_json::from_str(&chat.to_json().unwrap()).unwrap();
            assert_eq!(back.chat_tokens(), Some(roles));
            let round = Tokenizer::Hf(Box::new(hf)).into_char_when_possible();
            assert_eq!(round.chat_tokens(), Some(roles));
            assert_eq!(round.vocab_size(), chat.vocab_size());
            // Already a chat vocabulary: unchanged.
            assert_eq!(
                chat.clone().with_chat_tokens().vocab_size(),
                chat.vocab_size()
            );
        }
    }

    #[test]
    fn an_unknown_character_is_refused_there_too() {
        let ours = Tokenizer::Char(CharTokenizer::from_corpus("abc"));
        assert!(ours.to_hf().unwrap().encode("abz", false).is_err());
    }

    #[test]
    fn tokens_and_end_of_text() {
        let ours = Tokenizer::Char(CharTokenizer::from_corpus("ba\n"));
        assert_eq!(ours.tokens(), ["\n", "a", "b"]);
        assert_eq!(ours.end_of_text(), None);
    }

    #[test]
    fn a_char_vocabulary_with_end_of_text_exports_it_as_a_special_token_and_comes_back() {
        let ours = Tokenizer::Char(CharTokenizer::from_corpus(TEXT).with_end_of_text());
        let end = ours.end_of_text().unwrap();
        let theirs = ours.to_hf().unwrap();
        assert_eq!(theirs.token_to_id(END_OF_TEXT), Some(end));
        assert_eq!(theirs.get_vocab_size(true), ours.vocab_size());
        // The special token is matched whole in text, as a BPE's is.
        let text = format!("{TEXT}{END_OF_TEXT}ab");
        let ids = theirs
            .encode(text.as_str(), false)
            .unwrap()
            .get_ids()
            .to_vec();
        let mut expected = ours.encode(TEXT).unwrap();
        expected.push(end);
        expected.extend(ours.encode("ab").unwrap());
        assert_eq!(ids, expected);
        assert_eq!(theirs.decode(&ids, false).unwrap(), text);
        let json = theirs.to_string(false).unwrap();
        let back = Tokenizer::Hf(Box::new(json.parse().unwrap())).into_char_when_possible();
        assert!(matches!(&back, Tokenizer::Char(t) if t.end_of_text() == Some(end)));
        assert_eq!(back.encode(TEXT).unwrap(), ours.encode(TEXT).unwrap());
    }
}
