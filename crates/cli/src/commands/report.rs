//! `tinygpt report`: a run on one self-contained page (summary, curves, greedy sample,
//! attention explorer, parameters, config). With `--watch` it rewrites the page at each
//! evaluation while the run trains, and the page reloads itself.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use indicatif::HumanCount;
use tinygpt_data::prompt_tokens;
use tinygpt_model::generate::greedy;
use tinygpt_viz::html::{Curves, Explorer, Report, Sample, report_page};

use tinygpt_train::config::RunConfig;
use tinygpt_train::run::files::write_atomic;
use tinygpt_train::run::metrics::{MetricsLine, read_metrics};
use tinygpt_train::run::weights::open_trained_run;
use tinygpt_train::run::{RunDir, checkpoint, holder_of_lock, is_run};

use crate::attention_maps::{explorer, head_maps, token_labels};
use crate::param_table::table;
use crate::run_summary::{RunRow, RunState};

/// What every page tinygpt report writes carries near its top (the template has it), so a
/// later report may replace it.
const GENERATOR: &str = r#"<meta name="generator" content="tinygpt report">"#;

#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// Run directory written by `tinygpt train`.
    #[arg(long)]
    pub run: PathBuf,
    /// The page to write (an earlier report there is replaced).
    #[arg(long)]
    pub out: PathBuf,
    /// Keep the page current while the run trains: rewrite it at each evaluation and
    /// checkpoint (the open page reloads itself) until the run stops.
    #[arg(long)]
    pub watch: bool,
    /// Seconds between looks at the run (and page reloads) with --watch.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=3600))]
    pub interval: u32,
    /// Tokens of the sample (prompt, then continuation) shown in the attention explorer.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub attention_tokens: u32,
    /// Compute device for the sample and the explorer [default: the run's].
    #[arg(long)]
    pub device: Option<String>,
    /// Replace --out even when it is not a page tinygpt report wrote.
    #[arg(long)]
    pub force: bool,
}

pub fn report_command(args: ReportArgs) -> Result<()> {
    refuse_foreign_page(&args.out, args.force)?;
    if !args.watch {
        let page = build(&args, &Look::at(&args.run)?, false)?;
        for note in &page.notes {
            say!("note: {note}");
        }
        write_atomic(&args.out, page.html.as_bytes())
            .with_context(|| format!("cannot write {}", args.out.display()))?;
        say!(
            "wrote {} (step {}): open it in a browser",
            args.out.display(),
            page.step
        );
        return Ok(());
    }
    watch(&args)
}

/// Rewrites the page whenever the run has news (an evaluation, a checkpoint, final weights,
/// a change of state), until the run is no longer training.
fn watch(args: &ReportArgs) -> Result<()> {
    let interval = Duration::from_secs(u64::from(args.interval));
    if !is_run(&args.run) {
        say!(
            "waiting for {} to become a run (start `tinygpt train --out {}`)…",
            args.run.display(),
            args.run.display()
        );
        while !is_run(&args.run) {
            std::thread::sleep(interval);
        }
    }
    let mut written: Option<News> = None;
    let mut last_line = String::new();
    loop {
        // The lock is taken before the run's marker is written, so a run that exists and is
        // still being set up (no config yet) already counts as training.
        let training = holder_of_lock(&args.run).is_some();
        let look = Look::at(&args.run)?;
        let news = News::of(&args.run, &look)?;
        let row = &look.row;
        if written.as_ref() != Some(&news) {
            match build(args, &look, training) {
                Ok(page) => {
                    write_atomic(&args.out, page.html.as_bytes())
                        .with_context(|| format!("cannot write {}", args.out.display()))?;
                    let line = format!(
                        "report: step {} ({}) → {}",
                        page.step,
                        row.state.label(),
                        args.out.display()
                    );
                    if line != last_line {
                        say!("{line}");
                        last_line = line;
                    }
                    // Missing weights while training (none yet, or a checkpoint rotated away
                    // as it was read): look again at the next interval.
                    if !training || page.notes.is_empty() {
                        written = Some(news);
                    }
                }
                // A run still being set up (its config not written yet): look again.
                Err(e) if training => say!("note: {e:#}; trying again"),
                Err(e) => return Err(e),
            }
        }
        if !training && written.is_some() {
            say!("the run is {}: this report is final", row.state.label());
            return Ok(());
        }
        std::thread::sleep(interval);
    }
}

/// What makes a new page worth writing.
#[derive(Debug, PartialEq)]
struct News {
    evaluations: usize,
    latest_checkpoint: Option<String>,
    finished: bool,
    state: RunState,
}

impl News {
    fn of(dir: &Path, look: &Look) -> Result<Self> {
        let run = RunDir::open(dir)?;
        let latest = checkpoint::list(&run.checkpoints())
            .unwrap_or_default()
            .last()
            .map(|(step, _)| format!("step-{step}"));
        Ok(Self {
            evaluations: look.lines.iter().filter(|l| l.val_loss.is_some()).count(),
            latest_checkpoint: latest,
            finished: run.model().is_file(),
            state: look.row.state,
        })
    }
}

/// One look at the run: its metrics, read once, and where it stands.
struct Look {
    lines: Vec<MetricsLine>,
    row: RunRow,
}

impl Look {
    fn at(dir: &Path) -> Result<Self> {
        let lines = read_metrics(&RunDir::open(dir)?.metrics()).unwrap_or_default();
        let row = RunRow::with_metrics(dir, &lines)?;
        Ok(Self { lines, row })
    }
}

struct Page {
    html: String,
    step: usize,
    notes: Vec<String>,
}

fn build(args: &ReportArgs, look: &Look, reload: bool) -> Result<Page> {
    let run = RunDir::open(&args.run)?;
    let config_text = std::fs::read_to_string(run.config())
        .with_context(|| format!("cannot read {}", run.config().display()))?;
    let config = RunConfig::load(&run.config(), &[])?;
    let (row, lines) = (&look.row, &look.lines);
    let mut notes = Vec::new();
    // A run without usable weights still has a history worth showing: the page says why
    // the sample and the explorer are missing.
    let (sample, explorer) = match sample_and_explorer(args, &config) {
        Ok((sample, explorer)) => (Some(sample), Some(explorer)),
        Err(e) => {
            notes.push(format!("no sample or attention: {e:#}"));
            (None, None)
        }
    };
    if lines.is_empty() {
        notes.push("no steps logged yet".into());
    }
    let report = Report {
        run: crate::plots::run_name(&args.run),
        state: row.state.label().into(),
        summary: summary(row, &config, lines),
        config: config_text,
        params: table(&config.model, "model"),
        curves: curves(lines),
        sample,
        notes: notes.clone(),
        reload_seconds: reload.then_some(args.interval),
    };
    let html = report_page(&report, explorer.as_ref());
    debug_assert!(html[..512].contains(GENERATOR));
    Ok(Page {
        html,
        step: row.steps,
        notes,
    })
}

/// The greedy continuation of the run's sample prompt, and the explorer over the first
/// tokens of prompt and continuation together (the default prompt is a single newline).
fn sample_and_explorer(args: &ReportArgs, config: &RunConfig) -> Result<(Sample, Explorer)> {
    let trained = open_trained_run(&args.run, args.device.as_deref(), None)?;
    let (model, tokenizer, device) = (&trained.model, &trained.tokenizer, &trained.device);
    let prompt = prompt_tokens(tokenizer, &config.train.sample_prompt, model.block_size)?;
    let tokens = greedy(model, &prompt.tokens, config.train.sample_tokens, device);
    let new = &tokens[prompt.tokens.len()..];
    let sample = Sample {
        prompt: tokenizer.decode(&prompt.tokens)?,
        continuation: tokenizer.decode(new)?,
    };
    let shown = (args.attention_tokens as usize)
        .min(model.block_size)
        .min(tokens.len());
    let ids = &tokens[..shown];
    let heads = head_maps(model, ids, device);
    let labels = token_labels(tokenizer, ids)?;
    Ok((sample, explorer(&labels, &heads, config.model.head_size())))
}

fn summary(row: &RunRow, config: &RunConfig, lines: &[MetricsLine]) -> Vec<(String, String)> {
    let m = &config.model;
    let last_train = lines
        .iter()
        .rev()
        .find_map(|l| l.train_loss.map(|v| (l.step, v)));
    let mut speeds: Vec<f64> = lines.iter().filter_map(|l| l.tokens_per_sec).collect();
    speeds.sort_by(f64::total_cmp);
    let dash = || "–".to_string();
    vec![
        ("state".into(), row.state.label().into()),
        (
            "steps".into(),
            format!("{} of {}", row.steps, row.max_steps),
        ),
        (
            "best val loss".into(),
            match (row.best_val_loss, row.best_val_step) {
                (Some(loss), Some(step)) => format!("{loss:.4} at step {step}"),
                _ => dash(),
            },
        ),
        (
            "bits per byte (at the best val loss)".into(),
            row.best_val_bpb.map_or_else(dash, |b| format!("{b:.4}")),
        ),
        (
            "last train loss".into(),
            last_train.map_or_else(dash, |(s, v)| format!("{v:.4} at step {s}")),
        ),
        (
            "tokens per second (median of logged steps)".into(),
            speeds
                .get(speeds.len() / 2)
                .map_or_else(dash, |v| HumanCount(*v as u64).to_string()),
        ),
        ("tokens seen".into(), HumanCount(row.tokens).to_string()),
        ("wall time".into(), format!("{:.0} s", row.wall_s)),
        ("device".into(), row.device.clone()),
        (
            "model".into(),
            format!(
                "{} layers × {} heads, n_embd {}, context {}, vocab {}",
                m.n_layer, m.n_head, m.n_embd, m.block_size, m.vocab_size
            ),
        ),
    ]
}

fn curves(lines: &[MetricsLine]) -> Curves {
    Curves {
        step: lines.iter().map(|l| l.step).collect(),
        train_loss: lines.iter().map(|l| l.train_loss).collect(),
        val_loss: lines.iter().map(|l| l.val_loss).collect(),
        val_bpb: lines.iter().map(|l| l.val_bpb).collect(),
        lr: lines.iter().map(|l| l.lr).collect(),
        tokens_per_sec: lines.iter().map(|l| l.tokens_per_sec).collect(),
    }
}

/// An existing `out` must be an earlier report, unless `--force`: never overwrite a page
/// (or anything else) the user wrote.
fn refuse_foreign_page(out: &Path, force: bool) -> Result<()> {
    if out.is_dir() {
        bail!(
            "--out {} is a directory: name the page to write, e.g. {}/report.html",
            out.display(),
            out.display()
        );
    }
    // A device or a named pipe is refused even with --force (and never read: a pipe would
    // block, /dev/zero never end).
    tinygpt_train::run::files::refuse_existing(out, "--out", true)?;
    if force || !out.exists() {
        return Ok(());
    }
    let head = std::fs::read(out).unwrap_or_default();
    let head = String::from_utf8_lossy(&head[..head.len().min(512)]);
    if !head.contains(GENERATOR) {
        bail!(
            "--out {} exists and is not a tinygpt report: choose another path, or pass --force to replace it",
            out.display()
        );
    }
    Ok(())
}
