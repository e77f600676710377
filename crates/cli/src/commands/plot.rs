//! `tinygpt plot`: loss curves of one or more runs (and their LR schedules) as a PNG.
//! Training also redraws `loss.png` in the run directory after every evaluation.

use std::path::PathBuf;

use anyhow::Result;
use tinygpt_train::run::RunDir;
use tinygpt_viz::line_charts;

use crate::plots::{XAxis, panels, run_metrics, run_name};

#[derive(Debug, clap::Args)]
pub struct PlotArgs {
    /// Run directories to overlay (repeatable).
    #[arg(long = "run", required = true)]
    pub runs: Vec<PathBuf>,
    #[arg(long)]
    pub out: PathBuf,
    /// Horizontal axis: optimizer steps or training tokens seen.
    #[arg(long, value_enum, default_value = "step")]
    pub x: XAxis,
    /// Logarithmic loss axis.
    #[arg(long)]
    pub log: bool,
    /// Replace an existing --out file.
    #[arg(long)]
    pub force: bool,
}

pub fn plot_command(args: PlotArgs) -> Result<()> {
    tinygpt_train::run::files::refuse_existing(&args.out, "--out", args.force)?;
    let mut runs = Vec::new();
    for dir in &args.runs {
        runs.push((run_name(dir), run_metrics(&RunDir::open(dir)?)?));
    }
    line_charts(&args.out, &panels(&runs, args.x, args.log), 1000, 420)?;
    say!("wrote {} ({} runs)", args.out.display(), runs.len());
    Ok(())
}
