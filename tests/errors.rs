//! What tinygpt promises about bad input (README, "What tinygpt promises"), end to end
//! through the real binary: one error line that names the real problem and a fix that works,
//! and no file replaced without --force.

mod common;

use common::runs::*;
use common::*;

// 9. --stop-at-step and `runs`.

#[test]
fn stop_at_step_at_or_below_the_current_step_is_refused() {
    let scratch = Scratch::new("stop-at");
    let out = exec(&tiny(&scratch.str("run"), &["--stop-at-step", "0"]));
    assert_clean_error(&out, "--stop-at-step 0");
    assert!(!scratch.path("run").exists());
    run_ok(&tiny(&scratch.str("run"), &["--stop-at-step", "2"]));
    let before = snapshot_run(&scratch.path("run"));
    for stop in ["2", "1"] {
        let out = exec(&[
            "train".into(),
            "--resume".into(),
            scratch.str("run"),
            "--stop-at-step".into(),
            stop.into(),
        ]);
        assert_clean_error(&out, "already at step 2");
    }
    assert_eq!(snapshot_run(&scratch.path("run")), before);
}

#[test]
fn runs_tells_finished_stopped_imported_and_broken_runs_apart() {
    let scratch = Scratch::new("runs-state");
    run_ok(&tiny(&scratch.str("a-finished"), &[]));
    run_ok(&tiny(&scratch.str("b-stopped"), &["--stop-at-step", "2"]));
    tinygpt_ok(&[
        "import",
        "--weights",
        &scratch.str("a-finished/model.safetensors"),
        "--out",
        &scratch.str("c-imported"),
    ]);
    run_ok(&tiny(&scratch.str("d-broken"), &[]));
    let model = scratch.path("d-broken/model.safetensors");
    let mut bytes = std::fs::read(&model).unwrap();
    bytes.truncate(bytes.len() - 10);
    std::fs::write(&model, bytes).unwrap();
    std::fs::create_dir_all(scratch.path("e-not-a-run")).unwrap();

    let out = tinygpt_ok(&["runs", &scratch.str("")]);
    let text = stdout(&out);
    let state = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{name} missing:\n{text}"))
            .split_whitespace()
            .last()
            .unwrap()
            .to_string()
    };
    assert_eq!(state("a-finished"), "finished", "{text}");
    assert_eq!(state("b-stopped"), "stopped", "{text}");
    assert_eq!(state("c-imported"), "imported", "{text}");
    assert_eq!(state("d-broken"), "broken", "{text}");
    assert!(!text.contains("e-not-a-run"), "{text}");
}

// 10. Messages that name the real problem and a fix that works.

#[test]
fn a_one_byte_corpus_is_blamed_on_the_corpus_not_the_prompt() {
    let scratch = Scratch::new("one-byte");
    std::fs::write(scratch.path("x.txt"), "x").unwrap();
    let corpus = format!("data.corpus={}", scratch.str("x.txt"));
    let out = exec(&tiny(&scratch.str("run"), &["--set", &corpus]));
    assert_clean_error(&out, "use a longer corpus");
    assert!(!stderr(&out).contains("sample_prompt"), "{}", stderr(&out));
}

#[test]
fn a_corpus_without_a_newline_trains_with_the_default_prompt() {
    let scratch = Scratch::new("no-newline");
    std::fs::write(
        scratch.path("line.txt"),
        "the quick brown fox jumps. ".repeat(400),
    )
    .unwrap();
    let corpus = format!("data.corpus={}", scratch.str("line.txt"));
    let out = run_ok(&tiny(&scratch.str("run"), &["--set", &corpus]));
    assert!(
        stdout(&out).contains("greedy continuation"),
        "{}",
        stdout(&out)
    );
    // A prompt longer than the context keeps its end, and says so.
    let long = format!("train.sample_prompt={}", "the quick brown fox. ".repeat(3));
    let out = run_ok(&tiny(
        &scratch.str("run-long"),
        &["--set", &corpus, "--set", &long],
    ));
    assert!(
        stderr(&out).contains("keeping its last 16"),
        "{}",
        stderr(&out)
    );
    // A prompt the user chose must encode, and the error names the key and the fix.
    let out = exec(&tiny(
        &scratch.str("run2"),
        &["--set", &corpus, "--set", "train.sample_prompt=XYZ"],
    ));
    assert_clean_error(&out, "--set train.sample_prompt=TEXT");
}

#[test]
fn the_fix_named_for_a_changed_tokenizer_works() {
    let scratch = Scratch::new("tok-fix");
    run_ok(&tiny(&scratch.str("run"), &[]));
    let path = scratch.path("run/tokenizer.json");
    let mut tokenizer: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    tokenizer["vocab"].as_array_mut().unwrap().swap(10, 11);
    std::fs::write(&path, tokenizer.to_string()).unwrap();
    let out = tinygpt(&["sample", "--run", &scratch.str("run")]);
    assert_clean_error(&out, "tinygpt import --weights");
    let err = stderr(&out);
    let fix = err
        .split('`')
        .nth(1)
        .unwrap()
        .replace("NEW_RUN", &scratch.str("fixed"));
    let args: Vec<&str> = fix.split_whitespace().skip(1).collect();
    tinygpt_ok(&args);
    let out = tinygpt_ok(&[
        "sample",
        "--run",
        &scratch.str("fixed"),
        "--max-new-tokens",
        "8",
    ]);
    assert!(!stdout(&out).is_empty());

    // `import` takes --overwrite, as its error says.
    let again = tinygpt(&args);
    assert_clean_error(&again, "--overwrite");
    let mut replace = args.clone();
    replace.push("--overwrite");
    tinygpt_ok(&replace);
}

#[test]
fn eval_text_and_tokenizer_errors_name_what_the_user_passed() {
    let scratch = Scratch::new("msgs");
    run_ok(&tiny(&scratch.str("run"), &[]));
    let missing = scratch.str("missing.txt");
    let out = tinygpt(&["eval", "--run", &scratch.str("run"), "--text", &missing]);
    assert_clean_error(&out, "--text");
    assert!(!stderr(&out).contains("data.corpus"), "{}", stderr(&out));
    std::fs::write(scratch.path("empty.txt"), "").unwrap();
    let out = tinygpt(&[
        "eval",
        "--run",
        &scratch.str("run"),
        "--text",
        &scratch.str("empty.txt"),
    ]);
    assert_clean_error(&out, "--text");

    std::fs::write(
        scratch.path("empty.json"),
        r#"{"kind": "char", "vocab": []}"#,
    )
    .unwrap();
    let tokenizer = format!("data.tokenizer={}", scratch.str("empty.json"));
    let out = exec(&tiny(&scratch.str("run2"), &["--set", &tokenizer]));
    assert_clean_error(&out, "vocabulary is empty");
}

// 11. Outputs never silently replace a file.

#[test]
fn output_files_are_replaced_only_with_force() {
    let scratch = Scratch::new("force");
    run_ok(&tiny(&scratch.str("run"), &[]));
    let precious = "[model]\nn_layer = 12\n";
    let cases: [(Vec<String>, &str); 3] = [
        (
            vec![
                "plot".into(),
                "--run".into(),
                scratch.str("run"),
                "--out".into(),
            ],
            "loss.png",
        ),
        (
            [
                "attention",
                "--run",
                &scratch.str("run"),
                "--prompt",
                "To be",
                "--format",
                "json",
                "--out",
            ]
            .map(String::from)
            .to_vec(),
            "attention.json",
        ),
        (
            [
                "tokenize",
                "--config",
                "configs/tiny-test.toml",
                "--save-tokenizer",
            ]
            .map(String::from)
            .to_vec(),
            "tokenizer.json",
        ),
    ];
    for (case, name) in cases {
        let target = scratch.path(name);
        std::fs::write(&target, precious).unwrap();
        let mut args = case.clone();
        args.push(target.to_string_lossy().into_owned());
        let out = exec(&args);
        assert_clean_error(&out, "--force");
        assert_eq!(std::fs::read_to_string(&target).unwrap(), precious);
        args.push("--force".into());
        run_ok(&args);
        assert_ne!(std::fs::read(&target).unwrap(), precious.as_bytes());
    }
}

#[test]
fn a_bad_activation_or_layer_norm_eps_is_one_line_naming_the_choices() {
    let scratch = Scratch::new("activation");
    let out = exec(&tiny(
        &scratch.str("run"),
        &["--set", "model.activation=relu"],
    ));
    assert_clean_error(
        &out,
        "model.activation: unknown variant `relu`, expected one of `gelu`, `gelu_tanh`, `relu2`, `swiglu`",
    );
    let out = exec(&tiny(
        &scratch.str("run"),
        &["--set", "model.layer_norm_eps=0"],
    ));
    assert_clean_error(&out, "model.layer_norm_eps = 0: must be in (0, 1)");
    assert!(!scratch.path("run").exists());
    // GPT-2's form trains, and the run's config keeps both keys for resume and sampling.
    run_ok(&tiny(
        &scratch.str("run"),
        &[
            "--set",
            "model.activation=gelu_tanh",
            "--set",
            "model.layer_norm_eps=1e-3",
        ],
    ));
    let config = std::fs::read_to_string(scratch.path("run").join("config.toml")).unwrap();
    assert!(config.contains("activation = \"gelu_tanh\""), "{config}");
    assert!(config.contains("layer_norm_eps = 0.001"), "{config}");
    tinygpt_ok(&[
        "sample",
        "--run",
        &scratch.str("run"),
        "--max-new-tokens",
        "5",
    ]);
}
