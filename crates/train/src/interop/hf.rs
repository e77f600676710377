//! A Hugging Face `transformers` model directory (`GPT2LMHeadModel`), written and read.
//!
//! Written: `config.json`, `model.safetensors` (GPT-2's names, f32), `tokenizer.json`,
//! `tokenizer_config.json` (`PreTrainedTokenizerFast`), `generation_config.json` (tinygpt
//! `sample`'s defaults) and a short `README.md` model card. Read: any GPT-2-shaped checkpoint
//! `save_pretrained` wrote (f32, f16 or bf16; one file or shards), refusing in one line what
//! tinygpt's model cannot compute.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use serde_json::json;
use tinygpt_data::Tokenizer;
use tinygpt_model::gpt2::{from_gpt2, not_gpt2, to_gpt2};
use tinygpt_model::weights::{from_safetensors, to_safetensors};
use tinygpt_model::{Activation, GptConfig, NamedTensor};

use crate::run::files::{Temporary, sync_dir, temporary_sibling, write_synced};

/// What `transformers` calls each of tinygpt's activations.
pub fn activation_name(activation: Activation) -> &'static str {
    match activation {
        Activation::Gelu => "gelu",
        Activation::GeluTanh => "gelu_new",
        Activation::Relu2 => "relu2",
        Activation::Swiglu => "silu",
    }
}

/// `config.json` for `config`, with the tokenizer's end-of-text as BOS and EOS (explicitly
/// none for a character vocabulary: GPT-2's default, 50256, would name a token it lacks).
pub fn config_json(config: &GptConfig, tokenizer: &Tokenizer) -> serde_json::Value {
    let end = tokenizer.end_of_text();
    json!({
        "architectures": ["GPT2LMHeadModel"],
        "model_type": "gpt2",
        "vocab_size": config.vocab_size,
        "n_positions": config.block_size,
        "n_embd": config.n_embd,
        "n_layer": config.n_layer,
        "n_head": config.n_head,
        "n_inner": (config.mlp_width != 0).then_some(config.mlp_width),
        "activation_function": activation_name(config.activation),
        "layer_norm_epsilon": config.layer_norm_eps,
        "resid_pdrop": config.dropout,
        "embd_pdrop": config.dropout,
        "attn_pdrop": 0.0,
        "initializer_range": 0.02,
        "scale_attn_weights": true,
        "scale_attn_by_inverse_layer_idx": false,
        "reorder_and_upcast_attn": false,
        "add_cross_attention": false,
        "tie_word_embeddings": config.tie_embeddings,
        "bos_token_id": end,
        "eos_token_id": end,
        "use_cache": true,
        "dtype": "float32",
    })
}

/// Writes the directory `out` (created when absent; in an existing one only these files are
/// replaced, each atomically, and nothing else is touched).
pub fn write_dir(
    out: &Path,
    tensors: Vec<NamedTensor>,
    config: &GptConfig,
    tokenizer: &Tokenizer,
    card: &str,
) -> Result<()> {
    if let Some(switch) = not_gpt2(config) {
        bail!(
            "{switch}: the Hugging Face export writes GPT-2-shaped models (GPT2LMHeadModel), which have no such part; export this model with --format safetensors, or train the GPT-2 recipe (configs/shakespeare-char.toml) to export it"
        );
    }
    let weights = to_gpt2(tensors, config).context("the model's tensors")?;
    let metadata = HashMap::from([("format".to_string(), "pt".to_string())]);
    let end = tokenizer
        .end_of_text()
        .map(|_| tinygpt_data::tokenizer::END_OF_TEXT);
    let hf_tokenizer = tokenizer.to_hf()?;
    let files: Vec<(&str, Vec<u8>)> = vec![
        ("config.json", pretty(&config_json(config, tokenizer))?),
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
            pretty(&json!({
                "tokenizer_class": "PreTrainedTokenizerFast",
                "model_max_length": config.block_size,
                // Decoding must give back the text exactly, spaces before punctuation included.
                "clean_up_tokenization_spaces": false,
                "add_prefix_space": false,
                "bos_token": end,
                "eos_token": end,
            }))?,
        ),
        (
            "generation_config.json",
            pretty(&json!({
                "bos_token_id": tokenizer.end_of_text(),
                "eos_token_id": tokenizer.end_of_text(),
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

/// The parts of a `transformers` GPT-2 `config.json` that decide the computation, with
/// `GPT2Config`'s defaults for keys a file leaves out.
#[derive(Debug, Deserialize)]
struct HfConfig {
    model_type: Option<String>,
    #[serde(default = "gpt2_vocab")]
    vocab_size: usize,
    #[serde(default = "gpt2_positions")]
    n_positions: usize,
    #[serde(default = "gpt2_width")]
    n_embd: usize,
    #[serde(default = "gpt2_depth")]
    n_layer: usize,
    #[serde(default = "gpt2_depth")]
    n_head: usize,
    n_inner: Option<usize>,
    #[serde(default = "gpt2_activation")]
    activation_function: String,
    #[serde(default = "gpt2_epsilon")]
    layer_norm_epsilon: f64,
    #[serde(default = "yes")]
    scale_attn_weights: bool,
    #[serde(default)]
    scale_attn_by_inverse_layer_idx: bool,
    #[serde(default)]
    add_cross_attention: bool,
    #[serde(default = "yes")]
    tie_word_embeddings: bool,
}

fn gpt2_vocab() -> usize {
    50257
}
fn gpt2_positions() -> usize {
    1024
}
fn gpt2_width() -> usize {
    768
}
fn gpt2_depth() -> usize {
    12
}
fn gpt2_activation() -> String {
    "gelu_new".into()
}
fn gpt2_epsilon() -> f64 {
    1e-5
}
fn yes() -> bool {
    true
}

/// The tinygpt model config for a `transformers` `config.json`, or the one reason it cannot be.
pub fn model_config(json: &str, path: &Path) -> Result<GptConfig> {
    let at = path.display();
    let hf: HfConfig =
        serde_json::from_str(json).with_context(|| format!("{at}: not a model config"))?;
    match hf.model_type.as_deref() {
        Some("gpt2") => {}
        Some(other) => bail!(
            "{at}: model_type {other:?} is not GPT-2; tinygpt imports GPT-2-shaped models (model_type \"gpt2\")"
        ),
        None => {
            bail!("{at}: no model_type; tinygpt imports GPT-2-shaped models (model_type \"gpt2\")")
        }
    }
    let activation = match hf.activation_function.as_str() {
        "gelu" => Activation::Gelu,
        // Both are ½x(1 + tanh(√(2/π)(x + 0.044715x³))).
        "gelu_new" | "gelu_pytorch_tanh" => Activation::GeluTanh,
        other => bail!(
            "{at}: activation_function {other:?} is not one tinygpt has: it computes \"gelu\" (erf) and \"gelu_new\" (tanh)"
        ),
    };
    if hf.add_cross_attention {
        bail!("{at}: add_cross_attention is true: tinygpt's blocks have self-attention only");
    }
    if !hf.scale_attn_weights || hf.scale_attn_by_inverse_layer_idx {
        bail!(
            "{at}: attention scores scaled other than by 1/√head_size (scale_attn_weights false or scale_attn_by_inverse_layer_idx true): tinygpt scales by 1/√head_size only"
        );
    }
    let config = GptConfig {
        vocab_size: hf.vocab_size,
        block_size: hf.n_positions,
        n_layer: hf.n_layer,
        n_head: hf.n_head,
        n_embd: hf.n_embd,
        dropout: 0.0,
        bias: true,
        tie_embeddings: hf.tie_word_embeddings,
        activation,
        // GPT-2's null n_inner is 4 × n_embd, tinygpt's 0.
        mlp_width: hf
            .n_inner
            .filter(|&n| Some(n) != hf.n_embd.checked_mul(4))
            .unwrap_or(0),
        layer_norm_eps: hf.layer_norm_epsilon,
        ..GptConfig::default()
    };
    config.validate().with_context(|| at.to_string())?;
    Ok(config)
}

/// A `transformers` GPT-2 directory read as tinygpt's config, tokenizer and tensors (under
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
    let config = model_config(&json, &config_path)?;
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
    let tensors = from_gpt2(tensors, &config).with_context(|| dir.display().to_string())?;
    crate::run::finite::check_finite(&tensors, dir)?;
    Ok(HfModel {
        config,
        tokenizer,
        tensors,
    })
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
