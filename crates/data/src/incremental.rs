//! Text of generated tokens as they arrive. A byte-level BPE token may hold part of a
//! character, which decodes as U+FFFD until the token with its other bytes arrives; what was
//! shown must never be taken back, so text ending in U+FFFD is held until it settles (or the
//! generation ends).

use crate::DataError;
use crate::tokenizer::Tokenizer;

/// Decodes a growing sequence of token ids into the new text of each step.
pub struct IncrementalDecoder<'a> {
    tokenizer: &'a Tokenizer,
    ids: Vec<u32>,
    /// The text handed out so far: always a prefix of the decoded ids.
    shown: String,
}

impl<'a> IncrementalDecoder<'a> {
    pub fn new(tokenizer: &'a Tokenizer) -> Self {
        Self {
            tokenizer,
            ids: Vec::new(),
            shown: String::new(),
        }
    }

    /// Adds `id`; returns the text it settles (often all of its own, sometimes none yet, or
    /// more than its own when it completes an earlier token's character).
    pub fn push(&mut self, id: u32) -> Result<String, DataError> {
        self.ids.push(id);
        let text = self.tokenizer.decode(&self.ids)?;
        Ok(self.advance(text.trim_end_matches('\u{FFFD}')))
    }

    /// Whatever is still held back (bytes that never became a character), at the end.
    pub fn finish(&mut self) -> Result<String, DataError> {
        let text = self.tokenizer.decode(&self.ids)?;
        Ok(self.advance(&text))
    }

    /// The part of `settled` past what was shown; nothing when `settled` does not extend it.
    fn advance(&mut self, settled: &str) -> String {
        match settled.strip_prefix(self.shown.as_str()) {
            Some(new) if !new.is_empty() => {
                let new = new.to_string();
                self.shown.push_str(&new);
                new
            }
            _ => String::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_character_split_over_tokens_appears_once_whole() {
        // A byte-level BPE without merges: every byte is a token, so "é" (C3 A9) is two.
        let text = "aé✓b";
        let bpe = crate::tokenizer::bpe::train_bpe(text, crate::config::MIN_BPE_VOCAB).unwrap();
        let ids = bpe.encode(text).unwrap();
        assert_eq!(ids.len(), 1 + 2 + 3 + 1);
        let mut decoder = IncrementalDecoder::new(&bpe);
        let pieces: Vec<String> = ids.iter().map(|&id| decoder.push(id).unwrap()).collect();
        assert_eq!(pieces, ["a", "", "é", "", "", "✓", "b"]);
        assert_eq!(decoder.finish().unwrap(), "");
        assert_eq!(pieces.concat(), text);
    }

    #[test]
    fn bytes_that_never_complete_come_out_at_the_end() {
        let bpe = crate::tokenizer::bpe::train_bpe("aé", crate::config::MIN_BPE_VOCAB).unwrap();
        let ids = bpe.encode("aé").unwrap();
        let mut decoder = IncrementalDecoder::new(&bpe);
        assert_eq!(decoder.push(ids[0]).unwrap(), "a");
        assert_eq!(decoder.push(ids[1]).unwrap(), "");
        assert_eq!(decoder.finish().unwrap(), "\u{FFFD}");
    }
}
