//! `tinygpt params` and `tinygpt attention`, end to end.

mod common;

use burn::tensor::{Device, Int, Tensor, TensorData};
use common::*;
use tinygpt_model::weights::{from_safetensors, load_module_tensors};
use tinygpt_model::{Gpt, GptConfig};

#[test]
fn params_prints_gpt3_exactly() {
    let out = tinygpt_ok(&["params", "--config", "configs/gpt3.toml"]);
    let text = stdout(&out);
    let line = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_default()
            .to_string()
    };
    assert!(
        line("weight matrices").ends_with(" 175,181,291,520"),
        "{text}"
    );
    assert!(
        line("  of which attention").contains(" 603,979,776 "),
        "{text}"
    );
    assert!(line("MLP up").ends_with(" 57,982,058,496"), "{text}");
    assert!(line("key").ends_with(" 14,495,514,624"), "{text}");
    assert!(text.contains("training FLOPs per token"), "{text}");
    // The default config's vocabulary comes from its corpus.
    let default = stdout(&tinygpt_ok(&["params"]));
    assert!(default.contains("vocab 84"), "{default}");
    assert!(
        default
            .lines()
            .any(|l| l.starts_with("everything") && l.ends_with(" 812,288")),
        "{default}"
    );
}

fn trained(scratch: &Scratch) -> String {
    let run = scratch.str("run");
    train_tiny(&run, &["--set", "train.sample_tokens=1"]);
    run
}

fn png_size(bytes: &[u8]) -> (u32, u32) {
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
    let be = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    (be(&bytes[16..20]), be(&bytes[20..24]))
}

/// `tinygpt attention --format json` of a run on a prompt.
fn attention_json(run: &str, prompt: &str) -> serde_json::Value {
    let args = [
        "attention",
        "--run",
        run,
        "--prompt",
        prompt,
        "--format",
        "json",
    ];
    serde_json::from_str(&stdout(&tinygpt_ok(&args))).unwrap()
}

#[test]
fn attention_png_json_and_text() {
    let scratch = Scratch::new("attention");
    let run = trained(&scratch);
    let prompt = "ROMEO: But soft";

    let png = scratch.str("all.png");
    tinygpt_ok(&[
        "attention",
        "--run",
        &run,
        "--prompt",
        prompt,
        "--out",
        &png,
    ]);
    // tiny-test: 2 layers × 2 heads in a 2-column grid.
    assert_eq!(
        png_size(&std::fs::read(&png).unwrap()),
        tinygpt_viz::attention_grid_size(4, 2)
    );
    let one = scratch.str("one.png");
    tinygpt_ok(&[
        "attention",
        "--run",
        &run,
        "--prompt",
        prompt,
        "--layer",
        "1",
        "--head",
        "0",
        "--out",
        &one,
    ]);
    assert_eq!(
        png_size(&std::fs::read(&one).unwrap()),
        tinygpt_viz::attention_grid_size(1, 1)
    );

    let json = attention_json(&run, prompt);
    let tokens = json["tokens"].as_array().unwrap();
    assert_eq!(tokens.len(), prompt.len());
    assert_eq!(tokens[6], "␣");
    let patterns = json["patterns"].as_array().unwrap();
    assert_eq!(patterns.len(), 4);

    // The same weights from the model's explicit path, computed here.
    let config: GptConfig = {
        let text = std::fs::read_to_string(scratch.path("run/config.toml")).unwrap();
        let table: toml::Table = text.parse().unwrap();
        table["model"].clone().try_into().unwrap()
    };
    let device = Device::flex();
    let bytes = std::fs::read(scratch.path("run/model.safetensors")).unwrap();
    let model = load_module_tensors(
        Gpt::new(&config, 0, &device).unwrap(),
        from_safetensors(&bytes).unwrap().0,
    )
    .unwrap();
    let vocab: Vec<char> = {
        let t: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(scratch.path("run/tokenizer.json")).unwrap(),
        )
        .unwrap();
        t["vocab"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap().chars().next().unwrap())
            .collect()
    };
    let ids: Vec<i64> = prompt
        .chars()
        .map(|c| vocab.iter().position(|&v| v == c).unwrap() as i64)
        .collect();
    let input = Tensor::<2, Int>::from_data(TensorData::new(ids, [1, prompt.len()]), &device);
    let (_, expected) = model.forward_with_patterns(input);

    let n = prompt.len();
    for p in patterns {
        let (layer, head) = (
            p["layer"].as_u64().unwrap() as usize,
            p["head"].as_u64().unwrap() as usize,
        );
        let want: Vec<f32> = expected[layer]
            .pattern
            .clone()
            .into_data_as::<f32>()
            .as_slice::<f32>()
            .unwrap()
            .to_vec();
        let rows = p["weights"].as_array().unwrap();
        assert_eq!(rows.len(), n);
        for (query, row) in rows.iter().enumerate() {
            let row: Vec<f64> = row
                .as_array()
                .unwrap()
                .iter()
                .map(|w| w.as_f64().unwrap())
                .collect();
            let sum: f64 = row.iter().sum();
            assert!((sum - 1.0).abs() < 1e-5, "row sums to {sum}");
            for (key, w) in row.iter().enumerate() {
                if key > query {
                    assert_eq!(*w, 0.0);
                }
                let e = want[(head * n + query) * n + key] as f64;
                assert!(
                    (w - e).abs() < 1e-6,
                    "layer {layer} head {head} [{query},{key}]: {w} vs {e}"
                );
            }
        }
    }

    let text = stdout(&tinygpt_ok(&[
        "attention",
        "--run",
        &run,
        "--prompt",
        "ROMEO",
        "--format",
        "text",
        "--layer",
        "0",
    ]));
    assert!(text.starts_with("layer 0 head 0\n"), "{text}");
    assert_eq!(text.lines().filter(|l| l.contains('→')).count(), 2 * 5);
}

#[test]
fn attention_errors_and_cropping() {
    let scratch = Scratch::new("attention-errors");
    let run = trained(&scratch);
    let png = scratch.str("a.png");
    let attention = |extra: &[&str]| {
        let mut args = vec!["attention", "--run", run.as_str()];
        args.extend_from_slice(extra);
        tinygpt(&args)
    };
    assert_clean_error(
        &attention(&["--prompt", "abc", "--layer", "2", "--out", &png]),
        "--layer 2: the model has 2 layers",
    );
    assert_clean_error(
        &attention(&["--prompt", "abc", "--head", "5", "--out", &png]),
        "--head 5",
    );
    assert_clean_error(&attention(&["--prompt", "a\u{263A}", "--out", &png]), "'☺'");
    assert_clean_error(
        &attention(&["--prompt", "abc"]),
        "--out FILE.png is required",
    );
    let long = "To be, or not to be, that is the question";
    let out = attention(&["--prompt", long, "--format", "json"]);
    assert!(out.status.success());
    assert!(
        stderr(&out).contains("showing its last 16"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn attention_json_shows_a_sliding_window_as_hidden_keys() {
    let scratch = Scratch::new("attention-window");
    let run = scratch.str("run");
    // The first block's queries see their last 4 positions; the last block sees them all.
    let window = [
        "--set",
        "model.attention_window=4",
        "--set",
        "model.window_pattern=SL",
    ];
    train_tiny(&run, &window);
    let prompt = "ROMEO: But soft";
    let json = attention_json(&run, prompt);
    for p in json["patterns"].as_array().unwrap() {
        let layer = p["layer"].as_u64().unwrap();
        for (query, row) in p["weights"].as_array().unwrap().iter().enumerate() {
            let row: Vec<f64> = row
                .as_array()
                .unwrap()
                .iter()
                .map(|w| w.as_f64().unwrap())
                .collect();
            let sum: f64 = row.iter().sum();
            assert!((sum - 1.0).abs() < 1e-5, "row sums to {sum}");
            for (key, w) in row.iter().enumerate() {
                let hidden = key > query || (layer == 0 && key + 4 <= query);
                assert_eq!(*w == 0.0, hidden, "layer {layer} [{query},{key}] = {w}");
            }
        }
    }
}
