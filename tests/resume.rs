//! Checkpoints and exact resume, end to end through the real binary: stopping anywhere and
//! resuming gives bit-identical weights and metrics to a run that never stopped.

mod common;

use std::path::Path;

use common::*;

/// A short tiny-test schedule with frequent evals and checkpoints.
fn schedule(max_steps: usize, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "--set",
        &format!("train.max_steps={max_steps}"),
        "--set",
        "train.eval_interval=10",
        "--set",
        "train.log_interval=5",
        "--set",
        "train.checkpoint_interval=10",
        "--set",
        "train.sample_tokens=5",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

fn new_run(out: &str, settings: &[String], more: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = ["train", "--config", "configs/tiny-test.toml", "--out", out]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.extend(settings.iter().cloned());
    args.extend(more.iter().map(|s| s.to_string()));
    args
}

fn run_ok(args: &[String]) -> std::process::Output {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    tinygpt_ok(&args)
}

/// (step, train_loss, val_loss) of every metrics line, as exact JSON numbers.
fn losses(run: &Path) -> Vec<(u64, Option<f64>, Option<f64>)> {
    metrics(run)
        .iter()
        .map(|l| {
            (
                l["step"].as_u64().unwrap(),
                l["train_loss"].as_f64(),
                l["val_loss"].as_f64(),
            )
        })
        .collect()
}

fn assert_same_run(a: &Path, b: &Path) {
    assert_eq!(
        losses(a),
        losses(b),
        "metrics differ between {} and {}",
        a.display(),
        b.display()
    );
    let weights = |run: &Path| std::fs::read(run.join("model.safetensors")).unwrap();
    assert!(weights(a) == weights(b), "final weights differ");
}

fn checkpoint_steps(run: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(run.join("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn bit_exact_resume(name: &str, extra: &[&str]) {
    let scratch = Scratch::new(name);
    let settings = schedule(40, extra);
    run_ok(&new_run(&scratch.str("straight"), &settings, &[]));

    let split = scratch.str("split");
    let out = run_ok(&new_run(&split, &settings, &["--stop-at-step", "20"]));
    assert!(
        stderr(&out).contains("stopped as asked at step 20"),
        "{}",
        stderr(&out)
    );
    assert!(!scratch.path("split/model.safetensors").exists());
    run_ok(&["train".into(), "--resume".into(), split.clone()]);
    assert_same_run(&scratch.path("straight"), &scratch.path("split"));

    // Resuming from an older checkpoint cuts the metrics back to it: no step twice.
    run_ok(&[
        "train".into(),
        "--resume".into(),
        split.clone(),
        "--checkpoint".into(),
        "step-30".into(),
    ]);
    assert_same_run(&scratch.path("straight"), &scratch.path("split"));
    // The last 3 plus the best; all of them complete.
    assert_eq!(
        checkpoint_steps(&scratch.path("split")),
        ["step-0000020", "step-0000030", "step-0000040"]
    );
}

#[test]
fn resume_is_bit_exact() {
    bit_exact_resume("exact", &[]);
}

#[test]
fn resume_is_bit_exact_in_bf16() {
    if !cpu_has("avx512_bf16") {
        eprintln!("SKIPPED: this CPU has no AVX512_BF16, so no bf16 run to resume");
        return;
    }
    bit_exact_resume(
        "exact-bf16",
        &[
            "--set",
            "train.precision=bf16",
            "--set",
            "train.grad_accum=2",
        ],
    );
}

#[test]
fn resume_is_bit_exact_in_bf16_with_windows() {
    if !cpu_has("avx512_bf16") {
        eprintln!("SKIPPED: this CPU has no AVX512_BF16, so no bf16 run to resume");
        return;
    }
    // Windowed layers take the tiled attention, whose products multiply in bf16 too.
    bit_exact_resume(
        "exact-bf16-window",
        &[
            "--set",
            "train.precision=bf16",
            "--set",
            "model.attention_window=5",
            "--set",
            "model.window_pattern=SL",
        ],
    );
}

#[test]
fn resume_is_bit_exact_with_grad_accumulation_and_dropout() {
    bit_exact_resume(
        "exact-accum",
        &["--set", "train.grad_accum=2", "--set", "model.dropout=0.1"],
    );
}

/// The modern recipe with Muon's momentum warm-up and the WSD warmdown both crossing the stop.
fn modern() -> Vec<&'static str> {
    let mut switches = MODERN_RECIPE.to_vec();
    switches.extend([
        "--set",
        "train.muon_momentum_warmup=30",
        "--set",
        "train.warmdown_fraction=0.6",
    ]);
    switches
}

#[test]
fn resume_is_bit_exact_with_grouped_query_attention() {
    // tiny-test's two query heads share one key/value head.
    let mut switches = modern();
    switches.extend(["--set", "model.n_kv_head=1"]);
    bit_exact_resume("exact-gqa", &switches);
}

#[test]
fn resume_is_bit_exact_with_sliding_windows_and_grouped_query_attention() {
    // tiny-test's first block sees 5 positions of its 16, its last all of them.
    let mut switches = modern();
    switches.extend([
        "--set",
        "model.n_kv_head=1",
        "--set",
        "model.attention_window=5",
    ]);
    switches.extend(["--set", "model.window_pattern=SL"]);
    bit_exact_resume("exact-window", &switches);
}

#[test]
fn resume_is_bit_exact_with_muon_in_bf16() {
    if !cpu_has("avx512_bf16") {
        eprintln!("SKIPPED: this CPU has no AVX512_BF16, so no bf16 run to resume");
        return;
    }
    // Muon's Newton–Schulz products multiply in bf16 too in such a run.
    let mut switches = modern();
    switches.extend(["--set", "train.precision=bf16"]);
    bit_exact_resume("exact-modern-bf16", &switches);
}

#[test]
fn resume_is_bit_exact_with_the_modern_recipe_and_muon() {
    bit_exact_resume("exact-modern", &modern());
    // The checkpoint holds Muon's momentum for every block matrix (2 blocks × 6).
    let scratch = Scratch::new("exact-modern-state");
    let run = scratch.str("run");
    run_ok(&new_run(&run, &schedule(10, &modern()), &[]));
    let bytes =
        std::fs::read(scratch.path("run/checkpoints/step-0000010/optimizer.safetensors")).unwrap();
    let (tensors, _) = tinygpt_model::weights::from_safetensors(&bytes).unwrap();
    let momenta: Vec<&str> = tensors
        .iter()
        .map(|t| t.name.as_str())
        .filter(|n| n.ends_with(".momentum"))
        .collect();
    assert_eq!(momenta.len(), 12, "{momenta:?}");
    assert!(momenta.iter().all(|n| n.starts_with("blocks.")));
}

#[test]
fn sigint_saves_a_checkpoint_and_resume_finishes_identically() {
    let scratch = Scratch::new("sigint");
    let settings = schedule(400, &["--set", "train.checkpoint_interval=1000"]);
    run_ok(&new_run(&scratch.str("straight"), &settings, &[]));

    let run = scratch.str("interrupted");
    let mut child = spawn_until(&new_run(&run, &settings, &[]), &[], "step     20/");
    let pid = child.id().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = child.wait().unwrap();
    // 128 + SIGINT: a script can tell an interrupted run from a finished one.
    assert_eq!(
        status.code(),
        Some(130),
        "exit status after SIGINT: {status}"
    );

    let saved = checkpoint_steps(&scratch.path("interrupted"));
    assert_eq!(saved.len(), 1, "{saved:?}");
    let step: usize = saved[0].trim_start_matches("step-").parse().unwrap();
    assert!((20..400).contains(&step), "interrupted at step {step}");
    assert!(!scratch.path("interrupted/model.safetensors").exists());

    let out = run_ok(&["train".into(), "--resume".into(), run.clone()]);
    assert!(
        stderr(&out).contains(&format!("resuming at step {step}")),
        "{}",
        stderr(&out)
    );
    assert_same_run(&scratch.path("straight"), &scratch.path("interrupted"));
}

#[test]
fn kill_9_while_writing_a_checkpoint_leaves_the_previous_one_resumable() {
    let scratch = Scratch::new("kill9");
    let settings = schedule(40, &[]);
    run_ok(&new_run(&scratch.str("straight"), &settings, &[]));

    let run = scratch.str("killed");
    run_ok(&new_run(&run, &settings, &["--stop-at-step", "10"]));
    let mut child = spawn_until(
        &["train".into(), "--resume".into(), run.clone()],
        &[("TINYGPT_TEST_PAUSE_IN_CHECKPOINT_MS", "60000")],
        "checkpoint write paused",
    );
    child.kill().unwrap(); // SIGKILL, in the middle of writing step-20
    child.wait().unwrap();
    let left: Vec<String> = std::fs::read_dir(scratch.path("killed/checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(left.contains(&".tmp-step-0000020".to_string()), "{left:?}");
    assert!(left.contains(&"step-0000010".to_string()), "{left:?}");

    run_ok(&["train".into(), "--resume".into(), run.clone()]);
    assert_same_run(&scratch.path("straight"), &scratch.path("killed"));
    assert!(
        !checkpoint_steps(&scratch.path("killed"))
            .iter()
            .any(|n| n.starts_with(".tmp"))
    );
}

#[test]
fn resume_refuses_changes_and_damage_with_clear_errors() {
    let scratch = Scratch::new("refusals");
    let corpus = scratch.path("corpus.txt");
    let text = std::fs::read_to_string(workspace_root().join("data/shakespeare.txt")).unwrap();
    std::fs::write(&corpus, &text[..200_000]).unwrap();
    let run = scratch.str("run");
    let settings = schedule(30, &["--set", &format!("data.corpus={}", corpus.display())]);
    run_ok(&new_run(&run, &settings, &["--stop-at-step", "20"]));
    let resume = |extra: &[&str]| {
        let mut args = vec!["train", "--resume", run.as_str()];
        args.extend_from_slice(extra);
        tinygpt(&args)
    };

    assert_clean_error(
        &resume(&["--set", "model.n_embd=64"]),
        "model.n_embd (run: 32, now: 64)",
    );
    assert_clean_error(
        &resume(&["--set", "train.batch_size=4"]),
        "train.batch_size",
    );
    assert_clean_error(
        &resume(&["--checkpoint", "step-7"]),
        "no \"step-7\" checkpoint",
    );
    assert_clean_error(
        &resume(&["--set", "train.max_steps=20"]),
        "already at step 20",
    );
    assert_clean_error(
        &tinygpt(&["train", "--resume", &scratch.str("nowhere")]),
        "does not exist",
    );
    std::fs::create_dir_all(scratch.path("empty")).unwrap();
    assert_clean_error(
        &tinygpt(&["train", "--resume", &scratch.str("empty")]),
        "not a tinygpt run directory",
    );

    // A changed corpus.
    std::fs::write(&corpus, format!("{}!", &text[..200_000])).unwrap();
    assert_clean_error(&resume(&[]), "changed since the run started");
    std::fs::write(&corpus, &text[..200_000]).unwrap();

    // A damaged weights file, and a truncated optimizer file, in the latest checkpoint.
    let checkpoint = scratch.path("run/checkpoints/step-0000020");
    let weights = checkpoint.join("model.safetensors");
    let good = std::fs::read(&weights).unwrap();
    let mut bad = good.clone();
    let last = bad.len() - 1;
    bad[last] ^= 0x01;
    std::fs::write(&weights, &bad).unwrap();
    assert_clean_error(&resume(&[]), "model.safetensors is corrupted");
    std::fs::write(&weights, &good).unwrap();

    let optimizer = checkpoint.join("optimizer.safetensors");
    let good_optimizer = std::fs::read(&optimizer).unwrap();
    std::fs::write(&optimizer, &good_optimizer[..good_optimizer.len() / 2]).unwrap();
    assert_clean_error(&resume(&[]), "optimizer.safetensors is corrupted");
    std::fs::write(&optimizer, &good_optimizer).unwrap();

    std::fs::write(checkpoint.join("state.json"), "{ not json").unwrap();
    assert_clean_error(
        &resume(&["--checkpoint", "step-20"]),
        // SHA256SUMS covers state.json too: an edit is caught before it is parsed.
        "state.json is corrupted or was edited",
    );
}
