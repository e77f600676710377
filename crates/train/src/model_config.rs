//! The `[model]` section alone, as `tinygpt params` and `bench` need it: no corpus is
//! encoded and no `[train]` key is checked, but `vocab_size = 0` is resolved with the
//! tokenizer the config names.

use std::path::Path;

use anyhow::{Context, Result};
use tinygpt_model::GptConfig;

use crate::config::{apply_override, read_table};

/// The `[model]` section of a config file (after `overrides`), with `vocab_size = 0`
/// resolved from the tokenizer the run would use: a BPE's `data.vocab_size`, a
/// tokenizer.json's size, or the characters of the corpus.
pub fn model_config(path: &Path, overrides: &[String]) -> Result<GptConfig> {
    let mut table = read_table(path)?;
    for assignment in overrides {
        apply_override(&mut table, assignment)?;
    }
    let model = table
        .get("model")
        .cloned()
        .with_context(|| format!("config {} has no [model] section", path.display()))?;
    let mut config: GptConfig = serde_path_to_error::deserialize(model)
        .map_err(|e| anyhow::anyhow!("model.{}: {}", e.path(), e.inner().message().trim()))
        .with_context(|| format!("bad config {}", path.display()))?;
    if config.vocab_size == 0 {
        config.vocab_size = tokenizer_vocab(&table, path)?;
    }
    config.validate()?;
    Ok(config)
}

/// The vocabulary of the tokenizer a config's `[data]` section names.
fn tokenizer_vocab(table: &toml::Table, path: &Path) -> Result<usize> {
    let data = table.get("data").and_then(|d| d.as_table());
    let key = |k: &str| data.and_then(|d| d.get(k));
    let tokenizer = key("tokenizer").and_then(|t| t.as_str()).unwrap_or("char");
    match tokenizer {
        "bpe" => {
            let size = key("vocab_size").map_or(Some(1024), |v| v.as_integer());
            size.and_then(|s| usize::try_from(s).ok()).with_context(|| {
                format!(
                    "{}: data.vocab_size must be a positive integer",
                    path.display()
                )
            })
        }
        "char" => {
            let data = data.filter(|d| d.contains_key("corpus")).with_context(|| {
                format!(
                    "{}: model.vocab_size is not set and no data.corpus to take it from",
                    path.display()
                )
            })?;
            let data: tinygpt_data::DataConfig =
                serde_path_to_error::deserialize(toml::Value::Table(data.clone()))
                    .map_err(|e| {
                        anyhow::anyhow!("data.{}: {}", e.path(), e.inner().message().trim())
                    })
                    .with_context(|| format!("bad config {}", path.display()))?;
            // The seed only chooses validation documents; the characters are the same.
            let input = tinygpt_data::pipeline::Input::open(&data, 0)?;
            Ok(input.build_tokenizer(&data)?.vocab_size())
        }
        file => Ok(tinygpt_data::Tokenizer::load(Path::new(file))?.vocab_size()),
    }
}
