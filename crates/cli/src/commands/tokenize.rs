//! `tinygpt tokenize`: encode a config's corpus into the token cache once, ahead of training,
//! and report the tokenizer's numbers (vocabulary, bytes per token, encoding speed).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use indicatif::HumanCount;
use serde::Serialize;
use tinygpt_data::pipeline::Input;
use tinygpt_train::config::RunConfig;

use crate::progress::encode_with_bar;

#[derive(Debug, clap::Args)]
pub struct TokenizeArgs {
    /// Run configuration whose [data] section names the corpus and the tokenizer.
    #[arg(long, default_value = "configs/shakespeare-char.toml")]
    pub config: PathBuf,
    /// Override a config key, e.g. --set data.vocab_size=2048 (repeatable).
    #[arg(long = "set", value_name = "SECTION.KEY=VALUE")]
    pub overrides: Vec<String>,
    /// Also save the tokenizer (a standard tokenizer.json for BPE) to this file.
    #[arg(long, value_name = "FILE")]
    pub save_tokenizer: Option<PathBuf>,
    /// Print one JSON object instead of lines of text.
    #[arg(long)]
    pub json: bool,
    /// Replace an existing --save-tokenizer file.
    #[arg(long)]
    pub force: bool,
    /// Count and skip documents that cannot be read (bad JSON, no text field, not UTF-8)
    /// instead of stopping at the first (sets data.skip_bad_documents).
    #[arg(long)]
    pub skip_bad_documents: bool,
}

#[derive(Debug, Serialize)]
struct TokenizeReport {
    corpus: String,
    files: usize,
    /// Documents read into train and val (a many-document corpus, freshly encoded).
    train_documents: Option<u64>,
    val_documents: Option<u64>,
    skipped_documents: Option<u64>,
    /// Bytes of document text read (JSON and Parquet encoding aside).
    text_bytes: Option<u64>,
    tokenizer: String,
    vocab_size: usize,
    bytes: usize,
    train_tokens: usize,
    val_tokens: usize,
    bytes_per_token: f64,
    tokenizer_seconds: f64,
    encode_seconds: f64,
    encode_mb_per_s: Option<f64>,
    cache: Option<PathBuf>,
    reused: bool,
}

pub fn tokenize_command(args: TokenizeArgs) -> Result<()> {
    let mut overrides = args.overrides.clone();
    if args.skip_bad_documents {
        overrides.push("data.skip_bad_documents=true".into());
    }
    let config = RunConfig::load(&args.config, &overrides)?;
    if let Some(path) = &args.save_tokenizer {
        tinygpt_train::run::files::refuse_existing(path, "--save-tokenizer", args.force)?;
    }
    let input = Input::open(&config.data, config.train.seed)?;
    let bytes = input.bytes() as usize;
    let started = Instant::now();
    let tokenizer = input.build_tokenizer(&config.data)?;
    let tokenizer_seconds = started.elapsed().as_secs_f64();
    let encoded = encode_with_bar(&config, &tokenizer, &input)?;
    let documents = encoded.documents.as_ref();
    let counts = documents.and_then(|d| d.counts.as_ref());
    if let Some(path) = &args.save_tokenizer {
        tinygpt_train::run::files::write_atomic(path, tokenizer.to_json()?.as_bytes())?;
    }
    let (train, val) = (&encoded.splits.train, &encoded.splits.val);
    let report = TokenizeReport {
        corpus: config.data.corpus.to_string(),
        files: documents.map_or(1, |d| d.files),
        train_documents: counts.map(|c| c.documents[0]),
        val_documents: counts.map(|c| c.documents[1]),
        skipped_documents: counts.map(|c| c.skipped),
        text_bytes: counts.map(|c| c.text_bytes.iter().sum()),
        tokenizer: config.data.tokenizer.clone(),
        vocab_size: tokenizer.vocab_size(),
        bytes,
        train_tokens: train.len(),
        val_tokens: val.len(),
        bytes_per_token: bytes as f64 / (train.len() + val.len()) as f64,
        tokenizer_seconds,
        encode_seconds: encoded.seconds,
        encode_mb_per_s: (!encoded.cache.reused)
            .then(|| bytes as f64 / 1e6 / encoded.seconds.max(1e-9)),
        cache: encoded.cache.path.clone(),
        reused: encoded.cache.reused,
    };
    if args.json {
        outln!("{}", serde_json::to_string(&report)?)?;
        return Ok(());
    }
    outln!("corpus: {}", input.describe())?;
    let built = if config.data.tokenizer == "bpe" {
        format!(
            ", trained on the train split in {:.2}s",
            report.tokenizer_seconds
        )
    } else {
        String::new()
    };
    outln!(
        "tokenizer: {} with {} tokens{built}",
        report.tokenizer,
        report.vocab_size
    )?;
    outln!("{}", encoded.describe())?;
    outln!(
        "split: {} train / {} val tokens, {:.3} bytes per token",
        HumanCount(report.train_tokens as u64),
        HumanCount(report.val_tokens as u64),
        report.bytes_per_token
    )?;
    if let Some(path) = &args.save_tokenizer {
        outln!("tokenizer saved to {}", path.display())?;
    }
    Ok(())
}
