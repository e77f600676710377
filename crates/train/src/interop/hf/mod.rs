//! A Hugging Face `transformers` model directory, written and read, for every class
//! [`Architecture`] knows: `GPT2LMHeadModel`, `LlamaForCausalLM`, `Qwen3ForCausalLM`,
//! `NanoChatForCausalLM`.
//!
//! Written: `config.json`, `model.safetensors` (the class's names, f32), `tokenizer.json`,
//! `tokenizer_config.json` (`PreTrainedTokenizerFast`), `generation_config.json` (tinygpt
//! `sample`'s defaults) and a short `README.md` model card. Read: any checkpoint of those
//! classes `save_pretrained` wrote (f32, f16 or bf16; one file or shards), refusing in one
//! line what tinygpt's model cannot compute.

mod gpt2;
mod llama;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use serde_json::json;
use tinygpt_data::Tokenizer;
use tinygpt_model::architecture::Architecture;
use tinygpt_model::gpt2::{from_gpt2, to_gpt2};
use tinygpt_model::llama::{from_llama, to_llama};
use tinygpt_model::weights::{from_safetensors, to_safetensors};
use tinygpt_model::{GptConfig, NamedTensor};

pub use gpt2::activation_name;

use crate::run::files::{Temporary, sync_dir, temporary_sibling, write_synced};

/// Writes the directory `out` (created when absent; in an existing one only these files are
/// replaced, each atomically, and nothing else is touched).
pub fn write_dir(
    out: &Path,
    tensors: Vec<NamedTensor>,
    config: &GptConfig,
    tokenizer: &Tokenizer,
    card: &str,
) -> Result<()> {
    let arch = Architecture::of(config)
        .map_err(|e| anyhow::anyhow!("{e}; or export the model with --format safetensors"))?;
    let (weights, config_json) = match arch {
        Architecture::Gpt2 => (
            to_gpt2(tensors, config),
            gpt2::config_json(config, tokenizer),
        ),
        _ => (
            to_llama(tensors, config, arch),
            llama::config_json(config, arch, tokenizer),
        ),
    };
    let weights = weights.context("the model's tensors")?;
    let metadata = HashMap::from([("format".to_string(), "pt".to_string())]);
    let end = tokenizer
        .end_of_text()
        .map(|_| tinygpt_data::tokenizer::END_OF_TEXT);
    let hf_tokenizer = tokenizer.to_hf()?;
    let files: Vec<(&str, Vec<u8>)> = vec![
        ("config.json", pretty(&config_json)?),
        ("model.safetensors", to_safetensors(&weights, metadata)),
        (
            "tokenizer.json",
            hf_tokenizer
                .to_string(true)
                .map_err(|e| anyhow::anyhow!("cannot write the tokenizer: {e}"))?
                .into_bytes(),
        ),
        (
            "tokenizer_config.json",
            pretty(&tokenizer_config(tokenizer, config.block_size, end.into()))?,
        ),
        (
            "generation_config.json",
            pretty(&json!({
                "bos_token_id": tokenizer.end_of_text(),
                "eos_token_id": end_of_generation(tokenizer),
                "do_sample": true,
                "temperature": 0.8,
                "top_k": 0,
                "max_new_tokens": 256,
            }))?,
        ),
        ("README.md", card.as_bytes().to_vec()),
    ];
    write_folder(out, &files)
}

/// `tokenizer_config.json`: a chat model's carries its chat template, and its end of a turn
/// as the end of generation.
fn tokenizer_config(
    tokenizer: &Tokenizer,
    block_size: usize,
    end: serde_json::Value,
) -> serde_json::Value {
    let mut config = json!({
        "tokenizer_class": "PreTrainedTokenizerFast",
        "model_max_length": block_size,
        // Decoding must give back the text exactly, spaces before punctuation included.
        "clean_up_tokenization_spaces": false,
        "add_prefix_space": false,
        "bos_token": end,
        "eos_token": end,
    });
    if tokenizer.chat_tokens().is_some() {
        config["chat_template"] = tinygpt_data::chat::JINJA_TEMPLATE.into();
        config["eos_token"] = tinygpt_data::Role::Assistant.end().into();
    }
    config
}

/// The ids that end generation: a chat model's turn end, then the end of text.
fn end_of_generation(tokenizer: &Tokenizer) -> serde_json::Value {
    match tokenizer.chat_tokens() {
        Some(chat) => json!([
            chat.end(tinygpt_data::Role::Assistant),
            tokenizer.end_of_text()
        ]),
        None => json!(tokenizer.end_of_text()),
    }
}

/// Test hook: milliseconds to pause after a folder export's files are written aside and before
/// the folder is renamed into place, so a test can interrupt it there.
pub const PAUSE_ENV: &str = "TINYGPT_TEST_PAUSE_IN_EXPORT_MS";

/// Writes `files` as the folder `out`, built aside first: an export that is interrupted or
/// fails leaves a hidden `.NAME.tmp-PID` sibling (removed on failure), never a half-written
/// folder under the final name. A new or empty `out` is the aside folder renamed; an `out`
/// already holding files (`--force`) gets each file renamed in, and keeps every other file.
fn write_folder(out: &Path, files: &[(&str, Vec<u8>)]) -> Result<()> {
    let aside = Temporary::new(
        temporary_sibling(out).with_extension(format!("tmp-{}", std::process::id())),
    );
    std::fs::create_dir_all(&aside.path)
        .with_context(|| format!("cannot create {}", aside.path.display()))?;
    for (name, bytes) in files {
        write_synced(&aside.path.join(name), bytes)?;
    }
    sync_dir(&aside.path)?;
    if let Some(ms) = std::env::var(PAUSE_ENV).ok().and_then(|v| v.parse().ok()) {
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }
    let empty = std::fs::read_dir(out).map_or(true, |mut entries| entries.next().is_none());
    if empty {
        if out.is_dir() {
            std::fs::remove_dir(out)
                .with_context(|| format!("cannot replace {}", out.display()))?;
        }
        std::fs::rename(&aside.path, out)
            .with_context(|| format!("cannot write {}", out.display()))?;
        aside.placed();
    } else {
        // Each file renamed in; the emptied aside folder goes when `aside` is dropped.
        for (name, _) in files {
            std::fs::rename(aside.path.join(name), out.join(name))
                .with_context(|| format!("cannot write {}", out.join(name).display()))?;
        }
    }
    sync_dir(out.parent().unwrap_or(Path::new(".")))
}

fn pretty(value: &serde_json::Value) -> Result<Vec<u8>> {
    let mut text = serde_json::to_string_pretty(value)?;
    text.push('\n');
    Ok(text.into_bytes())
}

/// A `transformers` model directory read as tinygpt's config, tokenizer and tensors (under
/// tinygpt's names; every one present, with the config's shapes checked when they are loaded).
pub struct HfModel {
    pub config: GptConfig,
    pub tokenizer: Tokenizer,
    pub tensors: Vec<NamedTensor>,
}

pub fn read_dir(dir: &Path) -> Result<HfModel> {
    if !dir.is_dir() {
        bail!(
            "{} is not a directory: give the folder `save_pretrained` wrote (config.json, model.safetensors, tokenizer.json)",
            dir.display()
        );
    }
    let config_path = dir.join("config.json");
    let json = std::fs::read_to_string(&config_path).with_context(|| {
        format!(
            "cannot read {}: a transformers model folder has one",
            config_path.display()
        )
    })?;
    let (arch, config) = model_config(&json, &config_path)?;
    let tokenizer = read_tokenizer(dir)?;
    if tokenizer.vocab_size() > config.vocab_size {
        bail!(
            "{}: the tokenizer has {} tokens but the model only {} (vocab_size): they do not belong together",
            dir.display(),
            tokenizer.vocab_size(),
            config.vocab_size
        );
    }
    let mut tensors = Vec::new();
    for file in weight_files(dir)? {
        let bytes =
            std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
        let (mut part, _) = from_safetensors(&bytes).with_context(|| file.display().to_string())?;
        tensors.append(&mut part);
    }
    let tensors = match arch {
        Architecture::Gpt2 => from_gpt2(tensors, &config),
        _ => from_llama(tensors, &config, arch),
    };
    let tensors = tensors.with_context(|| dir.display().to_string())?;
    crate::run::finite::check_finite(&tensors, dir)?;
    Ok(HfModel {
        config,
        tokenizer,
        tensors,
    })
}

/// The architecture `config.json` names (by `model_type`) and the tinygpt config of it.
fn model_config(json: &str, path: &Path) -> Result<(Architecture, GptConfig)> {
    let at = path.display();
    #[derive(Deserialize)]
    struct ModelType {
        model_type: Option<String>,
    }
    let known = "tinygpt imports model_type \"gpt2\", \"llama\", \"qwen3\" and \"nanochat\"";
    let model_type = serde_json::from_str::<ModelType>(json)
        .with_context(|| format!("{at}: not a model config"))?
        .model_type;
    let Some(model_type) = model_type else {
        bail!("{at}: no model_type; {known}");
    };
    let Some(arch) = Architecture::from_model_type(&model_type) else {
        bail!("{at}: model_type {model_type:?} is not one tinygpt computes; {known}");
    };
    let config = match arch {
        Architecture::Gpt2 => gpt2::model_config(json, path)?,
        _ => llama::model_config(json, arch, path)?,
    };
    Ok((arch, config))
}

/// `model.safetensors`, or the shards `model.safetensors.index.json` lists.
fn weight_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let single = dir.join("model.safetensors");
    if single.is_file() {
        return Ok(vec![single]);
    }
    let index = dir.join("model.safetensors.index.json");
    if index.is_file() {
        #[derive(Deserialize)]
        struct Index {
            weight_map: HashMap<String, String>,
        }
        let text = std::fs::read_to_string(&index)
            .with_context(|| format!("cannot read {}", index.display()))?;
        let index: Index = serde_json::from_str(&text)
            .with_context(|| format!("{}: not a safetensors index", index.display()))?;
        let mut files: Vec<PathBuf> = index.weight_map.values().map(|f| dir.join(f)).collect();
        files.sort();
        files.dedup();
        return Ok(files);
    }
    if dir.join("pytorch_model.bin").is_file() {
        bail!(
            "{} holds pytorch_model.bin (a pickle) but no model.safetensors: tinygpt reads safetensors only; in Python, `GPT2LMHeadModel.from_pretrained(DIR).save_pretrained(DIR)` writes it",
            dir.display()
        );
    }
    bail!(
        "{} has no model.safetensors: give the folder `save_pretrained` wrote",
        dir.display()
    )
}

/// `tokenizer.json`; or GPT-2's original `vocab.json` + `merges.txt`, as a byte-level BPE.
fn read_tokenizer(dir: &Path) -> Result<Tokenizer> {
    let path = dir.join("tokenizer.json");
    if path.is_file() {
        // A character vocabulary (as tinygpt exports one) comes back as tinygpt's own.
        return Ok(Tokenizer::load(&path)?.into_char_when_possible());
    }
    let (vocab, merges) = (dir.join("vocab.json"), dir.join("merges.txt"));
    if vocab.is_file() && merges.is_file() {
        return Ok(tinygpt_data::tokenizer::bpe::byte_level_from_files(
            &vocab, &merges,
        )?);
    }
    bail!(
        "{} has no tokenizer.json (nor vocab.json and merges.txt): save the tokenizer there too, e.g. `AutoTokenizer.from_pretrained(NAME).save_pretrained(DIR)`",
        dir.display()
    )
}
