//! A tokenizer as llama.cpp's `gpt2` vocabulary: byte-level token strings, token types and
//! merges (a character vocabulary gets the merges that build its multi-byte characters).

use anyhow::{Context, Result, bail};
use tinygpt_data::Tokenizer;

/// The end-of-text token's text, which llama.cpp also recognises as end of generation.
pub(super) const END_OF_TEXT: &str = tinygpt_data::tokenizer::END_OF_TEXT;

/// llama.cpp's token types.
const NORMAL: i32 = 1;
pub(super) const CONTROL: i32 = 3;
const UNUSED: i32 = 5;

/// The vocabulary in llama.cpp's `gpt2` form: byte-level token strings, types and merges.
pub(super) struct Vocabulary {
    pub tokens: Vec<String>,
    pub types: Vec<i32>,
    pub merges: Vec<String>,
    pub end_of_text: Option<u32>,
}

impl Vocabulary {
    /// `rows` is the model's vocabulary size: ids past the tokenizer's are padding.
    pub fn of(tokenizer: &Tokenizer, rows: usize) -> Result<Self> {
        let hf = tokenizer.to_hf()?;
        let json: serde_json::Value = serde_json::from_str(
            &hf.to_string(false)
                .map_err(|e| anyhow::anyhow!("cannot read the tokenizer: {e}"))?,
        )?;
        let byte_level = json["model"]["type"] == "BPE"
            && json["pre_tokenizer"]["type"] == "ByteLevel"
            && json["normalizer"].is_null();
        let texts = tokenizer.tokens();
        let special: Vec<bool> = (0..texts.len() as u32)
            .map(|id| hf.get_added_vocabulary().simple_id_to_token(id).is_some())
            .collect();
        let (mut tokens, merges) = if byte_level {
            (texts, bpe_merges(&json["model"]["merges"])?)
        } else if texts
            .iter()
            .zip(&special)
            .all(|(t, &s)| s || t.chars().count() == 1)
        {
            characters(&texts, &special)
        } else {
            bail!(
                "GGUF export handles byte-level BPE and character vocabularies; this tokenizer is neither"
            );
        };
        let mut types: Vec<i32> = special
            .iter()
            .map(|&s| if s { CONTROL } else { NORMAL })
            .collect();
        for i in tokens.len()..rows {
            tokens.push(format!("[PAD{i}]"));
            types.push(UNUSED);
        }
        Ok(Self {
            end_of_text: tokenizer.end_of_text(),
            tokens,
            types,
            merges,
        })
    }
}

fn bpe_merges(merges: &serde_json::Value) -> Result<Vec<String>> {
    let merges = merges.as_array().context("the BPE has no merges list")?;
    merges
        .iter()
        .map(|m| match m {
            serde_json::Value::String(s) => Ok(s.clone()),
            serde_json::Value::Array(pair) if pair.len() == 2 => Ok(format!(
                "{} {}",
                pair[0].as_str().unwrap_or_default(),
                pair[1].as_str().unwrap_or_default()
            )),
            other => bail!("unreadable BPE merge {other}"),
        })
        .collect()
}

/// A character vocabulary in byte-level form, with the merges that build each multi-byte
/// character from its bytes (llama.cpp starts every word from single bytes).
fn characters(chars: &[String], special: &[bool]) -> (Vec<String>, Vec<String>) {
    // Special tokens (a char vocabulary's `<|endoftext|>`) are matched whole, as they are.
    let tokens = chars
        .iter()
        .zip(special)
        .map(|(c, &s)| {
            if s {
                c.clone()
            } else {
                byte_level(c.as_bytes())
            }
        })
        .collect();
    let mut merges = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (c, _) in chars.iter().zip(special).filter(|(_, s)| !**s) {
        let bytes = c.as_bytes();
        for end in 1..bytes.len() {
            let merge = format!(
                "{} {}",
                byte_level(&bytes[..end]),
                byte_level(&bytes[end..=end])
            );
            if seen.insert(merge.clone()) {
                merges.push(merge);
            }
        }
    }
    (tokens, merges)
}

/// GPT-2's reversible map from bytes to printable characters: printable Latin-1 bytes stand
/// for themselves, the rest (controls, space, ...) for U+0100 onwards in byte order.
fn byte_level(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| byte_char(b)).collect()
}

fn byte_char(b: u8) -> char {
    let printable = |b: u8| matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
    if printable(b) {
        return char::from(b);
    }
    let rank = (0..b).filter(|&x| !printable(x)).count() as u32;
    char::from_u32(256 + rank).expect("U+0100..U+0143 are characters")
}

#[cfg(test)]
mod tests {
    use super::super::END_OF_TEXT;
    use super::*;

    #[test]
    fn byte_level_is_gpt2s_map() {
        // The values every GPT-2 vocabulary shows: space is Ġ, newline Ċ, tab ĉ.
        assert_eq!(byte_level(b" "), "Ġ");
        assert_eq!(byte_level(b"\n"), "Ċ");
        assert_eq!(byte_level(b"\t"), "ĉ");
        assert_eq!(byte_level(b"a!~"), "a!~");
        assert_eq!(byte_char(0), 'Ā');
        assert_eq!(byte_char(0xAD), 'Ń');
        // A bijection onto 256 distinct characters.
        let all: std::collections::HashSet<char> = (0..=255).map(byte_char).collect();
        assert_eq!(all.len(), 256);
    }

    #[test]
    fn multi_byte_characters_are_built_by_merges() {
        let (tokens, merges) = characters(&["a".into(), "é".into(), "✓".into()], &[false; 3]);
        // é is C3 A9 → "Ã©"; ✓ is E2 9C 93 → "âľĵ".
        assert_eq!(tokens, ["a", "Ã©", "âľĵ"]);
        assert_eq!(merges, ["Ã ©", "â ľ", "âľ ĵ"]);
    }

    #[test]
    fn a_char_vocabulary_with_end_of_text_keeps_it_as_its_control_token() {
        let chars = tinygpt_data::CharTokenizer::from_corpus("ab\u{e9}").with_end_of_text();
        let vocab = Vocabulary::of(&Tokenizer::Char(chars), 5).unwrap();
        assert_eq!(vocab.tokens, ["a", "b", "Ã©", END_OF_TEXT, "[PAD4]"]);
        assert_eq!(vocab.types, [NORMAL, NORMAL, NORMAL, CONTROL, UNUSED]);
        assert_eq!(vocab.merges, ["Ã ©"]);
        assert_eq!(vocab.end_of_text, Some(3));
    }
}
