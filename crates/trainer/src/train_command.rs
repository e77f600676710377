//! `tinygpt train`: a new run (config → corpus → tokenizer → splits → model) or a resumed one
//! (run directory → checkpoint → the same state), then the training loop and a summary.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use burn::module::Module;
use burn::tensor::Device;
use indicatif::{HumanCount, HumanDuration};
use tinygpt_data::{Splits, Tokenizer, read_corpus};
use tinygpt_model::{Gpt, ParamCount};

use crate::checkpoint::{self, write_synced};
use crate::config::{RunConfig, check_resumable};
use crate::corpus_tokens::{build_tokenizer, encode_corpus};
use crate::device::open_device;
use crate::generate::greedy;
use crate::hash::sha256_hex;
use crate::metrics::MetricsWriter;
use crate::plot_command::refresh_run_plot;
use crate::progress::Progress;
use crate::run_dir::RunDir;
use crate::sampling::prompt_tokens;
use crate::signals::interrupt_flag;
use crate::trainer::{Hashes, Start, Stopped, Trainer};
use crate::weights::save_export;

#[derive(Debug, clap::Args)]
pub struct TrainArgs {
    /// Run configuration (TOML with [model], [data] and [train] sections).
    #[arg(
        long,
        default_value = "configs/shakespeare-char.toml",
        conflicts_with = "resume"
    )]
    pub config: PathBuf,
    /// Compute device: auto, flex, ndarray, wgpu or wgpu:KIND (see `tinygpt devices`); overrides train.device.
    #[arg(long)]
    pub device: Option<String>,
    /// Run directory [default: runs/<config name>].
    #[arg(long, conflicts_with = "resume")]
    pub out: Option<PathBuf>,
    /// Override a config key, e.g. --set train.max_steps=500 (repeatable).
    #[arg(long = "set", value_name = "SECTION.KEY=VALUE")]
    pub overrides: Vec<String>,
    /// Replace an existing run in the run directory.
    #[arg(long, conflicts_with = "resume")]
    pub overwrite: bool,
    /// Continue the run in RUN_DIR from a checkpoint, exactly where it stopped.
    #[arg(long, value_name = "RUN_DIR")]
    pub resume: Option<PathBuf>,
    /// Checkpoint to resume from: latest, best or step-N.
    #[arg(long, default_value = "latest", requires = "resume")]
    pub checkpoint: String,
    /// Stop after this step with a checkpoint, leaving the LR schedule as configured.
    #[arg(long, value_name = "STEP")]
    pub stop_at_step: Option<usize>,
}

/// Everything the training loop needs, from a new run or a resumed one.
struct Session {
    config: RunConfig,
    tokenizer: Tokenizer,
    splits: Splits,
    run: RunDir,
    device: Device,
    /// The device as the user named it, with what `auto` picked.
    device_label: String,
    hashes: Hashes,
    prompt: Vec<u32>,
    start: Start,
    metrics: MetricsWriter,
    resumed_from: Option<PathBuf>,
}

pub fn train(args: TrainArgs) -> Result<()> {
    let interrupt = interrupt_flag()?;
    let session = match &args.resume {
        Some(dir) => resume(&args, dir)?,
        None => start(&args)?,
    };
    let Session {
        config,
        tokenizer,
        splits,
        run,
        device,
        device_label,
        hashes,
        prompt,
        start,
        mut metrics,
        resumed_from,
    } = session;

    let params = ParamCount::of(&config.model);
    eprintln!(
        "tinygpt: {} parameters | {} layers, {} heads, n_embd {}, block {} | vocab {} | {} train / {} val tokens | device {} | run {}",
        HumanCount(params.total() as u64),
        config.model.n_layer,
        config.model.n_head,
        config.model.n_embd,
        config.model.block_size,
        tokenizer.vocab_size(),
        HumanCount(splits.train.len() as u64),
        HumanCount(splits.val.len() as u64),
        device_label,
        run.path.display()
    );
    if let Some(dir) = &resumed_from {
        eprintln!("resuming at step {} from {}", start.step, dir.display());
    }

    let mut progress = Progress::new(config.train.max_steps);
    let plot_failed = std::cell::Cell::new(false);
    let redraw = || {
        if let Err(e) = refresh_run_plot(&run)
            && !plot_failed.replace(true)
        {
            eprintln!("warning: {e:#} (training goes on)");
        }
    };
    let trainer = Trainer {
        config: &config,
        splits: &splits,
        device: device.clone().autodiff(),
        checkpoints: run.checkpoints(),
        hashes,
        stop_at_step: args.stop_at_step,
        interrupt,
        val_bytes_per_token: tokenizer.bytes_per_token(&splits.val.all()),
        after_eval: Some(&redraw),
    };
    let (model, summary) = trainer.run(start, &mut metrics, &mut progress)?;
    progress.finish();

    if let Some(stopped) = summary.stopped {
        let why = match stopped {
            Stopped::Interrupted => "interrupted",
            Stopped::AtStep => "stopped as asked",
        };
        let checkpoint = summary.checkpoint.as_deref().unwrap_or(Path::new("?"));
        eprintln!(
            "{why} at step {}: checkpoint saved in {}; continue with: tinygpt train --resume {}",
            summary.steps,
            checkpoint.display(),
            run.path.display()
        );
        return Ok(());
    }

    let model = model.valid();
    save_export(&model, &config.model, &tokenizer, &run.model())?;
    let val = summary
        .initial_val_loss
        .map_or(String::new(), |v| format!(" (from {v:.4})"));
    eprintln!(
        "done: {} steps | train loss {:.4} | val loss {:.4}{val} | {} | {} tok/s | weights in {}",
        summary.steps,
        summary.train_loss,
        summary.val_loss,
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

/// A new run: build the tokenizer from the corpus and a freshly initialised model.
fn start(args: &TrainArgs) -> Result<Session> {
    let mut config = RunConfig::load(&args.config, &args.overrides)?;
    if let Some(device) = &args.device {
        config.train.device = device.clone();
    }
    let (device, device_label) = open_device(&config.train.device)?;
    let text = read_corpus(&config.data.corpus)?;
    let tokenizer = build_tokenizer(&config, &text)?;
    if config.model.vocab_size == 0 {
        config.model.vocab_size = tokenizer.vocab_size();
    }
    let (splits, prompt, encoded) = prepare(&config, &tokenizer, &text)?;

    let name = args
        .config
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "run".into());
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("runs").join(name));
    let run = RunDir::create(&out, args.overwrite)?;
    write_config(&run, &config)?;
    eprintln!("{encoded}");
    tokenizer.save(&run.tokenizer())?;
    let hashes = Hashes {
        corpus_sha256: sha256_hex(text.as_bytes()),
        tokenizer_sha256: crate::hash::sha256_file(&run.tokenizer())?,
    };

    device.seed(config.train.seed);
    let model = Gpt::new(&config.model, config.train.seed, &device.clone().autodiff())?;
    let metrics = MetricsWriter::create(&run.metrics())?;
    Ok(Session {
        start: Start::fresh(model, &config),
        config,
        tokenizer,
        splits,
        run,
        device,
        device_label,
        hashes,
        prompt,
        metrics,
        resumed_from: None,
    })
}

/// A resumed run: everything comes from the run directory and one checkpoint, and is checked
/// against what the run was started with.
fn resume(args: &TrainArgs, dir: &Path) -> Result<Session> {
    let run = RunDir::open(dir)?;
    let checkpoint_dir = checkpoint::resolve(&run.checkpoints(), &args.checkpoint)?;
    let state = checkpoint::load_state(&checkpoint_dir)?;
    let mut config = state.config.with_overrides(&args.overrides)?;
    if let Some(device) = &args.device {
        config.train.device = device.clone();
    }
    check_resumable(&state.config, &config)?;
    if state.step >= config.train.max_steps {
        bail!(
            "the run is already at step {} of train.max_steps = {}: extend it with --set train.max_steps=N",
            state.step,
            config.train.max_steps
        );
    }
    let (device, device_label) = open_device(&config.train.device)?;

    let text = read_corpus(&config.data.corpus)?;
    if sha256_hex(text.as_bytes()) != state.corpus_sha256 {
        bail!(
            "corpus {} changed since the run started (sha256 differs from the checkpoint's): restore the original file or start a new run",
            config.data.corpus.display()
        );
    }
    let tokenizer_hash = crate::hash::sha256_file(&run.tokenizer())?;
    if tokenizer_hash != state.tokenizer_sha256 {
        bail!(
            "tokenizer {} changed since the run started (sha256 differs from the checkpoint's): restore it or start a new run",
            run.tokenizer().display()
        );
    }
    let tokenizer = Tokenizer::load(&run.tokenizer())?;
    let (splits, prompt, encoded) = prepare(&config, &tokenizer, &text)?;

    let model = Gpt::new(&config.model, config.train.seed, &device.clone().autodiff())?;
    let model = checkpoint::load_model(&checkpoint_dir, model)?;
    let optim = checkpoint::load_optimizer(&checkpoint_dir, &config, &device)?;
    let metrics = MetricsWriter::append(&run.metrics(), state.metrics_bytes)?;
    write_config(&run, &config)?;
    eprintln!("{encoded}");
    Ok(Session {
        start: Start {
            model,
            optim,
            sampler: state.sampler,
            step: state.step,
            best_val_loss: state.best_val_loss,
            elapsed_s: state.elapsed_s,
            train_seconds: state.train_seconds,
        },
        hashes: Hashes {
            corpus_sha256: state.corpus_sha256,
            tokenizer_sha256: state.tokenizer_sha256,
        },
        config,
        tokenizer,
        splits,
        run,
        device,
        device_label,
        prompt,
        metrics,
        resumed_from: Some(checkpoint_dir),
    })
}

/// Tokenizes the corpus and the sample prompt and splits the tokens, after checking that the
/// model's vocabulary covers the tokenizer's.
fn prepare(
    config: &RunConfig,
    tokenizer: &Tokenizer,
    text: &str,
) -> Result<(Splits, Vec<u32>, String)> {
    let vocab = tokenizer.vocab_size();
    if config.model.vocab_size < vocab {
        bail!(
            "model.vocab_size = {} is smaller than the tokenizer's {vocab} tokens: remove the key or set it to at least {vocab}",
            config.model.vocab_size
        );
    }
    let prompt = prompt_tokens(
        tokenizer,
        &config.train.sample_prompt,
        config.model.block_size,
    )
    .context("train.sample_prompt")?;
    let encoded = encode_corpus(config, tokenizer, text)?;
    let description = encoded.describe();
    Ok((encoded.splits, prompt, description))
}

fn write_config(run: &RunDir, config: &RunConfig) -> Result<()> {
    let tmp = run.path.join(".config.toml.tmp");
    write_synced(&tmp, toml::to_string(config)?.as_bytes())?;
    std::fs::rename(&tmp, run.config())
        .with_context(|| format!("cannot write {}", run.config().display()))
}
