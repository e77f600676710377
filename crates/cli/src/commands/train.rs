//! `tinygpt train`: opens a session (a new run or a resumed one, see `tinygpt_train::session`),
//! runs the training loop with a progress bar, and prints a summary and a greedy sample.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use burn::module::Module;
use indicatif::{HumanCount, HumanDuration};
use tinygpt_model::ParamCount;
use tinygpt_model::generate::greedy;
use tinygpt_train::collective::{Collective, weights_fingerprint};
use tinygpt_train::run::metrics::MetricsLine;
use tinygpt_train::run::weights::save_run_model;
use tinygpt_train::run::{Replaced, RunDir};
use tinygpt_train::session::{Session, SessionOptions};
use tinygpt_train::trainer::{Quiet, Stopped, TrainObserver, Trainer};

use crate::plots::refresh_run_plot;
use crate::progress::{Progress, encoding_bar};
use crate::ranks::Job;
use crate::signals::{exit_code, interrupt_flag};

#[derive(Debug, clap::Args)]
pub struct TrainArgs {
    /// Run configuration (TOML with [model], [data] and [train] sections). The default is the
    /// modern recipe; configs/shakespeare-char.toml is the GPT-2 one.
    #[arg(
        long,
        default_value = "configs/shakespeare-modern.toml",
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
    /// Fine-tune: start from this model's weights and tokenizer (a tinygpt run, or a Hugging
    /// Face GPT-2 folder), with a fresh optimizer and schedule. The config's [model] section
    /// may be left out: the weights fix it (only model.dropout and a smaller block_size may
    /// be chosen).
    #[arg(long, value_name = "RUN_OR_HF_DIR", conflicts_with = "resume")]
    pub init_from: Option<PathBuf>,
    /// Count and skip documents that cannot be read (bad JSON, no text field, not UTF-8)
    /// instead of stopping at the first (sets data.skip_bad_documents; a resumed run keeps
    /// its own setting).
    #[arg(long, conflicts_with = "resume")]
    pub skip_bad_documents: bool,
}

/// Trains; the exit code is 0 when the run finished or stopped at `--stop-at-step`, and
/// 128 + the signal's number when a signal stopped it. In an MPI job every rank runs this;
/// rank 0 alone prints and writes.
pub fn train(args: TrainArgs, job: &Job) -> Result<ExitCode> {
    let collective = job.collective();
    let leader = collective.is_leader();
    let interrupt = interrupt_flag(leader, collective.ranks())?;
    let mut overrides = args.overrides;
    if args.skip_bad_documents {
        overrides.push("data.skip_bad_documents=true".into());
    }
    let options = SessionOptions {
        config: args.config,
        device: args.device,
        out: args.out,
        overrides,
        overwrite: args.overwrite,
        force: args.force,
        resume: args.resume,
        init_from: args.init_from,
        checkpoint: args.checkpoint,
        stop_at_step: args.stop_at_step,
        ranks: collective.ranks(),
        rank: collective.rank(),
    };
    let Some(session) = open_session(&options, collective)? else {
        // Another rank failed to open the run and said why.
        return Ok(ExitCode::FAILURE);
    };
    job.set_in_lockstep();
    if leader {
        announce(&session, collective.ranks());
    }
    // What the loop consumes moves out; the rest is read in place.
    let Session {
        start,
        mut metrics,
        replaced,
        hashes,
        ..
    } = session;
    let (config, tokenizer, splits, run, device, prompt) = (
        &session.config,
        &session.tokenizer,
        &session.splits,
        &session.run,
        &session.device,
        &session.prompt,
    );
    let trainer = Trainer {
        config,
        splits,
        device: device.clone().autodiff(),
        checkpoints: run.checkpoints(),
        hashes,
        stop_at_step: options.stop_at_step,
        interrupt,
        val_bytes_per_token: tokenizer.bytes_per_token(&splits.val.all()),
        collective,
        conversations: (config.data.format == Some(tinygpt_data::config::Format::Chat))
            .then(|| tinygpt_data::ChatSplits::of(splits, tokenizer, config.model.block_size))
            .flatten(),
    };
    if !leader {
        // The same loop, in step with rank 0, writing nothing.
        let (_, summary) = trainer.run(start, &mut metrics, &mut Quiet)?;
        return Ok(match summary.stopped {
            Some(Stopped::Interrupted(signal)) => ExitCode::from(exit_code(signal)),
            _ => ExitCode::SUCCESS,
        });
    }
    let mut observer = Terminal {
        progress: Progress::new(config.train.max_steps),
        run,
        plot_failed: false,
        replaced,
    };
    let (model, summary) = trainer.run(start, &mut metrics, &mut observer)?;
    observer.progress.finish();

    if let Some(stopped) = summary.stopped {
        let (why, code) = match stopped {
            Stopped::Interrupted(signal) => ("interrupted", ExitCode::from(exit_code(signal))),
            Stopped::AtStep => ("stopped as asked", ExitCode::SUCCESS),
        };
        let checkpoint = summary.checkpoint.as_deref().unwrap_or(Path::new("?"));
        say!(
            "{why} at step {}: checkpoint saved in {}; continue with: tinygpt train --resume {}",
            summary.steps,
            checkpoint.display(),
            run.path.display()
        );
        return Ok(code);
    }

    let model = model.valid();
    save_run_model(run, &model, &config.model, tokenizer)?;
    let val = summary
        .initial_val_loss
        .map_or(String::new(), |v| format!(" (from {v:.4})"));
    say!(
        "done: {} steps | train loss {:.4} | val loss {:.4}{val} | {} | {} tok/s | weights in {}",
        summary.steps,
        summary.train_loss,
        summary.val_loss,
        HumanDuration(Duration::from_secs_f64(summary.wall_s)),
        HumanCount(summary.tokens_per_sec as u64),
        run.model().display()
    );
    let continuation = greedy(&model, &prompt.tokens, config.train.sample_tokens, device);
    outln!(
        "--- greedy continuation of {:?} ---",
        config.train.sample_prompt
    )?;
    outln!("{}", tokenizer.decode(&continuation)?)?;
    Ok(ExitCode::SUCCESS)
}

/// What rank 0 says before training: the encoding, the model and data, the global batch of a
/// data-parallel run, where a resume starts, a shortened prompt.
fn announce(session: &Session, ranks: usize) {
    let Session {
        config,
        tokenizer,
        splits,
        run,
        prompt,
        start,
        ..
    } = session;
    say!("{}", session.encoded);

    let params = ParamCount::of(&config.model);
    say!(
        "tinygpt: {} parameters | {} layers, {} heads, n_embd {}, block {} | vocab {} | {} train / {} val tokens | device {} | run {}",
        HumanCount(params.total() as u64),
        config.model.n_layer,
        config.model.n_head,
        config.model.n_embd,
        config.model.block_size,
        tokenizer.vocab_size(),
        HumanCount(splits.train.len() as u64),
        HumanCount(splits.val.len() as u64),
        session.device_label,
        run.path.display()
    );
    if ranks > 1 {
        let per_rank = config.train.batch_size * config.train.grad_accum;
        say!(
            "data parallel: {} ranks × {} sequences (batch_size {} × grad_accum {}) = a global batch of {} sequences, {} tokens per step",
            ranks,
            per_rank,
            config.train.batch_size,
            config.train.grad_accum,
            per_rank * ranks,
            HumanCount((per_rank * ranks * config.model.block_size) as u64)
        );
    }
    if let Some(source) = &session.initialised_from {
        say!(
            "fine-tuning: weights and tokenizer from {}, a fresh optimizer and schedule",
            source.display()
        );
    }
    if let Some(dir) = &session.resumed_from {
        say!("resuming at step {} from {}", start.step, dir.display());
    }
    if prompt.dropped > 0 {
        say!(
            "note: train.sample_prompt is {} tokens; keeping its last {} (the model's block_size)",
            prompt.dropped + prompt.tokens.len(),
            prompt.tokens.len()
        );
    }
}

/// Opens this rank's session: rank 0 first (it checks everything and writes the run
/// directory), then the others, who read what it wrote. Every rank learns whether all
/// succeeded, so none waits for a rank that gave up: `None` means another rank failed.
fn open_session(options: &SessionOptions, collective: &dyn Collective) -> Result<Option<Session>> {
    let session = if collective.is_leader() {
        let mut bar = encoding_bar();
        let session = Session::open(options, &mut |done, total| bar.update(done, total));
        bar.finish();
        if collective.max_u64(u64::from(session.is_err())) != 0 {
            return session.map(Some);
        }
        session
    } else if collective.max_u64(0) != 0 {
        return Ok(None);
    } else {
        Session::open(options, &mut |_, _| {})
    };
    let failed = collective.max_u64(u64::from(session.is_err())) != 0;
    let session = session?;
    if failed {
        if collective.is_leader() {
            say!("error: another rank could not open the run (its message is above)");
        }
        return Ok(None);
    }
    if collective.ranks() > 1 && !collective.all_equal(weights_fingerprint(&session.start.model)) {
        anyhow::bail!(
            "the ranks do not start from the same weights: run every rank with the same tinygpt binary, config and --device"
        );
    }
    Ok(Some(session))
}

/// The training loop as a terminal sees it: a progress bar, `loss.png` redrawn after each
/// evaluation, and the run `--overwrite` replaced cleared at the first checkpoint.
struct Terminal<'a> {
    progress: Progress,
    run: &'a RunDir,
    plot_failed: bool,
    replaced: Option<Replaced>,
}

impl TrainObserver for Terminal<'_> {
    fn logged(&mut self, line: &MetricsLine) {
        self.progress.log(line);
    }

    fn evaluated(&mut self) {
        if let Err(e) = refresh_run_plot(self.run)
            && !std::mem::replace(&mut self.plot_failed, true)
        {
            say!("warning: {e:#} (training goes on)");
        }
    }

    fn checkpointed(&mut self, _dir: &Path) {
        if let Some(warning) = self
            .replaced
            .take()
            .and_then(Replaced::discard_with_warning)
        {
            say!("warning: {warning}");
        }
    }
}
