//! Helpers shared by the end-to-end tests: run the real `tinygpt` binary from the workspace
//! root, in scratch directories that are removed afterwards.

#![allow(dead_code)]

pub mod browser;
pub mod chat;
pub mod mpi;
pub mod oracle;
pub mod runs;
pub mod server;
pub mod shapes;
pub mod tensors;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// The `tinygpt ARGS...` command, to be run from the workspace root.
pub fn tinygpt_command(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tinygpt"));
    command.args(args).current_dir(workspace_root());
    command
}

/// `tinygpt ARGS...` run from the workspace root, to completion.
pub fn tinygpt(args: &[&str]) -> Output {
    tinygpt_command(args)
        .output()
        .expect("the tinygpt binary runs")
}

/// Like [`tinygpt`], but panics with its stderr unless it succeeds.
pub fn tinygpt_ok(args: &[&str]) -> Output {
    let out = tinygpt(args);
    assert!(
        out.status.success(),
        "tinygpt {args:?} failed:\n{}",
        stderr(&out)
    );
    out
}

/// `tinygpt train --config configs/tiny-test.toml --out OUT EXTRA...`, which must succeed.
pub fn train_tiny(out: &str, extra: &[&str]) -> Output {
    let mut args = vec!["train", "--config", "configs/tiny-test.toml", "--out", out];
    args.extend_from_slice(extra);
    tinygpt_ok(&args)
}

/// `out`, after asserting that its command succeeded (its stderr otherwise).
pub fn ok(out: Output) -> Output {
    assert!(out.status.success(), "failed:\n{}", stderr(&out));
    out
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Asserts the command failed cleanly: non-zero exit, one `error:` line naming `needle`, and
/// no panic or backtrace.
pub fn assert_clean_error(out: &Output, needle: &str) {
    let err = stderr(out);
    assert!(
        !out.status.success(),
        "expected failure, got success; stderr:\n{err}"
    );
    assert_eq!(out.status.code(), Some(1), "stderr:\n{err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "expected one line, got:\n{err}");
    assert!(lines[0].starts_with("error: "), "{err}");
    assert!(lines[0].contains(needle), "expected {needle:?} in:\n{err}");
    assert!(
        !err.contains("panicked") && !err.contains("internal error"),
        "{err}"
    );
}

/// A fresh scratch directory, removed when dropped.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("tinygpt-e2e-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    pub fn str(&self, name: &str) -> String {
        self.path(name).to_string_lossy().into_owned()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Every line of a run's metrics.jsonl, parsed.
pub fn metrics(run: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// python3 with `module`, when present; in CI it must be (`.ci/run` installs it).
pub fn python_has(module: &str) -> bool {
    let ok = std::process::Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .status()
        .is_ok_and(|s| s.success());
    if !ok && std::env::var_os("CI").is_some() {
        panic!("CI must provide python3 with {module} (.ci/run installs it)");
    }
    ok
}

/// Starts `args`, waits for a stderr line containing `marker`, then returns the child.
pub fn spawn_until(args: &[String], env: &[(&str, &str)], marker: &str) -> std::process::Child {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut command = tinygpt_command(&args);
    command.stderr(Stdio::piped()).stdout(Stdio::null());
    for (k, v) in env {
        command.env(k, v);
    }
    let mut child = command.spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    loop {
        let line = lines
            .next()
            .expect("process ended before the marker")
            .unwrap();
        if line.contains(marker) {
            break;
        }
    }
    // Keep draining stderr so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    child
}

/// Every file under `dir` (recursively) with its bytes, keyed by its path relative to `dir`:
/// compare two snapshots to prove nothing was changed, added or removed.
pub fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let bytes = std::fs::read(&path).unwrap();
                out.insert(path.strip_prefix(root).unwrap().to_path_buf(), bytes);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// Asserts a command that ran for a while (progress lines on stderr) ended with exit code 1
/// and exactly one `error:` line naming `needle`, and no panic or backtrace.
pub fn assert_error_after_output(out: &Output, needle: &str) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(1), "stderr:\n{err}");
    let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{err}");
    assert!(errors[0].contains(needle), "expected {needle:?} in:\n{err}");
    assert!(
        !err.contains("panicked")
            && !err.contains("internal error")
            && !err.contains("stack backtrace"),
        "{err}"
    );
}

/// Whether `/proc/cpuinfo`'s flags name `flag` (`avx512_bf16`, `amx_bf16`...).
pub fn cpu_has(flag: &str) -> bool {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    cpuinfo
        .lines()
        .find(|l| l.starts_with("flags"))
        .is_some_and(|l| l.split_whitespace().any(|f| f == flag))
}

/// The widest vector ISA `/proc/cpuinfo`'s flags name, spelt as `bench` spells it.
pub fn isa_from_cpuinfo() -> &'static str {
    let has = cpu_has;
    match () {
        _ if has("avx512f") => "AVX-512F",
        _ if has("avx2") && has("fma") => "AVX2+FMA",
        _ if has("avx") => "AVX",
        _ => "SSE2",
    }
}

/// A python with every one of `modules` (TINYGPT_PYTHON, ~/.venvs/torch/bin/python, python3),
/// for the oracle tests; `None` (the test says why it skipped) where there is none, except in
/// CI, where `.ci/run` installs them and a missing one is a failure.
pub fn python_with(modules: &[&str]) -> Option<String> {
    let home_venv = std::env::var("HOME").map(|h| format!("{h}/.venvs/torch/bin/python"));
    let candidates = [std::env::var("TINYGPT_PYTHON").ok(), home_venv.ok()]
        .into_iter()
        .flatten()
        .chain(["python3".to_string()]);
    let import = format!("import {}", modules.join(", "));
    for python in candidates {
        let ok = std::process::Command::new(&python)
            .args(["-c", &import])
            .output()
            .is_ok_and(|o| o.status.success());
        if ok {
            return Some(python);
        }
    }
    let install = modules.join(" ");
    if std::env::var_os("CI").is_some() {
        panic!("CI must provide python3 with {install} (.ci/run installs them)");
    }
    eprintln!(
        "skipped: no python with {install} (pip install {install}; see .ci/run for versions)"
    );
    None
}

/// `--set`s of the modern recipe: nanochat's model switches, Muon and the WSD schedule.
pub const MODERN_RECIPE: &[&str] = &[
    "--set",
    "model.positions=rope",
    "--set",
    "model.norm=rms_norm",
    "--set",
    "model.norm_weight=false",
    "--set",
    "model.embedding_norm=true",
    "--set",
    "model.qk_norm=true",
    "--set",
    "model.activation=relu2",
    "--set",
    "model.logit_softcap=15.0",
    "--set",
    "model.init=modern",
    "--set",
    "model.tie_embeddings=false",
    "--set",
    "model.bias=false",
    "--set",
    "train.optimizer=muon",
    "--set",
    "train.schedule=wsd",
];

/// `command`'s output, or a panic (after killing it) when it runs past `limit`.
pub fn within(command: &mut Command, limit: Duration, what: &str) -> Output {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > limit {
            child.kill().unwrap();
            panic!("{what}: still running after {limit:?}, it hangs");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}
