//! `tinygpt attention`: what each head of a trained model attends to, for a prompt — as a
//! picture (PNG heatmaps), as text for terminals, or as JSON for notebooks.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use burn::tensor::Device;
use serde::Serialize;
use tinygpt_model::Gpt;
use tinygpt_viz::{AttentionMap, attention_grid};

use tinygpt_train::run::weights::TrainedRun;
use tinygpt_train::tensors::{to_vec, token_tensor};

use super::RunSelection;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Png,
    Text,
    Json,
}

#[derive(Debug, clap::Args)]
pub struct AttentionArgs {
    #[command(flatten)]
    pub selection: RunSelection,
    /// The text whose attention patterns to show.
    #[arg(long)]
    pub prompt: String,
    /// Only this layer (0-based) [default: all].
    #[arg(long)]
    pub layer: Option<usize>,
    /// Only this head (0-based) [default: all].
    #[arg(long)]
    pub head: Option<usize>,
    /// Output file (PNG or JSON); text goes to stdout.
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "png")]
    pub format: Format,
    /// Earlier tokens listed per query in the text format.
    #[arg(long, default_value_t = 3)]
    pub top: usize,
    /// Replace an existing --out file.
    #[arg(long)]
    pub force: bool,
}

/// The attention of one head over the prompt: `weights[query][key]`.
#[derive(Debug, Clone, Serialize)]
pub struct HeadPattern {
    pub layer: usize,
    pub head: usize,
    pub weights: Vec<Vec<f32>>,
}

#[derive(Debug, Serialize)]
struct Dump<'a> {
    tokens: &'a [String],
    patterns: &'a [HeadPattern],
}

pub fn attention_command(args: AttentionArgs) -> Result<()> {
    if let Some(out) = &args.out {
        tinygpt_train::run::files::refuse_existing(out, "--out", args.force)?;
    }
    let TrainedRun {
        config,
        tokenizer,
        model,
        device,
        ..
    } = args.selection.open()?;

    let mut ids = tokenizer.encode(&args.prompt).context("prompt")?;
    if ids.is_empty() {
        bail!("--prompt is empty: give at least one character to look at");
    }
    if ids.len() > model.block_size {
        eprintln!(
            "note: the prompt is {} tokens; showing its last {} (the model's block_size)",
            ids.len(),
            model.block_size
        );
        ids.drain(..ids.len() - model.block_size);
    }
    let labels: Vec<String> = ids
        .iter()
        .map(|&id| tokenizer.decode(&[id]).map(|t| visible(&t)))
        .collect::<Result<_, _>>()?;
    let patterns = select(
        attention_patterns(&model, &ids, &device),
        args.layer,
        args.head,
        config.model.n_layer,
        config.model.n_head,
    )?;

    match args.format {
        Format::Png => {
            let out = args
                .out
                .context("--out FILE.png is required for --format png (or use --format text)")?;
            let maps: Vec<AttentionMap> = patterns
                .iter()
                .map(|p| AttentionMap {
                    title: format!("layer {} head {}", p.layer, p.head),
                    weights: p.weights.concat(),
                })
                .collect();
            let columns = if args.head.is_some() {
                maps.len().min(4)
            } else {
                config.model.n_head
            };
            attention_grid(&out, &labels, &maps, columns)?;
            eprintln!(
                "wrote {} ({} heads, {} tokens)",
                out.display(),
                maps.len(),
                labels.len()
            );
        }
        Format::Text => print!("{}", as_text(&labels, &patterns, args.top)),
        Format::Json => {
            let json = serde_json::to_string(&Dump {
                tokens: &labels,
                patterns: &patterns,
            })?;
            match args.out {
                Some(out) => std::fs::write(&out, json)
                    .with_context(|| format!("cannot write {}", out.display()))?,
                None => println!("{json}"),
            }
        }
    }
    Ok(())
}

/// Every head's pattern for `ids`, through the model's explicit attention path.
pub fn attention_patterns(model: &Gpt, ids: &[u32], device: &Device) -> Vec<HeadPattern> {
    let tokens: Vec<i64> = ids.iter().map(|&t| i64::from(t)).collect();
    let (_, per_layer) = model.forward_with_patterns(token_tensor(&tokens, 1, device));
    let mut patterns = Vec::new();
    for (layer, pattern) in per_layer.into_iter().enumerate() {
        let [_, n_head, t, _] = pattern.dims();
        let values = to_vec(pattern);
        for head in 0..n_head {
            let weights = (0..t)
                .map(|query| values[(head * t + query) * t..(head * t + query + 1) * t].to_vec())
                .collect();
            patterns.push(HeadPattern {
                layer,
                head,
                weights,
            });
        }
    }
    patterns
}

fn select(
    patterns: Vec<HeadPattern>,
    layer: Option<usize>,
    head: Option<usize>,
    n_layer: usize,
    n_head: usize,
) -> Result<Vec<HeadPattern>> {
    if let Some(l) = layer.filter(|&l| l >= n_layer) {
        bail!(
            "--layer {l}: the model has {n_layer} layers (0 to {})",
            n_layer - 1
        );
    }
    if let Some(h) = head.filter(|&h| h >= n_head) {
        bail!(
            "--head {h}: each layer has {n_head} heads (0 to {})",
            n_head - 1
        );
    }
    Ok(patterns
        .into_iter()
        .filter(|p| layer.is_none_or(|l| p.layer == l) && head.is_none_or(|h| p.head == h))
        .collect())
}

/// For each head and query token, its most attended tokens with their weights.
fn as_text(labels: &[String], patterns: &[HeadPattern], top: usize) -> String {
    let mut out = String::new();
    for p in patterns {
        out += &format!("layer {} head {}\n", p.layer, p.head);
        for (query, row) in p.weights.iter().enumerate() {
            let mut keys: Vec<usize> = (0..=query).collect();
            keys.sort_by(|&a, &b| row[b].total_cmp(&row[a]).then(a.cmp(&b)));
            let attended: Vec<String> = keys
                .iter()
                .take(top.max(1))
                .map(|&k| format!("{:>4} {k:>3} {:.3}", quoted(&labels[k]), row[k]))
                .collect();
            out += &format!(
                "  {:>4} {query:>3} → {}\n",
                quoted(&labels[query]),
                attended.join("   ")
            );
        }
    }
    out
}

fn quoted(label: &str) -> String {
    format!("'{label}'")
}

/// Whitespace made visible for axis labels.
fn visible(token: &str) -> String {
    token
        .replace('\n', "⏎")
        .replace(' ', "␣")
        .replace('\t', "⇥")
}
