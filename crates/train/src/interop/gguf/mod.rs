//! llama.cpp's GGUF (version 3), all tensors f32, for the architectures llama.cpp runs that
//! a tinygpt model can be exactly: `gpt2` ([`gpt2`]), `llama` and `qwen3` ([`llama`]), with the
//! metadata, tensor names and layouts llama.cpp's own `convert_hf_to_gguf.py` writes for them.
//!
//! Written by hand: the format is a header, typed key–value pairs and aligned raw tensors (its
//! writer, `file.rs`, is about a hundred lines), while the Rust GGUF crates are either part of a
//! whole inference framework (candle-core) or young single-author crates that would still need
//! every key and layout spelled out here. The tests read the file back with ggml's own
//! Python `gguf` package and run it in llama.cpp.

mod file;
mod gpt2;
mod llama;
mod vocabulary;

use anyhow::{Context, Result, bail};
use tinygpt_data::Tokenizer;
use tinygpt_model::architecture::Architecture;
use tinygpt_model::{Activation, GptConfig, NamedTensor};

use file::{Gguf, Value};
use vocabulary::{CONTROL, END_OF_TEXT, Vocabulary};

/// The model as a GGUF file's bytes. A vocabulary with no end-of-text token (a character one)
/// gains one at the end, with a zero embedding row (its logit is always 0): llama.cpp needs an
/// end-of-generation id in range, and without one it silently takes token 11.
pub fn gguf_bytes(
    tensors: Vec<NamedTensor>,
    config: &GptConfig,
    tokenizer: &Tokenizer,
    name: &str,
) -> Result<Vec<u8>> {
    let fix = "export the model with --format hf (transformers runs it) or --format safetensors";
    let arch = Architecture::of(config)
        .map_err(|e| anyhow::anyhow!("{e}; or export the model with --format safetensors"))?;
    let Some(gguf_arch) = arch.gguf_arch() else {
        bail!(
            "model.activation = \"relu2\": the model is {}-shaped and llama.cpp has no such architecture (its llama and qwen3 take activation = \"swiglu\"); {fix}",
            arch.hf_class()
        );
    };
    if arch == Architecture::Gpt2 && config.activation == Activation::Relu2 {
        bail!("model.activation = \"relu2\": llama.cpp's gpt2 computes GELU only; {fix}");
    }
    let mut vocab = Vocabulary::of(tokenizer, config.vocab_size)?;
    let appended_end = vocab.end_of_text.is_none();
    let end = *vocab.end_of_text.get_or_insert_with(|| {
        vocab.tokens.push(END_OF_TEXT.into());
        vocab.types.push(CONTROL);
        (vocab.tokens.len() - 1) as u32
    });
    let mut file = Gguf::default();
    file.put("general.architecture", Value::Str(gguf_arch.into()));
    file.put("general.type", Value::Str("model".into()));
    file.put("general.name", Value::Str(name.into()));
    file.put("general.file_type", Value::U32(0)); // all f32
    file.put("general.quantization_version", Value::U32(2));
    let mut size = |key: &str, n: usize| -> Result<()> {
        let n = u32::try_from(n).context("a dimension exceeds u32")?;
        file.put(&format!("{gguf_arch}.{key}"), Value::U32(n));
        Ok(())
    };
    size("block_count", config.n_layer)?;
    size("context_length", config.block_size)?;
    size("embedding_length", config.n_embd)?;
    size("feed_forward_length", config.mlp_hidden())?;
    size("attention.head_count", config.n_head)?;
    let tensors = match arch {
        Architecture::Gpt2 => {
            file.put(
                "gpt2.attention.layer_norm_epsilon",
                Value::F32(config.layer_norm_eps as f32),
            );
            gpt2::tensors(tensors, config)?
        }
        _ => {
            llama::metadata(&mut file, gguf_arch, config)?;
            llama::tensors(tensors, config, arch)?
        }
    };
    file.put("tokenizer.ggml.model", Value::Str("gpt2".into()));
    file.put("tokenizer.ggml.pre", Value::Str("gpt-2".into()));
    file.put("tokenizer.ggml.tokens", Value::Strs(vocab.tokens));
    file.put("tokenizer.ggml.token_type", Value::I32s(vocab.types));
    file.put("tokenizer.ggml.merges", Value::Strs(vocab.merges));
    file.put("tokenizer.ggml.bos_token_id", Value::U32(end));
    file.put("tokenizer.ggml.eos_token_id", Value::U32(end));
    file.put("tokenizer.ggml.add_bos_token", Value::Bool(false));
    file.put("tokenizer.ggml.add_eos_token", Value::Bool(false));
    // A chat model: llama.cpp renders conversations with the template and ends a reply at
    // the end of the assistant's turn.
    if let Some(chat) = tokenizer.chat_tokens() {
        let turn_end = chat.end(tinygpt_data::Role::Assistant);
        file.put("tokenizer.ggml.eot_token_id", Value::U32(turn_end));
        file.put(
            "tokenizer.chat_template",
            Value::Str(tinygpt_data::chat::JINJA_TEMPLATE.into()),
        );
    }

    for mut t in tensors {
        if appended_end && matches!(t.name.as_str(), "token_embd.weight" | "output.weight") {
            t.values.extend(std::iter::repeat_n(0.0, config.n_embd));
            t.shape[0] += 1;
        }
        file.tensors.push((t.name, t.shape, t.values));
    }
    Ok(file.to_bytes())
}
