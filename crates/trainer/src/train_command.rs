//! `tinygpt train`: config → corpus → tokenizer → splits → model → training → run directory.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use burn::module::Module;
use indicatif::{HumanCount, HumanDuration};
use tinygpt_data::{CharTokenizer, Splits, Tokenizer, read_corpus};
use tinygpt_model::{Gpt, ParamCount};

use crate::config::RunConfig;
use crate::device::parse_device;
use crate::generate::greedy;
use crate::metrics::MetricsWriter;
use crate::progress::Progress;
use crate::run_dir::RunDir;
use crate::trainer::Trainer;

#[derive(Debug, clap::Args)]
pub struct TrainArgs {
    /// Run configuration (TOML with [model], [data] and [train] sections).
    #[arg(long, default_value = "configs/shakespeare-char.toml")]
    pub config: PathBuf,
    /// Compute device: flex or ndarray (overrides train.device).
    #[arg(long)]
    pub device: Option<String>,
    /// Run directory [default: runs/<config name>].
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Override a config key, e.g. --set train.max_steps=500 (repeatable).
    #[arg(long = "set", value_name = "SECTION.KEY=VALUE")]
    pub overrides: Vec<String>,
    /// Replace an existing run in the run directory.
    #[arg(long)]
    pub overwrite: bool,
}

pub fn train(args: TrainArgs) -> Result<()> {
    let mut config = RunConfig::load(&args.config, &args.overrides)?;
    if let Some(device) = args.device {
        config.train.device = device;
    }
    let device = parse_device(&config.train.device)?;

    let text = read_corpus(&config.data.corpus)?;
    let tokenizer = Tokenizer::Char(CharTokenizer::from_corpus(&text));
    let vocab = tokenizer.vocab_size();
    match config.model.vocab_size {
        0 => config.model.vocab_size = vocab,
        n if n < vocab => bail!(
            "model.vocab_size = {n} is smaller than the tokenizer's {vocab} tokens: remove the key or set it to at least {vocab}"
        ),
        _ => {}
    }
    let prompt = tokenizer
        .encode(&config.train.sample_prompt)
        .context("train.sample_prompt")?;
    let tokens = tokenizer.encode(&text)?;
    let splits = Splits::new(tokens, config.data.val_fraction, config.model.block_size)?;

    let name = args
        .config
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "run".into());
    let run = RunDir::create(
        &args.out.unwrap_or_else(|| PathBuf::from("runs").join(name)),
        args.overwrite,
    )?;
    std::fs::write(run.config(), toml::to_string(&config)?)
        .with_context(|| format!("cannot write {}", run.config().display()))?;
    tokenizer.save(&run.tokenizer())?;

    let params = ParamCount::of(&config.model);
    eprintln!(
        "tinygpt: {} parameters | {} layers, {} heads, n_embd {}, block {} | vocab {} | {} train / {} val tokens | device {} | run {}",
        HumanCount(params.total() as u64),
        config.model.n_layer,
        config.model.n_head,
        config.model.n_embd,
        config.model.block_size,
        vocab,
        HumanCount(splits.train.len() as u64),
        HumanCount(splits.val.len() as u64),
        config.train.device,
        run.path.display()
    );

    device.seed(config.train.seed);
    let train_device = device.clone().autodiff();
    let model = Gpt::new(&config.model, config.train.seed, &train_device)?;
    let mut metrics = MetricsWriter::create(&run.metrics())?;
    let mut progress = Progress::new(config.train.max_steps);
    let trainer = Trainer {
        config: &config,
        splits: &splits,
        device: train_device,
    };
    let (model, summary) = trainer.run(model, &mut metrics, &mut progress)?;
    progress.finish();

    let model = model.valid();
    model
        .clone()
        .save_file(run.model())
        .map_err(|e| anyhow::anyhow!("cannot save {}: {e}", run.model().display()))?;

    eprintln!(
        "done: {} steps | train loss {:.4} | val loss {:.4} (from {:.4}) | {} | {} tok/s | weights in {}",
        summary.steps,
        summary.train_loss,
        summary.val_loss,
        summary.initial_val_loss,
        HumanDuration(Duration::from_secs_f64(summary.wall_s)),
        HumanCount(summary.tokens_per_sec as u64),
        run.model().display()
    );
    let continuation = greedy(&model, &prompt, config.train.sample_tokens, &device);
    println!(
        "--- greedy continuation of {:?} ---",
        config.train.sample_prompt
    );
    println!("{}", tokenizer.decode(&continuation)?);
    Ok(())
}
