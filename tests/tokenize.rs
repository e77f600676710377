//! Tokenizers end to end: `tinygpt tokenize` and its token cache, the BPE tokenizer.json as
//! Python's `tokenizers` reads it, training and sampling with BPE, and tokenizer errors.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use tinygpt_data::Tokenizer;

/// `tinygpt tokenize --json ARGS...`, parsed.
fn tokenize(args: &[&str]) -> serde_json::Value {
    let mut all = vec!["tokenize", "--json"];
    all.extend(args);
    serde_json::from_str(stdout(&tinygpt_ok(&all)).trim()).unwrap()
}

fn write_corpus(path: &Path, text: &str) -> String {
    std::fs::write(path, text).unwrap();
    format!("data.corpus={}", path.display())
}

const PANGRAMS: &str =
    "the quick brown fox jumps over the lazy dog\npack my box with five dozen liquor jugs\n";

#[test]
fn token_cache_is_reused_until_the_corpus_or_the_tokenizer_changes() {
    let scratch = Scratch::new("tokenize-cache");
    let corpus = scratch.path("corpus.txt");
    let set_corpus = write_corpus(&corpus, &PANGRAMS.repeat(200));
    let bpe = |vocab: &str| {
        tokenize(&[
            "--config",
            "configs/shakespeare-bpe.toml",
            "--set",
            &set_corpus,
            "--set",
            &format!("data.vocab_size={vocab}"),
        ])
    };

    let first = bpe("300");
    assert_eq!(first["reused"], false);
    assert!(first["encode_mb_per_s"].as_f64().unwrap() > 0.0);
    let cache = Path::new(first["cache"].as_str().unwrap()).to_path_buf();
    assert!(
        cache.starts_with(&scratch.0),
        "cache beside the corpus: {cache:?}"
    );
    // u16 ids after a 64-byte header.
    let (train, val) = (
        first["train_tokens"].as_u64().unwrap() as usize,
        first["val_tokens"].as_u64().unwrap() as usize,
    );
    let bytes = std::fs::read(&cache).unwrap();
    assert_eq!(&bytes[..8], b"TGTOKENS");
    assert_eq!(u32::from_le_bytes(bytes[12..16].try_into().unwrap()), 2);
    assert_eq!(bytes.len(), 64 + 2 * (train + val));
    // BPE compresses this text well below a byte per token.
    assert!(first["bytes_per_token"].as_f64().unwrap() > 2.0, "{first}");

    // Nothing changed (the BPE trains to the same tokenizer): the same file is reused.
    let second = bpe("300");
    assert_eq!(second["reused"], true, "{second}");
    assert_eq!(second["cache"], first["cache"]);
    assert_eq!(second["train_tokens"], first["train_tokens"]);

    // Another tokenizer, then another corpus: encoded again into new files.
    let other_tokenizer = bpe("280");
    assert_eq!(other_tokenizer["reused"], false);
    assert_ne!(other_tokenizer["cache"], first["cache"]);
    write_corpus(&corpus, &(PANGRAMS.repeat(200) + "one more line\n"));
    let other_corpus = bpe("300");
    assert_eq!(other_corpus["reused"], false);
    assert_ne!(other_corpus["cache"], first["cache"]);
    // The cache keeps itself out of git.
    assert!(cache.with_file_name(".gitignore").is_file());
}

#[test]
fn bpe_tokenizer_json_encodes_identically_in_python() {
    let scratch = Scratch::new("tokenize-python");
    let saved = scratch.str("tokenizer.json");
    let set_corpus = write_corpus(
        &scratch.path("corpus.txt"),
        &(PANGRAMS.repeat(100) + "Ünïcödé café — naïve ✓ 東京 🦀\n".repeat(20).as_str()),
    );
    tokenize(&[
        "--config",
        "configs/shakespeare-bpe.toml",
        "--set",
        &set_corpus,
        "--set",
        "data.vocab_size=400",
        "--save-tokenizer",
        &saved,
    ]);
    let tokenizer = Tokenizer::load(Path::new(&saved)).unwrap();
    let texts = [
        "the quick brown fox",
        "  leading spaces\nand\ttabs\n\n",
        "Ünïcödé café — 東京 🦀 ✓",
        "never seen: zxqv 42!",
    ];
    let ours: Vec<Vec<u32>> = texts.iter().map(|t| tokenizer.encode(t).unwrap()).collect();
    for (text, ids) in texts.iter().zip(&ours) {
        assert_eq!(&tokenizer.decode(ids).unwrap(), text);
    }

    if !python_has("tokenizers") {
        eprintln!("python3 with tokenizers not found: checked the Rust side only");
        return;
    }
    let script = "import json, sys\nfrom tokenizers import Tokenizer\n\
        t = Tokenizer.from_file(sys.argv[1])\n\
        texts = json.loads(sys.stdin.read())\n\
        print(json.dumps([t.encode(x).ids for x in texts]))";
    let mut child = Command::new("python3")
        .args(["-c", script, &saved])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(serde_json::to_string(&texts).unwrap().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let python: Vec<Vec<u32>> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(python, ours);
}

#[test]
fn bpe_run_trains_reports_bits_per_byte_and_samples() {
    let scratch = Scratch::new("tokenize-train");
    let run = scratch.path("run");
    train_tiny(
        &scratch.str("run"),
        &[
            "--set",
            "data.tokenizer=bpe",
            "--set",
            "data.vocab_size=300",
            "--set",
            "train.max_steps=20",
        ],
    );
    let tokenizer: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("tokenizer.json")).unwrap())
            .unwrap();
    assert_eq!(tokenizer["model"]["type"], "BPE");
    let last = metrics(&run)
        .into_iter()
        .rev()
        .find(|l| l["val_loss"].is_number())
        .unwrap();
    let (loss, bpb) = (
        last["val_loss"].as_f64().unwrap(),
        last["val_bpb"].as_f64().unwrap(),
    );
    // BPE tokens are longer than a byte, so bits per byte are well below loss / ln 2.
    assert!(
        bpb < loss / std::f64::consts::LN_2 / 1.2,
        "loss {loss} bpb {bpb}"
    );

    let out = tinygpt_ok(&[
        "sample",
        "--run",
        &scratch.str("run"),
        "--prompt",
        "KING",
        "--max-new-tokens",
        "10",
        "--temperature",
        "0",
    ]);
    assert!(stdout(&out).starts_with("KING"), "{}", stdout(&out));
}

#[test]
fn a_tokenizer_the_weights_were_not_trained_with_is_refused() {
    let scratch = Scratch::new("tokenize-mismatch");
    let run = scratch.path("run");
    train_tiny(&scratch.str("run"), &["--set", "train.max_steps=5"]);
    let refused = |needle: &str| {
        for args in [
            vec!["sample", "--run", run.to_str().unwrap()],
            vec!["eval", "--run", run.to_str().unwrap()],
            vec![
                "attention",
                "--run",
                run.to_str().unwrap(),
                "--prompt",
                "the",
                "--format",
                "text",
            ],
        ] {
            assert_clean_error(&tinygpt(&args), needle);
        }
    };
    let original = std::fs::read_to_string(run.join("tokenizer.json")).unwrap();
    let mut json: serde_json::Value = serde_json::from_str(&original).unwrap();

    // The same number of tokens in another order: caught against the final weights'
    // metadata, and against a checkpoint's tokenizer hash once the final weights are gone.
    json["vocab"].as_array_mut().unwrap().swap(10, 11);
    std::fs::write(run.join("tokenizer.json"), json.to_string()).unwrap();
    refused("differs from the tokenizer");
    std::fs::rename(
        run.join("model.safetensors"),
        scratch.path("model.safetensors"),
    )
    .unwrap();
    refused("differs from the tokenizer");

    // More tokens than the model has rows for.
    json["vocab"]
        .as_array_mut()
        .unwrap()
        .push("\u{1F980}".into());
    std::fs::write(run.join("tokenizer.json"), json.to_string()).unwrap();
    refused("tokens but the model's vocabulary has");

    // Restored, everything works again.
    std::fs::write(run.join("tokenizer.json"), original).unwrap();
    tinygpt_ok(&["eval", "--run", run.to_str().unwrap()]);
}

#[test]
fn tokenizer_errors_are_one_clear_line() {
    let scratch = Scratch::new("tokenize-errors");
    let out = tinygpt(&[
        "tokenize",
        "--config",
        "configs/shakespeare-bpe.toml",
        "--set",
        "data.vocab_size=100",
    ]);
    assert_clean_error(&out, "257");

    std::fs::write(scratch.path("broken.json"), "{\"model\": 3").unwrap();
    let out = tinygpt(&[
        "tokenize",
        "--config",
        "configs/shakespeare-char.toml",
        "--set",
        &format!("data.tokenizer={}", scratch.str("broken.json")),
    ]);
    assert_clean_error(&out, "broken.json");
}

#[test]
fn a_tokenizer_killed_halfway_leaves_no_cache_a_later_run_would_use() {
    let shakespeare =
        std::fs::read_to_string(workspace_root().join("data/shakespeare.txt")).unwrap();
    kill_halfway_then_encode_again("tokenize-kill", "big.txt", &shakespeare.repeat(2));
}

#[test]
fn a_tokenizer_killed_halfway_through_documents_leaves_no_cache_either() {
    // Shakespeare's paragraphs as JSONL documents: val ids go to a temporary of their own.
    let shakespeare =
        std::fs::read_to_string(workspace_root().join("data/shakespeare.txt")).unwrap();
    let lines: String = shakespeare
        .split("\n\n")
        .map(|p| serde_json::json!({ "text": p }).to_string() + "\n")
        .collect();
    kill_halfway_then_encode_again("tokenize-kill-docs", "big.jsonl", &lines.repeat(2));
}

/// Kills `tinygpt tokenize` of `text` (saved as `name`) once its temporary passes 1 MB, then
/// checks no cache was left, that the next run encodes (removing the dead writer's
/// temporaries) and the one after reuses.
fn kill_halfway_then_encode_again(scratch: &str, name: &str, text: &str) {
    let scratch = Scratch::new(scratch);
    // A saved BPE (no training to wait for) and a corpus that takes seconds to encode.
    let small = write_corpus(&scratch.path("small.txt"), &PANGRAMS.repeat(200));
    let tokenizer = scratch.str("bpe.json");
    tokenize(&[
        "--set",
        &small,
        "--set",
        "data.tokenizer=\"bpe\"",
        "--set",
        "data.vocab_size=300",
        "--save-tokenizer",
        &tokenizer,
    ]);
    let big = write_corpus(&scratch.path(name), text);
    let use_bpe = format!("data.tokenizer={tokenizer:?}");
    let args = ["tokenize", "--set", &big, "--set", &use_bpe];
    let mut child = tinygpt_command(&args).spawn().unwrap();
    let cache = scratch.path(".tinygpt-cache");
    let started = std::time::Instant::now();
    let temporary = loop {
        let partial = std::fs::read_dir(&cache).ok().and_then(|entries| {
            entries.flatten().map(|e| e.path()).find(|p| {
                p.to_string_lossy().ends_with(".tmp")
                    && p.metadata().is_ok_and(|m| m.len() > 1 << 20)
            })
        });
        if let Some(path) = partial {
            break path;
        }
        assert!(
            started.elapsed().as_secs() < 60,
            "no partial cache appeared"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "tokenize finished before it could be killed"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    };
    child.kill().unwrap();
    child.wait().unwrap();
    let finished = |dir: &Path| {
        std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|file| file.starts_with(&format!("{name}-")) && file.ends_with(".tokens"))
            .count()
    };
    assert_eq!(finished(&cache), 0, "a killed tokenizer left a cache");
    assert!(temporary.exists());
    let temporaries = |dir: &Path| {
        std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .count()
    };

    let again = tokenize(&["--set", &big, "--set", &use_bpe]);
    assert_eq!(again["reused"], false);
    assert!(
        !temporary.exists(),
        "the dead writer's temporary was not removed"
    );
    assert_eq!(temporaries(&cache), 0, "a temporary was left behind");
    assert_eq!(finished(&cache), 1);
    let third = tokenize(&["--set", &big, "--set", &use_bpe]);
    assert_eq!(third["reused"], true);
    assert_eq!(third["train_tokens"], again["train_tokens"]);
}
