//! Helpers for the data-parallel tests (`tests/mpi.rs`): jobs under `mpirun`, long runs to
//! signal, ranks by pid, checkpoints compared byte for byte.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::runs::spawn_until_step;
use super::*;

/// mpirun, when installed; in CI it must be.
pub fn mpirun_available() -> bool {
    let ok = Command::new("mpirun")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must provide mpirun (.ci/run installs openmpi-bin)"
        );
        eprintln!("skipped: mpirun not found (Debian: apt-get install openmpi-bin libopenmpi-dev)");
    }
    ok
}

/// `mpirun -np RANKS tinygpt ARGS...` from the workspace root.
pub fn mpirun(ranks: usize, args: &[&str]) -> Command {
    let mut command = Command::new("mpirun");
    command
        // More ranks than this machine's cores are fine for a test.
        .args(["-np", &ranks.to_string(), "--oversubscribe"])
        .arg(env!("CARGO_BIN_EXE_tinygpt"))
        .args(args)
        .current_dir(workspace_root())
        // CI runs as root, which Open MPI refuses unless told.
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .env("RAYON_NUM_THREADS", "1");
    command
}

/// Runs `command` to the end, failing the test if it takes over a minute (a hang).
pub fn finish(mut command: Command) -> Output {
    let child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let pid = child.id();
    let waiter = std::thread::spawn(move || child.wait_with_output().unwrap());
    while !waiter.is_finished() {
        if Instant::now() > deadline {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            panic!("{command:?} still running after 60 s: the ranks hang");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    waiter.join().unwrap()
}

/// The tiny config with dropout on (its masks must follow the micro-batch, not the rank),
/// 20 steps, an evaluation and a checkpoint every 10.
pub fn tiny_args<'a>(out: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "train",
        "--config",
        "configs/tiny-test.toml",
        "--out",
        out,
        "--set",
        "model.dropout=0.1",
        "--set",
        "train.max_steps=20",
        "--set",
        "train.eval_interval=10",
        "--set",
        "train.checkpoint_interval=10",
        "--set",
        "train.sample_tokens=4",
    ];
    args.extend_from_slice(extra);
    args
}

/// One process, one thread.
pub fn alone(args: &[&str]) -> Output {
    let mut command = tinygpt_command(args);
    command.env("RAYON_NUM_THREADS", "1");
    finish(command)
}

pub fn checkpoint(run: &Path, step: usize) -> PathBuf {
    run.join("checkpoints").join(format!("step-{step:07}"))
}

/// A checkpoint's weights and optimizer moments, bytes and all.
pub fn tensors(run: &Path, step: usize) -> (Vec<u8>, Vec<u8>) {
    let dir = checkpoint(run, step);
    (
        std::fs::read(dir.join("model.safetensors")).unwrap(),
        std::fs::read(dir.join("optimizer.safetensors")).unwrap(),
    )
}

pub fn assert_same_training(a: &Path, b: &Path, step: usize) {
    assert!(
        tensors(a, step) == tensors(b, step),
        "weights or moments at step {step} differ between {} and {}",
        a.display(),
        b.display()
    );
}

pub fn state(run: &Path, step: usize) -> serde_json::Value {
    serde_json::from_str(
        &std::fs::read_to_string(checkpoint(run, step).join("state.json")).unwrap(),
    )
    .unwrap()
}

/// The tiny config as a long run (it would take minutes), a checkpoint every 25 steps.
pub fn long_args<'a>(out: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "--set",
        "train.max_steps=100000",
        "--set",
        "train.checkpoint_interval=25",
        "--set",
        "train.eval_interval=1000",
    ];
    args.extend_from_slice(extra);
    tiny_args(out, &args)
}

/// Starts a long 2-rank run and returns once rank 0 has logged `step`.
pub fn spawn_ranks(out: &str, step: usize) -> (Child, std::thread::JoinHandle<String>) {
    spawn_until_step(&mut mpirun(2, &long_args(out, &[])), step)
}

/// The pid of rank `rank` among mpirun's children (Open MPI names it in their environment).
pub fn rank_pid(mpirun: &Child, rank: usize) -> u32 {
    let children = Command::new("pgrep")
        .args(["-P", &mpirun.id().to_string()])
        .output()
        .unwrap();
    let wanted = format!("OMPI_COMM_WORLD_RANK={rank}");
    stdout(&children)
        .split_whitespace()
        .map(|pid| pid.parse::<u32>().unwrap())
        .find(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|env| env.split(|&b| b == 0).any(|v| v == wanted.as_bytes()))
        })
        .unwrap_or_else(|| panic!("no rank {rank} among mpirun's children"))
}

/// Waits for `child` to exit, at most `limit`.
pub fn exits_within(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("the job still runs {limit:?} after: the ranks hang");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Sends `signal` to `pid` (mpirun or one of its ranks) and waits, at most 20 s, for the job
/// to end: its exit status, the time it took and everything rank 0 wrote on stderr.
pub fn signal_job(
    job: &mut Child,
    rest: std::thread::JoinHandle<String>,
    pid: u32,
    signal: &str,
) -> (std::process::ExitStatus, Duration, String) {
    let sent = Instant::now();
    kill(pid, signal);
    let status = exits_within(job, Duration::from_secs(20));
    let took = sent.elapsed();
    (status, took, rest.join().unwrap())
}

pub fn kill(pid: u32, signal: &str) {
    assert!(
        Command::new("kill")
            .args([&format!("-{signal}"), &pid.to_string()])
            .status()
            .unwrap()
            .success()
    );
}

pub fn steps_saved(run: &Path) -> Vec<usize> {
    let mut steps: Vec<usize> = std::fs::read_dir(run.join("checkpoints"))
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            name.strip_prefix("step-")?.parse().ok()
        })
        .collect();
    steps.sort();
    steps
}

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}
