//! The pictures are real PNG files of the promised size.

use tinygpt_viz::{AttentionMap, Curve, Panel, attention_grid, attention_grid_size, line_charts};

/// Width and height from a PNG's IHDR chunk, checking the signature.
fn png_size(bytes: &[u8]) -> (u32, u32) {
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
    assert_eq!(&bytes[12..16], b"IHDR");
    let be = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    (be(&bytes[16..20]), be(&bytes[20..24]))
}

/// A scratch file path ending in `name`, removed when dropped.
fn temp(name: &str) -> tempfile::TempPath {
    tempfile::Builder::new()
        .suffix(name)
        .tempfile()
        .unwrap()
        .into_temp_path()
}

fn causal_uniform(n: usize) -> Vec<f32> {
    (0..n * n)
        .map(|i| {
            let (q, k) = (i / n, i % n);
            if k <= q { 1.0 / (q + 1) as f32 } else { 0.0 }
        })
        .collect()
}

#[test]
fn attention_grid_is_a_png_of_the_computed_size() {
    let tokens: Vec<String> = "Hello!".chars().map(String::from).collect();
    let maps: Vec<AttentionMap> = (0..6)
        .map(|i| AttentionMap {
            title: format!("layer {} head {}", i / 2, i % 2),
            weights: causal_uniform(6),
        })
        .collect();
    let path = temp("attention.png");
    attention_grid(&path, &tokens, &maps, 2).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(png_size(&bytes), attention_grid_size(6, 2));
    assert_eq!(attention_grid_size(6, 2), (2 * 360 + 90, 3 * 360));
    assert_eq!(attention_grid_size(1, 4), (360 + 90, 360));
}

#[test]
fn line_chart_is_a_png_and_log_scale_works() {
    let curve = |label: &str, scale: f64| Curve {
        label: label.into(),
        points: (1..50)
            .map(|i| (i as f64, scale * 4.0 / (i as f64).sqrt()))
            .collect(),
        dashed: false,
        color: 0,
    };
    let panels = vec![
        Panel {
            title: "loss".into(),
            x_label: "step".into(),
            y_label: "nats".into(),
            log_y: true,
            curves: vec![curve("a", 1.0), curve("b", 1.2)],
        },
        Panel {
            title: "lr".into(),
            x_label: "step".into(),
            y_label: "lr".into(),
            log_y: false,
            curves: vec![curve("a", 1.0)],
        },
    ];
    let path = temp("curves.png");
    line_charts(&path, &panels, 800, 300).unwrap();
    assert_eq!(png_size(&std::fs::read(&path).unwrap()), (800, 600));
}

#[test]
fn unwritable_path_is_an_error() {
    let maps = [AttentionMap {
        title: "x".into(),
        weights: causal_uniform(2),
    }];
    let tokens = ["a".to_string(), "b".to_string()];
    let err = attention_grid(
        std::path::Path::new("/nonexistent/dir/a.png"),
        &tokens,
        &maps,
        1,
    )
    .unwrap_err();
    assert!(err.to_string().contains("/nonexistent/dir/a.png"), "{err}");
}
