//! `tinygpt train` end to end, through the real binary.

mod common;

use common::*;

#[test]
fn tiny_run_writes_the_run_directory_and_learns() {
    let scratch = Scratch::new("train");
    let run = scratch.path("run");
    let out = tinygpt(&[
        "train",
        "--config",
        "configs/tiny-test.toml",
        "--out",
        &scratch.str("run"),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));

    for file in [
        "config.toml",
        "tokenizer.json",
        "metrics.jsonl",
        "model.safetensors",
        "checkpoints/step-0000060/state.json",
        "checkpoints/step-0000060/model.safetensors",
        "checkpoints/step-0000060/optimizer.safetensors",
    ] {
        assert!(run.join(file).is_file(), "missing {file}");
    }
    // The resolved config has the tokenizer's vocabulary size filled in.
    let config: toml::Table = std::fs::read_to_string(run.join("config.toml"))
        .unwrap()
        .parse()
        .unwrap();
    let tokenizer: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("tokenizer.json")).unwrap())
            .unwrap();
    assert_eq!(
        config["model"]["vocab_size"].as_integer().unwrap() as usize,
        tokenizer["vocab"].as_array().unwrap().len()
    );

    let lines = metrics(&run);
    let vals: Vec<f64> = lines
        .iter()
        .filter_map(|l| l["val_loss"].as_f64())
        .collect();
    assert!(vals.len() >= 2, "{lines:?}");
    assert!(
        vals.last().unwrap() < &(vals[0] - 0.5),
        "val loss did not fall: {vals:?}"
    );
    assert_eq!(lines[0]["step"], 0);
    for line in &lines[1..] {
        for key in ["step", "train_loss", "lr", "tokens_per_sec"] {
            assert!(line.get(key).is_some(), "{key} missing in {line}");
        }
    }
    assert_eq!(lines.last().unwrap()["step"], 60);

    let err = stderr(&out);
    assert!(err.contains("done: 60 steps"), "{err}");
    assert!(
        stdout(&out).contains("greedy continuation"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn existing_run_is_not_overwritten_without_the_flag() {
    let scratch = Scratch::new("exists");
    let args = |extra: &[&'static str]| {
        let mut a = vec![
            "train",
            "--config",
            "configs/tiny-test.toml",
            "--set",
            "train.max_steps=2",
        ];
        a.extend_from_slice(extra);
        a
    };
    let out_dir = scratch.str("run");
    let mut first = args(&[]);
    first.extend(["--out", &out_dir]);
    assert!(tinygpt(&first).status.success());
    let before = std::fs::read(scratch.path("run/metrics.jsonl")).unwrap();

    let out = tinygpt(&first);
    assert_clean_error(&out, "--overwrite");
    assert_eq!(
        std::fs::read(scratch.path("run/metrics.jsonl")).unwrap(),
        before
    );

    let mut again = args(&["--overwrite"]);
    again.extend(["--out", &out_dir]);
    assert!(tinygpt(&again).status.success());

    // --overwrite never deletes a directory that is not a tinygpt run.
    std::fs::create_dir_all(scratch.path("mine")).unwrap();
    std::fs::write(scratch.path("mine/notes.txt"), "precious").unwrap();
    let mine = scratch.str("mine");
    let mut foreign = args(&["--overwrite"]);
    foreign.extend(["--out", &mine]);
    assert_clean_error(&tinygpt(&foreign), "has no tinygpt-run.json");
    assert!(scratch.path("mine/notes.txt").is_file());
}

#[test]
fn bad_inputs_fail_with_one_clear_line() {
    let scratch = Scratch::new("errors");
    std::fs::write(scratch.path("empty.txt"), "").unwrap();
    std::fs::write(scratch.path("latin1.txt"), b"caf\xe9 au lait").unwrap();
    std::fs::write(scratch.path("short.txt"), "To be, or not to be\n").unwrap();
    std::fs::write(scratch.path("bad.toml"), "[model\nn_layer = ").unwrap();
    let corpus = |name: &str| format!("data.corpus={}", scratch.str(name));
    let out_dir = scratch.str("run");
    let train = |extra: &[&str]| {
        let mut args = vec![
            "train",
            "--config",
            "configs/tiny-test.toml",
            "--out",
            &out_dir,
        ];
        args.extend_from_slice(extra);
        tinygpt(&args)
    };

    assert_clean_error(&train(&["--set", &corpus("missing.txt")]), "not found");
    assert_clean_error(&train(&["--set", &corpus("empty.txt")]), "is empty");
    assert_clean_error(&train(&["--set", &corpus("latin1.txt")]), "not UTF-8");
    assert_clean_error(&train(&["--set", &corpus("short.txt")]), "block_size + 1");
    assert_clean_error(&train(&["--device", "tpu"]), "unknown device \"tpu\"");
    assert_clean_error(&train(&["--set", "train.max_stepz=3"]), "max_stepz");
    assert_clean_error(&train(&["--set", "model.n_head=3"]), "model.n_embd");
    assert_clean_error(
        &train(&["--set", "train.sample_prompt=\"\u{263A}\""]),
        "train.sample_prompt",
    );
    assert_clean_error(
        &train(&["--set", "model.vocab_size=10"]),
        "model.vocab_size",
    );
    assert_clean_error(
        &tinygpt(&[
            "train",
            "--config",
            &scratch.str("bad.toml"),
            "--out",
            &out_dir,
        ]),
        "not valid TOML",
    );
    assert_clean_error(
        &tinygpt(&["train", "--config", "configs/nope.toml", "--out", &out_dir]),
        "cannot read config",
    );
    // None of the failures left a half-made run behind.
    assert!(!scratch.path("run").join("metrics.jsonl").exists());
}
