//! Loading a trained run's weights for inference: the final weights, or any checkpoint.

use std::path::Path;

use anyhow::{Context, Result, bail};
use burn::tensor::Device;
use tinygpt_data::Tokenizer;
use tinygpt_model::Gpt;
use tinygpt_model::weights::{from_safetensors, load_module_tensors};

use crate::config::RunConfig;
use crate::device::parse_device;
use crate::footprint::Footprint;
use crate::run::RunDir;
use crate::run::checkpoint;
use crate::run::files::{Manifest, temporary_sibling, write_atomic, write_synced};
use crate::run::finite::check_finite;
use crate::run::hash::sha256_file;

/// A trained run opened for inference: its config, its tokenizer and a model on a device.
pub struct TrainedRun {
    pub config: RunConfig,
    pub tokenizer: Tokenizer,
    pub model: Gpt,
    pub device: Device,
}

/// Opens the run in `dir` on `device` (else the run's `train.device`), with the weights of
/// checkpoint `which` (latest, best, step-N) when given, else the final weights, else the
/// latest checkpoint.
pub fn open_trained_run(
    dir: &Path,
    device: Option<&str>,
    which: Option<&str>,
) -> Result<TrainedRun> {
    let run = RunDir::open(dir)?;
    let config = RunConfig::load(&run.config(), &[])?;
    let device = parse_device(device.unwrap_or(&config.train.device))?;
    let tokenizer = Tokenizer::load(&run.tokenizer())?;
    let model = load_run_model(&run, &config, &tokenizer, which, &device)?;
    Ok(TrainedRun {
        config,
        tokenizer,
        model,
        device,
    })
}

/// The model of `run` on `device` (see [`open_trained_run`]), after checking that `tokenizer`
/// is the one its weights were trained with.
fn load_run_model(
    run: &RunDir,
    config: &RunConfig,
    tokenizer: &Tokenizer,
    which: Option<&str>,
    device: &Device,
) -> Result<Gpt> {
    let vocab = tokenizer.vocab_size();
    if vocab > config.model.vocab_size {
        bail!(
            "{} has {vocab} tokens but the model's vocabulary has {}: this is not the tokenizer the run was trained with; restore the run's tokenizer.json",
            run.tokenizer().display(),
            config.model.vocab_size
        );
    }
    Footprint::inference(&config.model, config.train.batch_size).check(&format!(
        "{} describes a model too large for this machine; restore the run's config.toml",
        run.config().display()
    ))?;
    let model = Gpt::new(&config.model, config.train.seed, device)?;
    if which.is_none() && run.model().is_file() {
        let path = run.model();
        let (tensors, metadata) = read_run_model(run)?;
        if serde_json::to_value(&metadata.tokenizer)? != serde_json::to_value(tokenizer)? {
            bail!(
                "{} differs from the tokenizer {} was trained with: restore it, or make a new run from the weights alone (they carry their tokenizer) with `tinygpt import --weights {} --out NEW_RUN`",
                run.tokenizer().display(),
                path.display(),
                path.display()
            );
        }
        return load_module_tensors(model, tensors).with_context(|| path.display().to_string());
    }
    let checkpoints = run.checkpoints();
    if which.is_none() && checkpoint::list(&checkpoints)?.is_empty() {
        bail!(
            "{} has no weights yet (no model.safetensors, no checkpoints): train it first",
            run.path.display()
        );
    }
    let dir = checkpoint::resolve(&checkpoints, which.unwrap_or("latest"))?;
    let state = checkpoint::load_state(&dir)?;
    if sha256_file(&run.tokenizer())? != state.tokenizer_sha256 {
        bail!(
            "{} differs from the tokenizer checkpoint {} was trained with (sha256): restore the run's tokenizer.json",
            run.tokenizer().display(),
            dir.display()
        );
    }
    checkpoint::load_model(&dir, model)
}

/// The metadata key of tinygpt's safetensors files: JSON with the model config and the
/// tokenizer, so an exported file is self-contained. One key only, because safetensors writes
/// metadata in hash-map order and the same weights must always give the same bytes.
pub const METADATA_KEY: &str = "tinygpt";

#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct ExportMetadata {
    pub model: tinygpt_model::GptConfig,
    pub tokenizer: Tokenizer,
}

/// The run's final weights, written atomically and recorded in the run's `SHA256SUMS`.
pub fn save_run_model(
    run: &RunDir,
    model: &Gpt,
    config: &tinygpt_model::GptConfig,
    tokenizer: &Tokenizer,
) -> Result<()> {
    let bytes = export_bytes(model, config, tokenizer)?;
    let path = run.model();
    let name = MODEL_NAME;
    let tmp = temporary_sibling(&path);
    write_synced(&tmp, &bytes)?;
    // The manifest first: a crash before the rename leaves no final weights (the run still
    // has its checkpoints), never unverifiable ones.
    let mut manifest = Manifest::read(&run.path)?.unwrap_or_default();
    manifest.insert(name, &bytes);
    manifest.write(&run.path)?;
    std::fs::rename(&tmp, &path).with_context(|| format!("cannot write {}", path.display()))
}

const MODEL_NAME: &str = "model.safetensors";

/// The run's final weights, checked against its `SHA256SUMS` (runs from before the
/// manifest, which have no marker either, are read unchecked).
pub fn read_run_model(run: &RunDir) -> Result<(Vec<tinygpt_model::NamedTensor>, ExportMetadata)> {
    let path = run.model();
    let fix = format!(
        "use a checkpoint instead with --checkpoint latest, or retrain; `sha256sum -c {}` shows what changed",
        crate::run::files::SUMS
    );
    let bytes = match Manifest::read(&run.path)? {
        Some(manifest) => manifest.read_verified(&run.path, MODEL_NAME, &fix)?,
        None if run.kind().is_some() => bail!(
            "{} has no {}: its final weights cannot be verified; {fix}",
            run.path.display(),
            crate::run::files::SUMS
        ),
        None => std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?,
    };
    parse_export(&bytes, &path)
}

/// Writes `model` as safetensors with its config and tokenizer in the metadata, atomically.
pub fn save_export(
    model: &Gpt,
    config: &tinygpt_model::GptConfig,
    tokenizer: &Tokenizer,
    path: &Path,
) -> Result<()> {
    write_atomic(path, &export_bytes(model, config, tokenizer)?)
}

fn export_bytes(
    model: &Gpt,
    config: &tinygpt_model::GptConfig,
    tokenizer: &Tokenizer,
) -> Result<Vec<u8>> {
    let metadata = ExportMetadata {
        model: config.clone(),
        tokenizer: tokenizer.clone(),
    };
    let metadata = std::collections::HashMap::from([(
        METADATA_KEY.to_string(),
        serde_json::to_string(&metadata)?,
    )]);
    let tensors = tinygpt_model::weights::module_tensors(model);
    check_finite(&tensors, Path::new("the model"))?;
    Ok(tinygpt_model::weights::to_safetensors(&tensors, metadata))
}

/// Reads an exported file: its tensors and its metadata.
pub fn read_export(path: &Path) -> Result<(Vec<tinygpt_model::NamedTensor>, ExportMetadata)> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    parse_export(&bytes, path)
}

fn parse_export(
    bytes: &[u8],
    path: &Path,
) -> Result<(Vec<tinygpt_model::NamedTensor>, ExportMetadata)> {
    let (tensors, metadata) =
        from_safetensors(bytes).with_context(|| path.display().to_string())?;
    let json = metadata.get(METADATA_KEY).with_context(|| {
        format!(
            "{} has no {METADATA_KEY:?} metadata: not a tinygpt export",
            path.display()
        )
    })?;
    let metadata: ExportMetadata = serde_json::from_str(json)
        .map_err(|e| anyhow::anyhow!("{}: bad {METADATA_KEY:?} metadata ({e})", path.display()))?;
    check_finite(&tensors, path)?;
    Ok((tensors, metadata))
}
