//! The tiled attention's geometry and row operations: which keys each query sees (causal, and
//! within its window), blocks of positions, and the vectorised passes over one row of a tile of
//! scores.

use super::math::{Level, exp, lanes, level, vectorised};

/// The keys query `i` sees, `first..=i`: the last `window` positions (all when 0).
pub(super) fn first_key(i: usize, window: usize) -> usize {
    match window {
        0 => 0,
        w => (i + 1).saturating_sub(w),
    }
}

/// The queries that see key `j`: `j..end` (to the sequence's end `t` without a window).
pub(super) fn end_query(j: usize, window: usize, t: usize) -> usize {
    match window {
        0 => t,
        w => (j + w).min(t),
    }
}

/// Within a block of keys `k0..k0 + n`, the columns query `i` sees.
pub(super) fn seen_columns(i: usize, window: usize, k0: usize, n: usize) -> (usize, usize) {
    let end = (i + 1).saturating_sub(k0).min(n);
    let start = first_key(i, window).saturating_sub(k0).min(end);
    (start, end)
}

/// `(start, end)` of each block of `size` positions in `from..to`.
pub(super) fn blocks(from: usize, to: usize, size: usize) -> impl Iterator<Item = (usize, usize)> {
    (from..to)
        .step_by(size)
        .map(move |start| (start, (start + size).min(to)))
}

vectorised! {
    /// One row of a block of scores, in place: the columns `start..end` become `e^(s − m')`
    /// with `m' = max(max, those scores)`, the rest 0. Returns `m'` and the row's new sum.
    pub fn exp_seen(row: &mut [f32], start: usize, end: usize, max: f32) -> (f32, f32) {
        let new_max = lanes(&row[start..end], max, f32::max);
        row[..start].fill(0.0);
        row[end..].fill(0.0);
        for v in &mut row[start..end] {
            *v = exp(*v - new_max);
        }
        (new_max, lanes(&row[start..end], 0.0, |a, b| a + b))
    }
}

vectorised! {
    /// The recomputed pattern of one row: the columns `start..end` become `e^(s − shift)`,
    /// the rest 0.
    pub fn exp_minus(row: &mut [f32], start: usize, end: usize, shift: f32) {
        row[..start].fill(0.0);
        row[end..].fill(0.0);
        for v in &mut row[start..end] {
            *v = exp(*v - shift);
        }
    }
}

vectorised! {
    /// `dp ← scale·p ⊙ (dp − delta)`: the scores' gradient from the pattern's.
    pub fn scores_grad(dp: &mut [f32], p: &[f32], delta: f32, scale: f32) {
        for (ds, &p) in dp.iter_mut().zip(p) {
            *ds = scale * p * (*ds - delta);
        }
    }
}

vectorised! {
    /// `row ← factor·row`.
    pub fn scale_row(row: &mut [f32], factor: f32) {
        for v in row {
            *v *= factor;
        }
    }
}
