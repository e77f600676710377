//! llama.cpp's GGUF (version 3), `gpt2` architecture, all tensors f32: the metadata, tensor
//! names and layouts llama.cpp's own `convert_hf_to_gguf.py` writes for a GPT-2.
//!
//! Written by hand: the format is a header, typed key–value pairs and aligned raw tensors (its
//! writer, `gguf_file.rs`, is about a hundred lines), while the Rust GGUF crates are either part of a
//! whole inference framework (candle-core) or young single-author crates that would still need
//! every gpt2 key and layout spelled out here. The tests read the file back with ggml's own
//! Python `gguf` package and run it in llama.cpp.

use anyhow::{Context, Result, bail};
use tinygpt_data::Tokenizer;
use tinygpt_model::gpt2::{not_gpt2, to_gpt2};
use tinygpt_model::{Activation, GptConfig, NamedTensor};

use super::gguf_file::{Gguf, Value};

/// The end-of-text token's text, which llama.cpp also recognises as end of generation.
const END_OF_TEXT: &str = tinygpt_data::tokenizer::END_OF_TEXT;

/// llama.cpp's token types.
const NORMAL: i32 = 1;
const CONTROL: i32 = 3;
const UNUSED: i32 = 5;

/// The model as a GGUF file's bytes. A vocabulary with no end-of-text token (a character one)
/// gains one at the end, with a zero embedding row (its logit is always 0): llama.cpp needs an
/// end-of-generation id in range, and without one it silently takes token 11.
pub fn gguf_bytes(
    tensors: Vec<NamedTensor>,
    config: &GptConfig,
    tokenizer: &Tokenizer,
    name: &str,
) -> Result<Vec<u8>> {
    let blocker = not_gpt2(config).or_else(|| {
        (config.activation == Activation::Relu2).then(|| "model.activation = \"relu2\"".into())
    });
    if let Some(switch) = blocker {
        bail!(
            "{switch}: the GGUF export writes llama.cpp's gpt2 architecture, which has no such part; export this model with --format safetensors, or train the GPT-2 recipe (configs/shakespeare-char.toml) to export it"
        );
    }
    let mut vocab = Vocabulary::of(tokenizer, config.vocab_size)?;
    let appended_end = vocab.end_of_text.is_none();
    let end = *vocab.end_of_text.get_or_insert_with(|| {
        vocab.tokens.push(END_OF_TEXT.into());
        vocab.types.push(CONTROL);
        (vocab.tokens.len() - 1) as u32
    });
    let u32_of = |n: usize| u32::try_from(n).context("a dimension exceeds u32");
    let mut file = Gguf::default();
    file.put("general.architecture", Value::Str("gpt2".into()));
    file.put("general.type", Value::Str("model".into()));
    file.put("general.name", Value::Str(name.into()));
    file.put("general.file_type", Value::U32(0)); // all f32
    file.put("general.quantization_version", Value::U32(2));
    file.put("gpt2.block_count", Value::U32(u32_of(config.n_layer)?));
    file.put(
        "gpt2.context_length",
        Value::U32(u32_of(config.block_size)?),
    );
    file.put("gpt2.embedding_length", Value::U32(u32_of(config.n_embd)?));
    file.put(
        "gpt2.feed_forward_length",
        Value::U32(u32_of(config.mlp_hidden())?),
    );
    file.put(
        "gpt2.attention.head_count",
        Value::U32(u32_of(config.n_head)?),
    );
    file.put(
        "gpt2.attention.layer_norm_epsilon",
        Value::F32(config.layer_norm_eps as f32),
    );
    file.put("tokenizer.ggml.model", Value::Str("gpt2".into()));
    file.put("tokenizer.ggml.pre", Value::Str("gpt-2".into()));
    file.put("tokenizer.ggml.tokens", Value::Strs(vocab.tokens));
    file.put("tokenizer.ggml.token_type", Value::I32s(vocab.types));
    file.put("tokenizer.ggml.merges", Value::Strs(vocab.merges));
    file.put("tokenizer.ggml.bos_token_id", Value::U32(end));
    file.put("tokenizer.ggml.eos_token_id", Value::U32(end));
    file.put("tokenizer.ggml.add_bos_token", Value::Bool(false));
    file.put("tokenizer.ggml.add_eos_token", Value::Bool(false));

    for t in to_gpt2(tensors, config).context("the model's tensors")? {
        let name = t.name.strip_prefix("transformer.").unwrap_or(&t.name);
        let (gguf_name, transpose) = tensor_name(name)?;
        let mut t = if transpose { t.transposed() } else { t };
        if appended_end && matches!(gguf_name.as_str(), "token_embd.weight" | "output.weight") {
            t.values.extend(std::iter::repeat_n(0.0, config.n_embd));
            t.shape[0] += 1;
        }
        file.tensors.push((gguf_name, t.shape, t.values));
    }
    Ok(file.to_bytes())
}

/// The GGUF name for a GPT-2 tensor, and whether its `Conv1D` layout `[d_in, d_out]` must
/// become the `[d_out, d_in]` of llama.cpp's matrices.
fn tensor_name(gpt2: &str) -> Result<(String, bool)> {
    let fixed = match gpt2 {
        "wte.weight" => Some("token_embd.weight"),
        "wpe.weight" => Some("position_embd.weight"),
        "ln_f.weight" => Some("output_norm.weight"),
        "ln_f.bias" => Some("output_norm.bias"),
        "lm_head.weight" => Some("output.weight"),
        _ => None,
    };
    if let Some(name) = fixed {
        return Ok((name.into(), false));
    }
    let rest = gpt2
        .strip_prefix("h.")
        .context(format!("unexpected {gpt2}"))?;
    let (layer, part) = rest.split_once('.').context(format!("unexpected {gpt2}"))?;
    let (module, param) = part
        .rsplit_once('.')
        .context(format!("unexpected {gpt2}"))?;
    let module = match module {
        "ln_1" => "attn_norm",
        "attn.c_attn" => "attn_qkv",
        "attn.c_proj" => "attn_output",
        "ln_2" => "ffn_norm",
        "mlp.c_fc" => "ffn_up",
        "mlp.c_proj" => "ffn_down",
        _ => bail!("unexpected tensor {gpt2}"),
    };
    let transpose = param == "weight" && !module.ends_with("norm");
    Ok((format!("blk.{layer}.{module}.{param}"), transpose))
}

/// The vocabulary in llama.cpp's `gpt2` form: byte-level token strings, types and merges.
struct Vocabulary {
    tokens: Vec<String>,
    types: Vec<i32>,
    merges: Vec<String>,
    end_of_text: Option<u32>,
}

impl Vocabulary {
    /// `rows` is the model's vocabulary size: ids past the tokenizer's are padding.
    fn of(tokenizer: &Tokenizer, rows: usize) -> Result<Self> {
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

    #[test]
    fn tensor_names_and_transposes() {
        assert_eq!(
            tensor_name("h.3.attn.c_attn.weight").unwrap(),
            ("blk.3.attn_qkv.weight".into(), true)
        );
        assert_eq!(
            tensor_name("h.0.ln_2.bias").unwrap(),
            ("blk.0.ffn_norm.bias".into(), false)
        );
        assert_eq!(
            tensor_name("h.1.mlp.c_proj.bias").unwrap(),
            ("blk.1.ffn_down.bias".into(), false)
        );
        assert_eq!(
            tensor_name("lm_head.weight").unwrap(),
            ("output.weight".into(), false)
        );
        assert!(tensor_name("h.0.crossattention.q_attn.weight").is_err());
    }
}
