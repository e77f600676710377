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
