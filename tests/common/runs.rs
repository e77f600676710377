//! Helpers for the tests of what tinygpt promises about runs (README, "What tinygpt
//! promises"): tiny training runs, snapshots, background runs to signal or kill.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use super::*;

/// `train` on the tiny config into `out`: 4 steps, a checkpoint every 2, plus `extra`.
pub fn tiny(out: &str, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "train",
        "--config",
        "configs/tiny-test.toml",
        "--out",
        out,
        "--set",
        "train.max_steps=4",
        "--set",
        "train.eval_interval=2",
        "--set",
        "train.checkpoint_interval=2",
        "--set",
        "train.sample_tokens=4",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

pub fn exec(args: &[String]) -> Output {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    tinygpt(&args)
}

pub fn run_ok(args: &[String]) -> Output {
    let out = exec(args);
    assert!(out.status.success(), "{args:?} failed:\n{}", stderr(&out));
    out
}

/// A run directory's files, without the lock file (whose content is the pid of whoever
/// last took the lock, not data).
pub fn snapshot_run(dir: &Path) -> std::collections::BTreeMap<PathBuf, Vec<u8>> {
    let mut files = snapshot(dir);
    files.remove(Path::new(".tinygpt.lock"));
    files
}

/// The siblings `<name>.replaced-*` that `--overwrite` moved aside.
pub fn replaced(run: &Path) -> Vec<PathBuf> {
    let name = run.file_name().unwrap().to_string_lossy().into_owned();
    let mut found: Vec<PathBuf> = std::fs::read_dir(run.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(&format!("{name}.replaced-"))
        })
        .collect();
    found.sort();
    found
}

/// A long tiny run (it would take minutes) started in the background; returns once it has
/// logged step 20, with a thread collecting the rest of its stderr.
pub fn spawn_long(
    out: &str,
    extra: &[&str],
) -> (std::process::Child, std::thread::JoinHandle<String>) {
    let mut args = tiny(
        out,
        &[
            "--set",
            "train.max_steps=100000",
            "--set",
            "train.log_interval=5",
        ],
    );
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut command = tinygpt_command(&args);
    spawn_until_step(&mut command, 20)
}

/// Starts a training `command` and returns once it has logged `step`, with a thread
/// collecting all of its stderr (returned when it ends).
pub fn spawn_until_step(
    command: &mut Command,
    step: usize,
) -> (std::process::Child, std::thread::JoinHandle<String>) {
    let mut child = command
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let marker = format!("step {step:>6}/");
    let mut seen = String::new();
    loop {
        let line = lines
            .next()
            .unwrap_or_else(|| panic!("ended before step {step}:\n{seen}"))
            .unwrap();
        seen += &line;
        seen += "\n";
        if line.contains(&marker) {
            break;
        }
    }
    let rest = std::thread::spawn(move || {
        lines
            .map_while(Result::ok)
            .fold(seen, |all, l| all + &l + "\n")
    });
    (child, rest)
}

pub fn signal(child: &std::process::Child, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

pub fn checkpoint_steps(run: &Path) -> Vec<usize> {
    let mut steps: Vec<usize> = std::fs::read_dir(run.join("checkpoints"))
        .map(|entries| {
            entries
                .filter_map(|e| {
                    e.unwrap()
                        .file_name()
                        .to_str()?
                        .strip_prefix("step-")?
                        .parse()
                        .ok()
                })
                .collect()
        })
        .unwrap_or_default();
    steps.sort();
    steps
}

pub fn sha256sum(dir: &Path, file: &str) {
    let out = Command::new("sha256sum")
        .arg(file)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(out.status.success());
    std::fs::write(dir.join("SHA256SUMS"), out.stdout).unwrap();
}
