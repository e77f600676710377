//! `tinygpt train`: a new run (config → corpus → tokenizer → splits → model) or a resumed one
//! (run directory → checkpoint → the same state), then the training loop and a summary.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use burn::module::Module;
use burn::tensor::Device;
use indicatif::{HumanCount, HumanDuration};
use tinygpt_data::{Splits, Tokenizer, read_corpus};
use tinygpt_model::{Gpt, ParamCount};

use crate::checkpoint;
use crate::config::{RunConfig, check_resumable};
use crate::corpus_tokens::{build_tokenizer, encode_corpus};
use crate::device::open_device;
use crate::files::write_atomic;
use crate::footprint::Footprint;
use crate::generate::greedy;
use crate::hash::sha256_hex;
use crate::metrics::MetricsWriter;
use crate::plot_command::refresh_run_plot;
use crate::progress::Progress;
use crate::run_dir::{Replaced, RunDir, RunKind};
use crate::sampling::prompt_tokens;
use crate::signals::{exit_code, interrupt_flag};
use crate::trainer::{Hashes, Start, Stopped, Trainer};
use crate::weights::save_run_model;

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
    /// Replace the run in the run directory: the old one is moved aside, and its files are
    /// deleted once the new run has its first checkpoint (files tinygpt did not write stay).
    #[arg(long, conflicts_with = "resume")]
    pub overwrite: bool,
    /// Train even when the memory estimate exceeds the memory available.
    #[arg(long)]
    pub force: bool,
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
    /// The run `--overwrite` moved aside, until the new run's first checkpoint.
    replaced: Option<Replaced>,
}

/// Trains; the exit code is 0 when the run finished or stopped at `--stop-at-step`, and
/// 128 + the signal's number when a signal stopped it.
pub fn train(args: TrainArgs) -> Result<ExitCode> {
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
        replaced,
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
    let replaced = RefCell::new(replaced);
    let first_checkpoint = |_: &Path| {
        if let Some(old) = replaced.borrow_mut().take() {
            let aside = old.aside.clone();
            match old.discard() {
                Ok(left) if left.is_empty() => {}
                Ok(left) => {
                    let names: Vec<String> = left
                        .iter()
                        .filter_map(|p| p.file_name())
                        .map(|n| n.to_string_lossy().into_owned())
                        .collect();
                    eprintln!(
                        "warning: the replaced run held files tinygpt did not write; they are kept in {}: {}",
                        aside.display(),
                        names.join(", ")
                    );
                }
                Err(e) => eprintln!(
                    "warning: the replaced run in {} could not be cleared ({e:#}); remove it yourself",
                    aside.display()
                ),
            }
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
        after_checkpoint: Some(&first_checkpoint),
    };
    let (model, summary) = trainer.run(start, &mut metrics, &mut progress)?;
    progress.finish();

    if let Some(stopped) = summary.stopped {
        let (why, code) = match stopped {
            Stopped::Interrupted(signal) => ("interrupted", ExitCode::from(exit_code(signal))),
            Stopped::AtStep => ("stopped as asked", ExitCode::SUCCESS),
        };
        let checkpoint = summary.checkpoint.as_deref().unwrap_or(Path::new("?"));
        eprintln!(
            "{why} at step {}: checkpoint saved in {}; continue with: tinygpt train --resume {}",
            summary.steps,
            checkpoint.display(),
            run.path.display()
        );
        return Ok(code);
    }

    let model = model.valid();
    save_run_model(&run, &model, &config.model, &tokenizer)?;
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
    Ok(ExitCode::SUCCESS)
}

/// A new run: build the tokenizer from the corpus and a freshly initialised model. Every
/// check runs, and the model is built, before the run directory is touched.
fn start(args: &TrainArgs) -> Result<Session> {
    let mut config = RunConfig::load(&args.config, &args.overrides)?;
    if let Some(device) = &args.device {
        config.train.device = device.clone();
    }
    if args.stop_at_step == Some(0) {
        bail!("--stop-at-step 0: a new run starts at step 0; pass a step of at least 1");
    }
    let name = args
        .config
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "run".into());
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("runs").join(name));
    RunDir::check_new(&out, args.overwrite)?;
    let (device, device_label) = open_device(&config.train.device)?;
    let text = read_corpus(&config.data.corpus)?;
    let tokenizer = build_tokenizer(&config, &text)?;
    if config.model.vocab_size == 0 {
        config.model.vocab_size = tokenizer.vocab_size();
    }
    check_memory(&config, args.force)?;
    let (splits, prompt, encoded) = prepare(&config, &tokenizer, &text)?;
    device.seed(config.train.seed);
    let model = Gpt::new(&config.model, config.train.seed, &device.clone().autodiff())?;

    let (run, replaced) = RunDir::create(&out, RunKind::Trained, args.overwrite)?;
    write_config(&run, &config)?;
    eprintln!("{encoded}");
    tokenizer.save(&run.tokenizer())?;
    let hashes = Hashes {
        corpus_sha256: sha256_hex(text.as_bytes()),
        tokenizer_sha256: crate::hash::sha256_file(&run.tokenizer())?,
    };
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
        replaced,
    })
}

/// Refuses a run that cannot fit in memory, unless `force`.
fn check_memory(config: &RunConfig, force: bool) -> Result<()> {
    if force {
        return Ok(());
    }
    Footprint::training(config).check(
        "make the model (model.n_layer, n_embd, vocab_size, block_size) or the batch (train.batch_size, grad_accum, eval_batches) smaller, or pass --force if you know better",
    )
}

/// A resumed run: everything comes from the run directory and one checkpoint, and is checked
/// against what the run was started with.
fn resume(args: &TrainArgs, dir: &Path) -> Result<Session> {
    let run = RunDir::open_for_writing(dir)?;
    if checkpoint::list(&run.checkpoints())?.is_empty() {
        bail!(
            "{} has no checkpoint to resume from (it stopped before its first one): start it again with `tinygpt train --config {} --out {} --overwrite`",
            run.path.display(),
            run.config().display(),
            run.path.display()
        );
    }
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
    if let Some(stop) = args.stop_at_step
        && stop <= state.step
    {
        bail!(
            "--stop-at-step {stop}: the run is already at step {}; pass a later step",
            state.step
        );
    }
    check_memory(&config, args.force)?;
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
        replaced: None,
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
    // The corpus first: a corpus too short to train on is the problem to report, not a
    // prompt its few characters cannot spell.
    let encoded = encode_corpus(config, tokenizer, text)?;
    let prompt = sample_prompt(config, tokenizer, &encoded.splits)?;
    let description = encoded.describe();
    Ok((encoded.splits, prompt, description))
}

/// The tokens of `train.sample_prompt`. The default prompt (a newline) falls back to the
/// corpus's first token when the corpus has no newline; a prompt the user chose must encode.
fn sample_prompt(config: &RunConfig, tokenizer: &Tokenizer, splits: &Splits) -> Result<Vec<u32>> {
    let text = &config.train.sample_prompt;
    match prompt_tokens(tokenizer, text, config.model.block_size) {
        Ok(tokens) => Ok(tokens),
        Err(_) if text.as_str() == crate::config::DEFAULT_SAMPLE_PROMPT => {
            Ok(vec![splits.train.get(0)])
        }
        Err(e) => Err(e).with_context(|| {
            format!(
                "train.sample_prompt = {text:?} cannot be encoded by this corpus's tokenizer: pass --set train.sample_prompt=TEXT with text from the corpus"
            )
        }),
    }
}

fn write_config(run: &RunDir, config: &RunConfig) -> Result<()> {
    write_atomic(&run.config(), toml::to_string(config)?.as_bytes())
}
