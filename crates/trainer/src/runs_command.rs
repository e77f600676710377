//! `tinygpt runs`: one line per run directory, to compare experiments.

use std::path::PathBuf;

use anyhow::{Context, Result};
use indicatif::HumanCount;

use crate::config::RunConfig;
use crate::metrics::read_metrics;
use crate::run_dir::RunDir;

#[derive(Debug, clap::Args)]
pub struct RunsArgs {
    /// Directory holding run directories.
    #[arg(default_value = "runs")]
    pub dir: PathBuf,
}

#[derive(Debug, PartialEq)]
pub struct RunRow {
    pub name: String,
    pub steps: usize,
    pub max_steps: usize,
    pub best_val_loss: Option<f64>,
    pub best_val_bpb: Option<f64>,
    pub tokens: u64,
    pub wall_s: f64,
    pub device: String,
    pub finished: bool,
}

pub fn runs_command(args: RunsArgs) -> Result<()> {
    let rows = collect(&args.dir)?;
    if rows.is_empty() {
        println!("no runs in {}", args.dir.display());
        return Ok(());
    }
    println!(
        "{:<28} {:>13} {:>9} {:>7} {:>14} {:>9} {:<8} state",
        "run", "steps", "best val", "bpb", "tokens", "wall", "device"
    );
    for r in rows {
        let opt = |v: Option<f64>, p: usize| v.map_or("-".into(), |v| format!("{v:.p$}"));
        println!(
            "{:<28} {:>13} {:>9} {:>7} {:>14} {:>9} {:<8} {}",
            r.name,
            format!("{}/{}", r.steps, r.max_steps),
            opt(r.best_val_loss, 4),
            opt(r.best_val_bpb, 3),
            HumanCount(r.tokens).to_string(),
            format!("{:.0}s", r.wall_s),
            r.device,
            if r.finished { "finished" } else { "stopped" }
        );
    }
    Ok(())
}

/// The runs directly under `dir` (directories with a config.toml), sorted by name.
pub fn collect(dir: &std::path::Path) -> Result<Vec<RunRow>> {
    let entries =
        std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))?;
    let mut rows = Vec::new();
    for entry in entries {
        let path = entry?.path();
        let Ok(run) = RunDir::open(&path) else {
            continue;
        };
        let Ok(config) = RunConfig::load(&run.config(), &[]) else {
            continue;
        };
        let lines = read_metrics(&run.metrics()).unwrap_or_default();
        let best = lines
            .iter()
            .filter_map(|l| l.val_loss.map(|v| (v, l)))
            .min_by(|a, b| a.0.total_cmp(&b.0))
            .map(|(_, l)| l);
        let last = lines.last();
        rows.push(RunRow {
            name: path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            steps: last.map_or(0, |l| l.step),
            max_steps: config.train.max_steps,
            best_val_loss: best.and_then(|l| l.val_loss),
            best_val_bpb: best.and_then(|l| l.val_bpb),
            tokens: last.map_or(0, |l| l.tokens),
            wall_s: last.map_or(0.0, |l| l.elapsed_s),
            device: config.train.device,
            finished: run.model().is_file(),
        });
    }
    rows.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(rows)
}
