//! The tiled attention's products, on the AVX-512 tiles and through gemm, against a plain
//! triple loop: odd shapes (a last vector of columns cut short, rows left over from a tile),
//! strided and transposed left-hand sides, accumulation, and the pattern and score-gradient
//! finishes with their causal and windowed masks.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::math::{Level, with_level};
use crate::matrix::Matrix;
use crate::tile_products::{Seen, exp_seen, multiply, pattern, scores_gradient};
use crate::tiles::seen_columns;

fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n).map(|_| rng.random_range(-1.0..1.0)).collect()
}

/// The levels whose paths differ here: the AVX-512 tiles, and gemm (below AVX-512). A level this
/// CPU lacks is named, not skipped in silence.
fn levels() -> Vec<Level> {
    let levels: Vec<Level> = [Level::Avx2, Level::Avx512]
        .into_iter()
        .filter(|level| level.available())
        .collect();
    if !Level::Avx512.available() {
        eprintln!("this CPU has no AVX-512: only the gemm path of the tile products is tested");
    }
    levels
}

/// `scale·lhs·rhs` one element at a time, in f64.
fn reference(lhs: Matrix, rhs: Matrix, [m, n, k]: [usize; 3], scale: f32) -> Vec<f32> {
    let mut out = vec![0.0f32; m * n];
    for i in 0..m {
        for j in 0..n {
            let sum: f64 = (0..k)
                .map(|p| f64::from(lhs.at(i, p)) * f64::from(rhs.at(p, j)))
                .sum();
            out[i * n + j] = (sum * f64::from(scale)) as f32;
        }
    }
    out
}

fn assert_close(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= 1e-5 * (1.0 + w.abs()),
            "{what}: element {i}: {g} against {w}"
        );
    }
}

#[test]
fn products_equal_the_plain_loop_on_odd_shapes_strides_and_accumulation() {
    let a = values(300 * 300, 1);
    let b = values(300 * 300, 2);
    for level in levels() {
        for [m, n, k] in [
            [1, 1, 1],
            [7, 33, 5],
            [13, 70, 32],
            [25, 17, 31],
            [6, 64, 200],
            [40, 129, 3],
        ] {
            // A row-major with a padded stride, and A read transposed (its rows k apart).
            for transposed in [false, true] {
                let lhs = match transposed {
                    false => Matrix::new(&a, 3, (k + 5) as isize, 1),
                    true => Matrix::new(&a, 1, 1, (m + 2) as isize),
                };
                let rhs = Matrix::new(&b, 2, (n + 9) as isize, 1);
                let want = reference(lhs, rhs, [m, n, k], 0.5);
                let stride = n + 4;
                let mut out = vec![f32::NAN; m * stride];
                with_level(level, || {
                    multiply(
                        crate::fresh::rewritable(&mut out),
                        stride,
                        [m, n, k],
                        lhs,
                        rhs,
                        0.5,
                        false,
                    )
                });
                let rows: Vec<f32> = out.chunks(stride).flat_map(|r| r[..n].to_vec()).collect();
                assert_close(&rows, &want, &format!("{level:?} {m}×{n}×{k}"));
                // The padding between rows is never written.
                assert!(
                    out.chunks(stride)
                        .all(|r| r[n..].iter().all(|x| x.is_nan()))
                );
                // Accumulating adds the same product again.
                with_level(level, || {
                    multiply(
                        crate::fresh::rewritable(&mut out),
                        stride,
                        [m, n, k],
                        lhs,
                        rhs,
                        0.5,
                        true,
                    )
                });
                let twice: Vec<f32> = want.iter().map(|x| 2.0 * x).collect();
                let rows: Vec<f32> = out.chunks(stride).flat_map(|r| r[..n].to_vec()).collect();
                assert_close(&rows, &twice, &format!("{level:?} {m}×{n}×{k} accumulated"));
            }
        }
    }
}

#[test]
fn the_pattern_is_the_exponential_of_the_shifted_scores_where_the_key_is_seen() {
    let (m, n, d) = (37, 75, 16);
    let q = values(m * d, 3);
    let k_t = values(d * n, 4);
    let shift = values(m, 5);
    let (query, keys_t) = (Matrix::dense(&q, d), Matrix::dense(&k_t, n));
    let scores = reference(query, keys_t, [m, n, d], 0.25);
    // Queries 40.. against keys 10..: the causal edge and a window of 20 both cut the tile.
    for window in [0, 20] {
        let seen = Seen {
            first_query: 40,
            first_key: 10,
            window,
        };
        for level in levels() {
            let mut out = vec![f32::NAN; m * n];
            with_level(level, || {
                pattern(&mut out, [m, n, d], [query, keys_t], 0.25, &shift, seen)
            });
            for r in 0..m {
                let (start, end) = seen_columns(40 + r, window, 10, n);
                for c in 0..n {
                    let want = match (start..end).contains(&c) {
                        true => (scores[r * n + c] - shift[r]).exp(),
                        false => 0.0,
                    };
                    let got = out[r * n + c];
                    assert!(
                        (got - want).abs() <= 1e-5 * (1.0 + want),
                        "{level:?} w{window} ({r}, {c}): {got} vs {want}"
                    );
                }
            }
        }
    }
}

#[test]
fn the_scores_gradient_is_the_scaled_pattern_times_the_shifted_product() {
    let (m, n, d) = (29, 50, 32);
    let d_out = values(m * d, 6);
    let v_t = values(d * n, 7);
    let p = values(m * n, 8);
    let delta = values(m, 9);
    let (d_out_m, v_t_m) = (Matrix::dense(&d_out, d), Matrix::dense(&v_t, n));
    let dp = reference(d_out_m, v_t_m, [m, n, d], 1.0);
    let want: Vec<f32> = (0..m * n)
        .map(|i| 0.125 * p[i] * (dp[i] - delta[i / n]))
        .collect();
    for level in levels() {
        let mut out = vec![f32::NAN; m * n];
        with_level(level, || {
            scores_gradient(&mut out, [m, n, d], [d_out_m, v_t_m], &p, &delta, 0.125)
        });
        assert_close(&out, &want, &format!("{level:?}"));
    }
}

#[test]
fn a_forward_row_becomes_its_exponentials_against_the_new_maximum() {
    let row = values(77, 10);
    for (start, end, max) in [
        (0, 77, f32::NEG_INFINITY),
        (5, 40, 0.3),
        (16, 32, 2.0),
        (76, 77, -1.0),
    ] {
        let new_max = row[start..end].iter().fold(max, |m, &x| m.max(x));
        let want: Vec<f32> = (0..77)
            .map(|c| match (start..end).contains(&c) {
                true => (row[c] - new_max).exp(),
                false => 0.0,
            })
            .collect();
        for level in levels() {
            let mut got = row.clone();
            let (m, sum) = with_level(level, || exp_seen(&mut got, start, end, max));
            assert_eq!(m, new_max);
            assert_close(&got, &want, &format!("{level:?} {start}..{end}"));
            let total: f32 = want.iter().sum();
            assert!(
                (sum - total).abs() <= 1e-5 * total,
                "{level:?}: sum {sum} vs {total}"
            );
        }
    }
}
