//! `tinygpt sample`: stream generations from a trained run.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tinygpt_data::{IncrementalDecoder, Tokenizer};
use tinygpt_model::{Generator, Gpt};

use crate::output::StdoutError;
use crate::stream::StopStream;
use tinygpt_data::prompt_tokens;
use tinygpt_model::sampling::{SamplingParams, sample};
use tinygpt_train::run::weights::TrainedRun;

use super::RunSelection;

#[derive(Debug, clap::Args)]
pub struct SampleArgs {
    #[command(flatten)]
    pub selection: RunSelection,
    /// Text to continue [default: a single newline].
    #[arg(long, conflicts_with = "prompt_file")]
    pub prompt: Option<String>,
    /// Read the prompt from a file.
    #[arg(long)]
    pub prompt_file: Option<PathBuf>,
    #[arg(long, default_value_t = 256)]
    pub max_new_tokens: usize,
    /// Softmax temperature; 0 is greedy (argmax).
    #[arg(long, default_value_t = 0.8, allow_negative_numbers = true)]
    pub temperature: f64,
    /// Keep only the K most likely tokens.
    #[arg(long)]
    pub top_k: Option<usize>,
    /// Keep the smallest set of tokens whose probability reaches P (after top-k).
    #[arg(long)]
    pub top_p: Option<f64>,
    #[arg(long, default_value_t = 1337)]
    pub seed: u64,
    #[arg(long, default_value_t = 1)]
    pub num_samples: usize,
    /// Stop right before this text (repeatable; never printed).
    #[arg(long = "stop", value_name = "TEXT")]
    pub stops: Vec<String>,
    /// Recompute the whole context for every token instead of using the KV cache.
    #[arg(long)]
    pub no_kv_cache: bool,
    /// Keep generating past the end-of-text token (a model trained on documents emits it
    /// where a document ends; by default the sample stops there).
    #[arg(long)]
    pub ignore_end_of_text: bool,
}

pub const SAMPLE_SEPARATOR: &str = "\n---------------\n";

pub fn sample_command(args: SampleArgs) -> Result<()> {
    let params = check_params(&args)?;
    let TrainedRun {
        tokenizer,
        model,
        device,
        ..
    } = args.selection.open()?;

    let prompt_text = match (&args.prompt, &args.prompt_file) {
        (_, Some(file)) => std::fs::read_to_string(file)
            .with_context(|| format!("cannot read prompt file {}", file.display()))?,
        (Some(text), None) => text.clone(),
        (None, None) => String::new(),
    };
    let prompt = prompt_tokens(&tokenizer, &prompt_text, model.block_size).context("prompt")?;
    if prompt.dropped > 0 {
        say!(
            "note: the prompt is {} tokens; keeping its last {} (the model's block_size)",
            prompt.dropped + prompt.tokens.len(),
            model.block_size
        );
    }
    let prompt = prompt.tokens;

    let mut rng = ChaCha8Rng::seed_from_u64(args.seed);
    let stdout = std::io::stdout();
    for _ in 0..args.num_samples {
        let mut out = stdout.lock();
        out.write_all(prompt_text.as_bytes())
            .and_then(|()| out.flush())
            .map_err(StdoutError)?;
        generate(
            &model, &tokenizer, &prompt, &args, &params, &mut rng, &device, &mut out,
        )?;
        let end = if args.num_samples > 1 {
            SAMPLE_SEPARATOR
        } else {
            "\n"
        };
        out.write_all(end.as_bytes())
            .and_then(|()| out.flush())
            .map_err(StdoutError)?;
    }
    Ok(())
}

/// Generates one sample, writing text as it is produced.
#[allow(clippy::too_many_arguments)]
fn generate(
    model: &Gpt,
    tokenizer: &Tokenizer,
    prompt: &[u32],
    args: &SampleArgs,
    params: &SamplingParams,
    rng: &mut ChaCha8Rng,
    device: &burn::tensor::Device,
    out: &mut impl Write,
) -> Result<()> {
    let mut generator = Generator::new(model, prompt, !args.no_kv_cache, device);
    let mut stream = StopStream::new(out, &args.stops);
    let mut text = IncrementalDecoder::new(tokenizer);
    let end = tokenizer.end_of_text().filter(|_| !args.ignore_end_of_text);
    for _ in 0..args.max_new_tokens {
        let next = sample(&generator.next_logits(), params, rng);
        if Some(next) == end {
            break;
        }
        generator.push(next);
        if stream.push(&text.push(next)?).map_err(StdoutError)? {
            return Ok(());
        }
    }
    if stream.push(&text.finish()?).map_err(StdoutError)? {
        return Ok(());
    }
    stream.finish().map_err(StdoutError)?;
    Ok(())
}

fn check_params(args: &SampleArgs) -> Result<SamplingParams> {
    if !(args.temperature >= 0.0 && args.temperature.is_finite()) {
        bail!(
            "--temperature {}: must be a number >= 0 (0 = greedy)",
            args.temperature
        );
    }
    if let Some(p) = args.top_p
        && !(p > 0.0 && p <= 1.0)
    {
        bail!("--top-p {p}: must be in (0, 1]");
    }
    if args.top_k == Some(0) {
        bail!("--top-k 0: must be at least 1 (omit it to keep every token)");
    }
    if args.num_samples == 0 {
        bail!("--num-samples 0: must be at least 1");
    }
    Ok(SamplingParams {
        temperature: args.temperature,
        top_k: args.top_k,
        top_p: args.top_p,
    })
}
