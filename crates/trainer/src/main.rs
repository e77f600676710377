//! `tinygpt`: train, sample and inspect tiny GPTs.

mod attention_command;
mod bench_command;
mod checkpoint;
mod config;
mod corpus_tokens;
mod device;
#[cfg(test)]
mod device_parity;
mod devices_command;
mod eval_command;
mod export_command;
mod files;
mod footprint;
mod generate;
mod hash;
mod memory;
mod metrics;
mod optim;
mod params_command;
mod plot_command;
mod progress;
mod run_dir;
mod runs_command;
mod sample_command;
mod sampling;
mod schedule;
mod signals;
mod stream;
mod tensors;
mod tokenize_command;
mod train_command;
mod trainer;
mod weights;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "tinygpt",
    version,
    about = "Train, sample and inspect tiny GPT models"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Train a model from a config (or resume one); writes a run directory.
    Train(train_command::TrainArgs),
    /// Stream generations from a trained run.
    Sample(sample_command::SampleArgs),
    /// Count a model's parameters matrix by matrix, from its config.
    Params(params_command::ParamsArgs),
    /// Show what each attention head looks at for a prompt (PNG, text or JSON).
    Attention(attention_command::AttentionArgs),
    /// Measure training and sampling speed, and MFU against the measured matmul peak.
    Bench(bench_command::BenchArgs),
    /// Loss, perplexity and bits per byte over every window of the val split or a text.
    Eval(eval_command::EvalArgs),
    /// Plot loss curves and LR schedules of one or more runs.
    Plot(plot_command::PlotArgs),
    /// Write a run's weights as self-contained safetensors.
    Export(export_command::ExportArgs),
    /// Make a run directory from an exported safetensors file.
    Import(export_command::ImportArgs),
    /// List the runs in a directory with their results.
    Runs(runs_command::RunsArgs),
    /// Encode a config's corpus into the token cache and report the tokenizer's numbers.
    Tokenize(tokenize_command::TokenizeArgs),
    /// List the compute backends compiled in and the GPUs (wgpu adapters) found.
    Devices(devices_command::DevicesArgs),
}

fn main() -> ExitCode {
    quiet_panics();
    device::quiet_headless_vulkan();
    memory::keep_freed_memory();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Train(args) => match train_command::train(args) {
            Ok(code) => return code,
            Err(e) => Err(e),
        },
        Command::Sample(args) => sample_command::sample_command(args),
        Command::Params(args) => params_command::params_command(args),
        Command::Attention(args) => attention_command::attention_command(args),
        Command::Bench(args) => bench_command::bench_command(args),
        Command::Eval(args) => eval_command::eval_command(args),
        Command::Plot(args) => plot_command::plot_command(args),
        Command::Export(args) => export_command::export_command(args),
        Command::Import(args) => export_command::import_command(args),
        Command::Runs(args) => runs_command::runs_command(args),
        Command::Tokenize(args) => tokenize_command::tokenize_command(args),
        Command::Devices(args) => devices_command::devices_command(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// A panic is a bug in tinygpt or below it; the user still gets one line, not a backtrace
/// (set RUST_BACKTRACE=1 to see it).
fn quiet_panics() {
    if std::env::var_os("RUST_BACKTRACE").is_some() {
        return;
    }
    std::panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        let location = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        eprintln!(
            "error: internal error{location}: {msg} (please report it; RUST_BACKTRACE=1 shows where)"
        );
    }));
}
