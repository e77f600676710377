//! Data-parallel training through a real MPI launcher (README, "Training on several
//! processes"): built with `--features mpi`, run under Open MPI's `mpirun`. Without mpirun the
//! tests skip with a reason, except in CI, which installs it (`.ci/run`).
//!
//! Every process runs one CPU thread (`RAYON_NUM_THREADS=1`), so a rank and a lone process
//! compute each micro-batch's gradients the same way, and the comparisons are bit for bit.

#![cfg(feature = "mpi")]

mod common;

use std::path::Path;
use std::time::Duration;

use common::mpi::*;
use common::*;

#[test]
fn two_ranks_train_exactly_as_one_process_accumulating_two_micro_batches() {
    if !mpirun_available() {
        return;
    }
    let scratch = Scratch::new("mpi-equal");
    let (ranks, single) = (scratch.str("ranks"), scratch.str("single"));
    let out = ok(finish(mpirun(2, &tiny_args(&ranks, &[]))));
    ok(alone(&tiny_args(&single, &["--set", "train.grad_accum=2"])));

    // Same micro-batches, same dropout masks, gradients summed: the same weights and AdamW
    // moments, bit for bit (two addends sum alike in either order).
    let (ranks, single) = (Path::new(&ranks), Path::new(&single));
    assert_same_training(ranks, single, 10);
    assert_same_training(ranks, single, 20);
    assert_eq!(
        std::fs::read(ranks.join("model.safetensors")).unwrap(),
        std::fs::read(single.join("model.safetensors")).unwrap()
    );
    assert_eq!(state(ranks, 20)["ranks"], 2);
    assert_eq!(state(single, 20)["ranks"], 1);

    // The metrics count both ranks' tokens, name the ranks, and give the same losses.
    let (m2, m1) = (metrics(ranks), metrics(single));
    assert_eq!(m2.len(), m1.len());
    for (a, b) in m2.iter().zip(&m1) {
        assert_eq!(a["step"], b["step"]);
        assert_eq!(a["tokens"], b["tokens"]);
        for key in ["train_loss", "val_loss"] {
            if let (Some(x), Some(y)) = (a[key].as_f64(), b[key].as_f64()) {
                // Val batches are scored half on each rank and summed: the same up to the
                // order of a few f64 additions.
                assert!((x - y).abs() < 1e-9, "step {}: {key} {x} vs {y}", a["step"]);
            }
        }
    }
    assert_eq!(m2.last().unwrap()["tokens"], 20 * 8 * 16 * 2);
    assert!(m2[1..].iter().all(|l| l["ranks"] == 2), "{m2:?}");
    assert!(m1.iter().all(|l| l.get("ranks").is_none()));

    // Rank 0 alone talks: one banner, one summary.
    let err = stderr(&out);
    assert!(
        err.contains("data parallel: 2 ranks × 8 sequences (batch_size 8 × grad_accum 1) = a global batch of 16 sequences, 256 tokens per step"),
        "{err}"
    );
    assert_eq!(err.matches("done: 20 steps").count(), 1, "{err}");
    assert!(err.contains("| 2 ranks"), "{err}");
}

#[test]
fn two_ranks_with_muon_and_the_modern_model_train_exactly_as_grad_accum_2() {
    // With a sliding window in the first block and one key/value head for both query heads.
    if !mpirun_available() {
        return;
    }
    let scratch = Scratch::new("mpi-muon");
    let (ranks, single) = (scratch.str("ranks"), scratch.str("single"));
    let modern = [
        "--set",
        "train.optimizer=muon",
        "--set",
        "model.positions=rope",
        "--set",
        "model.norm=rms_norm",
        "--set",
        "model.qk_norm=true",
        "--set",
        "model.activation=relu2",
        "--set",
        "model.n_kv_head=1",
        "--set",
        "model.attention_window=5",
        "--set",
        "model.window_pattern=SL",
    ];
    ok(finish(mpirun(2, &tiny_args(&ranks, &modern))));
    let mut accumulated = modern.to_vec();
    accumulated.extend(["--set", "train.grad_accum=2"]);
    ok(alone(&tiny_args(&single, &accumulated)));
    // Muon orthogonalises the summed gradients on every rank alike: the same weights, AdamW
    // moments and Muon momentum, bit for bit.
    let (ranks, single) = (Path::new(&ranks), Path::new(&single));
    assert_same_training(ranks, single, 20);
    assert_eq!(
        std::fs::read(ranks.join("model.safetensors")).unwrap(),
        std::fs::read(single.join("model.safetensors")).unwrap()
    );
}

#[test]
fn two_ranks_in_bf16_train_exactly_as_grad_accum_2() {
    if !mpirun_available() {
        return;
    }
    if !cpu_has("avx512_bf16") {
        eprintln!("SKIPPED: this CPU has no AVX512_BF16, so no bf16 training to compare");
        return;
    }
    let scratch = Scratch::new("mpi-bf16");
    let (ranks, single) = (scratch.str("ranks"), scratch.str("single"));
    let bf16 = ["--set", "train.precision=bf16"];
    ok(finish(mpirun(2, &tiny_args(&ranks, &bf16))));
    ok(alone(&tiny_args(
        &single,
        &[
            "--set",
            "train.precision=bf16",
            "--set",
            "train.grad_accum=2",
        ],
    )));
    let (ranks, single) = (Path::new(&ranks), Path::new(&single));
    assert_same_training(ranks, single, 20);
    assert_eq!(
        std::fs::read(ranks.join("model.safetensors")).unwrap(),
        std::fs::read(single.join("model.safetensors")).unwrap()
    );
}

#[test]
fn a_run_resumes_on_the_same_or_another_number_of_ranks_when_the_global_batch_divides() {
    if !mpirun_available() {
        return;
    }
    let scratch = Scratch::new("mpi-resume");
    let whole = scratch.str("whole");
    ok(finish(mpirun(2, &tiny_args(&whole, &[]))));
    let whole = Path::new(&whole);

    // 2 ranks stopped at step 10, resumed on 2 ranks, on 1 process (grad_accum 2) and on 1
    // process after a 1-process start: all equal the uninterrupted 2-rank run.
    let stopped = scratch.str("stopped");
    ok(finish(mpirun(
        2,
        &tiny_args(&stopped, &["--stop-at-step", "10"]),
    )));
    for (name, ranks) in [("on-two", 2), ("on-one", 1)] {
        let copy = scratch.path(name);
        copy_dir(Path::new(&stopped), &copy);
        let copy_str = copy.to_string_lossy();
        let resume = ["train", "--resume", &copy_str];
        let out = if ranks == 1 {
            alone(&resume)
        } else {
            finish(mpirun(ranks, &resume))
        };
        ok(out);
        assert_same_training(whole, &copy, 20);
        assert_eq!(state(&copy, 20)["ranks"], ranks);
        assert_eq!(state(&copy, 20)["config"]["train"]["grad_accum"], 2 / ranks);
    }
    let single = scratch.str("single");
    ok(alone(&tiny_args(
        &single,
        &["--set", "train.grad_accum=2", "--stop-at-step", "10"],
    )));
    ok(finish(mpirun(2, &["train", "--resume", &single])));
    assert_same_training(whole, Path::new(&single), 20);

    // Three ranks cannot share two micro-batches a step: one line says so, nothing hangs.
    let out = finish(mpirun(3, &["train", "--resume", &stopped]));
    assert!(!out.status.success());
    let err = stderr(&out);
    let errors: Vec<&str> = err.lines().filter(|l| l.contains("error")).collect();
    assert_eq!(errors.len(), 1, "{err}");
    assert!(
        errors[0].starts_with("error: cannot resume on 3 ranks: the run trained 2 micro-batches per step (train.grad_accum 1 × 2 ranks)"),
        "{err}"
    );
    assert!(
        errors[0].contains("resume on a number of ranks that divides 2"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn sigterm_to_one_rank_stops_every_rank_at_one_step_with_a_checkpoint_that_resumes_exactly() {
    if !mpirun_available() {
        return;
    }
    let scratch = Scratch::new("mpi-term");
    let run = scratch.str("run");
    let (mut job, rest) = spawn_ranks(&run, 40);
    let rank_1 = rank_pid(&job, 1);
    let (status, _, err) = signal_job(&mut job, rest, rank_1, "TERM");
    assert_eq!(status.code(), Some(143), "{err}");
    let run = Path::new(&run);
    let stopped = *steps_saved(run).last().unwrap();
    assert!(
        err.contains(&format!(
            "interrupted at step {stopped}: checkpoint saved in {}",
            checkpoint(run, stopped).display()
        )),
        "{err}"
    );

    // Resumed to 10 steps further, it equals a 2-rank run that was never stopped.
    let target = (stopped + 10).to_string();
    ok(finish(mpirun(
        2,
        &[
            "train",
            "--resume",
            &run.to_string_lossy(),
            "--stop-at-step",
            &target,
        ],
    )));
    let whole = scratch.str("whole");
    ok(finish(mpirun(
        2,
        &long_args(&whole, &["--stop-at-step", &target]),
    )));
    assert_same_training(run, Path::new(&whole), stopped + 10);
}

#[test]
fn sigterm_to_mpirun_stops_the_job_with_a_checkpoint() {
    if !mpirun_available() {
        return;
    }
    let scratch = Scratch::new("mpi-mpirun-term");
    let run = scratch.str("run");
    let (mut job, rest) = spawn_ranks(&run, 30);
    let mpirun = job.id();
    let (status, _, err) = signal_job(&mut job, rest, mpirun, "TERM");
    assert!(!status.success(), "{err}");
    let stopped = *steps_saved(Path::new(&run)).last().unwrap();
    assert!(stopped >= 30, "{err}");
    assert!(
        err.contains(&format!("interrupted at step {stopped}: checkpoint saved")),
        "{err}"
    );
}

#[test]
fn a_rank_that_dies_ends_the_others_within_seconds_and_the_last_checkpoint_resumes() {
    if !mpirun_available() {
        return;
    }
    let scratch = Scratch::new("mpi-kill");
    let run = scratch.str("run");
    let (mut job, rest) = spawn_ranks(&run, 60);
    let rank_1 = rank_pid(&job, 1);
    let (status, took, err) = signal_job(&mut job, rest, rank_1, "KILL");
    assert!(!status.success(), "{err}");
    assert!(
        took < Duration::from_secs(10),
        "the job took {took:?} to end"
    );
    assert!(
        err.contains("exited on signal 9"),
        "mpirun names the rank:\n{err}"
    );

    let last = *steps_saved(Path::new(&run)).last().unwrap();
    assert!(last >= 50, "{err}");
    let target = (last + 5).to_string();
    let out = ok(finish(mpirun(
        2,
        &["train", "--resume", &run, "--stop-at-step", &target],
    )));
    assert!(
        stderr(&out).contains(&format!("resuming at step {last}")),
        "{}",
        stderr(&out)
    );
    assert_eq!(*steps_saved(Path::new(&run)).last().unwrap(), last + 5);
}

#[test]
fn devices_names_the_ranks_and_bad_input_gives_one_error_line_without_a_hang() {
    if !mpirun_available() {
        return;
    }
    let out = ok(finish(mpirun(2, &["devices", "--json"])));
    let mut ranks: Vec<u64> = stdout(&out)
        .lines()
        .map(|line| {
            let json: serde_json::Value = serde_json::from_str(line).unwrap();
            assert_eq!(json["mpi"]["compiled"], true);
            assert_eq!(json["mpi"]["ranks"], 2);
            assert!(json["mpi"]["library"].as_str().unwrap().contains("MPI"));
            json["mpi"]["rank"].as_u64().unwrap()
        })
        .collect();
    ranks.sort();
    assert_eq!(ranks, [0, 1]);
    let plain = tinygpt_ok(&["devices"]);
    assert!(
        stdout(&plain).contains("MPI: compiled in; 1 rank (not started by an MPI launcher"),
        "{}",
        stdout(&plain)
    );

    let scratch = Scratch::new("mpi-bad");
    let out = finish(mpirun(
        2,
        &tiny_args(&scratch.str("run"), &["--set", "train.batch_size=0"]),
    ));
    assert!(!out.status.success());
    let err = stderr(&out);
    let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("error")).collect();
    assert_eq!(errors.len(), 1, "{err}");
    assert!(errors[0].contains("batch_size"), "{err}");
    assert!(!scratch.path("run").exists());
}
