//! The run directory's promises, on the library: lock, marker, overwrite.

use super::*;

#[test]
fn a_second_writer_is_refused_with_the_holders_pid_and_a_dropped_lock_frees_the_run() {
    let scratch = tempfile::tempdir().unwrap();
    let path = scratch.path().join("run");
    let (run, replaced) = RunDir::create(&path, RunKind::Trained, false).unwrap();
    assert!(replaced.is_none());
    assert_eq!(run.kind(), Some(RunKind::Trained));
    let err = RunDir::open_for_writing(&path).err().unwrap().to_string();
    assert!(
        err.contains(&format!("pid {}", std::process::id())),
        "{err}"
    );
    drop(run);
    RunDir::open_for_writing(&path).unwrap();
}

#[test]
fn overwrite_moves_the_old_run_aside_and_discard_keeps_foreign_files() {
    let scratch = tempfile::tempdir().unwrap();
    let path = scratch.path().join("run");
    let (run, _) = RunDir::create(&path, RunKind::Trained, false).unwrap();
    std::fs::write(run.config(), "x").unwrap();
    std::fs::create_dir_all(run.checkpoints().join("step-0000001")).unwrap();
    std::fs::write(run.checkpoints().join("step-0000001/state.json"), "{}").unwrap();
    std::fs::write(path.join("notes.md"), "mine").unwrap();
    drop(run);

    let (run, replaced) = RunDir::create(&path, RunKind::Trained, true).unwrap();
    let replaced = replaced.unwrap();
    assert!(replaced.aside.join("notes.md").is_file());
    assert!(!run.config().exists());
    let aside = replaced.aside.clone();
    let left = replaced.discard().unwrap();
    assert_eq!(left, vec![aside.join("notes.md")]);
    assert_eq!(
        std::fs::read_to_string(aside.join("notes.md")).unwrap(),
        "mine"
    );
    assert!(!aside.join("checkpoints").exists());
}

#[test]
fn overwrite_needs_the_marker() {
    let scratch = tempfile::tempdir().unwrap();
    let path = scratch.path().join("project");
    std::fs::create_dir_all(&path).unwrap();
    std::fs::write(path.join("config.toml"), "x").unwrap();
    std::fs::write(path.join("metrics.jsonl"), "").unwrap();
    let err = RunDir::check_new(&path, true).unwrap_err().to_string();
    assert!(err.contains("no tinygpt-run.json"), "{err}");
    std::fs::write(path.join(MARKER), "{\"format\": \"other\"}").unwrap();
    let err = RunDir::check_new(&path, true).unwrap_err().to_string();
    assert!(err.contains("not a tinygpt run marker"), "{err}");
}
