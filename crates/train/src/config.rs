//! Run configuration: `[model]`, `[data]` and `[train]` from a TOML file, with `--set`
//! overrides. Unknown keys are errors, so a typo never silently trains the wrong model.

use std::path::Path;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
pub use tinygpt_data::DataConfig;
use tinygpt_kernels::Precision;
use tinygpt_model::GptConfig;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// `model.vocab_size = 0` (or absent) means "as many as the tokenizer has".
    pub model: GptConfig,
    pub data: DataConfig,
    #[serde(default)]
    pub train: TrainConfig,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// Sequences per micro-batch.
    pub batch_size: usize,
    /// Optimizer steps.
    pub max_steps: usize,
    /// Peak learning rate, reached after warm-up.
    pub lr: f64,
    /// Learning rate at the end of the cosine decay.
    pub min_lr: f64,
    pub warmup_steps: usize,
    /// AdamW decoupled weight decay, applied to weight matrices and embeddings only.
    pub weight_decay: f64,
    pub beta1: f64,
    pub beta2: f64,
    /// Clip the global gradient norm to this value; 0 turns clipping off.
    pub grad_clip: f64,
    /// Micro-batches whose gradients are summed into one optimizer step.
    pub grad_accum: usize,
    pub eval_interval: usize,
    /// Fixed validation batches per evaluation.
    pub eval_batches: usize,
    pub log_interval: usize,
    pub seed: u64,
    /// `flex` or `ndarray`.
    pub device: String,
    /// Prompt of the greedy continuation printed at the end of training.
    pub sample_prompt: String,
    /// Tokens in that continuation.
    pub sample_tokens: usize,
    /// Save a checkpoint every this many steps (and at the end, and on Ctrl-C).
    pub checkpoint_interval: usize,
    /// Checkpoints kept besides the best one.
    pub keep_checkpoints: usize,
    /// `"adamw"` for every parameter, or `"muon"`: Muon for the blocks' weight matrices, AdamW
    /// (with `lr`, `beta1`, `beta2`, `weight_decay`) for embeddings, head, gains and biases.
    #[serde(skip_serializing_if = "is_default")]
    pub optimizer: OptimizerKind,
    /// Muon's peak learning rate (the schedule scales it as it scales `lr`).
    #[serde(skip_serializing_if = "is_default_muon_lr")]
    pub muon_lr: f64,
    /// Muon's Nesterov momentum once warmed up.
    #[serde(skip_serializing_if = "is_default_muon_momentum")]
    pub muon_momentum: f64,
    /// Steps over which Muon's momentum rises linearly from 0.85 to `muon_momentum`.
    #[serde(skip_serializing_if = "is_default_muon_momentum_warmup")]
    pub muon_momentum_warmup: usize,
    /// Decoupled weight decay on the matrices Muon updates.
    #[serde(skip_serializing_if = "is_default")]
    pub muon_weight_decay: f64,
    /// `"cosine"` (warm-up, cosine decay to `min_lr`) or `"wsd"` (warm-up, stable at `lr`,
    /// linear warmdown to `min_lr` over the last `warmdown_fraction` of the steps).
    #[serde(skip_serializing_if = "is_default")]
    pub schedule: Schedule,
    /// The share of `max_steps` the WSD schedule spends decaying.
    #[serde(skip_serializing_if = "is_default_warmdown_fraction")]
    pub warmdown_fraction: f64,
    /// `"fp32"`, or `"bf16"`: the linear maps' and attention's products (forward and
    /// backward) and Muon's Newton–Schulz products take bf16 operands and sum in f32, on a CPU with AVX512_BF16; weights, optimizer state,
    /// loss, softmax, norms and the residual stream stay f32, and evaluation multiplies in f32.
    #[serde(with = "PrecisionName", skip_serializing_if = "is_default")]
    pub precision: Precision,
}

/// How `train.precision` spells a precision.
pub fn precision_name(precision: Precision) -> &'static str {
    match precision {
        Precision::Fp32 => "fp32",
        Precision::Bf16 => "bf16",
    }
}

/// How `train.precision` is spelled.
#[derive(Serialize, Deserialize)]
#[serde(remote = "Precision", rename_all = "snake_case")]
enum PrecisionName {
    Fp32,
    Bf16,
}

/// Which optimizer updates the blocks' weight matrices.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OptimizerKind {
    #[default]
    Adamw,
    Muon,
}

/// The learning rate's shape over the run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Schedule {
    #[default]
    Cosine,
    Wsd,
}

const MUON_LR: f64 = 0.02;
const MUON_MOMENTUM: f64 = 0.95;
const MUON_MOMENTUM_WARMUP: usize = 300;
const WARMDOWN_FRACTION: f64 = 0.2;

fn is_default<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
}
fn is_default_muon_lr(value: &f64) -> bool {
    *value == MUON_LR
}
fn is_default_muon_momentum(value: &f64) -> bool {
    *value == MUON_MOMENTUM
}
fn is_default_muon_momentum_warmup(value: &usize) -> bool {
    *value == MUON_MOMENTUM_WARMUP
}
fn is_default_warmdown_fraction(value: &f64) -> bool {
    *value == WARMDOWN_FRACTION
}

/// The prompt of the end-of-training sample unless a config names another: a newline.
pub const DEFAULT_SAMPLE_PROMPT: &str = "\n";

/// The most tokens the end-of-training sample may have: it is a preview (`tinygpt sample`
/// generates any number).
pub const MAX_SAMPLE_TOKENS: usize = 100_000;

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            batch_size: 32,
            max_steps: 2000,
            lr: 1e-3,
            min_lr: 1e-4,
            warmup_steps: 100,
            weight_decay: 0.1,
            beta1: 0.9,
            beta2: 0.99,
            grad_clip: 1.0,
            grad_accum: 1,
            eval_interval: 250,
            eval_batches: 20,
            log_interval: 10,
            seed: 1337,
            device: "flex".into(),
            sample_prompt: DEFAULT_SAMPLE_PROMPT.into(),
            sample_tokens: 200,
            checkpoint_interval: 500,
            keep_checkpoints: 3,
            optimizer: OptimizerKind::default(),
            muon_lr: MUON_LR,
            muon_momentum: MUON_MOMENTUM,
            muon_momentum_warmup: MUON_MOMENTUM_WARMUP,
            muon_weight_decay: 0.0,
            schedule: Schedule::default(),
            warmdown_fraction: WARMDOWN_FRACTION,
            precision: Precision::Fp32,
        }
    }
}

impl RunConfig {
    /// Reads `path`, applies each `section.key=value` override, and checks every value.
    pub fn load(path: &Path, overrides: &[String]) -> Result<Self> {
        Self::from_table(read_table(path)?, path, overrides)
    }

    /// This config with `overrides` applied (used on resume).
    pub fn with_overrides(&self, overrides: &[String]) -> Result<Self> {
        let table = toml::Table::try_from(self).context("config does not serialise")?;
        Self::from_table(table, Path::new("the run's config"), overrides)
    }

    pub(crate) fn from_table(
        mut table: toml::Table,
        path: &Path,
        overrides: &[String],
    ) -> Result<Self> {
        for assignment in overrides {
            apply_override(&mut table, assignment)?;
        }
        // serde_path_to_error names the offending key (`train.max_steps: invalid type...`).
        let parsed: Result<RunConfig, _> =
            serde_path_to_error::deserialize(toml::Value::Table(table));
        let config = match parsed {
            Ok(config) => config,
            Err(e) => {
                let key = e.path().to_string();
                let problem = format!("{key}: {}", one_line(e.inner()));
                // A bad value given with --set is the --set's fault, not the file's.
                let given = overrides
                    .iter()
                    .rev()
                    .find(|a| a.split_once('=').is_some_and(|(k, _)| k.trim() == key));
                match given {
                    Some(assignment) => bail!("--set {assignment}: {problem}"),
                    None => bail!("bad config {}: {problem}", path.display()),
                }
            }
        };
        config.validate()?;
        Ok(config)
    }

    /// Range checks the types alone do not express (the model's own are in `GptConfig`).
    pub fn validate(&self) -> Result<()> {
        let t = &self.train;
        let checks: [(&str, bool, &str); 16] = [
            (
                "muon_lr",
                t.muon_lr > 0.0 && t.muon_lr.is_finite(),
                "must be a positive number, e.g. 0.02",
            ),
            (
                "muon_momentum",
                (0.0..1.0).contains(&t.muon_momentum),
                "must be in [0, 1), e.g. 0.95",
            ),
            (
                "muon_weight_decay",
                t.muon_weight_decay >= 0.0 && t.muon_lr * t.muon_weight_decay < 1.0,
                "must be >= 0 with train.muon_lr × muon_weight_decay below 1 (each step scales the matrices by 1 - muon_lr × muon_weight_decay): lower it or train.muon_lr",
            ),
            (
                "warmdown_fraction",
                (0.0..=1.0).contains(&t.warmdown_fraction),
                "must be in [0, 1], the share of max_steps spent decaying",
            ),
            ("batch_size", t.batch_size > 0, "must be at least 1"),
            ("max_steps", t.max_steps > 0, "must be at least 1"),
            (
                "lr",
                t.lr > 0.0 && t.lr.is_finite(),
                "must be a positive number",
            ),
            (
                "min_lr",
                (0.0..=t.lr).contains(&t.min_lr),
                "must be in [0, train.lr]",
            ),
            ("beta1", (0.0..1.0).contains(&t.beta1), "must be in [0, 1)"),
            ("beta2", (0.0..1.0).contains(&t.beta2), "must be in [0, 1)"),
            (
                "grad_clip",
                t.grad_clip >= 0.0,
                "must be >= 0 (0 turns clipping off)",
            ),
            ("grad_accum", t.grad_accum > 0, "must be at least 1"),
            (
                "sample_tokens",
                t.sample_tokens <= MAX_SAMPLE_TOKENS,
                "must be at most 100000 (the end-of-training sample is a preview; `tinygpt sample --max-new-tokens N` writes more)",
            ),
            (
                "weight_decay",
                // Each step multiplies the weights by 1 - lr × weight_decay.
                t.weight_decay >= 0.0 && t.lr * t.weight_decay < 1.0,
                "must be >= 0 with train.lr × weight_decay below 1 (each step scales the weights by 1 - lr × weight_decay): lower it or train.lr (0.1 is usual)",
            ),
            (
                "checkpoint_interval",
                t.checkpoint_interval > 0 && t.keep_checkpoints > 0,
                "checkpoint_interval and keep_checkpoints must each be at least 1",
            ),
            (
                "eval_interval",
                t.eval_interval > 0 && t.eval_batches > 0 && t.log_interval > 0,
                "eval_interval, eval_batches and log_interval must each be at least 1",
            ),
        ];
        for (key, ok, reason) in checks {
            if !ok {
                bail!("train.{key}: {reason}");
            }
        }
        self.data.validate()?;
        // vocab_size 0 is resolved from the tokenizer later; check everything else now.
        let mut model = self.model.clone();
        model.vocab_size = model.vocab_size.max(1);
        model.validate()?;
        Ok(())
    }
}

/// A config file as a TOML table, with read and syntax errors in one line.
pub(crate) fn read_table(path: &Path) -> Result<toml::Table> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config {}", path.display()))?;
    text.parse()
        .map_err(|e: toml::de::Error| one_line(&e))
        .with_context(|| format!("config {} is not valid TOML", path.display()))
}

/// Keys a resumed run may change: they move the schedule or what is logged, not what the
/// checkpoint's weights, moments and data position mean.
pub const RESUMABLE_KEYS: &[&str] = &[
    "train.max_steps",
    "train.lr",
    "train.min_lr",
    "train.warmup_steps",
    "train.eval_interval",
    "train.eval_batches",
    "train.log_interval",
    "train.checkpoint_interval",
    "train.keep_checkpoints",
    "train.device",
    // Checkpoints keep f32 weights and moments whatever the products took.
    "train.precision",
    "train.sample_prompt",
    "train.sample_tokens",
    "train.muon_lr",
    "train.schedule",
    "train.warmdown_fraction",
];

/// Refuses a resume whose config differs from the checkpoint's in any key outside
/// [`RESUMABLE_KEYS`], naming every such key with both values.
pub fn check_resumable(saved: &RunConfig, requested: &RunConfig) -> Result<()> {
    let saved = toml::Table::try_from(saved)?;
    let requested = toml::Table::try_from(requested)?;
    let mut refused = Vec::new();
    for (section, old) in &saved {
        let (Some(old), Some(new)) = (
            old.as_table(),
            requested.get(section).and_then(|v| v.as_table()),
        ) else {
            continue;
        };
        let keys: std::collections::BTreeSet<&String> = old.keys().chain(new.keys()).collect();
        for key in keys {
            let path = format!("{section}.{key}");
            let (a, b) = (old.get(key), new.get(key));
            if a != b && !RESUMABLE_KEYS.contains(&path.as_str()) {
                let show =
                    |v: Option<&toml::Value>| v.map_or("unset".to_string(), |v| v.to_string());
                refused.push(format!("{path} (run: {}, now: {})", show(a), show(b)));
            }
        }
    }
    if refused.is_empty() {
        Ok(())
    } else {
        bail!(
            "cannot resume: {} changed; only schedule and logging keys (train.max_steps, lr, min_lr, warmup_steps, *_interval, ...) may change, start a new run for the rest",
            refused.join(", ")
        )
    }
}

/// `section.key=value`: the value is read as TOML (number, bool, string...), or taken as a
/// bare string when it is not valid TOML (`--set data.corpus=my.txt`).
pub(crate) fn apply_override(table: &mut toml::Table, assignment: &str) -> Result<()> {
    let usage =
        || format!("--set {assignment:?}: expected SECTION.KEY=VALUE, e.g. train.max_steps=500");
    let (path, raw) = assignment.split_once('=').with_context(usage)?;
    let (section, key) = path.trim().split_once('.').with_context(usage)?;
    if !["model", "data", "train"].contains(&section) {
        bail!("--set {assignment:?}: unknown section {section:?}; use model, data or train");
    }
    let value = format!("v = {raw}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_string()));
    let section = table
        .entry(section)
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    let Some(section) = section.as_table_mut() else {
        bail!("config: {path} is not inside a table");
    };
    section.insert(key.to_string(), value);
    Ok(())
}

/// toml errors span several lines (with a source excerpt); users get one.
fn one_line(e: &toml::de::Error) -> anyhow::Error {
    let msg = e.message().trim().replace('\n', " ");
    anyhow::anyhow!("{msg}")
}

#[cfg(test)]
mod tests;
