//! `tinygpt export` and `tinygpt import`: weights in and out, as tinygpt's own safetensors, a
//! Hugging Face `transformers` folder or a llama.cpp GGUF file.
//!
//! tinygpt's own files name tensors by the module tree, e.g. `blocks.0.attn.query.weight`,
//! linear weights `[d_in, d_out]` (burn's layout: `y = x · W + b`), with the model config and
//! the tokenizer as JSON under the metadata key `tinygpt`. The other formats use GPT-2's names
//! (see `tinygpt_model::gpt2`).

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use burn::tensor::Device;
use tinygpt_data::Tokenizer;
use tinygpt_model::weights::{load_module_tensors, module_tensors};
use tinygpt_model::{Gpt, GptConfig, NamedTensor, ParamCount};

use tinygpt_model::architecture::Architecture;
use tinygpt_train::config::{DataConfig, RunConfig, TrainConfig};
use tinygpt_train::footprint::Footprint;
use tinygpt_train::interop::{gguf, hf};
use tinygpt_train::run::files::write_atomic;
use tinygpt_train::run::weights::{
    TrainedRun, open_trained_run, read_export, save_export, save_run_model,
};
use tinygpt_train::run::{RunDir, RunKind};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// tinygpt's own .safetensors (config and tokenizer inside): `tinygpt import --weights`.
    Safetensors,
    /// A Hugging Face folder that transformers' GPT2LMHeadModel and AutoTokenizer load.
    Hf,
    /// A llama.cpp GGUF file (gpt2 architecture, f32).
    Gguf,
}

#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    #[arg(long)]
    pub run: PathBuf,
    /// The file (safetensors, gguf) or folder (hf) to write.
    #[arg(long)]
    pub out: PathBuf,
    /// What to write.
    #[arg(long, value_enum, default_value = "safetensors")]
    pub format: Format,
    /// Weights to export: latest, best or step-N [default: the final weights, else latest].
    #[arg(long)]
    pub checkpoint: Option<String>,
    /// Replace an existing output file (for hf: the files it writes in an existing folder;
    /// other files there are left alone).
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["weights", "hf"])))]
pub struct ImportArgs {
    /// A .safetensors file written by `tinygpt export`.
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// A Hugging Face GPT-2 folder (config.json, model.safetensors, tokenizer.json), e.g. one
    /// `save_pretrained` wrote or a download of openai-community/gpt2.
    #[arg(long)]
    pub hf: Option<PathBuf>,
    /// The run directory to create (then usable by sample, eval, attention, train --init-from).
    #[arg(long)]
    pub out: PathBuf,
    /// Corpus to record in the new run's config (for `eval` on its val split).
    #[arg(long, default_value = "data/shakespeare.txt")]
    pub corpus: PathBuf,
    /// Replace a run already in --out (moved aside, as `train --overwrite` does).
    #[arg(long)]
    pub overwrite: bool,
    /// Import even when the model's memory estimate exceeds the memory available.
    #[arg(long)]
    pub force: bool,
}

pub fn export_command(args: ExportArgs) -> Result<()> {
    refuse_inside_run(&args.out, &args.run)?;
    match args.format {
        Format::Hf => refuse_non_empty_folder(&args.out, args.force)?,
        _ => tinygpt_train::run::files::refuse_existing(&args.out, "--out", args.force)?,
    }
    // Exporting only moves bytes: the CPU does it whatever device the run trained on.
    let TrainedRun {
        config,
        tokenizer,
        model,
        ..
    } = open_trained_run(&args.run, Some("flex"), args.checkpoint.as_deref())?;
    let name = run_name(&args.run);
    match args.format {
        Format::Safetensors => save_export(&model, &config.model, &tokenizer, &args.out)?,
        Format::Hf => {
            let card = model_card(&name, &config, &tokenizer);
            hf::write_dir(
                &args.out,
                module_tensors(&model),
                &config.model,
                &tokenizer,
                &card,
            )?
        }
        Format::Gguf => {
            let bytes = gguf::gguf_bytes(module_tensors(&model), &config.model, &tokenizer, &name)?;
            write_atomic(&args.out, &bytes)?;
            if config.model.activation == tinygpt_model::Activation::Gelu {
                say!(
                    "note: llama.cpp's gpt2 computes the tanh GELU; this model was trained with the exact (erf) one, so its logits there differ slightly (about 1e-3); train with model.activation = \"gelu_tanh\" for an exact match"
                );
            }
        }
    }
    say!("wrote {}", args.out.display());
    Ok(())
}

/// An export goes outside the run it comes from: the run's files stay as training wrote them
/// (`--out RUN --force` would otherwise replace its weights).
fn refuse_inside_run(out: &Path, run: &Path) -> Result<()> {
    let Ok(run_dir) = run.canonicalize() else {
        return Ok(()); // opening the run reports it
    };
    // `out` may not exist yet: its nearest existing ancestor decides where it would be.
    let mut existing = out.to_path_buf();
    let mut below = Vec::new();
    while !existing.exists() {
        let Some(name) = existing.file_name() else {
            break;
        };
        below.push(name.to_owned());
        existing.pop();
    }
    let base = if existing.as_os_str().is_empty() {
        Path::new(".")
    } else {
        &existing
    };
    let Ok(mut resolved) = base.canonicalize() else {
        return Ok(());
    };
    resolved.extend(below.iter().rev());
    if resolved.starts_with(&run_dir) {
        bail!(
            "--out {} is inside the run {} it exports: the run's files stay as training wrote them; choose an --out outside the run",
            out.display(),
            run.display()
        );
    }
    Ok(())
}

/// A folder export may go into a new or empty folder; into one holding files only with
/// --force, and even then only its own files are replaced.
fn refuse_non_empty_folder(out: &Path, force: bool) -> Result<()> {
    if out.exists() && !out.is_dir() {
        bail!(
            "{} is a file: --format hf writes a folder; choose another --out",
            out.display()
        );
    }
    let has_files = out.is_dir() && std::fs::read_dir(out)?.next().is_some();
    if has_files && !force {
        bail!(
            "{} already holds files: choose another --out, or pass --force to replace the files the export writes (config.json, model.safetensors, tokenizer*.json, generation_config.json, README.md; nothing else there is touched)",
            out.display()
        );
    }
    Ok(())
}

fn run_name(run: &Path) -> String {
    run.canonicalize()
        .ok()
        .as_deref()
        .unwrap_or(run)
        .file_name()
        .map_or_else(|| "tinygpt".into(), |n| n.to_string_lossy().into_owned())
}

/// The README.md a model hub shows: what the model is and how to load it.
fn model_card(name: &str, config: &RunConfig, tokenizer: &Tokenizer) -> String {
    let m = &config.model;
    let arch = Architecture::of(m).ok();
    let kind = match tokenizer {
        Tokenizer::Char(_) => "characters (a WordLevel tokenizer over single characters)",
        Tokenizer::Hf(_) => "byte-level BPE",
    };
    format!(
        "---\nlibrary_name: transformers\ntags:\n- tinygpt\n- {model_type}\n---\n\n# {name}\n\n\
         A `{class}` model trained with tinygpt on `{corpus}`.\n\n\
         | | |\n| --- | --- |\n| parameters | {params} |\n| layers × heads × width | {l} × {h} × {c} |\n\
         | context | {t} tokens |\n| vocabulary | {v} tokens: {kind} |\n| activation | {act} |\n\n\
         ```python\nfrom transformers import AutoModelForCausalLM, AutoTokenizer\n\
         model = AutoModelForCausalLM.from_pretrained(\"PATH\")\n\
         tokenizer = AutoTokenizer.from_pretrained(\"PATH\")\n\
         ids = tokenizer(\"ROMEO:\", return_tensors=\"pt\").input_ids\n\
         print(tokenizer.decode(model.generate(ids, max_new_tokens=100)[0]))\n```\n",
        corpus = config.data.corpus,
        params = ParamCount::of(m).total(),
        l = m.n_layer,
        h = m.n_head,
        c = m.n_embd,
        t = m.block_size,
        v = m.vocab_size,
        act = hf::activation_name(m.activation),
        model_type = arch.map_or("gpt2", |a| a.model_type()),
        class = arch.map_or("GPT2LMHeadModel", |a| a.hf_class()),
    )
}

pub fn import_command(args: ImportArgs) -> Result<()> {
    RunDir::check_new(&args.out, args.overwrite)?;
    let (source, config, tokenizer, tensors) = match (&args.weights, &args.hf) {
        (Some(weights), _) => {
            let (tensors, metadata) = read_export(weights)?;
            // The file's own word on the model's size is checked before it is believed.
            metadata
                .model
                .validate()
                .map_err(|e| anyhow::anyhow!("{}: {e}", weights.display()))?;
            (weights, metadata.model, metadata.tokenizer, tensors)
        }
        (None, Some(dir)) => {
            let model = hf::read_dir(dir)?;
            (dir, model.config, model.tokenizer, model.tensors)
        }
        (None, None) => unreachable!("clap requires --weights or --hf"),
    };
    let model = build_model(source, &config, tensors, args.force)?;
    let (run, replaced) = RunDir::create(&args.out, RunKind::Imported, args.overwrite)?;
    let run_config = RunConfig {
        model: config.clone(),
        data: DataConfig {
            tokenizer: run.tokenizer().display().to_string(),
            vocab_size: tokenizer.vocab_size(),
            ..DataConfig::of(args.corpus.clone())
        },
        train: TrainConfig::default(),
    };
    write_atomic(&run.config(), toml::to_string(&run_config)?.as_bytes())?;
    write_atomic(&run.tokenizer(), tokenizer.to_json()?.as_bytes())?;
    save_run_model(&run, &model, &config, &tokenizer)?;
    if let Some(warning) = replaced.and_then(|old| old.discard_with_warning()) {
        say!("warning: {warning}");
    }
    say!("imported {} into {}", source.display(), run.path.display());
    Ok(())
}

/// The model `tensors` describe, after the memory check; every name and shape is checked
/// against `config` before anything is written.
fn build_model(
    source: &Path,
    config: &GptConfig,
    tensors: Vec<NamedTensor>,
    force: bool,
) -> Result<Gpt> {
    if !force {
        Footprint::inference(config, 1).check(&format!(
            "{} describes a model too large for this machine (pass --force if you know better)",
            source.display()
        ))?;
    }
    let model = Gpt::new(config, 0, &Device::flex())?;
    load_module_tensors(model, tensors).map_err(|e| anyhow::anyhow!("{}: {e}", source.display()))
}
