//! `tinygpt eval`: loss, perplexity and bits per byte over every window of the val split (or
//! of any text), deterministically — not a sample of random batches.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use burn::tensor::Device;
use burn::tensor::activation::log_softmax;
use serde::Serialize;
use tinygpt_data::{DataError, read_corpus};
use tinygpt_model::Gpt;

use crate::corpus_tokens::encode_corpus;
use crate::metrics::bits_per_byte;
use crate::tensors::{to_vec, token_tensor};
use crate::weights::{RunSelection, TrainedRun};

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
            let text = read_corpus(&config.data.corpus)?;
            let encoded = encode_corpus(&config, &tokenizer, &text)?;
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
        println!("{}", serde_json::to_string(&result)?);
    } else {
        println!(
            "{}: {} tokens in {} windows | loss {:.4} | perplexity {:.3} | {:.4} bits/byte",
            result.source,
            result.tokens,
            result.windows,
            result.loss,
            result.perplexity,
            result.bits_per_byte
        );
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

/// The windows that score every token after the first exactly once: `(start, first scored
/// position)`. Full windows of `block_size + 1` tokens at stride `block_size`; the remainder is
/// scored by one last window aligned to the end, counting only its new targets.
pub fn windows(n_tokens: usize, block_size: usize) -> Vec<(usize, usize)> {
    let span = block_size.min(n_tokens - 1);
    let mut windows = Vec::new();
    let mut start = 0;
    while start + span < n_tokens {
        windows.push((start, 0));
        start += span;
    }
    if start < n_tokens - 1 {
        let last = n_tokens - 1 - span;
        windows.push((last, start - last));
    }
    windows
}

/// Mean next-token loss over every target of `tokens`, and the number of windows used.
pub fn mean_loss(model: &Gpt, tokens: &[u32], batch_size: usize, device: &Device) -> (f64, usize) {
    let span = model.block_size.min(tokens.len() - 1);
    let all = windows(tokens.len(), model.block_size);
    let (mut total, mut count) = (0.0f64, 0usize);
    for chunk in all.chunks(batch_size) {
        let inputs: Vec<i64> = chunk
            .iter()
            .flat_map(|&(start, _)| tokens[start..start + span].iter().map(|&t| i64::from(t)))
            .collect();
        let logits = model.forward(token_tensor(&inputs, chunk.len(), device));
        let [rows, t, vocab] = logits.dims();
        let log_probs = to_vec(log_softmax(logits.reshape([rows * t, vocab]), 1));
        for (row, &(start, first)) in chunk.iter().enumerate() {
            for pos in first..span {
                let target = tokens[start + pos + 1] as usize;
                total -= f64::from(log_probs[(row * t + pos) * vocab + target]);
                count += 1;
            }
        }
    }
    (total / count as f64, all.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_score_every_target_once() {
        for (n, block) in [(10, 3), (11, 3), (12, 3), (4, 8), (2, 5), (100, 10)] {
            let mut scored = vec![0; n];
            let span = block.min(n - 1);
            for (start, first) in windows(n, block) {
                assert!(start + span < n);
                for pos in first..span {
                    scored[start + pos + 1] += 1;
                }
            }
            assert_eq!(scored[0], 0);
            assert!(
                scored[1..].iter().all(|&c| c == 1),
                "n={n} block={block}: {scored:?}"
            );
        }
        assert_eq!(windows(10, 3), vec![(0, 0), (3, 0), (6, 0)]);
        assert_eq!(windows(11, 3), vec![(0, 0), (3, 0), (6, 0), (7, 2)]);
    }
}
