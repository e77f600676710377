//! Pictures of tinygpt models and runs: PNG files drawn with plotters (text uses a bundled
//! DejaVu Sans, so drawing needs no system fonts), and self-contained interactive HTML pages.

mod attention;
mod curves;
mod font;
pub mod html;
pub use html::chat_page;

pub use attention::{AttentionMap, attention_grid, attention_grid_size};
pub use curves::{Curve, Panel, line_charts};

/// Why a picture could not be drawn or saved.
#[derive(Debug, thiserror::Error)]
#[error("cannot draw {path}: {reason}")]
pub struct VizError {
    pub path: String,
    pub reason: String,
}

impl VizError {
    fn new(path: &std::path::Path, reason: impl std::fmt::Display) -> Self {
        Self {
            path: path.display().to_string(),
            reason: reason.to_string(),
        }
    }
}
