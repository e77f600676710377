//! `tinygpt sample` end to end: streaming, seeds, stop strings, the KV cache, and errors.

mod common;

use std::io::Read;
use std::process::Stdio;
use std::sync::OnceLock;

use common::*;

/// One tiny trained run shared by every test here, trained once per test run in Cargo's
/// scratch directory for integration tests (under `target/`, so nothing is left in /tmp).
fn trained_run() -> &'static str {
    static RUN: OnceLock<String> = OnceLock::new();
    RUN.get_or_init(|| {
        let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("sample-run");
        let _ = std::fs::remove_dir_all(&dir);
        let out = dir.to_string_lossy().into_owned();
        tinygpt_ok(&[
            "train",
            "--config",
            "configs/tiny-test.toml",
            "--out",
            &out,
            "--set",
            "train.max_steps=150",
            "--set",
            "train.sample_tokens=1",
        ]);
        out
    })
}

fn sample(extra: &[&str]) -> std::process::Output {
    let mut args = vec!["sample", "--run", trained_run()];
    args.extend_from_slice(extra);
    tinygpt(&args)
}

fn sample_ok(extra: &[&str]) -> String {
    let out = sample(extra);
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out)
}

#[test]
fn greedy_is_identical_with_and_without_the_kv_cache_past_block_size() {
    // block_size is 16; 120 new tokens slide the window many times.
    let args = [
        "--prompt",
        "ROMEO:",
        "--temperature",
        "0",
        "--max-new-tokens",
        "120",
    ];
    let cached = sample_ok(&args);
    let mut plain_args = args.to_vec();
    plain_args.push("--no-kv-cache");
    assert_eq!(cached, sample_ok(&plain_args));
    assert!(cached.starts_with("ROMEO:"));
    // prompt + 120 generated characters + the closing newline
    assert_eq!(cached.chars().count(), "ROMEO:".len() + 120 + 1);
}

#[test]
fn same_seed_same_text_different_seed_different_text() {
    let args = |seed: &'static str| {
        [
            "--temperature",
            "1.0",
            "--max-new-tokens",
            "80",
            "--seed",
            seed,
        ]
    };
    assert_eq!(sample_ok(&args("7")), sample_ok(&args("7")));
    assert_ne!(sample_ok(&args("7")), sample_ok(&args("8")));
}

#[test]
fn samples_are_separated_and_top_k_1_is_greedy() {
    let text = sample_ok(&[
        "--num-samples",
        "3",
        "--max-new-tokens",
        "20",
        "--prompt",
        "A",
    ]);
    assert_eq!(text.matches("\n---------------\n").count(), 3, "{text:?}");
    let greedy = sample_ok(&["--temperature", "0", "--max-new-tokens", "30"]);
    let top1 = sample_ok(&[
        "--temperature",
        "1.5",
        "--top-k",
        "1",
        "--max-new-tokens",
        "30",
    ]);
    assert_eq!(greedy, top1);
}

#[test]
fn stop_strings_end_generation_before_them() {
    let free = sample_ok(&[
        "--temperature",
        "0",
        "--max-new-tokens",
        "200",
        "--prompt",
        "T",
    ]);
    // Pick a two-character string the greedy text really produces after the prompt.
    let generated = &free[1..];
    let stop: String = generated.chars().skip(5).take(2).collect();
    let first = generated.find(&stop).unwrap();
    let stopped = sample_ok(&[
        "--temperature",
        "0",
        "--max-new-tokens",
        "200",
        "--prompt",
        "T",
        "--stop",
        &stop,
    ]);
    assert_eq!(
        stopped,
        format!("T{}\n", &generated[..first]),
        "stop {stop:?}"
    );
}

#[test]
fn tokens_stream_before_generation_ends() {
    // A long generation read through a pipe: the first text arrives while the process is
    // still generating.
    let run = trained_run();
    let mut child = tinygpt_command(&[
        "sample",
        "--run",
        run,
        "--no-kv-cache",
        "--max-new-tokens",
        "100000",
        "--prompt",
        "X",
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 4];
    stdout.read_exact(&mut first).unwrap();
    assert_eq!(first[0], b'X');
    assert!(
        child.try_wait().unwrap().is_none(),
        "all output came only at the end"
    );
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn long_prompts_are_cropped_with_a_note() {
    let prompt = "To be, or not to be, that is the question";
    let out = sample(&["--prompt", prompt, "--max-new-tokens", "5"]);
    assert!(out.status.success());
    assert!(
        stderr(&out).contains("keeping its last 16"),
        "{}",
        stderr(&out)
    );
    assert!(stdout(&out).starts_with(prompt));
}

#[test]
fn bad_arguments_are_clear_errors() {
    assert_clean_error(&sample(&["--prompt", "caf\u{e9} \u{263A}"]), "'é' '☺'");
    assert_clean_error(&sample(&["--temperature", "-1"]), "--temperature");
    assert_clean_error(&sample(&["--top-p", "0"]), "--top-p");
    assert_clean_error(&sample(&["--top-p", "1.5"]), "--top-p");
    assert_clean_error(&sample(&["--top-k", "0"]), "--top-k");
    assert_clean_error(
        &sample(&["--checkpoint", "step-999"]),
        "no \"step-999\" checkpoint",
    );
    assert_clean_error(
        &tinygpt(&["sample", "--run", "/nonexistent/run"]),
        "does not exist",
    );
    assert_clean_error(&sample(&["--device", "abacus"]), "unknown device");
}

#[test]
fn samples_from_a_checkpoint_and_from_the_final_weights_agree_at_the_end() {
    let args = ["--temperature", "0", "--max-new-tokens", "40"];
    let mut from_checkpoint = args.to_vec();
    from_checkpoint.extend(["--checkpoint", "latest"]);
    assert_eq!(sample_ok(&args), sample_ok(&from_checkpoint));
}
