//! `tinygpt export` and `tinygpt import`: weights in and out as self-contained safetensors.
//!
//! Tensor names follow the module tree, e.g. `blocks.0.attn.query.weight`. Linear weights are
//! stored `[d_in, d_out]` (burn's layout: `y = x · W + b`), the transpose of PyTorch's
//! `nn.Linear`. The metadata key `tinygpt` holds the model config and the tokenizer as JSON.

use std::path::PathBuf;

use anyhow::Result;
use burn::tensor::Device;
use tinygpt_model::Gpt;
use tinygpt_model::weights::load_module_tensors;

use tinygpt_train::config::{DataConfig, RunConfig, TrainConfig};
use tinygpt_train::footprint::Footprint;
use tinygpt_train::run::files::write_atomic;
use tinygpt_train::run::weights::{
    TrainedRun, open_trained_run, read_export, save_export, save_run_model,
};
use tinygpt_train::run::{RunDir, RunKind};

#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    #[arg(long)]
    pub run: PathBuf,
    /// Output .safetensors file.
    #[arg(long)]
    pub out: PathBuf,
    /// Weights to export: latest, best or step-N [default: the final weights, else latest].
    #[arg(long)]
    pub checkpoint: Option<String>,
    /// Replace an existing output file.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// A .safetensors file written by `tinygpt export`.
    #[arg(long)]
    pub weights: PathBuf,
    /// The run directory to create (then usable by sample, eval, attention...).
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
    tinygpt_train::run::files::refuse_existing(&args.out, "--out", args.force)?;
    // Exporting only moves bytes: the CPU does it whatever device the run trained on.
    let TrainedRun {
        config,
        tokenizer,
        model,
        ..
    } = open_trained_run(&args.run, Some("flex"), args.checkpoint.as_deref())?;
    save_export(&model, &config.model, &tokenizer, &args.out)?;
    eprintln!("wrote {}", args.out.display());
    Ok(())
}

pub fn import_command(args: ImportArgs) -> Result<()> {
    RunDir::check_new(&args.out, args.overwrite)?;
    let (tensors, metadata) = read_export(&args.weights)?;
    // The file's own word on the model's size is checked before it is believed.
    metadata
        .model
        .validate()
        .map_err(|e| anyhow::anyhow!("{}: {e}", args.weights.display()))?;
    if !args.force {
        Footprint::inference(&metadata.model, 1).check(&format!(
            "{} describes a model too large for this machine (pass --force if you know better)",
            args.weights.display()
        ))?;
    }
    let device = Device::flex();
    // Loading checks every name and shape against the config before anything is written.
    let model = load_module_tensors(Gpt::new(&metadata.model, 0, &device)?, tensors)
        .map_err(|e| anyhow::anyhow!("{}: {e}", args.weights.display()))?;
    let (run, replaced) = RunDir::create(&args.out, RunKind::Imported, args.overwrite)?;
    let config = RunConfig {
        model: metadata.model.clone(),
        data: DataConfig {
            corpus: args.corpus.clone(),
            tokenizer: run.tokenizer().display().to_string(),
            vocab_size: metadata.tokenizer.vocab_size(),
            val_fraction: 0.1,
        },
        train: TrainConfig::default(),
    };
    write_atomic(&run.config(), toml::to_string(&config)?.as_bytes())?;
    metadata.tokenizer.save(&run.tokenizer())?;
    save_run_model(&run, &model, &metadata.model, &metadata.tokenizer)?;
    if let Some(warning) = replaced.and_then(|old| old.discard_with_warning()) {
        eprintln!("warning: {warning}");
    }
    eprintln!(
        "imported {} into {}",
        args.weights.display(),
        run.path.display()
    );
    Ok(())
}
