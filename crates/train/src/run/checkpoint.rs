//! Checkpoints: everything needed to continue a run as if it had never stopped.
//!
//! ```text
//! checkpoints/step-0000250/
//!   model.safetensors       weights, full f32, named by module path
//!   optimizer.safetensors   AdamW first/second moments (and Muon's momentum) per parameter path
//!   state.json              step, RNG, data position, best val loss, hashes, config
//!   SHA256SUMS              sha256 of the three files above (`sha256sum -c` reads it)
//! ```
//!
//! A checkpoint is written into `checkpoints/.tmp-step-…`, every file fsynced, then renamed
//! into place: a directory named `step-…` is always complete, and the previous one is never
//! touched before the new one exists. `SHA256SUMS` records the sha256 of the three files
//! (`state.json` too: an edited step or RNG state would silently change the resumed run), so a
//! corrupted, truncated or edited file is found on load instead of silently training on
//! garbage. Weights that are not finite are never written, and never loaded.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};
use tinygpt_data::BatchSampler;
use tinygpt_model::Gpt;
use tinygpt_model::weights::{
    NamedTensor, from_safetensors, load_module_tensors, module_tensors, to_safetensors,
};

use crate::config::RunConfig;
use crate::run::files::{Manifest, sync_dir, write_synced};
use crate::run::finite::{check_finite, first_non_finite};
use crate::run::hash::sha256_hex;
use tinygpt_kernels::adamw::Moments;

use crate::optim::Optimizer;
use crate::tensors::to_vec;

pub const MODEL_FILE: &str = "model.safetensors";
pub const OPTIMIZER_FILE: &str = "optimizer.safetensors";
pub const STATE_FILE: &str = "state.json";
/// Format 2 added `SHA256SUMS`; format 1 checkpoints (tensor hashes in `state.json` only)
/// still load.
pub const FORMAT: u32 = 2;

/// Test hook: milliseconds to pause inside a checkpoint write, after the weights are written
/// and before the checkpoint is complete, so a test can kill the process in that window.
pub const PAUSE_ENV: &str = "TINYGPT_TEST_PAUSE_IN_CHECKPOINT_MS";

/// The part of a checkpoint that is not tensors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    pub format: u32,
    /// Optimizer steps completed.
    pub step: usize,
    /// The training batch sampler, RNG included: resuming continues the same data order.
    pub sampler: BatchSampler,
    /// Val loss at this step, when this step was an eval step.
    pub val_loss: Option<f64>,
    pub best_val_loss: Option<f64>,
    pub elapsed_s: f64,
    pub train_seconds: f64,
    /// Length of metrics.jsonl when this checkpoint was taken; a resume cuts it back to this.
    pub metrics_bytes: u64,
    pub corpus_sha256: String,
    pub tokenizer_sha256: String,
    pub config: RunConfig,
    /// Data-parallel ranks that trained up to here (1 before there were ranks): with
    /// `config.train.grad_accum`, the step's global batch, which a resume must keep.
    #[serde(default = "one_rank")]
    pub ranks: usize,
    /// sha256 of each tensor file in the checkpoint (format 1; format 2 uses `SHA256SUMS`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub files: BTreeMap<String, String>,
}

fn one_rank() -> usize {
    1
}

/// Writes a complete checkpoint for `state.step` under `checkpoints`, atomically.
pub fn save(
    checkpoints: &Path,
    mut state: TrainState,
    model: &Gpt,
    optim: &Optimizer,
) -> Result<PathBuf> {
    let name = step_name(state.step);
    let tmp = checkpoints.join(format!(".tmp-{name}"));
    let done = checkpoints.join(&name);
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).with_context(|| format!("cannot clear {}", tmp.display()))?;
    }
    std::fs::create_dir_all(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;

    let model_tensors = module_tensors(model);
    let optim_tensors = optimizer_tensors(optim);
    for tensors in [&model_tensors, &optim_tensors] {
        if let Some((tensor, bad)) = first_non_finite(tensors) {
            bail!(
                "refusing to write checkpoint {name}: {tensor} holds {bad}; the run diverged (lower train.lr)"
            );
        }
    }
    let model_bytes = to_safetensors(&model_tensors, HashMap::new());
    let optim_bytes = to_safetensors(&optim_tensors, adam_metadata(optim));
    let mut manifest = Manifest::default();
    state.files.clear();
    for (file, bytes) in [(MODEL_FILE, &model_bytes), (OPTIMIZER_FILE, &optim_bytes)] {
        write_synced(&tmp.join(file), bytes)?;
        manifest.insert(file, bytes);
    }
    if let Some(ms) = std::env::var(PAUSE_ENV).ok().and_then(|v| v.parse().ok()) {
        eprintln!("checkpoint write paused in {}", tmp.display());
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }
    let state_bytes = serde_json::to_string_pretty(&state)?.into_bytes();
    write_synced(&tmp.join(STATE_FILE), &state_bytes)?;
    manifest.insert(STATE_FILE, &state_bytes);
    manifest.write(&tmp)?;
    sync_dir(&tmp)?;

    if done.exists() {
        // Same step saved again (a resume that ran no step): the new copy replaces it.
        std::fs::remove_dir_all(&done)
            .with_context(|| format!("cannot replace {}", done.display()))?;
    }
    std::fs::rename(&tmp, &done).with_context(|| format!("cannot complete {}", done.display()))?;
    sync_dir(checkpoints)?;
    Ok(done)
}

/// Deletes all but the newest `keep` checkpoints, always keeping the best one.
pub fn rotate(checkpoints: &Path, keep: usize) -> Result<()> {
    let all = list(checkpoints)?;
    let best = best(checkpoints)?;
    let keep_from = all.len().saturating_sub(keep.max(1));
    for (_, dir) in &all[..keep_from] {
        if Some(dir) != best.as_ref() {
            std::fs::remove_dir_all(dir)
                .with_context(|| format!("cannot remove {}", dir.display()))?;
        }
    }
    Ok(())
}

/// Complete checkpoints (`step-N` directories), oldest first.
pub fn list(checkpoints: &Path) -> Result<Vec<(usize, PathBuf)>> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(checkpoints) else {
        return Ok(found);
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        if let Some(step) = name.to_str().and_then(step_of) {
            found.push((step, entry.path()));
        }
    }
    found.sort();
    Ok(found)
}

/// The checkpoint with the lowest val loss, if any checkpoint was taken on an eval step.
fn best(checkpoints: &Path) -> Result<Option<PathBuf>> {
    let mut best: Option<(f64, PathBuf)> = None;
    for (_, dir) in list(checkpoints)? {
        let Ok(state) = read_state(&dir) else {
            continue;
        };
        if let Some(val) = state.val_loss
            && best.as_ref().is_none_or(|(b, _)| val < *b)
        {
            best = Some((val, dir));
        }
    }
    Ok(best.map(|(_, dir)| dir))
}

/// `latest`, `best`, `step-N` or `N` → the checkpoint directory.
pub fn resolve(checkpoints: &Path, which: &str) -> Result<PathBuf> {
    let all = list(checkpoints)?;
    let available = || {
        let names: Vec<String> = all.iter().map(|(s, _)| step_name(*s)).collect();
        if names.is_empty() {
            "none".into()
        } else {
            names.join(", ")
        }
    };
    let found = match which {
        "latest" => all.last().map(|(_, d)| d.clone()),
        "best" => best(checkpoints)?,
        other => {
            let step: Option<usize> = other.strip_prefix("step-").unwrap_or(other).parse().ok();
            let Some(step) = step else {
                bail!("--checkpoint {other:?}: use latest, best or step-N");
            };
            all.iter().find(|(s, _)| *s == step).map(|(_, d)| d.clone())
        }
    };
    found.with_context(|| {
        format!(
            "no {which:?} checkpoint in {} (available: {})",
            checkpoints.display(),
            available()
        )
    })
}

/// Reads `state.json` and checks it and every tensor file against the checkpoint's
/// `SHA256SUMS` (format 1: the tensor hashes in `state.json`).
pub fn load_state(dir: &Path) -> Result<TrainState> {
    let fix = "resume from another checkpoint with --checkpoint (see `ls checkpoints`)";
    let Some(manifest) = Manifest::read(dir)? else {
        return load_legacy_state(dir);
    };
    let bytes = manifest.read_verified(dir, STATE_FILE, fix)?;
    let state = parse_state(dir, &bytes)?;
    for file in [MODEL_FILE, OPTIMIZER_FILE] {
        manifest.read_verified(dir, file, fix)?;
    }
    Ok(state)
}

/// A format-1 checkpoint: tensor hashes in `state.json`, which itself is unchecked.
fn load_legacy_state(dir: &Path) -> Result<TrainState> {
    let state = read_state(dir)?;
    if state.format != 1 {
        bail!(
            "checkpoint {} has no {}: it is incomplete or was tampered with; resume from another checkpoint with --checkpoint",
            dir.display(),
            crate::run::files::SUMS
        );
    }
    for (file, expected) in &state.files {
        let path = dir.join(file);
        let bytes = std::fs::read(&path)
            .with_context(|| format!("checkpoint file {} is missing", path.display()))?;
        if &sha256_hex(&bytes) != expected {
            bail!(
                "checkpoint file {} is corrupted (its sha256 does not match state.json): resume from another checkpoint with --checkpoint",
                path.display()
            );
        }
    }
    for file in [MODEL_FILE, OPTIMIZER_FILE] {
        if !state.files.contains_key(file) {
            bail!(
                "{} lists no {file}: not a complete tinygpt checkpoint",
                dir.join(STATE_FILE).display()
            );
        }
    }
    Ok(state)
}

fn read_state(dir: &Path) -> Result<TrainState> {
    let path = dir.join(STATE_FILE);
    let bytes = std::fs::read(&path)
        .with_context(|| format!("cannot read {}: not a tinygpt checkpoint", path.display()))?;
    parse_state(dir, &bytes)
}

fn parse_state(dir: &Path, bytes: &[u8]) -> Result<TrainState> {
    let path = dir.join(STATE_FILE);
    let state: TrainState = serde_json::from_slice(bytes)
        .map_err(|e| anyhow::anyhow!("{} is not a valid checkpoint state ({e})", path.display()))?;
    if state.format == 0 || state.format > FORMAT {
        bail!(
            "{} has checkpoint format {}, this tinygpt reads 1 to {FORMAT}",
            path.display(),
            state.format
        );
    }
    Ok(state)
}

/// Loads the checkpoint's weights into `model` (built with the same config).
pub fn load_model(dir: &Path, model: Gpt) -> Result<Gpt> {
    let path = dir.join(MODEL_FILE);
    let bytes = std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
    let (tensors, _) = from_safetensors(&bytes).with_context(|| path.display().to_string())?;
    check_finite(&tensors, &path)?;
    load_module_tensors(model, tensors).with_context(|| path.display().to_string())
}

/// Rebuilds the optimizer (moments on `device`, step count) from a checkpoint.
pub fn load_optimizer(dir: &Path, config: &RunConfig, device: &Device) -> Result<Optimizer> {
    let path = dir.join(OPTIMIZER_FILE);
    let bytes = std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
    let (tensors, metadata) =
        from_safetensors(&bytes).with_context(|| path.display().to_string())?;
    let mut optim = Optimizer::new(&config.train);
    optim.steps = metadata
        .get("adam_steps")
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("{}: no adam_steps in its metadata", path.display()))?;
    let mut halves: HashMap<String, (Option<Tensor<1>>, Option<Tensor<1>>)> = HashMap::new();
    for t in tensors {
        let values = Tensor::from_data(
            TensorData::new(t.values, [t.shape.iter().product::<usize>()]),
            device,
        );
        if let Some(key) = t.name.strip_suffix(".first") {
            halves.entry(key.into()).or_default().0 = Some(values);
        } else if let Some(key) = t.name.strip_suffix(".second") {
            halves.entry(key.into()).or_default().1 = Some(values);
        } else if let Some(key) = t.name.strip_suffix(".momentum")
            && let Some(muon) = optim.muon.as_mut()
        {
            muon.buffers.insert(key.into(), values);
        } else {
            bail!("{}: unexpected tensor {}", path.display(), t.name);
        }
    }
    for (key, pair) in halves {
        let (Some(first), Some(second)) = pair else {
            bail!("{}: moments of {key} are incomplete", path.display());
        };
        optim.moments.insert(key, Moments { first, second });
    }
    Ok(optim)
}

fn optimizer_tensors(optim: &Optimizer) -> Vec<NamedTensor> {
    let mut tensors = Vec::new();
    let named = |name: String, t: &Tensor<1>| NamedTensor {
        name,
        shape: t.dims().to_vec(),
        values: to_vec(t.clone()),
    };
    for (key, moments) in &optim.moments {
        for (suffix, t) in [("first", &moments.first), ("second", &moments.second)] {
            tensors.push(named(format!("{key}.{suffix}"), t));
        }
    }
    // Muon's momentum, one per matrix it updates.
    for (key, buffer) in optim.muon.iter().flat_map(|m| &m.buffers) {
        tensors.push(named(format!("{key}.momentum"), buffer));
    }
    tensors.sort_by(|a, b| a.name.cmp(&b.name));
    tensors
}

fn adam_metadata(optim: &Optimizer) -> HashMap<String, String> {
    HashMap::from([("adam_steps".to_string(), optim.steps.to_string())])
}

pub fn step_name(step: usize) -> String {
    format!("step-{step:07}")
}

/// The step of a checkpoint directory's name, when tinygpt wrote exactly that name (a copy
/// the user kept, `step-0000500.bak` or `step-20`, is not one).
pub fn step_of(name: &str) -> Option<usize> {
    let step = name.strip_prefix("step-")?.parse().ok()?;
    (step_name(step) == name).then_some(step)
}
