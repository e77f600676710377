//! `tinygpt`: train, sample and inspect tiny GPTs.

#[macro_use]
mod output;

mod attention_maps;
mod commands;
mod first_step;
mod memory;
mod param_table;
mod plots;
mod progress;
mod ranks;
mod run_summary;
mod server;
mod signals;
mod stream;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use commands::*;

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
    Train(train::TrainArgs),
    /// Stream generations from a trained run.
    Sample(sample::SampleArgs),
    /// Serve a trained run over the OpenAI HTTP API (completions, chat), with a chat page.
    Serve(serve::ServeArgs),
    /// Talk with a chat run in the terminal, or score it on held-out conversations (--eval).
    Chat(chat::ChatArgs),
    /// Count a model's parameters matrix by matrix, from its config.
    Params(params::ParamsArgs),
    /// Show what each attention head looks at for a prompt (PNG, HTML, text or JSON).
    Attention(attention::AttentionArgs),
    /// Measure training and sampling speed, and MFU against the measured matmul peak.
    Bench(bench::BenchArgs),
    /// Loss, perplexity and bits per byte over every window of the val split or a text.
    Eval(eval::EvalArgs),
    /// Plot loss curves and LR schedules of one or more runs.
    Plot(plot::PlotArgs),
    /// Write a run on one self-contained HTML page; --watch keeps it current while it trains.
    Report(report::ReportArgs),
    /// Write a run's model as safetensors, a Hugging Face folder or a llama.cpp GGUF file.
    Export(export::ExportArgs),
    /// Make a run directory from an exported safetensors file or a Hugging Face GPT-2 folder.
    Import(export::ImportArgs),
    /// List the runs in a directory with their results.
    Runs(runs::RunsArgs),
    /// Encode a config's corpus into the token cache and report the tokenizer's numbers.
    Tokenize(tokenize::TokenizeArgs),
    /// List the compute backends compiled in and the GPUs (wgpu adapters) found.
    Devices(devices::DevicesArgs),
}

fn main() -> ExitCode {
    quiet_panics();
    tinygpt_train::device::quiet_headless_vulkan();
    let cli = Cli::parse();
    // Checked before any kernel runs: the kernels would quietly fall back to the best level.
    if let Err(message) = tinygpt_train::cpu::Level::from_environment() {
        say!("error: {message}");
        return ExitCode::FAILURE;
    }
    // Training needs malloc to keep its memory in one arena; encoding a corpus on every core
    // needs the opposite (one arena serialises the tokenizers crate's allocations: half the
    // speed on two cores). `tokenize` trains nothing, so it keeps glibc's defaults.
    if !matches!(cli.command, Command::Tokenize(_)) {
        memory::keep_freed_memory();
    }
    // Dropped when main returns: an MPI job is finalised after the command.
    let job = match ranks::Job::join() {
        Ok(job) => job,
        Err(e) => {
            say!("error: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    // `train` handles its own signals (a checkpoint first); the others end at once, without
    // leaving a temporary behind.
    // `serve` stops on its own: no new requests, those in flight finish, exit 0.
    if !matches!(cli.command, Command::Train(_) | Command::Serve(_))
        && let Err(e) = signals::exit_cleanly_on_signals()
    {
        say!("error: {e:#}");
        return ExitCode::FAILURE;
    }
    let result = match cli.command {
        Command::Train(args) => match train::train(args, &job) {
            Ok(code) => return code,
            Err(e) if output::reader_went_away(&e) => return ExitCode::SUCCESS,
            Err(e) => {
                job.fail(&format!("{e:#}"), 1);
                return ExitCode::FAILURE;
            }
        },
        Command::Sample(args) => sample::sample_command(args),
        Command::Serve(args) => serve::serve_command(args),
        Command::Chat(args) => chat::chat_command(args),
        Command::Params(args) => params::params_command(args),
        Command::Attention(args) => attention::attention_command(args),
        Command::Bench(args) => bench::bench_command(args),
        Command::Eval(args) => eval::eval_command(args),
        Command::Plot(args) => plot::plot_command(args),
        Command::Report(args) => report::report_command(args),
        Command::Export(args) => export::export_command(args),
        Command::Import(args) => export::import_command(args),
        Command::Runs(args) => runs::runs_command(args),
        Command::Tokenize(args) => tokenize::tokenize_command(args),
        Command::Devices(args) => devices::devices_command(args, &job),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // stdout's reader went away (`| head`): the work is done, only the rest of the output
        // has nowhere to go (see output.rs).
        Err(e) if output::reader_went_away(&e) => ExitCode::SUCCESS,
        Err(e) => {
            say!("error: {e:#}");
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
        say!(
            "error: internal error{location}: {msg} (please report it; RUST_BACKTRACE=1 shows where)"
        );
    }));
}
