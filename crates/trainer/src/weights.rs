//! Loading a trained run's weights for inference: the final weights, or any checkpoint.

use anyhow::{Context, Result, bail};
use burn::tensor::Device;
use tinygpt_model::Gpt;
use tinygpt_model::weights::{from_safetensors, load_module_tensors};

use crate::checkpoint;
use crate::config::RunConfig;
use crate::run_dir::RunDir;

/// The model of `run` on `device`: from checkpoint `which` (latest, best, step-N) when given,
/// else the final weights, else the latest checkpoint.
pub fn load_run_model(
    run: &RunDir,
    config: &RunConfig,
    which: Option<&str>,
    device: &Device,
) -> Result<Gpt> {
    let model = Gpt::new(&config.model, config.train.seed, device)?;
    if which.is_none() && run.model().is_file() {
        let path = run.model();
        let bytes =
            std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
        let (tensors, _) = from_safetensors(&bytes).with_context(|| path.display().to_string())?;
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
    checkpoint::load_state(&dir)?;
    checkpoint::load_model(&dir, model)
}

/// The metadata key of tinygpt's safetensors files: JSON with the model config and the
/// tokenizer, so an exported file is self-contained. One key only, because safetensors writes
/// metadata in hash-map order and the same weights must always give the same bytes.
pub const METADATA_KEY: &str = "tinygpt";

#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct ExportMetadata {
    pub model: tinygpt_model::GptConfig,
    pub tokenizer: tinygpt_data::Tokenizer,
}

/// Writes `model` as safetensors with its config and tokenizer in the metadata, atomically.
pub fn save_export(
    model: &Gpt,
    config: &tinygpt_model::GptConfig,
    tokenizer: &tinygpt_data::Tokenizer,
    path: &std::path::Path,
) -> Result<()> {
    let metadata = ExportMetadata {
        model: config.clone(),
        tokenizer: tokenizer.clone(),
    };
    let metadata = std::collections::HashMap::from([(
        METADATA_KEY.to_string(),
        serde_json::to_string(&metadata)?,
    )]);
    let bytes = tinygpt_model::weights::to_safetensors(
        &tinygpt_model::weights::module_tensors(model),
        metadata,
    );
    let tmp = path.with_extension("safetensors.tmp");
    checkpoint::write_synced(&tmp, &bytes)?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
}

/// Reads an exported file: its tensors and its metadata.
pub fn read_export(
    path: &std::path::Path,
) -> Result<(Vec<tinygpt_model::NamedTensor>, ExportMetadata)> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let (tensors, metadata) =
        from_safetensors(&bytes).with_context(|| path.display().to_string())?;
    let json = metadata.get(METADATA_KEY).with_context(|| {
        format!(
            "{} has no {METADATA_KEY:?} metadata: not a tinygpt export",
            path.display()
        )
    })?;
    let metadata: ExportMetadata = serde_json::from_str(json)
        .map_err(|e| anyhow::anyhow!("{}: bad {METADATA_KEY:?} metadata ({e})", path.display()))?;
    Ok((tensors, metadata))
}
