//! What tinygpt promises about the numbers it keeps (README, "What tinygpt promises"), end
//! to end through the real binary: divergence stops training, non-finite weights are never
//! used, impossible sizes are refused up front, damaged caches are rebuilt, every file a
//! later command trusts is verified, and a signal saves the step it names.

mod common;

use common::runs::*;
use common::*;

// 4. Divergence.

#[test]
fn divergence_stops_at_once_and_leaves_only_finite_checkpoints() {
    let scratch = Scratch::new("diverge");
    let run = scratch.path("run");
    let out = exec(&tiny(
        &scratch.str("run"),
        &[
            "--set",
            "train.lr=1e9",
            "--set",
            // Decay would be refused at this rate (lr × weight_decay ≥ 1); the steps diverge.
            "train.weight_decay=0",
            "--set",
            "train.grad_clip=0",
            "--set",
            "train.warmup_steps=1",
            "--set",
            "train.checkpoint_interval=1",
            "--set",
            "train.keep_checkpoints=1",
            "--set",
            "train.max_steps=200",
        ],
    ));
    assert_error_after_output(&out, "training diverged at step");
    let err = stderr(&out);
    assert!(err.contains("--resume"), "names the way back: {err}");
    assert!(!run.join("model.safetensors").exists());
    let steps = checkpoint_steps(&run);
    assert!(!steps.is_empty(), "{err}");
    // Every checkpoint left loads: it holds finite weights (loading refuses any other).
    for step in steps {
        tinygpt_ok(&[
            "eval",
            "--run",
            &scratch.str("run"),
            "--checkpoint",
            &format!("step-{step}"),
        ]);
    }
}

#[test]
fn sample_and_eval_refuse_weights_that_are_not_finite() {
    let scratch = Scratch::new("nan");
    let run = scratch.path("run");
    run_ok(&tiny(&scratch.str("run"), &[]));
    let path = run.join("model.safetensors");
    let mut bytes = std::fs::read(&path).unwrap();
    let n = bytes.len();
    bytes[n - 4..].copy_from_slice(&f32::NAN.to_le_bytes());
    std::fs::write(&path, &bytes).unwrap();
    sha256sum(&run, "model.safetensors"); // the manifest agrees: only the values are wrong
    let out = tinygpt(&[
        "sample",
        "--run",
        &scratch.str("run"),
        "--max-new-tokens",
        "4",
    ]);
    assert_clean_error(&out, "NaN");
    let out = tinygpt(&["eval", "--run", &scratch.str("run")]);
    assert_clean_error(&out, "diverged run");
}

// 5. Impossible sizes: one line, with the estimate.

#[test]
fn impossible_sizes_are_refused_in_one_line() {
    let scratch = Scratch::new("sizes");
    for set in [
        ["model.n_embd=1000000", "model.n_head=1"],
        ["model.n_layer=100000", "train.seed=1"],
        ["train.batch_size=100000000", "train.seed=1"],
        ["model.vocab_size=4000000000", "train.seed=1"],
        ["model.block_size=4294967296", "train.seed=1"],
    ] {
        let out = exec(&tiny(
            &scratch.str("run"),
            &["--set", set[0], "--set", set[1]],
        ));
        assert_clean_error(&out, "of memory");
        assert!(stderr(&out).contains("--force"), "{}", stderr(&out));
        assert!(!scratch.path("run").exists(), "nothing is written");
    }
    let out = exec(&tiny(
        &scratch.str("run"),
        &["--set", "model.vocab_size=4e9"],
    ));
    assert_clean_error(&out, "model.vocab_size");

    let out = tinygpt(&["params", "--set", "model.n_embd=4611686018427387904"]);
    assert_clean_error(&out, "more than 2^64 parameters");
    let out = tinygpt(&["params", "--config", "configs/gpt3.toml"]);
    assert!(out.status.success(), "{}", stderr(&out));

    // An export whose metadata claims a billion layers.
    run_ok(&tiny(&scratch.str("small"), &[]));
    let export = scratch.path("huge.safetensors");
    let bytes = std::fs::read(scratch.path("small/model.safetensors")).unwrap();
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let mut header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + header_len]).unwrap();
    let mut meta: serde_json::Value =
        serde_json::from_str(header["__metadata__"]["tinygpt"].as_str().unwrap()).unwrap();
    meta["model"]["n_layer"] = serde_json::json!(1_000_000_000u64);
    header["__metadata__"]["tinygpt"] = serde_json::Value::String(meta.to_string());
    let mut new_header = serde_json::to_vec(&header).unwrap();
    while !new_header.len().is_multiple_of(8) {
        new_header.push(b' ');
    }
    let mut out_bytes = (new_header.len() as u64).to_le_bytes().to_vec();
    out_bytes.extend(&new_header);
    out_bytes.extend(&bytes[8 + header_len..]);
    std::fs::write(&export, out_bytes).unwrap();
    let out = tinygpt(&[
        "import",
        "--weights",
        &export.to_string_lossy(),
        "--out",
        &scratch.str("imported"),
    ]);
    assert_clean_error(&out, "of memory");
    assert!(!scratch.path("imported").exists());
}

// 6. A damaged token cache.

#[test]
fn a_token_cache_with_ids_outside_the_vocabulary_is_rebuilt() {
    let scratch = Scratch::new("cache");
    let corpus = scratch.path("corpus.txt");
    std::fs::copy(workspace_root().join("data/shakespeare.txt"), &corpus).unwrap();
    let set_corpus = format!("data.corpus={}", corpus.display());
    run_ok(&tiny(&scratch.str("run"), &["--set", &set_corpus]));
    let eval = || {
        let out = tinygpt_ok(&["eval", "--run", &scratch.str("run"), "--json"]);
        stdout(&out)
    };
    let before = eval();
    let cache = std::fs::read_dir(scratch.path(".tinygpt-cache"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "tokens"))
        .unwrap();
    let damage = || {
        let mut bytes = std::fs::read(&cache).unwrap();
        // u16 ids after a 64-byte header: one in the val split becomes 60000.
        let at = bytes.len() - 200;
        bytes[at..at + 2].copy_from_slice(&60000u16.to_le_bytes());
        std::fs::write(&cache, &bytes).unwrap();
    };
    damage();
    assert_eq!(eval(), before, "the damaged cache was used");
    damage();
    let out = run_ok(&tiny(
        &scratch.str("again"),
        &["--set", &set_corpus, "--set", "train.max_steps=2"],
    ));
    assert!(stderr(&out).contains("tokens: encoded"), "{}", stderr(&out));
}

// 7. Every file a later command trusts is verified.

#[test]
fn an_edited_state_or_a_flipped_bit_is_refused_and_nothing_is_changed() {
    let scratch = Scratch::new("verify");
    let stopped = scratch.path("stopped");
    run_ok(&tiny(&scratch.str("stopped"), &["--stop-at-step", "2"]));
    let state = stopped.join("checkpoints/step-0000002/state.json");
    let text = std::fs::read_to_string(&state).unwrap();
    assert!(text.contains("\"step\": 2"), "{text}");
    std::fs::write(&state, text.replace("\"step\": 2", "\"step\": 3")).unwrap();
    let before = snapshot_run(&stopped);
    let out = exec(&["train".into(), "--resume".into(), scratch.str("stopped")]);
    assert_clean_error(&out, "corrupted or was edited");
    assert_eq!(snapshot_run(&stopped), before);

    let finished = scratch.path("finished");
    run_ok(&tiny(&scratch.str("finished"), &[]));
    let model = finished.join("model.safetensors");
    let mut bytes = std::fs::read(&model).unwrap();
    let middle = bytes.len() / 2 + 3;
    bytes[middle] ^= 0x10;
    std::fs::write(&model, &bytes).unwrap();
    let before = snapshot_run(&finished);
    let out = tinygpt(&["sample", "--run", &scratch.str("finished")]);
    assert_clean_error(&out, "corrupted or was edited");
    let out = tinygpt(&["eval", "--run", &scratch.str("finished")]);
    assert_clean_error(&out, "--checkpoint latest");
    // The checkpoints are separate files with their own manifest: they still work.
    tinygpt_ok(&[
        "eval",
        "--run",
        &scratch.str("finished"),
        "--checkpoint",
        "latest",
    ]);
    assert_eq!(snapshot_run(&finished), before);
}

// 8. Signals: a checkpoint, the right step, and 128 + the signal's number.

#[test]
fn sigterm_saves_the_step_it_names_and_exits_143() {
    let scratch = Scratch::new("sigterm");
    let run = scratch.path("run");
    let (mut child, rest) = spawn_long(
        &scratch.str("run"),
        &["--set", "train.checkpoint_interval=100000"],
    );
    signal(&child, "TERM");
    let status = child.wait().unwrap();
    let err = rest.join().unwrap();
    assert_eq!(status.code(), Some(143), "{err}");
    let steps = checkpoint_steps(&run);
    assert_eq!(steps.len(), 1, "{steps:?}");
    let step = steps[0];
    assert!(step >= 20, "{step}");
    assert!(
        err.contains(&format!("interrupted at step {step}: checkpoint saved in"))
            && err.contains(&format!("step-{step:07}")),
        "{err}"
    );
}

#[test]
fn every_shipped_config_loads_and_names_a_model() {
    let mut configs: Vec<String> = std::fs::read_dir(workspace_root().join("configs"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".toml"))
        .map(|name| format!("configs/{name}"))
        .collect();
    configs.sort();
    assert!(
        configs.contains(&"configs/nanogpt-char-modern.toml".to_string()),
        "{configs:?}"
    );
    for config in &configs {
        let out = tinygpt(&["params", "--config", config]);
        let text = std::fs::read_to_string(workspace_root().join(config)).unwrap();
        if !text.contains("n_layer") {
            // A fine-tuning config: its model is the one `--init-from` brings, so on its own
            // it is refused in one line that names the model.
            assert_clean_error(&out, "model");
            continue;
        }
        assert!(out.status.success(), "{config}: {}", stderr(&out));
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("everything"),
            "{config}: no parameter table"
        );
    }
}
