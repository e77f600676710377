//! What a trained model's heads compute for a prompt, head by head: the scores
//! (query·key / √d) and the attention pattern, as `tinygpt attention` and `tinygpt report`
//! show them.

use anyhow::{Context, Result, bail};
use burn::tensor::Device;
use serde::Serialize;
use tinygpt_data::Tokenizer;
use tinygpt_model::Gpt;
use tinygpt_viz::html::{Explorer, ExplorerHead};

use tinygpt_train::tensors::{to_vec, token_tensor};

/// One head over the prompt.
#[derive(Debug, Clone, Serialize)]
pub struct HeadMaps {
    pub layer: usize,
    pub head: usize,
    /// `weights[query][key]`: the attention pattern, zero for future keys.
    pub weights: Vec<Vec<f32>>,
    /// `scores[query][key]` for the keys the query may see (`key ≤ query`); the future ones
    /// are −∞ and left out, which JSON could not hold anyway.
    pub scores: Vec<Vec<f32>>,
}

/// A prompt's token ids, cut to the model's context from the left, and a note when it was.
pub fn prompt_ids(
    tokenizer: &Tokenizer,
    prompt: &str,
    block_size: usize,
) -> Result<(Vec<u32>, Option<String>)> {
    let mut ids = tokenizer.encode(prompt).context("prompt")?;
    if ids.is_empty() {
        bail!("the prompt is empty: give at least one character to look at");
    }
    let mut note = None;
    if ids.len() > block_size {
        note = Some(format!(
            "the prompt is {} tokens; showing its last {block_size} (the model's block_size)",
            ids.len()
        ));
        ids.drain(..ids.len() - block_size);
    }
    Ok((ids, note))
}

/// Each token as text, with whitespace made visible for labels.
pub fn token_labels(tokenizer: &Tokenizer, ids: &[u32]) -> Result<Vec<String>> {
    let labels = ids
        .iter()
        .map(|&id| tokenizer.decode(&[id]).map(|t| visible(&t)))
        .collect::<Result<_, _>>()?;
    Ok(labels)
}

/// Every head's scores and pattern for `ids`, through the model's explicit attention path.
pub fn head_maps(model: &Gpt, ids: &[u32], device: &Device) -> Vec<HeadMaps> {
    let tokens: Vec<i64> = ids.iter().map(|&t| i64::from(t)).collect();
    let (_, per_layer) = model.forward_with_patterns(token_tensor(&tokens, 1, device));
    let mut heads = Vec::new();
    for (layer, maps) in per_layer.into_iter().enumerate() {
        let [_, n_head, t, _] = maps.pattern.dims();
        let (weights, scores) = (to_vec(maps.pattern), to_vec(maps.scores));
        let row = |head: usize, query: usize| (head * t + query) * t;
        for head in 0..n_head {
            heads.push(HeadMaps {
                layer,
                head,
                weights: (0..t)
                    .map(|q| weights[row(head, q)..row(head, q) + t].to_vec())
                    .collect(),
                scores: (0..t)
                    .map(|q| scores[row(head, q)..=row(head, q) + q].to_vec())
                    .collect(),
            });
        }
    }
    heads
}

/// The explorer page's data: the prompt's tokens and each head's scores (the page computes
/// the pattern from them, as the model does).
pub fn explorer(labels: &[String], heads: &[HeadMaps], d_head: usize) -> Explorer {
    Explorer {
        tokens: labels.to_vec(),
        d_head,
        heads: heads
            .iter()
            .map(|h| ExplorerHead {
                layer: h.layer,
                head: h.head,
                scores: h.scores.clone(),
            })
            .collect(),
    }
}

/// Whitespace made visible for axis labels.
fn visible(token: &str) -> String {
    token
        .replace('\n', "⏎")
        .replace(' ', "␣")
        .replace('\t', "⇥")
}
