//! Attention patterns as heatmaps: for each query token (a row), how much it attends to each
//! key token (a column). Future keys, masked to −∞ before the softmax, are drawn hatched grey
//! so they read as "not allowed" rather than "zero".

use std::path::Path;

use plotters::prelude::*;
use plotters::style::colors::colormaps::ViridisRGB;

use crate::{VizError, font};

/// One head's pattern: `weights[query * len + key]`, rows summing to 1.
pub struct AttentionMap {
    pub title: String,
    pub weights: Vec<f32>,
}

const PANEL: u32 = 360;
const COLOR_BAR: u32 = 90;

/// Pixel size of a grid of `n` panels in `columns` columns.
pub fn attention_grid_size(n: usize, columns: usize) -> (u32, u32) {
    let columns = columns.clamp(1, n.max(1));
    let rows = n.div_ceil(columns).max(1);
    (columns as u32 * PANEL + COLOR_BAR, rows as u32 * PANEL)
}

/// Draws `maps` (each over `tokens` × `tokens`) in a grid with `columns` columns, a colour
/// scale on the right, and saves a PNG at `path`.
pub fn attention_grid(
    path: &Path,
    tokens: &[String],
    maps: &[AttentionMap],
    columns: usize,
) -> Result<(), VizError> {
    font::register();
    let err = |e: &dyn std::fmt::Display| VizError::new(path, e);
    let (width, height) = attention_grid_size(maps.len(), columns);
    let columns = columns.clamp(1, maps.len().max(1));
    let root = BitMapBackend::new(path, (width, height)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let (grid, bar) = root.split_horizontally(width - COLOR_BAR);
    let rows = maps.len().div_ceil(columns).max(1);
    let panels = grid.split_evenly((rows, columns));
    for (map, area) in maps.iter().zip(panels.iter()) {
        draw_map(area, tokens, map).map_err(|e| err(&e))?;
    }
    draw_color_bar(&bar).map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

type Area<'a> = DrawingArea<BitMapBackend<'a>, plotters::coord::Shift>;

fn draw_map(
    area: &Area<'_>,
    tokens: &[String],
    map: &AttentionMap,
) -> Result<(), Box<dyn std::error::Error>> {
    let n = tokens.len();
    // Segmented axes put each label in the middle of its cell. Query 0 is drawn at the top,
    // so row y shows query n - 1 - y.
    let key_label = |v: &SegmentValue<usize>| match v {
        SegmentValue::CenterOf(i) => tokens.get(*i).cloned().unwrap_or_default(),
        _ => String::new(),
    };
    let query_label = |v: &SegmentValue<usize>| match v {
        SegmentValue::CenterOf(y) if *y < n => tokens[n - 1 - *y].clone(),
        _ => String::new(),
    };
    let mut chart = ChartBuilder::on(area)
        .caption(&map.title, ("sans-serif", 16))
        .margin(6)
        .x_label_area_size(30)
        .y_label_area_size(30)
        // A segmented 0..m range has m + 1 cells.
        .build_cartesian_2d((0..n - 1).into_segmented(), (0..n - 1).into_segmented())?;
    let label_style = ("sans-serif", if n > 24 { 9 } else { 12 });
    chart
        .configure_mesh()
        .disable_mesh()
        .x_labels(n)
        .y_labels(n)
        .x_label_formatter(&key_label)
        .y_label_formatter(&query_label)
        .x_label_style(label_style)
        .y_label_style(label_style)
        .x_desc("key")
        .y_desc("query")
        .axis_desc_style(("sans-serif", 11))
        .draw()?;
    let cell = |query: usize, key: usize| {
        let y = n - 1 - query;
        [
            (SegmentValue::Exact(key), SegmentValue::Exact(y)),
            (SegmentValue::Exact(key + 1), SegmentValue::Exact(y + 1)),
        ]
    };
    let future = RGBColor(215, 215, 215);
    let cells = (0..n).flat_map(|query| (0..n).map(move |key| (query, key)));
    chart.draw_series(cells.map(|(query, key)| {
        let color = if key > query {
            future
        } else {
            ViridisRGB::get_color(map.weights[query * n + key].clamp(0.0, 1.0))
        };
        Rectangle::new(cell(query, key), color.filled())
    }))?;
    // A diagonal stroke through each future cell marks it as masked.
    let future_cells = (0..n).flat_map(|query| (query + 1..n).map(move |key| (query, key)));
    chart.draw_series(future_cells.map(|(query, key)| {
        let [a, b] = cell(query, key);
        PathElement::new(vec![a, b], RGBColor(165, 165, 165))
    }))?;
    Ok(())
}

fn draw_color_bar(area: &Area<'_>) -> Result<(), Box<dyn std::error::Error>> {
    let mut chart = ChartBuilder::on(area)
        .margin_top(40)
        .margin_bottom(40)
        .margin_right(10)
        .y_label_area_size(40)
        .caption("weight", ("sans-serif", 13))
        .build_cartesian_2d(0..1, 0f32..1f32)?;
    chart
        .configure_mesh()
        .disable_mesh()
        .disable_x_axis()
        .y_labels(6)
        .y_label_style(("sans-serif", 11))
        .draw()?;
    let steps = 100;
    chart.draw_series((0..steps).map(|i| {
        let (lo, hi) = (i as f32 / steps as f32, (i + 1) as f32 / steps as f32);
        Rectangle::new([(0, lo), (1, hi)], ViridisRGB::get_color(lo).filled())
    }))?;
    Ok(())
}
