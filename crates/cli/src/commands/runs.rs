//! `tinygpt runs`: one line per run directory, to compare experiments.

use std::path::PathBuf;

use anyhow::{Context, Result};
use indicatif::HumanCount;

use tinygpt_train::run::is_run;

use crate::run_summary::RunRow;

#[derive(Debug, clap::Args)]
pub struct RunsArgs {
    /// Directory holding run directories.
    #[arg(default_value = "runs")]
    pub dir: PathBuf,
}

pub fn runs_command(args: RunsArgs) -> Result<()> {
    let rows = collect(&args.dir)?;
    if rows.is_empty() {
        outln!("no runs in {}", args.dir.display())?;
        return Ok(());
    }
    outln!(
        "{:<28} {:>13} {:>9} {:>7} {:>14} {:>9} {:<8} state",
        "run",
        "steps",
        "best val",
        "bpb",
        "tokens",
        "wall",
        "device"
    )?;
    for r in rows {
        let opt = |v: Option<f64>, p: usize| v.map_or("-".into(), |v| format!("{v:.p$}"));
        outln!(
            "{:<28} {:>13} {:>9} {:>7} {:>14} {:>9} {:<8} {}",
            r.name,
            format!("{}/{}", r.steps, r.max_steps),
            opt(r.best_val_loss, 4),
            opt(r.best_val_bpb, 3),
            HumanCount(r.tokens).to_string(),
            format!("{:.0}s", r.wall_s),
            r.device,
            r.state.label()
        )?;
    }
    Ok(())
}

/// The runs directly under `dir`, sorted by name; a run whose files are damaged is listed as
/// broken rather than left out.
pub fn collect(dir: &std::path::Path) -> Result<Vec<RunRow>> {
    let entries =
        std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))?;
    let mut rows = Vec::new();
    for entry in entries {
        let path = entry?.path();
        if path.is_dir() && is_run(&path) {
            rows.push(RunRow::of(&path)?);
        }
    }
    rows.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(rows)
}
