//! What the user sees while training: an `indicatif` bar on a terminal, plain log lines
//! otherwise (a pipe, a file, CI).

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{HumanCount, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::metrics::MetricsLine;

pub struct Progress {
    bar: ProgressBar,
    max_steps: usize,
    last_val: Option<f64>,
    last_bpb: Option<f64>,
    /// Print plain lines when there is no bar (off for library use and tests).
    lines: bool,
}

impl Progress {
    pub fn new(max_steps: usize) -> Self {
        let bar = if std::io::stderr().is_terminal() {
            ProgressBar::with_draw_target(Some(max_steps as u64), ProgressDrawTarget::stderr())
        } else {
            ProgressBar::hidden()
        };
        bar.set_style(
            ProgressStyle::with_template(
                "{bar:30.cyan/blue} {pos:>6}/{len} | {msg} | ETA {eta_precise}",
            )
            .expect("template is valid")
            .progress_chars("█▉▊▋▌▍▎▏ "),
        );
        bar.enable_steady_tick(Duration::from_millis(250));
        Self {
            bar,
            max_steps,
            last_val: None,
            last_bpb: None,
            lines: true,
        }
    }

    /// Shows nothing at all.
    #[cfg(test)]
    pub fn quiet(max_steps: usize) -> Self {
        Self {
            bar: ProgressBar::hidden(),
            max_steps,
            last_val: None,
            last_bpb: None,
            lines: false,
        }
    }

    pub fn log(&mut self, line: &MetricsLine) {
        if line.val_loss.is_some() {
            self.last_val = line.val_loss;
            self.last_bpb = line.val_bpb;
        }
        self.bar.set_position(line.step as u64);
        let mut parts = Vec::new();
        if let Some(loss) = line.train_loss {
            parts.push(format!("loss {loss:.4}"));
        }
        parts.push(match self.last_val {
            Some(val) => format!("val {val:.4}"),
            None => "val -".into(),
        });
        if let Some(bpb) = self.last_bpb {
            parts.push(format!("{bpb:.3} bpb"));
        }
        if let Some(lr) = line.lr {
            parts.push(format!("lr {lr:.2e}"));
        }
        if let Some(tps) = line.tokens_per_sec {
            parts.push(format!("{} tok/s", HumanCount(tps as u64)));
        }
        let msg = parts.join(" | ");
        if !self.bar.is_hidden() {
            self.bar.set_message(msg);
        } else if self.lines {
            eprintln!("step {:>6}/{} | {msg}", line.step, self.max_steps);
        }
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
