//! What tinygpt promises about a user's data, and about bad input (README, "What tinygpt
//! promises"), end to end through the real binary: each test names the promise it checks.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::*;

/// `train` on the tiny config into `out`: 4 steps, a checkpoint every 2, plus `extra`.
fn tiny(out: &str, extra: &[&str]) -> Vec<String> {
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

fn exec(args: &[String]) -> Output {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    tinygpt(&args)
}

fn run_ok(args: &[String]) -> Output {
    let out = exec(args);
    assert!(out.status.success(), "{args:?} failed:\n{}", stderr(&out));
    out
}

/// A run directory's files, without the lock file (whose content is the pid of whoever
/// last took the lock, not data).
fn snapshot_run(dir: &Path) -> std::collections::BTreeMap<PathBuf, Vec<u8>> {
    let mut files = snapshot(dir);
    files.remove(Path::new(".tinygpt.lock"));
    files
}

/// The siblings `<name>.replaced-*` that `--overwrite` moved aside.
fn replaced(run: &Path) -> Vec<PathBuf> {
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
fn spawn_long(out: &str, extra: &[&str]) -> (std::process::Child, std::thread::JoinHandle<String>) {
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
    let mut child = tinygpt_command(&args)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = String::new();
    loop {
        let line = lines
            .next()
            .unwrap_or_else(|| panic!("ended before step 20:\n{seen}"))
            .unwrap();
        seen += &line;
        seen += "\n";
        if line.contains("step     20/") {
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

fn signal(child: &std::process::Child, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

fn checkpoint_steps(run: &Path) -> Vec<usize> {
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

fn sha256sum(dir: &Path, file: &str) {
    let out = Command::new("sha256sum")
        .arg(file)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(out.status.success());
    std::fs::write(dir.join("SHA256SUMS"), out.stdout).unwrap();
}

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

// 4. Divergence.

#[test]
fn divergence_stops_at_once_and_leaves_only_finite_checkpoints() {
    let scratch = Scratch::new("diverge");
    let run = scratch.path("run");
    let out = exec(&tiny(
        &scratch.str("run"),
        &[
            "--set",
            "train.lr=1e9",
            "--set",
            "train.grad_clip=0",
            "--set",
            "train.warmup_steps=1",
            "--set",
            "train.checkpoint_interval=1",
            "--set",
            "train.keep_checkpoints=1",
            "--set",
            "train.max_steps=200",
        ],
    ));
    assert_error_after_output(&out, "training diverged at step");
    let err = stderr(&out);
    assert!(err.contains("--resume"), "names the way back: {err}");
    assert!(!run.join("model.safetensors").exists());
    let steps = checkpoint_steps(&run);
    assert!(!steps.is_empty(), "{err}");
    // Every checkpoint left loads: it holds finite weights (loading refuses any other).
    for step in steps {
        tinygpt_ok(&[
            "eval",
            "--run",
            &scratch.str("run"),
            "--checkpoint",
            &format!("step-{step}"),
        ]);
    }
}

#[test]
fn sample_and_eval_refuse_weights_that_are_not_finite() {
    let scratch = Scratch::new("nan");
    let run = scratch.path("run");
    run_ok(&tiny(&scratch.str("run"), &[]));
    let path = run.join("model.safetensors");
    let mut bytes = std::fs::read(&path).unwrap();
    let n = bytes.len();
    bytes[n - 4..].copy_from_slice(&f32::NAN.to_le_bytes());
    std::fs::write(&path, &bytes).unwrap();
    sha256sum(&run, "model.safetensors"); // the manifest agrees: only the values are wrong
    let out = tinygpt(&[
        "sample",
        "--run",
        &scratch.str("run"),
        "--max-new-tokens",
        "4",
    ]);
    assert_clean_error(&out, "NaN");
    let out = tinygpt(&["eval", "--run", &scratch.str("run")]);
    assert_clean_error(&out, "diverged run");
}

// 5. Impossible sizes: one line, with the estimate.

#[test]
fn impossible_sizes_are_refused_in_one_line() {
    let scratch = Scratch::new("sizes");
    for set in [
        ["model.n_embd=1000000", "model.n_head=1"],
        ["model.n_layer=100000", "train.seed=1"],
        ["train.batch_size=100000000", "train.seed=1"],
        ["model.vocab_size=4000000000", "train.seed=1"],
        ["model.block_size=4294967296", "train.seed=1"],
    ] {
        let out = exec(&tiny(
            &scratch.str("run"),
            &["--set", set[0], "--set", set[1]],
        ));
        assert_clean_error(&out, "of memory");
        assert!(stderr(&out).contains("--force"), "{}", stderr(&out));
        assert!(!scratch.path("run").exists(), "nothing is written");
    }
    let out = exec(&tiny(
        &scratch.str("run"),
        &["--set", "model.vocab_size=4e9"],
    ));
    assert_clean_error(&out, "model.vocab_size");

    let out = tinygpt(&["params", "--set", "model.n_embd=4611686018427387904"]);
    assert_clean_error(&out, "more than 2^64 parameters");
    let out = tinygpt(&["params", "--config", "configs/gpt3.toml"]);
    assert!(out.status.success(), "{}", stderr(&out));

    // An export whose metadata claims a billion layers.
    run_ok(&tiny(&scratch.str("small"), &[]));
    let export = scratch.path("huge.safetensors");
    let bytes = std::fs::read(scratch.path("small/model.safetensors")).unwrap();
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let mut header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + header_len]).unwrap();
    let mut meta: serde_json::Value =
        serde_json::from_str(header["__metadata__"]["tinygpt"].as_str().unwrap()).unwrap();
    meta["model"]["n_layer"] = serde_json::json!(1_000_000_000u64);
    header["__metadata__"]["tinygpt"] = serde_json::Value::String(meta.to_string());
    let mut new_header = serde_json::to_vec(&header).unwrap();
    while !new_header.len().is_multiple_of(8) {
        new_header.push(b' ');
    }
    let mut out_bytes = (new_header.len() as u64).to_le_bytes().to_vec();
    out_bytes.extend(&new_header);
    out_bytes.extend(&bytes[8 + header_len..]);
    std::fs::write(&export, out_bytes).unwrap();
    let out = tinygpt(&[
        "import",
        "--weights",
        &export.to_string_lossy(),
        "--out",
        &scratch.str("imported"),
    ]);
    assert_clean_error(&out, "of memory");
    assert!(!scratch.path("imported").exists());
}

// 6. A damaged token cache.

#[test]
fn a_token_cache_with_ids_outside_the_vocabulary_is_rebuilt() {
    let scratch = Scratch::new("cache");
    let corpus = scratch.path("corpus.txt");
    std::fs::copy(workspace_root().join("data/shakespeare.txt"), &corpus).unwrap();
    let set_corpus = format!("data.corpus={}", corpus.display());
    run_ok(&tiny(&scratch.str("run"), &["--set", &set_corpus]));
    let eval = || {
        let out = tinygpt_ok(&["eval", "--run", &scratch.str("run"), "--json"]);
        stdout(&out)
    };
    let before = eval();
    let cache = std::fs::read_dir(scratch.path(".tinygpt-cache"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "tokens"))
        .unwrap();
    let damage = || {
        let mut bytes = std::fs::read(&cache).unwrap();
        // u16 ids after a 64-byte header: one in the val split becomes 60000.
        let at = bytes.len() - 200;
        bytes[at..at + 2].copy_from_slice(&60000u16.to_le_bytes());
        std::fs::write(&cache, &bytes).unwrap();
    };
    damage();
    assert_eq!(eval(), before, "the damaged cache was used");
    damage();
    let out = run_ok(&tiny(
        &scratch.str("again"),
        &["--set", &set_corpus, "--set", "train.max_steps=2"],
    ));
    assert!(stderr(&out).contains("tokens: encoded"), "{}", stderr(&out));
}

// 7. Every file a later command trusts is verified.

#[test]
fn an_edited_state_or_a_flipped_bit_is_refused_and_nothing_is_changed() {
    let scratch = Scratch::new("verify");
    let stopped = scratch.path("stopped");
    run_ok(&tiny(&scratch.str("stopped"), &["--stop-at-step", "2"]));
    let state = stopped.join("checkpoints/step-0000002/state.json");
    let text = std::fs::read_to_string(&state).unwrap();
    assert!(text.contains("\"step\": 2"), "{text}");
    std::fs::write(&state, text.replace("\"step\": 2", "\"step\": 3")).unwrap();
    let before = snapshot_run(&stopped);
    let out = exec(&["train".into(), "--resume".into(), scratch.str("stopped")]);
    assert_clean_error(&out, "corrupted or was edited");
    assert_eq!(snapshot_run(&stopped), before);

    let finished = scratch.path("finished");
    run_ok(&tiny(&scratch.str("finished"), &[]));
    let model = finished.join("model.safetensors");
    let mut bytes = std::fs::read(&model).unwrap();
    let middle = bytes.len() / 2 + 3;
    bytes[middle] ^= 0x10;
    std::fs::write(&model, &bytes).unwrap();
    let before = snapshot_run(&finished);
    let out = tinygpt(&["sample", "--run", &scratch.str("finished")]);
    assert_clean_error(&out, "corrupted or was edited");
    let out = tinygpt(&["eval", "--run", &scratch.str("finished")]);
    assert_clean_error(&out, "--checkpoint latest");
    // The checkpoints are separate files with their own manifest: they still work.
    tinygpt_ok(&[
        "eval",
        "--run",
        &scratch.str("finished"),
        "--checkpoint",
        "latest",
    ]);
    assert_eq!(snapshot_run(&finished), before);
}

// 8. Signals: a checkpoint, the right step, and 128 + the signal's number.

#[test]
fn sigterm_saves_the_step_it_names_and_exits_143() {
    let scratch = Scratch::new("sigterm");
    let run = scratch.path("run");
    let (mut child, rest) = spawn_long(
        &scratch.str("run"),
        &["--set", "train.checkpoint_interval=100000"],
    );
    signal(&child, "TERM");
    let status = child.wait().unwrap();
    let err = rest.join().unwrap();
    assert_eq!(status.code(), Some(143), "{err}");
    let steps = checkpoint_steps(&run);
    assert_eq!(steps.len(), 1, "{steps:?}");
    let step = steps[0];
    assert!(step >= 20, "{step}");
    assert!(
        err.contains(&format!("interrupted at step {step}: checkpoint saved in"))
            && err.contains(&format!("step-{step:07}")),
        "{err}"
    );
}

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
