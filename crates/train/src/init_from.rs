//! `train --init-from`: fine-tuning starts from another model's weights and tokenizer (a
//! tinygpt run, or a Hugging Face GPT-2 folder such as `tinygpt import --hf` reads), with a
//! fresh optimizer and schedule.
//!
//! The weights fix the architecture, so the `[model]` section comes from there: a config may
//! leave it out, or repeat its values. Only two keys may differ: `model.dropout` (a training
//! choice) and a smaller `model.block_size` (the position embeddings are cropped, as nanoGPT's
//! `crop_block_size` does).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use burn::tensor::Device;
use tinygpt_data::config::Format;
use tinygpt_data::pipeline::Input;
use tinygpt_data::{CorpusSpec, Tokenizer};
use tinygpt_model::weights::{load_module_tensors, module_tensors};
use tinygpt_model::{Gpt, GptConfig, NamedTensor};

use crate::config::{RunConfig, apply_override, read_table};
use crate::interop::hf;
use crate::run::weights::open_trained_run;

/// The model a run starts from.
pub struct InitSource {
    pub path: PathBuf,
    pub config: GptConfig,
    pub tokenizer: Tokenizer,
    tensors: Vec<NamedTensor>,
}

impl InitSource {
    /// A tinygpt run (its final weights, else its latest checkpoint) or a Hugging Face folder.
    pub fn open(path: &Path) -> Result<Self> {
        if path.join("config.json").is_file() {
            let model = hf::read_dir(path)?;
            return Ok(Self {
                path: path.into(),
                config: model.config,
                tokenizer: model.tokenizer,
                tensors: model.tensors,
            });
        }
        if path.join("config.toml").is_file() {
            let run = open_trained_run(path, Some("flex"), None)
                .with_context(|| format!("--init-from {}", path.display()))?;
            return Ok(Self {
                path: path.into(),
                config: run.config.model,
                tokenizer: run.tokenizer,
                tensors: module_tensors(&run.model),
            });
        }
        bail!(
            "--init-from {}: neither a tinygpt run (no config.toml) nor a Hugging Face model folder (no config.json); give a run directory or what `save_pretrained` wrote",
            path.display()
        )
    }

    /// The run config: `path` with `overrides`, its `[model]` section taken from the weights.
    pub fn run_config(&mut self, path: &Path, overrides: &[String]) -> Result<RunConfig> {
        let mut table = read_table(path)?;
        for assignment in overrides {
            apply_override(&mut table, assignment)?;
        }
        let ours = match table.remove("model") {
            Some(toml::Value::Table(t)) => t,
            Some(_) => bail!("bad config {}: [model] is not a section", path.display()),
            None => toml::Table::new(),
        };
        let mut model =
            toml::Table::try_from(&self.config).context("a model config always serialises")?;
        for (key, value) in ours {
            // 0 means "as many as the tokenizer has": the weights' count stands.
            if key == "vocab_size" && value.as_integer() == Some(0) {
                continue;
            }
            let theirs = model.get(&key).cloned();
            let free = match key.as_str() {
                "dropout" => true,
                "block_size" => value
                    .as_integer()
                    .is_some_and(|b| b > 0 && (b as usize) <= self.config.block_size),
                _ => false,
            };
            if !free && theirs.as_ref() != Some(&value) {
                let theirs = theirs.map_or_else(|| "no such key".into(), |v| v.to_string());
                bail!(
                    "model.{key} = {value} but the model in {} has {theirs}: --init-from takes the architecture from the weights; remove model.{key} from the config (only model.dropout and a smaller model.block_size may be chosen)",
                    self.path.display()
                );
            }
            model.insert(key, value);
        }
        table.insert("model".into(), toml::Value::Table(model));
        let mut config = RunConfig::from_table(table, path, &[])?;
        // Fine-tuning on conversations: a base model's vocabulary gains the role tokens.
        if config.data.format == Some(Format::Chat) && self.tokenizer.chat_tokens().is_none() {
            self.add_chat_tokens();
            config.model.vocab_size = self.tokenizer.vocab_size();
        }
        // The tokenizer is the model's, whatever the config says.
        config.data.vocab_size = self.tokenizer.vocab_size();
        Ok(config)
    }

    /// Reserves the chat template's role tokens (and `<|endoftext|>` when missing) after the
    /// vocabulary's last id. Each new token's embedding (and unembedding, when untied) starts
    /// as the mean of the existing ones: a neutral token, so the model's other predictions
    /// are unchanged until training teaches it what the role tokens mean.
    fn add_chat_tokens(&mut self) {
        let old = self.tokenizer.vocab_size();
        self.tokenizer = self.tokenizer.clone().with_chat_tokens();
        let added = self.tokenizer.vocab_size() - old;
        self.config.vocab_size = self.tokenizer.vocab_size();
        for t in &mut self.tensors {
            match (t.name.as_str(), t.shape.as_slice()) {
                // [vocab, n_embd]: rows are tokens.
                ("token_embedding.weight", &[rows, width]) if rows == old => {
                    let mean: Vec<f32> = (0..width)
                        .map(|j| {
                            (0..rows).map(|i| t.values[i * width + j]).sum::<f32>() / rows as f32
                        })
                        .collect();
                    for _ in 0..added {
                        t.values.extend_from_slice(&mean);
                    }
                    t.shape[0] = rows + added;
                }
                // [n_embd, vocab] (burn's [in, out]): columns are tokens.
                ("unembedding.weight", &[width, cols]) if cols == old => {
                    let mut grown = Vec::with_capacity(width * (cols + added));
                    for row in t.values.chunks(cols) {
                        let mean = row.iter().sum::<f32>() / cols as f32;
                        grown.extend_from_slice(row);
                        grown.extend(std::iter::repeat_n(mean, added));
                    }
                    t.values = grown;
                    t.shape[1] = cols + added;
                }
                _ => {}
            }
        }
    }

    /// Refuses a corpus with characters the tokenizer cannot encode, naming them.
    pub fn check_corpus(&self, input: &Input, corpus: &CorpusSpec) -> Result<()> {
        let unknown: Vec<String> = input
            .chars()?
            .into_iter()
            .filter(|c| self.tokenizer.encode(&c.to_string()).is_err())
            .map(|c| format!("{c:?}"))
            .collect();
        if !unknown.is_empty() {
            bail!(
                "{} has {} character(s) the tokenizer of {} cannot encode: {}; fine-tuning keeps the model's tokenizer, so remove them from the corpus or start from a model whose vocabulary has them",
                corpus,
                unknown.len(),
                self.path.display(),
                unknown.join(" ")
            );
        }
        Ok(())
    }

    /// The model of `config` (the architecture from [`Self::run_config`]) holding these
    /// weights on `device`, the position embeddings cropped to `config.block_size`. The
    /// weights move into the model: call it once.
    pub fn model(&mut self, config: &GptConfig, seed: u64, device: &Device) -> Result<Gpt> {
        let mut tensors = std::mem::take(&mut self.tensors);
        for t in &mut tensors {
            // Only a table of the right width and at least the context's length is cropped;
            // any other shape goes on to the loader, which refuses it by name.
            if t.name == "position_embedding.weight"
                && let [positions, width] = t.shape[..]
                && positions >= config.block_size
                && width == config.n_embd
                && t.values.len() == positions * width
            {
                t.values.truncate(config.block_size * config.n_embd);
                t.shape[0] = config.block_size;
            }
        }
        let model = Gpt::new(config, seed, device)?;
        load_module_tensors(model, tensors)
            .with_context(|| format!("--init-from {}", self.path.display()))
    }
}
