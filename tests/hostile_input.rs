//! Hostile input ends in one `error:` line naming the problem and its fix, never a panic, a
//! hang or a silently wrong result: folders that link back to themselves, a corpus changed
//! under a finished run, damaged Hugging Face tensors, a model too large to bench, damaged or
//! odd corpora, and settings that cannot mean what they say.

mod common;

use std::path::Path;
use std::process::Output;
use std::sync::Arc;
use std::time::Duration;

use common::runs::*;
use common::*;

/// `tokenize` with the tiny config and `settings`, in under a minute.
fn tokenize(settings: &[&str]) -> Output {
    let mut args = vec!["tokenize", "--config", "configs/tiny-test.toml"];
    for setting in settings {
        args.extend(["--set", setting]);
    }
    within(
        &mut tinygpt_command(&args),
        Duration::from_secs(60),
        "tokenize",
    )
}

fn write(path: &Path, text: impl AsRef<[u8]>) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// The first `bytes` of the Shakespeare corpus.
fn shakespeare(bytes: usize) -> String {
    let text = std::fs::read_to_string(workspace_root().join("data/shakespeare.txt")).unwrap();
    let mut end = bytes;
    while !text.is_char_boundary(end) {
        end += 1;
    }
    text[..end].to_string()
}

#[test]
fn folders_that_link_back_to_themselves_are_walked_once_each() {
    let scratch = Scratch::new("hostile-loops");
    let dir = scratch.path("corpus");
    write(&dir.join("a.txt"), shakespeare(20_000));
    write(&dir.join("sub/b.txt"), shakespeare(30_000));
    for (link, to) in [
        ("again", "."),
        ("more", "."),
        ("sub/up", ".."),
        ("sub/up2", ".."),
    ] {
        std::os::unix::fs::symlink(to, dir.join(link)).unwrap();
    }
    for corpus in [
        scratch.str("corpus"),
        format!("{}/**/*.txt", scratch.str("corpus")),
    ] {
        let out = tokenize(&[&format!("data.corpus={corpus}")]);
        assert!(out.status.success(), "{corpus}: {}", stderr(&out));
        assert!(
            stdout(&out).contains("2 file(s)"),
            "{corpus}: {}",
            stdout(&out)
        );
    }
    // A train on it ends too.
    let set = format!("data.corpus={}", scratch.str("corpus"));
    let args = tiny(&scratch.str("run"), &["--set", &set]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = within(
        &mut tinygpt_command(&args),
        Duration::from_secs(120),
        "train",
    );
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn eval_refuses_a_corpus_changed_since_the_run_unless_told() {
    let scratch = Scratch::new("hostile-eval");
    let corpus = scratch.path("corpus.txt");
    write(&corpus, shakespeare(100_000));
    let set = format!("data.corpus={}", corpus.display());
    let run = scratch.str("run");
    run_ok(&tiny(&run, &["--set", &set]));
    tinygpt_ok(&["eval", "--run", &run]);
    // The same characters, in another order: a different val split for the same tokenizer.
    write(&corpus, shakespeare(100_000).repeat(2));
    let out = tinygpt(&["eval", "--run", &run]);
    assert_clean_error(&out, "changed since the run trained on it");
    let out = tinygpt_ok(&["eval", "--run", &run, "--corpus-changed"]);
    assert!(stderr(&out).contains("the val split of the corpus as it is now"));
    assert!(stdout(&out).contains("loss"), "{}", stdout(&out));
}

/// A tiny run exported as a Hugging Face folder, its weights rewritten by `damage`.
fn damaged_hf(scratch: &Scratch, name: &str, damage: impl Fn(&mut Vec<tensors::Tensor>)) -> String {
    let run = scratch.str("run");
    if !Path::new(&run).exists() {
        train_tiny(&run, &["--set", "train.max_steps=2"]);
    }
    let folder = scratch.str(name);
    tinygpt_ok(&["export", "--run", &run, "--format", "hf", "--out", &folder]);
    let weights = Path::new(&folder).join("model.safetensors");
    let mut all = tensors::read(&weights);
    damage(&mut all);
    tensors::write(&weights, &all);
    folder
}

/// Replaces (or adds) the tensor whose name ends with `suffix`.
fn set(all: &mut Vec<tensors::Tensor>, suffix: &str, shape: Vec<usize>) {
    let name = all
        .iter()
        .find(|t| t.0.ends_with(suffix))
        .map_or(suffix.to_string(), |t| t.0.clone());
    all.retain(|t| t.0 != name);
    let values = vec![0.5; shape.iter().product()];
    all.push((name, shape, values));
}

#[test]
fn damaged_hugging_face_tensors_are_refused_by_name_on_both_paths() {
    let scratch = Scratch::new("hostile-hf");
    let (v, c) = (84, 32);
    type Damage = Box<dyn Fn(&mut Vec<tensors::Tensor>)>;
    let cases: Vec<(&str, Damage, &str)> = vec![
        (
            "head-1d",
            Box::new(move |t| set(t, "lm_head.weight", vec![v * c])),
            "lm_head.weight",
        ),
        (
            "head-empty",
            Box::new(move |t| set(t, "lm_head.weight", vec![v, 0])),
            "lm_head.weight",
        ),
        (
            "wpe-scalar",
            Box::new(|t| set(t, "wpe.weight", vec![])),
            "wpe.weight",
        ),
        (
            "wpe-short",
            Box::new(move |t| set(t, "wpe.weight", vec![3, c])),
            "wpe.weight",
        ),
        (
            "wpe-long",
            Box::new(move |t| set(t, "wpe.weight", vec![21, c])),
            "wpe.weight",
        ),
        (
            "ln-2d",
            Box::new(move |t| set(t, "h.0.ln_1.weight", vec![c, 1])),
            "ln_1.weight",
        ),
    ];
    for (name, damage, tensor) in cases {
        let folder = damaged_hf(&scratch, name, damage);
        let out = tinygpt(&["import", "--hf", &folder, "--out", &scratch.str("imported")]);
        assert_clean_error(&out, tensor);
        assert!(!scratch.path("imported").exists(), "{name}");
        let mut args = vec![
            "train",
            "--config",
            "configs/finetune-gpt2.toml",
            "--init-from",
            &folder,
        ];
        let out_dir = scratch.str(&format!("tuned-{name}"));
        args.extend(["--out", &out_dir]);
        for setting in [
            "model.block_size=8",
            "train.max_steps=2",
            "train.batch_size=2",
        ] {
            args.extend(["--set", setting]);
        }
        let out = tinygpt(&args);
        assert_error_after_output(&out, tensor);
    }
}

#[test]
fn an_absurd_width_in_a_model_folder_is_refused_by_validation_not_wrapped() {
    let scratch = Scratch::new("hostile-width");
    let folder = damaged_hf(&scratch, "hf", |_| {});
    let path = Path::new(&folder).join("config.json");
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    config["n_embd"] = (1u64 << 62).into();
    config["n_inner"] = 7.into();
    std::fs::write(&path, config.to_string()).unwrap();
    let out = tinygpt(&["import", "--hf", &folder, "--out", &scratch.str("imported")]);
    assert_clean_error(&out, "n_embd");
    assert!(!stderr(&out).contains("n_inner"), "{}", stderr(&out));
}

#[test]
fn bench_checks_the_memory_estimate_before_building_a_model() {
    let out = tinygpt_command(&["bench", "--config", "configs/tiny-test.toml"])
        .env("TINYGPT_MEMORY_LIMIT", "1M")
        .output()
        .unwrap();
    assert_clean_error(&out, "this needs about");
}

/// A Parquet file with a `text` column of `rows`.
fn parquet(path: &Path, rows: &[&str]) {
    use parquet::data_type::{ByteArray, ByteArrayType};
    use parquet::file::properties::WriterProperties;
    use parquet::file::writer::SerializedFileWriter;
    let schema = parquet::schema::parser::parse_message_type(
        "message m { REQUIRED BYTE_ARRAY text (UTF8); }",
    )
    .unwrap();
    let file = std::fs::File::create(path).unwrap();
    let props = Arc::new(WriterProperties::builder().build());
    let mut writer = SerializedFileWriter::new(file, Arc::new(schema), props).unwrap();
    let mut group = writer.next_row_group().unwrap();
    let mut column = group.next_column().unwrap().unwrap();
    let values: Vec<ByteArray> = rows.iter().map(|r| ByteArray::from(*r)).collect();
    column
        .typed::<ByteArrayType>()
        .write_batch(&values, None, None)
        .unwrap();
    column.close().unwrap();
    group.close().unwrap();
    writer.close().unwrap();
}

#[test]
fn damaged_and_odd_input_is_named_for_what_it_is() {
    let scratch = Scratch::new("hostile-words");
    let story = shakespeare(2_000);
    // A Parquet file cut off, and one that is not Parquet at all.
    let whole = scratch.path("whole.parquet");
    parquet(&whole, &[&story, &story, &story]);
    let bytes = std::fs::read(&whole).unwrap();
    write(&scratch.path("cut.parquet"), &bytes[..bytes.len() / 2]);
    write(&scratch.path("text.parquet"), "just some text, not Parquet");
    for file in ["cut.parquet", "text.parquet"] {
        let out = tokenize(&[&format!("data.corpus={}", scratch.str(file))]);
        assert_clean_error(&out, "is not a readable Parquet file");
    }
    // A byte-order mark before the first JSON line is not part of it.
    let line = |s: &str| serde_json::json!({ "text": s }).to_string() + "\n";
    let jsonl = format!("\u{feff}{}{}{}", line(&story), line(&story), line(&story));
    write(&scratch.path("bom.jsonl"), jsonl);
    let out = tokenize(&[&format!("data.corpus={}", scratch.str("bom.jsonl"))]);
    assert!(out.status.success(), "{}", stderr(&out));
    // A missing validation corpus is blamed on data.val_corpus.
    let out = tokenize(&[
        &format!("data.corpus={}", scratch.str("bom.jsonl")),
        &format!("data.val_corpus={}", scratch.str("missing.jsonl")),
    ]);
    assert_clean_error(&out, "data.val_corpus");
    assert!(
        !stderr(&out).contains("set data.corpus"),
        "{}",
        stderr(&out)
    );
    // An empty vocabulary names the file and the fix.
    write(
        &scratch.path("empty.json"),
        r#"{"kind": "char", "vocab": []}"#,
    );
    let out = tokenize(&[&format!("data.tokenizer={}", scratch.str("empty.json"))]);
    assert_clean_error(&out, "empty.json");
    assert!(
        stderr(&out).contains("list its characters"),
        "{}",
        stderr(&out)
    );
    // A bad --set value is the --set's fault, not the config file's.
    let out = tinygpt(&[
        "train",
        "--config",
        "configs/tiny-test.toml",
        "--set",
        "train.max_steps=-3",
    ]);
    assert_clean_error(&out, "--set train.max_steps=-3: train.max_steps:");
    assert!(!stderr(&out).contains("bad config"), "{}", stderr(&out));
}

#[test]
fn blank_lines_and_empty_files_are_no_documents_to_validate_on() {
    let scratch = Scratch::new("hostile-blank");
    let story = shakespeare(2_000);
    let line = serde_json::json!({ "text": story }).to_string();
    let blank = "\n  \n\t\n".repeat(20);
    write(
        &scratch.path("docs.jsonl"),
        format!("{line}\n{blank}{line}\n{blank}{line}\n"),
    );
    write(&scratch.path("texts/a.txt"), &story);
    write(&scratch.path("texts/b.txt"), &story);
    for i in 0..30 {
        write(&scratch.path(&format!("texts/empty-{i:02}.txt")), "");
    }
    for corpus in ["docs.jsonl", "texts"] {
        for seed in 0..6 {
            let out = tokenize(&[
                &format!("data.corpus={}", scratch.str(corpus)),
                &format!("train.seed={seed}"),
            ]);
            assert!(
                out.status.success(),
                "{corpus}, seed {seed}: {}",
                stderr(&out)
            );
        }
    }
}

#[test]
fn settings_that_cannot_mean_what_they_say_are_refused() {
    let scratch = Scratch::new("hostile-settings");
    let story = shakespeare(20_000);
    write(&scratch.path("a.txt"), &story);
    write(&scratch.path("b.txt"), &story);
    let out = tokenize(&[
        &format!(
            "data.corpus=[\"{}\", \"{}\"]",
            scratch.str("a.txt"),
            scratch.str("b.txt")
        ),
        &format!("data.val_corpus={}", scratch.str("a.txt")),
    ]);
    assert_clean_error(&out, "which data.corpus also holds");
    for decay in ["inf", "1e308", "nan"] {
        let out = tinygpt(&[
            "train",
            "--config",
            "configs/tiny-test.toml",
            "--set",
            &format!("train.weight_decay={decay}"),
        ]);
        assert_clean_error(&out, "train.weight_decay");
    }
}
