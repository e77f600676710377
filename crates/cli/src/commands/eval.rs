//! `tinygpt eval`: loss, perplexity and bits per byte over every window of the val split (or
//! of any text), deterministically — not a sample of random batches.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use serde::Serialize;
use tinygpt_data::{DataError, read_corpus};
use tinygpt_train::eval::mean_loss;
use tinygpt_train::run::metrics::bits_per_byte;
use tinygpt_train::run::weights::TrainedRun;
use tinygpt_train::run::{RunDir, checkpoint};

use super::RunSelection;
use crate::progress::encode_with_bar;

#[derive(Debug, clap::Args)]
pub struct EvalArgs {
    #[command(flatten)]
    pub selection: RunSelection,
    /// Evaluate on this text file instead of the run's val split.
    #[arg(long)]
    pub text: Option<PathBuf>,
    /// Windows per forward pass.
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Evaluate the val split of the corpus as it is now, even though it changed since the
    /// run trained on it (the figures then measure a different split).
    #[arg(long)]
    pub corpus_changed: bool,
}

#[derive(Debug, Serialize)]
pub struct Evaluation {
    pub source: String,
    pub tokens: usize,
    pub windows: usize,
    pub loss: f64,
    pub perplexity: f64,
    pub bits_per_byte: f64,
}

pub fn eval_command(args: EvalArgs) -> Result<()> {
    let TrainedRun {
        config,
        tokenizer,
        model,
        device,
        ..
    } = args.selection.open()?;
    let (source, tokens) = match &args.text {
        Some(path) => {
            let text = read_corpus(path).map_err(|e| text_error(e, path))?;
            let tokens = tokenizer.encode(&text).with_context(|| {
                format!(
                    "{} cannot be tokenized with this run's tokenizer",
                    path.display()
                )
            })?;
            (path.display().to_string(), tokens)
        }
        None => {
            let input = tinygpt_data::pipeline::Input::open(&config.data, config.train.seed)?;
            check_corpus(&args, &input.fingerprint())?;
            let encoded = encode_with_bar(&config, &tokenizer, &input)?;
            ("val split".to_string(), encoded.splits.val.all())
        }
    };
    if tokens.len() < 2 {
        bail!(
            "{source} has {} token(s): at least 2 are needed to predict one",
            tokens.len()
        );
    }
    let (loss, windows) = mean_loss(&model, &tokens, args.batch_size.max(1), &device);
    let bytes_per_token = tokenizer.bytes_per_token(&tokens[1..]);
    let result = Evaluation {
        source,
        tokens: tokens.len() - 1,
        windows,
        loss,
        perplexity: loss.exp(),
        bits_per_byte: bits_per_byte(loss, bytes_per_token),
    };
    if args.json {
        outln!("{}", serde_json::to_string(&result)?)?;
    } else {
        outln!(
            "{}: {} tokens in {} windows | loss {:.4} | perplexity {:.3} | {:.4} bits/byte",
            result.source,
            result.tokens,
            result.windows,
            result.loss,
            result.perplexity,
            result.bits_per_byte
        )?;
    }
    Ok(())
}

/// Corpus errors speak of `data.corpus`; for `--text` the fix is another file.
fn text_error(e: DataError, path: &std::path::Path) -> anyhow::Error {
    let shown = path.display();
    match e {
        DataError::CorpusMissing { .. } => {
            anyhow::anyhow!("--text {shown} not found: pass an existing text file")
        }
        DataError::CorpusEmpty { .. } => {
            anyhow::anyhow!("--text {shown} is empty: pass a file with text in it")
        }
        DataError::CorpusNotUtf8 { offset, .. } => anyhow::anyhow!(
            "--text {shown} is not UTF-8 text (invalid byte at offset {offset}): convert it to UTF-8 first"
        ),
        other => anyhow::anyhow!("--text {shown}: {other}"),
    }
}

/// Refuses a corpus that changed since the run trained on it (the fingerprint its checkpoints
/// recorded): its val split is no longer the one the run was measured on. `--corpus-changed`
/// evaluates it anyway, and says so.
fn check_corpus(args: &EvalArgs, fingerprint: &str) -> Result<()> {
    let checkpoints = RunDir::open(&args.selection.run)?.checkpoints();
    let Some((_, latest)) = checkpoint::list(&checkpoints)?.pop() else {
        return Ok(()); // an imported run: no corpus was recorded
    };
    let recorded = checkpoint::load_state(&latest)?.corpus_sha256;
    if recorded == fingerprint {
        return Ok(());
    }
    if args.corpus_changed {
        say!(
            "note: the corpus changed since the run trained on it; this is the val split of the corpus as it is now"
        );
        return Ok(());
    }
    bail!(
        "the corpus of {} changed since the run trained on it (its sha256 differs from the checkpoints'), so its val split is not the one the run was measured on: restore the original files, evaluate a text with --text, or pass --corpus-changed to evaluate the new split anyway",
        args.selection.run.display()
    )
}
