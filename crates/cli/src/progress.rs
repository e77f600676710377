//! What the user sees while training: an `indicatif` bar on a terminal, plain log lines
//! otherwise (a pipe, a file, CI).

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{HumanCount, ProgressBar, ProgressDrawTarget, ProgressStyle};

use tinygpt_train::run::metrics::MetricsLine;

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
        if line.ranks > 1 {
            // Loss and tok/s are over the global batch, all ranks together.
            parts.push(format!("{} ranks", line.ranks));
        }
        let msg = parts.join(" | ");
        if !self.bar.is_hidden() {
            self.bar.set_message(msg);
        } else if self.lines {
            say!("step {:>6}/{} | {msg}", line.step, self.max_steps);
        }
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// A bar for encoding a corpus into tokens: drawn on a terminal once a corpus is big enough
/// to take a while (over 1 MiB), hidden otherwise.
pub struct EncodingBar {
    bar: Option<ProgressBar>,
}

pub fn encoding_bar() -> EncodingBar {
    EncodingBar { bar: None }
}

impl EncodingBar {
    /// `done` of `total` bytes encoded.
    pub fn update(&mut self, done: usize, total: usize) {
        if self.bar.is_none() && total > 1 << 20 && std::io::stderr().is_terminal() {
            let bar = ProgressBar::new(total as u64);
            bar.set_style(
                ProgressStyle::with_template(
                    "encoding {bar:30.cyan/blue} {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
                )
                .expect("template is valid"),
            );
            self.bar = Some(bar);
        }
        if let Some(bar) = &self.bar {
            bar.set_position(done as u64);
        }
    }

    pub fn finish(self) {
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
    }
}

/// Train and val tokens of `input` for `config`, with an encoding bar.
pub fn encode_with_bar(
    config: &tinygpt_train::config::RunConfig,
    tokenizer: &tinygpt_data::Tokenizer,
    input: &tinygpt_data::pipeline::Input,
) -> Result<tinygpt_data::pipeline::Encoded, tinygpt_data::DataError> {
    let mut bar = encoding_bar();
    let encoded = input.encode(
        &config.data,
        config.model.block_size,
        tokenizer,
        &mut |done, total| bar.update(done, total),
    );
    bar.finish();
    encoded
}
