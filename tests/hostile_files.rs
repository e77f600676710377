//! Nothing a user wrote is destroyed (README, "What tinygpt promises"), against hostile
//! paths: a finished run or a model folder under `bench --save-first-step`, copies kept under
//! `checkpoints/`, device nodes and named pipes under `--force`, a link under `--overwrite`,
//! a run under its own export, two writers racing for one `--out`, a full disk, a signal in
//! the middle of an export. Each case checks the exit code, the one `error:` line, and the
//! user's files byte for byte.

mod common;

use std::os::unix::fs::FileTypeExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::runs::*;
use common::*;

/// A finished tiny run in `scratch/run` (4 steps, checkpoints at 2 and 4).
fn finished_run(scratch: &Scratch) -> String {
    run_ok(&tiny(&scratch.str("run"), &[]));
    scratch.str("run")
}

#[test]
fn bench_save_first_step_never_replaces_a_runs_weights_or_a_model_folder() {
    let scratch = Scratch::new("hostile-bench");
    let run = finished_run(&scratch);
    let before = snapshot(Path::new(&run));
    let bench = |dir: &str, extra: &[&str]| {
        let mut args = vec![
            "bench",
            "--config",
            "configs/tiny-test.toml",
            "--steps",
            "1",
            "--warmup",
            "0",
            "--sample-tokens",
            "0",
            "--save-first-step",
            dir,
        ];
        args.extend_from_slice(extra);
        tinygpt(&args)
    };
    let out = bench(&run, &[]);
    assert_clean_error(&out, "model.safetensors already exists");
    assert_eq!(snapshot(Path::new(&run)), before);
    // A file is not a folder, with or without --force.
    let file = scratch.path("notes.txt");
    std::fs::write(&file, "mine").unwrap();
    assert_clean_error(&bench(&scratch.str("notes.txt"), &["--force"]), "is a file");
    assert_eq!(std::fs::read(&file).unwrap(), b"mine");
    // A new folder gets both files; a second run needs --force, and then replaces only them.
    let dir = scratch.str("first");
    ok(bench(&dir, &[]));
    std::fs::write(scratch.path("first/keep.txt"), "kept").unwrap();
    assert_clean_error(&bench(&dir, &[]), "already exists");
    ok(bench(&dir, &["--force"]));
    let names: Vec<String> = snapshot(Path::new(&dir))
        .keys()
        .map(|p| p.display().to_string())
        .collect();
    assert_eq!(names, ["first-step.json", "keep.txt", "model.safetensors"]);
}

#[test]
fn overwrite_keeps_copies_the_user_made_under_checkpoints() {
    let scratch = Scratch::new("hostile-keep");
    let run = finished_run(&scratch);
    let checkpoints = Path::new(&run).join("checkpoints");
    let mut kept = Vec::new();
    for copy in ["step-0000002-keep", "step-0000004.bak", "step-2"] {
        let to = checkpoints.join(copy);
        std::fs::create_dir(&to).unwrap();
        for file in ["model.safetensors", "state.json", "SHA256SUMS"] {
            std::fs::copy(checkpoints.join("step-0000002").join(file), to.join(file)).unwrap();
        }
        kept.push((copy, snapshot(&to)));
    }
    let out = run_ok(&tiny(&run, &["--overwrite"]));
    let aside = replaced(Path::new(&run));
    assert_eq!(aside.len(), 1, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("files tinygpt did not write"),
        "{}",
        stderr(&out)
    );
    for (copy, files) in kept {
        assert_eq!(
            snapshot(&aside[0].join("checkpoints").join(copy)),
            files,
            "{copy}"
        );
    }
    // tinygpt's own checkpoints of the old run are gone.
    assert!(!aside[0].join("checkpoints/step-0000002").exists());
    assert!(!aside[0].join("checkpoints/step-0000004").exists());
}

#[test]
fn force_never_replaces_a_device_a_named_pipe_or_a_folder() {
    let scratch = Scratch::new("hostile-devices");
    let run = finished_run(&scratch);
    let out = tinygpt(&["export", "--run", &run, "--out", "/dev/null", "--force"]);
    assert_clean_error(&out, "/dev/null is a device, not a regular file");
    let null = std::fs::metadata("/dev/null").unwrap();
    assert!(null.file_type().is_char_device());

    let pipe = scratch.path("pipe");
    assert!(
        Command::new("mkfifo")
            .arg(&pipe)
            .status()
            .unwrap()
            .success()
    );
    let pipe_arg = scratch.str("pipe");
    for args in [
        vec!["plot", "--run", &run, "--out", &pipe_arg, "--force"],
        vec!["report", "--run", &run, "--out", &pipe_arg, "--force"],
        vec!["report", "--run", &run, "--out", &pipe_arg],
        vec![
            "export", "--run", &run, "--format", "gguf", "--out", &pipe_arg, "--force",
        ],
    ] {
        assert_clean_error(&tinygpt(&args), "is a named pipe, not a regular file");
    }
    assert!(std::fs::metadata(&pipe).unwrap().file_type().is_fifo());

    let folder = scratch.str("folder");
    std::fs::create_dir(&folder).unwrap();
    let args = [
        "attention",
        "--run",
        &run,
        "--prompt",
        "ab",
        "--out",
        &folder,
        "--force",
    ];
    assert_clean_error(&tinygpt(&args), "is a folder, not a regular file");
}

#[test]
fn overwrite_through_a_link_and_save_tokenizer_onto_a_link_leave_the_target_alone() {
    let scratch = Scratch::new("hostile-links");
    let run = finished_run(&scratch);
    let link = scratch.path("link");
    std::os::unix::fs::symlink(&run, &link).unwrap();
    let before = snapshot(Path::new(&run));
    let out = exec(&tiny(&scratch.str("link"), &["--overwrite"]));
    assert_clean_error(&out, "is a link");
    assert!(link.is_symlink());
    assert_eq!(snapshot(Path::new(&run)), before);

    // --force on a link replaces the link with the new file, never the file it points to.
    let mine = scratch.path("mine.json");
    std::fs::write(&mine, "the user's own file").unwrap();
    let tokenizer = scratch.path("tokenizer.json");
    std::os::unix::fs::symlink(&mine, &tokenizer).unwrap();
    let saved = scratch.str("tokenizer.json");
    let config = [
        "--config",
        "configs/tiny-test.toml",
        "--save-tokenizer",
        &saved,
    ];
    let out = tinygpt(&[&["tokenize"], &config[..]].concat());
    assert_clean_error(&out, "already exists");
    tinygpt_ok(&[&["tokenize"], &config[..], &["--force"]].concat());
    assert_eq!(std::fs::read(&mine).unwrap(), b"the user's own file");
    assert!(!tokenizer.is_symlink());
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&tokenizer).unwrap()).unwrap();
    assert_eq!(json["kind"], "char");
}

#[test]
fn an_export_never_lands_inside_the_run_it_comes_from() {
    let scratch = Scratch::new("hostile-export-into-run");
    let run = finished_run(&scratch);
    let before = snapshot(Path::new(&run));
    let weights = format!("{run}/model.safetensors");
    let inside = format!("{run}/checkpoints/new/model.gguf");
    for (format, out) in [("hf", &run), ("safetensors", &weights), ("gguf", &inside)] {
        let args = [
            "export", "--run", &run, "--format", format, "--out", out, "--force",
        ];
        assert_clean_error(&tinygpt(&args), "is inside the run");
    }
    assert_eq!(snapshot(Path::new(&run)), before);
}

/// The siblings of `out` that a folder export builds aside (`.NAME.tmp-PID`).
fn asides(out: &Path) -> Vec<String> {
    let name = format!(".{}.tmp-", out.file_name().unwrap().to_string_lossy());
    std::fs::read_dir(out.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&name))
        .collect()
}

#[test]
fn an_interrupted_folder_export_leaves_neither_a_half_folder_nor_its_temporary() {
    let scratch = Scratch::new("hostile-export-sigterm");
    let run = finished_run(&scratch);
    let out = scratch.path("hf");
    let mut child = tinygpt_command(&["export", "--run", &run, "--format", "hf", "--out"])
        .arg(&out)
        .env("TINYGPT_TEST_PAUSE_IN_EXPORT_MS", "20000")
        .spawn()
        .unwrap();
    let started = Instant::now();
    while asides(&out).is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no folder built aside"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    signal(&child, "TERM");
    assert_eq!(child.wait().unwrap().code(), Some(143));
    assert!(!out.exists());
    assert_eq!(asides(&out), Vec::<String>::new());
    // Uninterrupted, the folder appears whole and nothing is left beside it.
    tinygpt_ok(&[
        "export",
        "--run",
        &run,
        "--format",
        "hf",
        "--out",
        &scratch.str("hf"),
    ]);
    assert!(out.join("model.safetensors").is_file() && out.join("config.json").is_file());
    assert_eq!(asides(&out), Vec::<String>::new());
}

/// `command` with its files limited to `bytes` (a write past it fails with "File too large",
/// as a full disk fails one with "No space left on device").
fn with_file_size_limit(command: &mut Command, bytes: u64) -> &mut Command {
    // SAFETY: between fork and exec only async-signal-safe calls (signal, setrlimit).
    unsafe {
        command.pre_exec(move || {
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            let limit = libc::rlimit {
                rlim_cur: bytes,
                rlim_max: bytes,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })
    }
}

#[test]
fn a_write_that_fails_for_space_leaves_no_temporary_and_says_why() {
    let scratch = Scratch::new("hostile-full");
    let run = finished_run(&scratch);
    let out = scratch.path("model.safetensors");
    let result = with_file_size_limit(
        tinygpt_command(&["export", "--run", &run, "--out"]).arg(&out),
        16 << 10,
    )
    .output()
    .unwrap();
    assert_clean_error(&result, "cannot write");
    let left: Vec<_> = std::fs::read_dir(&scratch.0)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "run")
        .collect();
    assert_eq!(left, Vec::<String>::new());

    // A token cache that cannot be written: training data stays in memory, and the line says
    // why, not a guess.
    let text = std::fs::read_to_string(workspace_root().join("data/shakespeare.txt")).unwrap();
    std::fs::write(scratch.path("corpus.txt"), &text[..200_000]).unwrap();
    let corpus = format!("data.corpus={}", scratch.str("corpus.txt"));
    let result = with_file_size_limit(
        &mut tinygpt_command(&[
            "tokenize",
            "--config",
            "configs/tiny-test.toml",
            "--set",
            &corpus,
        ]),
        16 << 10,
    )
    .output()
    .unwrap();
    let printed = stdout(&ok(result));
    assert!(
        printed.contains("memory (the cache cannot be written: File too large"),
        "{printed}"
    );
    let cache = scratch.path(".tinygpt-cache");
    let temporaries: Vec<_> = std::fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("tmp") || n.ends_with(".tokens"))
        .collect();
    assert_eq!(temporaries, Vec::<String>::new());
}

#[test]
fn a_second_writer_is_told_the_run_is_in_use_whatever_it_asks() {
    let scratch = Scratch::new("hostile-race");
    let run = scratch.str("run");
    let (mut child, _rest) = spawn_long(&run, &[]);
    for extra in [&[][..], &["--overwrite"][..]] {
        let out = exec(&tiny(&run, extra));
        assert_clean_error(&out, "is in use by another tinygpt process (pid");
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn runs_calls_a_trained_run_without_metrics_broken_not_finished() {
    let scratch = Scratch::new("hostile-runs");
    let run = finished_run(&scratch);
    std::fs::write(Path::new(&run).join("metrics.jsonl"), "").unwrap();
    let out = tinygpt_ok(&["runs", &scratch.0.to_string_lossy()]);
    let line = stdout(&out)
        .lines()
        .skip(1) // the header
        .find(|l| l.starts_with("run "))
        .map(String::from)
        .unwrap_or_else(|| panic!("{}", stdout(&out)));
    assert!(
        line.contains("broken") && !line.contains("finished"),
        "{line}"
    );
}
