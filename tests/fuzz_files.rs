//! Seeded random damage to the files tinygpt reads: a Hugging Face model folder's tensors
//! (shapes, dtypes, header lengths, cut-off files, extra tensors) fed to `import --hf` and
//! `train --init-from`, and random folder trees (text, JSONL, empty and binary files, links
//! to themselves, their parents, each other and nowhere) fed to `tokenize`. Every run ends,
//! within a time limit, with exit 0 or one `error:` line: never a panic, never a hang. The
//! draws are seeded, so a failure reproduces.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use common::*;

/// Exit 0, or exit 1 with exactly one `error:` line; never a panic.
fn assert_ends_cleanly(out: &Output, what: &str) {
    let err = stderr(out);
    assert!(
        !err.contains("panicked") && !err.contains("internal error"),
        "{what}:\n{err}"
    );
    match out.status.code() {
        Some(0) => {}
        Some(1) => {
            let errors = err.lines().filter(|l| l.starts_with("error: ")).count();
            assert_eq!(errors, 1, "{what}:\n{err}");
        }
        code => panic!("{what}: exit {code:?}\n{err}"),
    }
}

/// A tensor file's bytes damaged one random way.
fn damage(rng: &mut ChaCha8Rng, mut all: Vec<tensors::Tensor>, path: &Path) -> String {
    let pick = rng.random_range(0..all.len());
    match rng.random_range(0..6) {
        0 => {
            let dims = rng.random_range(0..4);
            let shape: Vec<usize> = (0..dims).map(|_| rng.random_range(0..40)).collect();
            let size = shape.iter().product();
            all[pick].1 = shape.clone();
            all[pick].2 = vec![0.25; size];
            tensors::write(path, &all);
            format!("{} reshaped to {shape:?}", all[pick].0)
        }
        1 => {
            let dtype = ["F16", "BF16", "I64", "F64", "U8", "Q4"][rng.random_range(0..6)];
            tensors::write_as(path, &all, dtype);
            format!("every dtype {dtype}")
        }
        2 => {
            tensors::write(path, &all);
            let bytes = std::fs::read(path).unwrap();
            let cut = rng.random_range(0..bytes.len());
            std::fs::write(path, &bytes[..cut]).unwrap();
            format!("cut at byte {cut} of {}", bytes.len())
        }
        3 => {
            tensors::write(path, &all);
            let mut bytes = std::fs::read(path).unwrap();
            let length: u64 = match rng.random_range(0..3) {
                0 => rng.random(),
                1 => rng.random_range(0..64),
                _ => bytes.len() as u64 + rng.random_range(0..1000),
            };
            bytes[..8].copy_from_slice(&length.to_le_bytes());
            std::fs::write(path, &bytes).unwrap();
            format!("header length {length}")
        }
        4 => {
            let name = format!("h.{}.attn.extra", rng.random_range(0..3));
            all.push((name.clone(), vec![2, 2], vec![1.0; 4]));
            tensors::write(path, &all);
            format!("extra tensor {name}")
        }
        _ => {
            let name = all.remove(pick).0;
            tensors::write(path, &all);
            format!("without {name}")
        }
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

#[test]
fn damaged_model_folders_end_in_a_model_or_one_error_line() {
    let scratch = Scratch::new("fuzz-hf");
    let run = scratch.str("run");
    train_tiny(&run, &["--set", "train.max_steps=2"]);
    let base = scratch.path("base");
    tinygpt_ok(&[
        "export",
        "--run",
        &run,
        "--format",
        "hf",
        "--out",
        &scratch.str("base"),
    ]);
    let original = tensors::read(&base.join("model.safetensors"));
    // Undamaged, the folder imports: the refusals below are the damage's.
    tinygpt_ok(&[
        "import",
        "--hf",
        &scratch.str("base"),
        "--out",
        &scratch.str("whole"),
    ]);
    let mut rng = ChaCha8Rng::seed_from_u64(38);
    for i in 0..40 {
        let folder = scratch.path(&format!("hf-{i}"));
        copy_dir(&base, &folder);
        let what = damage(
            &mut rng,
            original.clone(),
            &folder.join("model.safetensors"),
        );
        let folder = folder.to_string_lossy().into_owned();
        let out_dir = scratch.str(&format!("imported-{i}"));
        let mut import = tinygpt_command(&["import", "--hf", &folder, "--out", &out_dir]);
        let out = within(&mut import, Duration::from_secs(60), &what);
        assert_ends_cleanly(&out, &format!("import, {what}"));
        if i % 4 == 0 {
            let tuned = scratch.str(&format!("tuned-{i}"));
            let mut args = vec!["train", "--config", "configs/finetune-gpt2.toml"];
            args.extend(["--init-from", &folder, "--out", &tuned]);
            for setting in [
                "model.block_size=8",
                "train.max_steps=1",
                "train.batch_size=2",
                "train.grad_accum=1",
                "train.eval_batches=1",
                "train.sample_tokens=4",
            ] {
                args.extend(["--set", setting]);
            }
            let out = within(&mut tinygpt_command(&args), Duration::from_secs(120), &what);
            assert_ends_cleanly(&out, &format!("init-from, {what}"));
        }
    }
}

/// A random tree under `dir`: folders, text, JSONL, empty and binary files, and links.
fn random_tree(rng: &mut ChaCha8Rng, dir: &Path) -> Vec<PathBuf> {
    let story = "Now is the winter of our discontent made glorious summer.\n".repeat(40);
    let mut folders = vec![dir.to_path_buf()];
    for i in 0..rng.random_range(1..6) {
        let parent = folders[rng.random_range(0..folders.len())].clone();
        let folder = parent.join(format!("d{i}"));
        std::fs::create_dir_all(&folder).unwrap();
        folders.push(folder);
    }
    for i in 0..rng.random_range(2..12) {
        let folder = &folders[rng.random_range(0..folders.len())];
        let (name, bytes): (String, Vec<u8>) = match rng.random_range(0..10) {
            0..3 => (format!("t{i}.txt"), story.clone().into_bytes()),
            3 => (format!("e{i}.txt"), Vec::new()),
            4..6 => (
                format!("j{i}.jsonl"),
                (serde_json::json!({ "text": story }).to_string() + "\n\n").into_bytes(),
            ),
            6 => (
                format!("b{i}.txt"),
                (0..300).map(|_| rng.random()).collect(),
            ),
            _ => (format!("m{i}.md"), story.clone().into_bytes()),
        };
        std::fs::write(folder.join(name), bytes).unwrap();
    }
    for i in 0..rng.random_range(0..6) {
        let from = &folders[rng.random_range(0..folders.len())];
        let to = match rng.random_range(0..4) {
            0 => PathBuf::from("."),
            1 => PathBuf::from(".."),
            2 => folders[rng.random_range(0..folders.len())].clone(),
            _ => PathBuf::from("nowhere"),
        };
        let _ = std::os::unix::fs::symlink(to, from.join(format!("l{i}")));
    }
    folders
}

#[test]
fn random_folder_trees_with_links_end_in_tokens_or_one_error_line() {
    let scratch = Scratch::new("fuzz-trees");
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let mut ends = [0; 2]; // exit 0, exit 1
    for i in 0..30 {
        let dir = scratch.path(&format!("tree-{i}"));
        random_tree(&mut rng, &dir);
        let dir = dir.to_string_lossy().into_owned();
        for corpus in [
            dir.clone(),
            format!("{dir}/**/*.txt"),
            format!("{dir}/*/*.md"),
        ] {
            let mut args = vec!["tokenize", "--config", "configs/tiny-test.toml"];
            let set = format!("data.corpus={corpus}");
            args.extend(["--set", &set]);
            if rng.random_bool(0.3) {
                args.extend(["--set", "data.format=\"jsonl\""]);
            }
            if rng.random_bool(0.3) {
                args.push("--skip-bad-documents");
            }
            let what = format!("tokenize {args:?}");
            let out = within(&mut tinygpt_command(&args), Duration::from_secs(60), &what);
            assert_ends_cleanly(&out, &what);
            ends[usize::from(!out.status.success())] += 1;
        }
    }
    // Both ends are reached: trees that tokenize and trees refused in one line.
    assert!(ends[0] > 10 && ends[1] > 10, "{ends:?}");
}
