//! `tinygpt attention`: what each head of a trained model attends to, for a prompt — as a
//! picture (PNG heatmaps), an interactive page (HTML), text for terminals, or JSON for
//! notebooks.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use serde::Serialize;
use tinygpt_viz::{AttentionMap, attention_grid};

use tinygpt_train::run::files::write_atomic;
use tinygpt_train::run::weights::TrainedRun;

use super::RunSelection;
use crate::attention_maps::{HeadMaps, explorer, head_maps, prompt_ids, token_labels};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Png,
    /// One self-contained page to explore every head (opens from disk, no network).
    Html,
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
    /// Output file (PNG, HTML or JSON); text goes to stdout.
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

#[derive(Debug, Serialize)]
struct Dump<'a> {
    tokens: &'a [String],
    patterns: &'a [HeadMaps],
}

pub fn attention_command(args: AttentionArgs) -> Result<()> {
    let picture = match args.format {
        Format::Png => Some("--out FILE.png is required for --format png (or use --format text)"),
        Format::Html => Some("--out FILE.html is required for --format html"),
        Format::Text | Format::Json => None,
    };
    if let (Some(missing), None) = (picture, &args.out) {
        bail!("{missing}");
    }
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

    let (ids, note) = prompt_ids(&tokenizer, &args.prompt, model.block_size).context("--prompt")?;
    if let Some(note) = note {
        say!("note: {note}");
    }
    let labels = token_labels(&tokenizer, &ids)?;
    let patterns = select(
        head_maps(&model, &ids, &device),
        args.layer,
        args.head,
        config.model.n_layer,
        config.model.n_head,
    )?;

    match args.format {
        Format::Png => {
            let out = args.out.context("--out is checked above")?;
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
            say!(
                "wrote {} ({} heads, {} tokens)",
                out.display(),
                maps.len(),
                labels.len()
            );
        }
        Format::Html => {
            let out = args.out.context("--out is checked above")?;
            let explorer = explorer(&labels, &patterns, config.model.head_size());
            let page = tinygpt_viz::html::attention_page(&explorer);
            write_atomic(&out, page.as_bytes())
                .with_context(|| format!("cannot write {}", out.display()))?;
            say!(
                "wrote {} ({} heads, {} tokens, {} KB): open it in a browser",
                out.display(),
                patterns.len(),
                labels.len(),
                page.len().div_ceil(1024)
            );
        }
        Format::Text => out!("{}", as_text(&labels, &patterns, args.top))?,
        Format::Json => {
            let json = serde_json::to_string(&Dump {
                tokens: &labels,
                patterns: &patterns,
            })?;
            match args.out {
                Some(out) => write_atomic(&out, json.as_bytes())
                    .with_context(|| format!("cannot write {}", out.display()))?,
                None => outln!("{json}")?,
            }
        }
    }
    Ok(())
}

fn select(
    patterns: Vec<HeadMaps>,
    layer: Option<usize>,
    head: Option<usize>,
    n_layer: usize,
    n_head: usize,
) -> Result<Vec<HeadMaps>> {
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
fn as_text(labels: &[String], patterns: &[HeadMaps], top: usize) -> String {
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
