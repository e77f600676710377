//! Weights that hold NaN or infinity come from a diverged run: they are refused wherever
//! weights are written or read (checkpoints, exports, loading for inference).

use std::path::Path;

use anyhow::{Result, bail};

/// Refuses weights holding NaN or infinity: a diverged model only ever produces garbage.
pub fn check_finite(tensors: &[tinygpt_model::NamedTensor], path: &Path) -> Result<()> {
    if let Some((name, bad)) = first_non_finite(tensors) {
        bail!(
            "{}: tensor {name} holds {bad}: these weights come from a diverged run; use an earlier checkpoint (--checkpoint) or retrain with a lower train.lr",
            path.display()
        );
    }
    Ok(())
}

/// The first tensor holding a NaN or an infinity, with that value.
pub fn first_non_finite(tensors: &[tinygpt_model::NamedTensor]) -> Option<(&str, f32)> {
    tensors.iter().find_map(|t| {
        t.values
            .iter()
            .find(|v| !v.is_finite())
            .map(|&bad| (t.name.as_str(), bad))
    })
}
