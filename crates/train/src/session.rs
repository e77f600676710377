//! A training session: a new run (config → corpus → tokenizer → splits → model) or a resumed
//! one (run directory → checkpoint → the same state), every check done and the model built
//! before the run directory is touched.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use tinygpt_data::pipeline::Input;
use tinygpt_data::{Prompt, Splits, Tokenizer, prompt_tokens};
use tinygpt_model::Gpt;

use crate::config::{RunConfig, check_resumable};
use crate::device::{check_precision, open_device};
use crate::footprint::Footprint;
use crate::init_from::InitSource;
use crate::run::checkpoint;
use crate::run::files::write_atomic;
use crate::run::metrics::MetricsWriter;
use crate::run::{Replaced, RunDir, RunKind};
use crate::trainer::{Hashes, Start};
use burn::tensor::Device;

/// What the user asked for: `tinygpt train`'s options, with no command-line parser attached.
#[derive(Debug, Clone)]
pub struct SessionOptions {
    /// Run configuration (TOML with [model], [data] and [train] sections).
    pub config: PathBuf,
    /// Overrides the config's `train.device`.
    pub device: Option<String>,
    /// Run directory [default: runs/<config name>].
    pub out: Option<PathBuf>,
    /// `section.key=value` overrides.
    pub overrides: Vec<String>,
    /// Replace the run in `out` (moved aside until the new run's first checkpoint).
    pub overwrite: bool,
    /// Train even when the memory estimate exceeds the memory available.
    pub force: bool,
    /// Continue the run in this directory.
    pub resume: Option<PathBuf>,
    /// Start a new run from this model's weights and tokenizer (a run or a Hugging Face
    /// folder): fine-tuning.
    pub init_from: Option<PathBuf>,
    /// Which checkpoint to resume from: latest, best or step-N.
    pub checkpoint: String,
    /// Stop after this step with a checkpoint.
    pub stop_at_step: Option<usize>,
    /// Data-parallel ranks training together (1 for one process).
    pub ranks: usize,
    /// This process's rank. Rank 0 (the leader) checks everything and writes the run
    /// directory; the others (followers) open their session after it has, and only read.
    pub rank: usize,
}

impl SessionOptions {
    fn leader(&self) -> bool {
        self.rank == 0
    }
}

/// Everything the training loop needs, from a new run or a resumed one.
pub struct Session {
    pub config: RunConfig,
    pub tokenizer: Tokenizer,
    pub splits: Splits,
    pub run: RunDir,
    pub device: Device,
    /// The device as the user named it, with what `auto` picked.
    pub device_label: String,
    pub hashes: Hashes,
    /// `train.sample_prompt` as tokens, for the greedy sample at the end.
    pub prompt: Prompt,
    pub start: Start,
    pub metrics: MetricsWriter,
    pub resumed_from: Option<PathBuf>,
    /// The model a new run's weights came from (`--init-from`).
    pub initialised_from: Option<PathBuf>,
    /// How the corpus became tokens, in one line for the user.
    pub encoded: String,
    /// The run `--overwrite` moved aside, until the new run's first checkpoint.
    pub replaced: Option<Replaced>,
}

impl Session {
    /// Opens the session `options` describe; `progress(done, total)` follows the corpus's
    /// encoding when it is not cached yet.
    pub fn open(options: &SessionOptions, progress: &mut dyn FnMut(usize, usize)) -> Result<Self> {
        match &options.resume {
            Some(dir) => resume(options, dir, progress),
            None => start(options, progress),
        }
    }
}

/// A new run: build the tokenizer from the corpus and a freshly initialised model. Every
/// check runs, and the model is built, before the run directory is touched.
fn start(args: &SessionOptions, progress: &mut dyn FnMut(usize, usize)) -> Result<Session> {
    let mut source = args
        .init_from
        .as_deref()
        .map(InitSource::open)
        .transpose()?;
    let mut config = match &mut source {
        Some(source) => source.run_config(&args.config, &args.overrides)?,
        None => RunConfig::load(&args.config, &args.overrides)?,
    };
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
    // Followers (MPI ranks other than 0) come after the leader has written the run: they
    // take its config and tokenizer (a BPE is trained once) and write nothing.
    let leader = args.leader();
    let written = if leader {
        RunDir::check_new(&out, args.overwrite)?;
        None
    } else {
        let run = RunDir::open(&out)?;
        config = RunConfig::load(&run.config(), &[])?;
        Some(run)
    };
    let (device, device_label) = open_device(&config.train.device)?;
    check_precision(config.train.precision, &device, &device_label)?;
    let input = Input::open(&config.data, config.train.seed)?;
    if let Some(source) = &source {
        source.check_corpus(&input, &config.data.corpus)?;
        // The tokenizer is the model's: the config records the run's copy of it.
        config.data.tokenizer = out.join(crate::run::TOKENIZER).display().to_string();
    }
    let tokenizer = match (&written, &source) {
        (Some(run), _) => Tokenizer::load(&run.tokenizer())?,
        (None, Some(source)) => source.tokenizer.clone(),
        (None, None) => input.build_tokenizer(&config.data)?,
    };
    if config.model.vocab_size == 0 {
        config.model.vocab_size = tokenizer.vocab_size();
    }
    if leader {
        check_memory(&config, args.force)?;
    }
    let (splits, prompt, encoded) = prepare(&config, &tokenizer, &input, progress)?;
    // The same seed on every rank gives the same weights (the trainer checks they agree).
    device.seed(config.train.seed);
    let model = match &mut source {
        Some(source) => {
            source.model(&config.model, config.train.seed, &device.clone().autodiff())?
        }
        None => Gpt::new(&config.model, config.train.seed, &device.clone().autodiff())?,
    };

    let (run, replaced, metrics) = match written {
        None => {
            let (run, replaced) = RunDir::create(&out, RunKind::Trained, args.overwrite)?;
            write_config(&run, &config)?;
            write_atomic(&run.tokenizer(), tokenizer.to_json()?.as_bytes())?;
            let metrics = MetricsWriter::create(&run.metrics())?;
            (run, replaced, metrics)
        }
        Some(run) => (run, None, MetricsWriter::discard()),
    };
    let hashes = Hashes {
        corpus_sha256: input.fingerprint(),
        tokenizer_sha256: crate::run::hash::sha256_file(&run.tokenizer())?,
    };
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
        initialised_from: source.map(|s| s.path),
        encoded,
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
fn resume(
    args: &SessionOptions,
    dir: &Path,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Session> {
    // The leader locks the run; followers read it while the leader holds the lock.
    let run = if args.leader() {
        RunDir::open_for_writing(dir)?
    } else {
        RunDir::open(dir)?
    };
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
    keep_global_batch(&mut config, state.ranks, args.ranks)?;
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
    check_precision(config.train.precision, &device, &device_label)?;

    let input = Input::open(&config.data, config.train.seed)?;
    if input.fingerprint() != state.corpus_sha256 {
        bail!(
            "corpus {} changed since the run started (sha256 differs from the checkpoint's): restore the original files or start a new run",
            config.data.corpus
        );
    }
    let tokenizer_hash = crate::run::hash::sha256_file(&run.tokenizer())?;
    if tokenizer_hash != state.tokenizer_sha256 {
        bail!(
            "tokenizer {} changed since the run started (sha256 differs from the checkpoint's): restore it or start a new run",
            run.tokenizer().display()
        );
    }
    let tokenizer = Tokenizer::load(&run.tokenizer())?;
    let (splits, prompt, encoded) = prepare(&config, &tokenizer, &input, progress)?;

    let model = Gpt::new(&config.model, config.train.seed, &device.clone().autodiff())?;
    let model = checkpoint::load_model(&checkpoint_dir, model)?;
    let optim = checkpoint::load_optimizer(&checkpoint_dir, &config, &device)?;
    let metrics = if args.leader() {
        let metrics = MetricsWriter::append(&run.metrics(), state.metrics_bytes)?;
        write_config(&run, &config)?;
        metrics
    } else {
        MetricsWriter::discard()
    };
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
        initialised_from: None,
        encoded,
        replaced: None,
    })
}

/// A run saved by `saved` ranks resumes on `ranks` with the same global batch (micro-batches
/// per step over all ranks, `grad_accum × ranks`), so the data order and the schedule go on
/// unchanged: each rank's `grad_accum` is the global count divided among the new ranks.
fn keep_global_batch(config: &mut RunConfig, saved: usize, ranks: usize) -> Result<()> {
    if saved == ranks {
        return Ok(());
    }
    let global = config.train.grad_accum * saved;
    if !global.is_multiple_of(ranks) {
        bail!(
            "cannot resume on {ranks} ranks: the run trained {global} micro-batches per step (train.grad_accum {} × {saved} ranks), which {ranks} ranks cannot share evenly; resume on a number of ranks that divides {global}",
            config.train.grad_accum
        );
    }
    config.train.grad_accum = global / ranks;
    Ok(())
}

/// Tokenizes the corpus and the sample prompt and splits the tokens, after checking that the
/// model's vocabulary covers the tokenizer's.
fn prepare(
    config: &RunConfig,
    tokenizer: &Tokenizer,
    input: &Input,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<(Splits, Prompt, String)> {
    let vocab = tokenizer.vocab_size();
    if config.model.vocab_size < vocab {
        bail!(
            "model.vocab_size = {} is smaller than the tokenizer's {vocab} tokens: remove the key or set it to at least {vocab}",
            config.model.vocab_size
        );
    }
    // The corpus first: a corpus too short to train on is the problem to report, not a
    // prompt its few characters cannot spell.
    let encoded = input.encode(&config.data, config.model.block_size, tokenizer, progress)?;
    let prompt = sample_prompt(config, tokenizer, &encoded.splits)?;
    let description = encoded.describe();
    Ok((encoded.splits, prompt, description))
}

/// The tokens of `train.sample_prompt`. The default prompt (a newline) falls back to the
/// corpus's first token when the corpus has no newline; a prompt the user chose must encode.
fn sample_prompt(config: &RunConfig, tokenizer: &Tokenizer, splits: &Splits) -> Result<Prompt> {
    let text = &config.train.sample_prompt;
    match prompt_tokens(tokenizer, text, config.model.block_size) {
        Ok(prompt) => Ok(prompt),
        Err(_) if text.as_str() == crate::config::DEFAULT_SAMPLE_PROMPT => Ok(Prompt {
            tokens: vec![splits.train.get(0)],
            dropped: 0,
        }),
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
