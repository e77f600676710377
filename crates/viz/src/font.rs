//! The bundled font (DejaVu Sans, Bitstream Vera license: see assets/DejaVuSans.LICENSE).

use std::sync::Once;

use plotters::style::FontStyle;

static FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

/// Registers the font as plotters' "sans-serif" (once per process).
pub fn register() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The bytes are a valid font, checked by the tests that draw text.
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
}
