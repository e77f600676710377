//! `bench --save-first-step DIR`: the first step's starting weights, batch and loss, for a
//! reference implementation to redo (`bench/reference/gpt.py --check DIR`); never over files
//! a user had there without `--force`.

use std::path::Path;

use anyhow::{Context, Result, bail};
use tinygpt_data::Batch;
use tinygpt_model::weights::{NamedTensor, to_safetensors};
use tinygpt_train::run::files::{refuse_existing, write_atomic};

/// The files --save-first-step writes into its directory.
const FIRST_STEP_FILES: [&str; 2] = ["model.safetensors", "first-step.json"];

/// Refuses a --save-first-step directory whose files would replace others (a trained run's
/// weights, a Hugging Face model) unless --force; before the model is built.
pub fn check_first_step_dir(dir: &Path, force: bool) -> Result<()> {
    if let Ok(meta) = std::fs::metadata(dir)
        && !meta.is_dir()
    {
        bail!(
            "--save-first-step {}: is a file, not a folder: choose a folder",
            dir.display()
        );
    }
    for name in FIRST_STEP_FILES {
        refuse_existing(&dir.join(name), "--save-first-step folder", force)?;
    }
    Ok(())
}

pub fn save_first_step(
    dir: &Path,
    weights: &[NamedTensor],
    batch: &Batch,
    loss: f64,
) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    write_atomic(
        &dir.join(FIRST_STEP_FILES[0]),
        &to_safetensors(weights, Default::default()),
    )?;
    let rows = |ids: &[i64]| -> Vec<Vec<i64>> {
        ids.chunks(batch.block_size).map(<[i64]>::to_vec).collect()
    };
    let json = serde_json::json!({
        "inputs": rows(&batch.inputs),
        "targets": rows(&batch.targets),
        "loss": loss,
    });
    write_atomic(&dir.join(FIRST_STEP_FILES[1]), json.to_string().as_bytes())
}
