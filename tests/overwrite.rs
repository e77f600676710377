//! What tinygpt promises about run directories (README, "What tinygpt promises"), end to
//! end through the real binary: `--overwrite` never deletes what tinygpt did not write, the
//! old run stays until the new one has a checkpoint, one writer per run, and a run killed
//! before its first checkpoint names the way out.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::runs::*;
use common::*;

// 1. --overwrite never deletes what tinygpt did not write.

#[test]
fn overwrite_refuses_the_working_directory_its_parents_the_root_and_home() {
    let scratch = Scratch::new("ow-project");
    let project = scratch.path("project");
    for (file, text) in [
        (".git/HEAD", "ref: refs/heads/main\n"),
        ("src/main.rs", "fn main() {}\n"),
        ("config.toml", "garbage = ["),
        ("metrics.jsonl", ""),
        ("thesis.txt", "Chapter one."),
        ("sub/notes.md", "notes"),
    ] {
        let path = project.join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    let before = snapshot(&project);
    let root = workspace_root();
    let config = root.join("configs/tiny-test.toml");
    let corpus = format!(
        "data.corpus={}",
        root.join("data/shakespeare.txt").display()
    );
    let train_in = |cwd: &Path, out: &str, home: Option<&Path>| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_tinygpt"));
        command
            .args(["train", "--config"])
            .arg(&config)
            .args(["--set", &corpus, "--out", out, "--overwrite"])
            .current_dir(cwd);
        if let Some(home) = home {
            command.env("HOME", home);
        }
        command.output().unwrap()
    };
    // `cd myproject && tinygpt train --out . --overwrite`
    let out = train_in(&project, ".", None);
    assert_clean_error(&out, "is the working directory or a folder above it");
    let out = train_in(&project.join("sub"), "..", None);
    assert_clean_error(&out, "is the working directory or a folder above it");
    let out = train_in(&project, "/", None);
    assert_clean_error(&out, "is the root directory");
    let out = train_in(&root, &project.to_string_lossy(), Some(&project));
    assert_clean_error(&out, "is your home directory");
    // Anywhere else: a folder without tinygpt's marker is not a run, whatever it holds.
    let out = train_in(&root, &project.to_string_lossy(), None);
    assert_clean_error(&out, "has no tinygpt-run.json");
    assert_eq!(snapshot(&project), before, "a file of the user's changed");
}

#[test]
fn overwrite_moves_the_old_run_aside_and_keeps_files_tinygpt_did_not_write() {
    let scratch = Scratch::new("ow-aside");
    let run = scratch.path("run");
    run_ok(&tiny(&scratch.str("run"), &[]));
    std::fs::write(run.join("notes.md"), "my notes on this run").unwrap();
    std::fs::create_dir_all(run.join("analysis")).unwrap();
    std::fs::write(run.join("analysis/plot.py"), "print(1)").unwrap();

    let out = run_ok(&tiny(&scratch.str("run"), &["--overwrite"]));
    let err = stderr(&out);
    assert!(err.contains("files tinygpt did not write"), "{err}");
    let aside = replaced(&run);
    assert_eq!(aside.len(), 1, "{aside:?}");
    let kept = snapshot(&aside[0]);
    let names: Vec<&Path> = kept.keys().map(PathBuf::as_path).collect();
    assert_eq!(
        names,
        [Path::new("analysis/plot.py"), Path::new("notes.md")],
        "only the user's files stay"
    );
    assert_eq!(kept[Path::new("notes.md")], b"my notes on this run");
    assert!(run.join("model.safetensors").is_file() && !run.join("notes.md").exists());

    // With nothing foreign in it, the old run disappears entirely once replaced.
    run_ok(&tiny(&scratch.str("run"), &["--overwrite"]));
    assert_eq!(replaced(&run).len(), 1);
}

// 2. The old run stays until the new one has a checkpoint.

#[test]
fn overwrite_keeps_the_old_run_until_the_new_one_checkpoints() {
    let scratch = Scratch::new("ow-late");
    let run = scratch.path("run");
    run_ok(&tiny(&scratch.str("run"), &[]));
    let before = snapshot_run(&run);

    // An impossible new model is refused before anything is touched.
    let out = exec(&tiny(
        &scratch.str("run"),
        &[
            "--overwrite",
            "--set",
            "model.n_embd=1000000",
            "--set",
            "model.n_head=1",
        ],
    ));
    assert_clean_error(&out, "of memory");
    assert_eq!(snapshot_run(&run), before);
    assert!(replaced(&run).is_empty());

    // A new run that dies before its first checkpoint leaves the old one whole, aside.
    let out = exec(&tiny(
        &scratch.str("run"),
        &[
            "--overwrite",
            "--set",
            "train.lr=1e9",
            "--set",
            // Decay would be refused at this rate (lr × weight_decay ≥ 1); the steps diverge.
            "train.weight_decay=0",
            "--set",
            "train.grad_clip=0",
            "--set",
            "train.checkpoint_interval=1000",
            "--set",
            "train.max_steps=200",
        ],
    ));
    assert_error_after_output(&out, "diverged");
    let aside = replaced(&run);
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert_eq!(snapshot_run(&aside[0]), before);
}

// 3. One writer per run.

#[test]
fn a_second_writer_is_refused_with_the_pid_and_a_killed_writer_leaves_no_lock() {
    let scratch = Scratch::new("lock");
    let run = scratch.path("run");
    run_ok(&tiny(&scratch.str("other"), &[]));
    let (mut child, _) = spawn_long(
        &scratch.str("run"),
        &["--set", "train.checkpoint_interval=10"],
    );
    let pid = format!("pid {}", child.id());

    let resume = exec(&["train".into(), "--resume".into(), scratch.str("run")]);
    assert_clean_error(&resume, &pid);
    let overwrite = exec(&tiny(&scratch.str("run"), &["--overwrite"]));
    assert_clean_error(&overwrite, &pid);
    let import = tinygpt(&[
        "import",
        "--weights",
        &scratch.str("other/model.safetensors"),
        "--out",
        &scratch.str("run"),
        "--overwrite",
    ]);
    assert_clean_error(&import, &pid);

    child.kill().unwrap(); // SIGKILL: the kernel drops the lock with the process
    child.wait().unwrap();
    for line in std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
    {
        serde_json::from_str::<serde_json::Value>(line).expect("metrics.jsonl stays valid JSON");
    }
    let step = *checkpoint_steps(&run).last().expect("a checkpoint");
    run_ok(&[
        "train".into(),
        "--resume".into(),
        scratch.str("run"),
        "--stop-at-step".into(),
        (step + 2).to_string(),
    ]);
}

// 12. A run killed before its first checkpoint.

#[test]
fn a_run_killed_before_its_first_checkpoint_names_the_way_out() {
    let scratch = Scratch::new("early-kill");
    let (mut child, _) = spawn_long(
        &scratch.str("run"),
        &["--set", "train.checkpoint_interval=100000"],
    );
    child.kill().unwrap();
    child.wait().unwrap();
    let out = exec(&tiny(&scratch.str("run"), &[]));
    assert_clean_error(&out, "stopped before its first checkpoint");
    assert!(stderr(&out).contains("--overwrite"), "{}", stderr(&out));
    let out = exec(&["train".into(), "--resume".into(), scratch.str("run")]);
    assert_clean_error(&out, "--overwrite");
    run_ok(&tiny(&scratch.str("run"), &["--overwrite"]));
}
