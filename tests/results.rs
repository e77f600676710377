//! `eval`, `plot`, `export`/`import` and `runs`, end to end.

mod common;

use std::process::Command;

use burn::tensor::activation::log_softmax;
use burn::tensor::{Device, Int, Tensor, TensorData};
use common::*;
use tinygpt_model::weights::{from_safetensors, load_module_tensors};
use tinygpt_model::{Gpt, GptConfig};

fn train(scratch: &Scratch, name: &str, extra: &[&str]) -> String {
    let run = scratch.str(name);
    let mut args = vec!["--set", "train.sample_tokens=1"];
    args.extend_from_slice(extra);
    train_tiny(&run, &args);
    run
}

fn load_model(weights: &std::path::Path) -> (Gpt, GptConfig, Vec<char>) {
    let bytes = std::fs::read(weights).unwrap();
    let (tensors, metadata) = from_safetensors(&bytes).unwrap();
    let meta: serde_json::Value = serde_json::from_str(&metadata["tinygpt"]).unwrap();
    let config: GptConfig = serde_json::from_value(meta["model"].clone()).unwrap();
    let vocab = meta["tokenizer"]["vocab"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().chars().next().unwrap())
        .collect();
    let model =
        load_module_tensors(Gpt::new(&config, 0, &Device::flex()).unwrap(), tensors).unwrap();
    (model, config, vocab)
}

/// Loss of each target in `targets` (positions of `ids`) given the window `ids`.
fn target_losses(model: &Gpt, ids: &[u32], from: usize) -> Vec<f64> {
    let n = ids.len() - 1;
    let input: Vec<i64> = ids[..n].iter().map(|&t| t as i64).collect();
    let logits = model.forward(Tensor::<2, Int>::from_data(
        TensorData::new(input, [1, n]),
        &Device::flex(),
    ));
    let [_, _, vocab] = logits.dims();
    let lp = log_softmax(logits.reshape([n, vocab]), 1)
        .into_data_as::<f32>()
        .as_slice::<f32>()
        .unwrap()
        .to_vec();
    (from..n)
        .map(|p| -(lp[p * vocab + ids[p + 1] as usize] as f64))
        .collect()
}

#[test]
fn eval_equals_the_mean_of_per_window_losses() {
    let scratch = Scratch::new("eval");
    let run = train(&scratch, "run", &[]);
    // 3 full windows of block 16 (49 tokens) + 5 more targets scored by a final window.
    let text: String = "Now is the winter of our discontent\nMade glorious summer by this sun"
        .chars()
        .take(54)
        .collect();
    std::fs::write(scratch.path("text.txt"), &text).unwrap();
    let out = tinygpt_ok(&[
        "eval",
        "--run",
        &run,
        "--text",
        &scratch.str("text.txt"),
        "--json",
    ]);
    let result: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();

    let (model, config, vocab) = load_model(&scratch.path("run/model.safetensors"));
    let ids: Vec<u32> = text
        .chars()
        .map(|c| vocab.iter().position(|&v| v == c).unwrap() as u32)
        .collect();
    let t = config.block_size;
    let mut losses = Vec::new();
    for k in 0..3 {
        losses.extend(target_losses(&model, &ids[k * t..k * t + t + 1], 0));
    }
    // Targets 49..=53 from the window ending at the last token.
    losses.extend(target_losses(&model, &ids[ids.len() - t - 1..], t - 5));
    assert_eq!(losses.len(), 53);
    let mean = losses.iter().sum::<f64>() / losses.len() as f64;
    let loss = result["loss"].as_f64().unwrap();
    assert!((loss - mean).abs() < 1e-5, "eval {loss} vs {mean}");
    assert_eq!(result["tokens"], 53);
    assert_eq!(result["windows"], 4);
    assert!((result["perplexity"].as_f64().unwrap() - mean.exp()).abs() < 1e-4);
    // ASCII text: one byte per token, so bits per byte = loss / ln 2.
    assert!(
        (result["bits_per_byte"].as_f64().unwrap() - mean / std::f64::consts::LN_2).abs() < 1e-5
    );

    // The whole val split: every token after the first is a target.
    let val: serde_json::Value =
        serde_json::from_str(&stdout(&tinygpt_ok(&["eval", "--run", &run, "--json"]))).unwrap();
    assert_eq!(val["tokens"], 505_728 - 1);
    let metrics = metrics(&scratch.path("run"));
    let last_val = metrics.last().unwrap()["val_loss"].as_f64().unwrap();
    assert!(
        (val["loss"].as_f64().unwrap() - last_val).abs() < 0.15,
        "whole split vs fixed batches"
    );
    assert!(metrics.last().unwrap()["val_bpb"].as_f64().is_some());
}

#[test]
fn plots_and_runs_table() {
    let scratch = Scratch::new("plot");
    let a = train(&scratch, "a", &[]);
    let b = train(&scratch, "b", &["--set", "train.lr=1e-3"]);
    assert!(
        scratch.path("a/loss.png").is_file(),
        "training draws loss.png"
    );
    let png = scratch.str("both.png");
    tinygpt_ok(&[
        "plot", "--run", &a, "--run", &b, "--out", &png, "--log", "--x", "tokens",
    ]);
    let bytes = std::fs::read(&png).unwrap();
    assert_eq!(&bytes[1..4], b"PNG");
    assert_eq!(u32::from_be_bytes(bytes[16..20].try_into().unwrap()), 1000);

    std::fs::write(scratch.path("b/metrics.jsonl"), "").unwrap();
    assert_clean_error(
        &tinygpt(&["plot", "--run", &b, "--out", &png, "--force"]),
        "metrics.jsonl is empty",
    );

    let table = stdout(&tinygpt_ok(&["runs", &scratch.str("")]));
    let row = table
        .lines()
        .find(|l| l.starts_with("a "))
        .expect("run a listed");
    assert!(
        row.contains("60/60") && row.contains("finished") && row.contains("flex"),
        "{table}"
    );
    assert!(table.lines().any(|l| l.starts_with("b ")), "{table}");
}

#[test]
fn export_round_trips_through_python_and_import() {
    let scratch = Scratch::new("export");
    let run = train(&scratch, "run", &[]);
    let exported = scratch.str("model.safetensors");
    tinygpt_ok(&["export", "--run", &run, "--out", &exported]);
    assert_clean_error(
        &tinygpt(&["export", "--run", &run, "--out", &exported]),
        "--force",
    );
    tinygpt_ok(&[
        "export",
        "--run",
        &run,
        "--out",
        &exported,
        "--force",
        "--checkpoint",
        "latest",
    ]);

    let original = from_safetensors(&std::fs::read(&exported).unwrap())
        .unwrap()
        .0;
    let names: Vec<&str> = original.iter().map(|t| t.name.as_str()).collect();
    assert!(
        names.contains(&"blocks.1.attn.query.weight") && names.contains(&"token_embedding.weight")
    );

    let mut to_import = exported.clone();
    if python_has("safetensors.numpy, numpy") {
        // Python reads every tensor and writes them back out with the same metadata.
        let script = r#"
import json, sys
from safetensors import safe_open
from safetensors.numpy import save_file
src, dst = sys.argv[1], sys.argv[2]
with safe_open(src, framework="np") as f:
    meta = f.metadata()
    tensors = {k: f.get_tensor(k) for k in f.keys()}
save_file(tensors, dst, metadata=meta)
print(json.dumps({k: [list(v.shape), str(v.dtype), float(v.astype("float64").sum())] for k, v in tensors.items()}))
"#;
        let copy = scratch.str("python.safetensors");
        let out = Command::new("python3")
            .args(["-c", script, &exported, &copy])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let seen: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(seen.as_object().unwrap().len(), original.len());
        for t in &original {
            let entry = &seen[&t.name];
            let shape: Vec<usize> = entry[0]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_u64().unwrap() as usize)
                .collect();
            assert_eq!(shape, t.shape, "{}", t.name);
            assert_eq!(entry[1], "float32");
            let sum: f64 = t.values.iter().map(|&v| v as f64).sum();
            assert!(
                (entry[2].as_f64().unwrap() - sum).abs() < 1e-6 * (1.0 + sum.abs()),
                "{}",
                t.name
            );
        }
        let back = from_safetensors(&std::fs::read(&copy).unwrap()).unwrap().0;
        assert_eq!(back, original, "values changed on the way through Python");
        to_import = copy;
    } else {
        eprintln!("python3 with safetensors not found: checked the Rust side only");
    }

    // Import the (Python-written) file as a run, and get the same logits and greedy text.
    let imported = scratch.str("imported");
    tinygpt_ok(&["import", "--weights", &to_import, "--out", &imported]);
    let (a, _, _) = load_model(&scratch.path("run/model.safetensors"));
    let (b, _, _) = load_model(&scratch.path("imported/model.safetensors"));
    let input = Tensor::<2, Int>::from_data(
        TensorData::new(vec![5i64, 9, 2, 7], [1, 4]),
        &Device::flex(),
    );
    let logits = |m: &Gpt| {
        m.forward(input.clone())
            .into_data_as::<f32>()
            .as_slice::<f32>()
            .unwrap()
            .to_vec()
    };
    assert_eq!(logits(&a), logits(&b));
    let greedy = |r: &str| {
        stdout(&tinygpt_ok(&[
            "sample",
            "--run",
            r,
            "--temperature",
            "0",
            "--max-new-tokens",
            "50",
        ]))
    };
    assert_eq!(greedy(&run), greedy(&imported));

    std::fs::write(scratch.path("foreign.safetensors"), b"not safetensors").unwrap();
    assert_clean_error(
        &tinygpt(&[
            "import",
            "--weights",
            &scratch.str("foreign.safetensors"),
            "--out",
            &scratch.str("x"),
        ]),
        "foreign.safetensors",
    );
}
