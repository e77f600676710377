//! `tinygpt export` and `tinygpt import`: weights in and out as self-contained safetensors.
//!
//! Tensor names follow the module tree, e.g. `blocks.0.attn.query.weight`. Linear weights are
//! stored `[d_in, d_out]` (burn's layout: `y = x · W + b`), the transpose of PyTorch's
//! `nn.Linear`. The metadata key `tinygpt` holds the model config and the tokenizer as JSON.

use std::path::PathBuf;

use anyhow::{Result, bail};
use burn::tensor::Device;
use tinygpt_model::Gpt;
use tinygpt_model::weights::load_module_tensors;

use crate::config::{DataConfig, RunConfig, TrainConfig};
use crate::run_dir::RunDir;
use crate::weights::{TrainedRun, open_trained_run, read_export, save_export};

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
}

pub fn export_command(args: ExportArgs) -> Result<()> {
    if args.out.exists() && !args.force {
        bail!(
            "{} already exists: choose another --out or pass --force to replace it",
            args.out.display()
        );
    }
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
    let (tensors, metadata) = read_export(&args.weights)?;
    let device = Device::flex();
    // Loading checks every name and shape against the config before anything is written.
    let model = load_module_tensors(Gpt::new(&metadata.model, 0, &device)?, tensors)
        .map_err(|e| anyhow::anyhow!("{}: {e}", args.weights.display()))?;
    let run = RunDir::create(&args.out, false)?;
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
    std::fs::write(run.config(), toml::to_string(&config)?)?;
    metadata.tokenizer.save(&run.tokenizer())?;
    save_export(&model, &metadata.model, &metadata.tokenizer, &run.model())?;
    eprintln!(
        "imported {} into {}",
        args.weights.display(),
        run.path.display()
    );
    Ok(())
}
