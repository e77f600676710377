//! `TINYGPT_VECTOR_LEVEL`: it holds tinygpt's vector kernels to one level, which `devices`
//! and `bench` report; every level trains to the same bits; a level the CPU lacks, or no
//! level, is one clean error before anything is written.

mod common;

use std::process::Output;

use common::{Scratch, assert_clean_error, metrics, ok, stdout};
use serde_json::Value;

fn tinygpt_at(level: &str, args: &[&str]) -> Output {
    common::tinygpt_command(args)
        .env("TINYGPT_VECTOR_LEVEL", level)
        .output()
        .expect("the tinygpt binary runs")
}

fn devices_json(level: &str) -> Value {
    serde_json::from_str(stdout(&ok(tinygpt_at(level, &["devices", "--json"]))).trim()).unwrap()
}

/// The widest level this CPU runs, as `devices` names it.
fn best_level() -> String {
    devices_json("")["kernel_level_best"]
        .as_str()
        .unwrap()
        .to_string()
}

/// A short run that goes through every vector kernel: GELU, LayerNorm, softmax, dropout,
/// AdamW, and the forward kernels alone in evaluation and sampling.
fn train_at(level: &str, scratch: &Scratch, name: &str) -> (Vec<u8>, Vec<Value>) {
    let out = scratch.str(name);
    let args = [
        "train",
        "--config",
        "configs/tiny-test.toml",
        "--out",
        &out,
        "--set",
        "train.max_steps=30",
        "--set",
        "train.eval_interval=10",
        "--set",
        "model.dropout=0.1",
    ];
    ok(tinygpt_at(level, &args));
    let run = scratch.path(name);
    // Each logged line without its clock readings.
    let lines = metrics(&run)
        .into_iter()
        .map(|mut line| {
            let fields = line.as_object_mut().unwrap();
            fields.retain(|key, _| !matches!(key.as_str(), "elapsed_s" | "tokens_per_sec"));
            line
        })
        .collect();
    (std::fs::read(run.join("model.safetensors")).unwrap(), lines)
}

#[test]
fn every_vector_level_trains_to_the_same_bits() {
    let best = best_level();
    let levels: Vec<&str> = ["baseline", "avx2", "avx512", "avx512bf16", "amx"]
        .into_iter()
        .take_while(|&level| level != best)
        .chain([best.as_str()])
        .collect();
    if levels.len() == 1 {
        eprintln!("SKIPPED: this CPU runs only the baseline level; there is nothing to compare");
        return;
    }
    let scratch = Scratch::new("vector-levels");
    let (weights, lines) = train_at(&best, &scratch, &best);
    assert!(
        lines.iter().filter(|l| l["val_loss"].is_f64()).count() >= 3,
        "the run evaluated"
    );
    for level in &levels[..levels.len() - 1] {
        // The setting is what the kernels run at, as devices reports it.
        let json = devices_json(level);
        assert_eq!(json["kernel_level"], *level);
        assert_eq!(json["kernel_level_best"], best);
        let (other_weights, other_lines) = train_at(level, &scratch, level);
        assert_eq!(
            other_lines, lines,
            "{level} and {best} logged different runs"
        );
        assert!(
            other_weights == weights,
            "{level} and {best} ended with different weights"
        );
    }
}

#[test]
fn devices_and_bench_say_which_level_the_kernels_run_at() {
    let unset = devices_json("");
    assert_eq!(unset["kernel_level"], unset["kernel_level_best"]);
    let text = stdout(&ok(tinygpt_at("", &["devices"])));
    assert!(text.contains("vector kernels: "), "{text}");
    assert!(text.contains("(the widest here;"), "{text}");

    let held = stdout(&ok(tinygpt_at("baseline", &["devices"])));
    if unset["kernel_level_best"] != "baseline" {
        assert!(
            held.contains("vector kernels: baseline, held there by TINYGPT_VECTOR_LEVEL"),
            "{held}"
        );
    }
    let bench = [
        "bench",
        "--config",
        "configs/tiny-test.toml",
        "--json",
        "--steps",
        "2",
        "--warmup",
        "1",
        "--sample-tokens",
        "0",
    ];
    let report: Value =
        serde_json::from_str(stdout(&ok(tinygpt_at("baseline", &bench))).trim()).unwrap();
    assert_eq!(report["kernel_level"], "baseline");
    let report: Value = serde_json::from_str(stdout(&ok(tinygpt_at("", &bench))).trim()).unwrap();
    assert_eq!(report["kernel_level"], unset["kernel_level_best"]);
}

#[test]
fn an_unknown_level_or_one_the_cpu_lacks_is_one_clean_error_before_anything_is_written() {
    let scratch = Scratch::new("vector-level-errors");
    let out = scratch.str("run");
    let train = ["train", "--config", "configs/tiny-test.toml", "--out", &out];
    for wrong in ["AVX2", "sse9", "best"] {
        assert_clean_error(
            &tinygpt_at(wrong, &train),
            "names no vector level: use baseline, avx2, avx512, avx512bf16 or amx",
        );
        assert!(!scratch.path("run").exists());
    }
    let best = best_level();
    let beyond: Vec<&str> = ["amx", "avx512bf16", "avx512", "avx2"]
        .into_iter()
        .take_while(|&level| level != best)
        .collect();
    for level in beyond {
        let out = tinygpt_at(level, &train);
        assert_clean_error(&out, &format!("this CPU cannot run {level} code"));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(&format!("widest it runs is {best}"))
        );
        assert!(!scratch.path("run").exists());
    }
}
