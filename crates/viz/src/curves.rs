//! Line charts: loss against step (or tokens), several runs overlaid, optional log scale.

use std::path::Path;

use plotters::prelude::*;

use crate::{VizError, font};

/// One line: `(x, y)` points, its legend label, dashed or solid, and a palette index (curves
/// of one run share it).
pub struct Curve {
    pub label: String,
    pub points: Vec<(f64, f64)>,
    pub dashed: bool,
    pub color: usize,
}

/// One chart of a figure.
pub struct Panel {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub log_y: bool,
    pub curves: Vec<Curve>,
}

const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

/// Draws `panels` stacked vertically, each `width × panel_height`, into a PNG at `path`.
pub fn line_charts(
    path: &Path,
    panels: &[Panel],
    width: u32,
    panel_height: u32,
) -> Result<(), VizError> {
    font::register();
    let err = |e: &dyn std::fmt::Display| VizError::new(path, e);
    let height = panel_height * panels.len().max(1) as u32;
    let root = BitMapBackend::new(path, (width, height)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let areas = root.split_evenly((panels.len().max(1), 1));
    for (panel, area) in panels.iter().zip(areas.iter()) {
        draw_panel(area, panel).map_err(|e| err(&e))?;
    }
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

type Area<'a> = DrawingArea<BitMapBackend<'a>, plotters::coord::Shift>;

fn draw_panel(area: &Area<'_>, panel: &Panel) -> Result<(), Box<dyn std::error::Error>> {
    let points = || {
        panel
            .curves
            .iter()
            .flat_map(|c| c.points.iter())
            .filter(|p| p.0.is_finite() && p.1.is_finite())
    };
    let (mut x0, mut x1, mut y0, mut y1) = (
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::INFINITY,
        f64::NEG_INFINITY,
    );
    for &(x, y) in points() {
        (x0, x1, y0, y1) = (x0.min(x), x1.max(x), y0.min(y), y1.max(y));
    }
    if !x0.is_finite() {
        (x0, x1, y0, y1) = (0.0, 1.0, 0.1, 1.0);
    }
    if x1 <= x0 {
        x1 = x0 + 1.0;
    }
    if panel.log_y {
        y0 = y0.max(1e-12);
    }
    let pad = if panel.log_y {
        (y1 / y0).powf(0.05)
    } else {
        1.0
    };
    let (lo, hi) = if panel.log_y {
        (y0 / pad, y1 * pad)
    } else {
        let span = (y1 - y0).max(1e-9);
        (y0 - 0.05 * span, y1 + 0.05 * span)
    };
    let mut builder = ChartBuilder::on(area);
    builder
        .caption(&panel.title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(60);
    let style = |c: &Curve| (PALETTE[c.color % PALETTE.len()], c.dashed);
    macro_rules! finish {
        ($chart:expr) => {{
            let mut chart = $chart;
            chart
                .configure_mesh()
                .x_desc(panel.x_label.as_str())
                .y_desc(panel.y_label.as_str())
                .label_style(("sans-serif", 12))
                .light_line_style(RGBColor(235, 235, 235))
                .draw()?;
            for curve in &panel.curves {
                let (color, dashed) = style(curve);
                let data = curve
                    .points
                    .iter()
                    .copied()
                    .filter(|p| p.0.is_finite() && p.1.is_finite());
                let series = if dashed {
                    chart.draw_series(DashedLineSeries::new(data, 6, 4, color.stroke_width(2)))?
                } else {
                    chart.draw_series(LineSeries::new(data, color.stroke_width(2)))?
                };
                series.label(curve.label.as_str()).legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
            }
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.85))
                .border_style(RGBColor(200, 200, 200))
                .label_font(("sans-serif", 12))
                .position(SeriesLabelPosition::UpperRight)
                .draw()?;
        }};
    }
    if panel.log_y {
        finish!(builder.build_cartesian_2d(x0..x1, (lo..hi).log_scale())?);
    } else {
        finish!(builder.build_cartesian_2d(x0..x1, lo..hi)?);
    }
    Ok(())
}
