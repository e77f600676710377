//! `train.precision = "bf16"` end to end: it trains (close to fp32, not equal to it), records
//! itself in the run, keeps f32 weights that export, benches in bf16, and is one clean error
//! wherever its products cannot run.

mod common;

use std::path::Path;

use common::*;
use serde_json::Value;

fn has_bf16() -> bool {
    let yes = cpu_has("avx512_bf16");
    if !yes {
        eprintln!("SKIPPED: this CPU has no AVX512_BF16 (the refusal is tested instead)");
    }
    yes
}

fn final_val_loss(run: &Path) -> f64 {
    metrics(run)
        .iter()
        .rev()
        .find_map(|l| l["val_loss"].as_f64())
        .expect("the run evaluated")
}

#[test]
fn a_bf16_run_learns_close_to_fp32_and_keeps_f32_weights_that_export() {
    if !has_bf16() {
        return;
    }
    let scratch = Scratch::new("precision-bf16");
    let (bf16, fp32) = (scratch.str("bf16"), scratch.str("fp32"));
    ok(train_tiny(&bf16, &["--set", "train.precision=bf16"]));
    ok(train_tiny(&fp32, &[]));
    let (bf16, fp32) = (Path::new(&bf16), Path::new(&fp32));

    let lines = metrics(bf16);
    let first = lines.iter().find_map(|l| l["train_loss"].as_f64()).unwrap();
    let (loss_bf16, loss_fp32) = (final_val_loss(bf16), final_val_loss(fp32));
    assert!(loss_bf16 < first - 0.5, "{first} → {loss_bf16}");
    // The products round their operands to 8 significant bits; over 60 steps the runs part a
    // little, and only a little.
    assert!(
        (loss_bf16 - loss_fp32).abs() < 0.05,
        "bf16 {loss_bf16} against fp32 {loss_fp32}"
    );
    let weights = |run: &Path| std::fs::read(run.join("model.safetensors")).unwrap();
    assert!(
        weights(bf16) != weights(fp32),
        "bf16 must multiply differently"
    );

    let config = std::fs::read_to_string(bf16.join("config.toml")).unwrap();
    assert!(config.contains("precision = \"bf16\""), "{config}");
    let fp32_config = std::fs::read_to_string(fp32.join("config.toml")).unwrap();
    assert!(
        !fp32_config.contains("precision"),
        "the default is not written"
    );

    // The weights stay f32: the safetensors header names F32 for every tensor, and the run
    // exports as any other.
    let bytes = weights(bf16);
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: Value = serde_json::from_slice(&bytes[8..8 + header_len]).unwrap();
    let dtypes: Vec<&str> = header
        .as_object()
        .unwrap()
        .iter()
        .filter(|(name, _)| *name != "__metadata__")
        .map(|(_, t)| t["dtype"].as_str().unwrap())
        .collect();
    assert!(
        !dtypes.is_empty() && dtypes.iter().all(|d| *d == "F32"),
        "{dtypes:?}"
    );
    let hf = scratch.str("hf");
    let run = bf16.display().to_string();
    tinygpt_ok(&["export", "--run", &run, "--format", "hf", "--out", &hf]);
    assert!(scratch.path("hf/model.safetensors").exists());
    // And it samples (in f32).
    let out = tinygpt_ok(&["sample", "--run", &run, "--max-new-tokens", "10"]);
    assert!(!stdout(&out).is_empty());
}

#[test]
fn bench_trains_in_the_precision_asked_and_reports_mfu_against_its_peak() {
    if !has_bf16() {
        return;
    }
    let bench = |precision: &str| -> Value {
        let out = tinygpt_ok(&[
            "bench",
            "--config",
            "configs/tiny-test.toml",
            "--steps",
            "2",
            "--warmup",
            "1",
            "--sample-tokens",
            "0",
            "--precision",
            precision,
            "--json",
        ]);
        serde_json::from_str(stdout(&out).trim()).unwrap()
    };
    for precision in ["fp32", "bf16"] {
        let report = bench(precision);
        assert_eq!(report["precision"], precision);
        let peak = match precision {
            "bf16" => report["hardware_bf16_peak_gflops"].as_f64().unwrap(),
            _ => report["hardware_peak_gflops"].as_f64().unwrap(),
        };
        let mfu = report["mfu_hardware"].as_f64().unwrap();
        let achieved = report["achieved_gflops"].as_f64().unwrap();
        assert!(
            (mfu - achieved / peak).abs() < 1e-9,
            "{precision}: MFU {mfu} is not {achieved} / {peak}"
        );
    }
}

#[test]
fn bf16_where_its_products_cannot_run_is_one_clean_error_before_anything_is_written() {
    let scratch = Scratch::new("precision-refused");
    let out = scratch.str("run");
    let train = |env: &[(&str, &str)], extra: &[&str]| {
        let mut args = vec![
            "train",
            "--config",
            "configs/tiny-test.toml",
            "--out",
            &out,
            "--set",
            "train.precision=bf16",
        ];
        args.extend(extra);
        let mut command = tinygpt_command(&args);
        command.env_remove("TINYGPT_VECTOR_LEVEL");
        command.env_remove("TINYGPT_PLAIN_OPS");
        command.envs(env.iter().copied());
        command.output().unwrap()
    };
    // A CPU without AVX512_BF16: this one, or this one held below it.
    let below: &[(&str, &str)] = if cpu_has("avx512_bf16") {
        &[("TINYGPT_VECTOR_LEVEL", "avx512")]
    } else {
        &[]
    };
    let refused = train(below, &[]);
    assert_clean_error(&refused, "train.precision = \"bf16\": bf16 products need");
    assert!(stderr(&refused).contains("set train.precision = \"fp32\""));
    assert!(!scratch.path("run").exists());
    if cpu_has("avx512_bf16") {
        // The fused kernels off, or another device: they are what multiplies in bf16.
        let plain = train(&[("TINYGPT_PLAIN_OPS", "1")], &[]);
        assert_clean_error(&plain, "TINYGPT_PLAIN_OPS turns off");
        let ndarray = train(&[], &["--set", "train.device=ndarray"]);
        assert_clean_error(&ndarray, "runs on the flex device");
        assert!(!scratch.path("run").exists());
    }
    // A precision that does not exist names the key and the choices.
    let wrong = train(&[], &["--set", "train.precision=fp16"]);
    assert_clean_error(&wrong, "train.precision");
    assert!(stderr(&wrong).contains("fp32") && stderr(&wrong).contains("bf16"));
    assert!(!scratch.path("run").exists());
}

#[test]
fn a_bf16_run_may_resume_in_fp32_and_the_run_records_the_change() {
    if !has_bf16() {
        return;
    }
    let scratch = Scratch::new("precision-resume");
    let run = scratch.str("run");
    let out = tinygpt(&[
        "train",
        "--config",
        "configs/tiny-test.toml",
        "--out",
        &run,
        "--set",
        "train.precision=bf16",
        "--set",
        "train.checkpoint_interval=20",
        "--stop-at-step",
        "20",
    ]);
    ok(out);
    // Checkpoints hold f32 weights and moments whatever the products took, so a machine
    // without AVX512_BF16 can carry the run on.
    ok(tinygpt(&[
        "train",
        "--resume",
        &run,
        "--set",
        "train.precision=fp32",
    ]));
    let config = std::fs::read_to_string(scratch.path("run/config.toml")).unwrap();
    assert!(!config.contains("precision"), "{config}");
    // The run went on to its last step and kept learning in fp32.
    let lines = metrics(&scratch.path("run"));
    let val: Vec<(u64, f64)> = lines
        .iter()
        .filter_map(|l| Some((l["step"].as_u64()?, l["val_loss"].as_f64()?)))
        .collect();
    assert_eq!(val.last().unwrap().0, 60, "{val:?}");
    assert!(val.last().unwrap().1 < val[1].1, "{val:?}");
}
