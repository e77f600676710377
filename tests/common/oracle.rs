//! The other side's code as the oracle (`tests/oracles/interop.py`), and what tinygpt says of
//! the same inputs: logits, tokens, the corpus slices the interop tests use.

use std::path::Path;
use std::process::Command;

use super::*;
use tinygpt_train::run::weights::open_trained_run;

/// `interop.py ARGS` run by `python`, its last stdout line as JSON.
pub fn oracle(python: &str, args: &[&str]) -> serde_json::Value {
    let out = Command::new(python)
        .arg(workspace_root().join("tests/oracles/interop.py"))
        .args(args)
        .env("TOKENIZERS_PARALLELISM", "false")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "interop.py {args:?}:\n{}",
        stderr(&out)
    );
    let last = stdout(&out).lines().last().unwrap_or_default().to_string();
    serde_json::from_str(&last).unwrap_or_else(|e| panic!("{e}: {}", stdout(&out)))
}

/// tinygpt's logits `[sequence][position][token]` for `sequences`, from the run's weights.
pub fn logits(run: &Path, sequences: &[Vec<u32>]) -> Vec<Vec<Vec<f32>>> {
    use burn::tensor::{Int, Tensor, TensorData};
    let opened = open_trained_run(run, Some("flex"), None).unwrap();
    sequences
        .iter()
        .map(|ids| {
            let data = TensorData::new(ids.iter().map(|&i| i as i64).collect(), [1, ids.len()]);
            let tokens = Tensor::<2, Int>::from_data(data, &opened.device);
            let logits = opened.model.forward(tokens);
            let [_, t, v] = logits.dims();
            let values = logits.into_data().try_to_vec::<f32>().unwrap();
            (0..t)
                .map(|p| values[p * v..(p + 1) * v].to_vec())
                .collect()
        })
        .collect()
}

pub fn tokenizer(run: &Path) -> tinygpt_data::Tokenizer {
    tinygpt_data::Tokenizer::load(&run.join("tokenizer.json")).unwrap()
}

pub fn corpus() -> String {
    std::fs::read_to_string(workspace_root().join("data/shakespeare.txt")).unwrap()
}

/// The corpus with its "--" as em dashes: a character vocabulary with a three-byte character,
/// which llama.cpp can only build from bytes through merges.
pub fn em_dash_corpus() -> String {
    corpus().replace("--", "\u{2014}")
}

/// 2,000 characters of the em-dash corpus' val split (its last tenth), em dashes among them.
pub fn em_dash_val() -> String {
    let text: Vec<char> = em_dash_corpus().chars().collect();
    text[text.len() - 3000..text.len() - 1000].iter().collect()
}

/// `tinygpt export --run RUN --format FORMAT --out OUT`, which must succeed.
pub fn export(run: &Path, format: &str, out: &str) {
    let run = run.to_str().unwrap();
    tinygpt_ok(&["export", "--run", run, "--format", format, "--out", out]);
}

/// The largest |a − b| over two equally long lists of logits.
pub fn max_diff(ours: &[Vec<Vec<f32>>], theirs: &[Vec<Vec<f32>>]) -> f32 {
    assert_eq!(
        ours.iter().flatten().count(),
        theirs.iter().flatten().count()
    );
    ours.iter()
        .flatten()
        .flatten()
        .zip(theirs.iter().flatten().flatten())
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max)
}

/// Exports `run` with `--format hf` and checks, in transformers, that it loads as `class` with
/// no missing or unexpected weights, computes tinygpt's logits (within 1e-4) on three slices
/// of `text` (the corpus it trained on), tokenizes and decodes them as tinygpt does, and greedily continues "ROMEO:"
/// as `tinygpt sample --temperature 0` does.
pub fn transformers_agrees(
    python: &str,
    scratch: &Scratch,
    run: &Path,
    name: &str,
    class: &str,
    text: &str,
    block_size: usize,
) {
    let folder = scratch.str(&format!("{name}-hf"));
    export(run, "hf", &folder);
    let tokenizer = tokenizer(run);
    // Three slices of the corpus, each as many characters as fit the context.
    let texts: Vec<String> = [1000, 250_000, 1_000_000]
        .iter()
        .map(|&at| {
            let slice: String = text.chars().skip(at).take(4 * block_size).collect();
            let ids = tokenizer.encode(&slice).unwrap();
            tokenizer.decode(&ids[..block_size]).unwrap()
        })
        .collect();
    let ids: Vec<Vec<u32>> = texts.iter().map(|t| tokenizer.encode(t).unwrap()).collect();
    assert!(ids.iter().all(|i| i.len() == block_size));
    let prompt = "ROMEO:";
    let max_new = block_size - tokenizer.encode(prompt).unwrap().len();
    let sampled = tinygpt_ok(&[
        "sample",
        "--run",
        run.to_str().unwrap(),
        "--prompt",
        prompt,
        "--temperature",
        "0",
        "--max-new-tokens",
        &max_new.to_string(),
    ]);
    let case = serde_json::json!({
        "texts": texts,
        "ids": ids,
        "logits": logits(run, &ids),
        "prompt": prompt,
        "max_new_tokens": max_new,
    });
    let case_path = scratch.path(&format!("{name}-case.json"));
    std::fs::write(&case_path, case.to_string()).unwrap();
    let report = oracle(python, &["check-hf", &folder, case_path.to_str().unwrap()]);
    eprintln!("{name}: max |Δlogit| {}", report["max_logit_diff"]);
    assert_eq!(report["class"], class, "{report}");
    for list in ["missing", "unexpected", "mismatched"] {
        assert_eq!(
            report[list],
            serde_json::json!([]),
            "{name} {list}: {report}"
        );
    }
    assert!(
        report["max_logit_diff"].as_f64().unwrap() < 1e-4,
        "{name}: {report}"
    );
    assert_eq!(report["ids"], serde_json::json!(ids), "{name}");
    assert_eq!(report["decoded"], serde_json::json!(texts), "{name}");
    let ours = stdout(&sampled);
    let ours = ours.strip_suffix('\n').unwrap_or(&ours);
    assert_eq!(
        report["greedy"], ours,
        "{name}: generate() vs tinygpt sample"
    );
}

/// Exports `run` with `--format hf` and `--format gguf` and has ggml's `gguf` reader and
/// llama.cpp check the GGUF file: every key and tensor as the HF export of the same weights
/// says, `val` tokenized to tinygpt's ids, and 12 windows of 16 tokens scored. Returns the
/// report (`max_logit_diff`, `argmax_agreement`, `loss` and tinygpt's `our_loss`) for the
/// caller's tolerances.
pub fn llama_cpp_report(
    python: &str,
    scratch: &Scratch,
    run: &Path,
    name: &str,
    val: &str,
) -> serde_json::Value {
    let (folder, file) = (
        scratch.str(&format!("{name}-hf")),
        scratch.str(&format!("{name}.gguf")),
    );
    export(run, "hf", &folder);
    export(run, "gguf", &file);
    let ids = tokenizer(run).encode(val).unwrap();
    let windows: Vec<Vec<u32>> = ids.chunks_exact(16).take(12).map(<[u32]>::to_vec).collect();
    let case = serde_json::json!({
        "text": val,
        "windows": windows,
        "logits": logits(run, &windows),
    });
    let case_path = scratch.path(&format!("{name}-case.json"));
    std::fs::write(&case_path, case.to_string()).unwrap();
    let report = oracle(
        python,
        &["check-gguf", &file, &folder, case_path.to_str().unwrap()],
    );
    eprintln!(
        "{name}: loss {} (tinygpt {}), max |Δlogit| {} over {} positions, argmax agreement {}",
        report["loss"],
        report["our_loss"],
        report["max_logit_diff"],
        report["positions"],
        report["argmax_agreement"]
    );
    for list in ["wrong_keys", "wrong_tensors"] {
        assert_eq!(report[list], serde_json::json!([]), "{name}: {report}");
    }
    assert_eq!(
        report["ids"],
        serde_json::json!(ids),
        "{name}: llama.cpp's tokens"
    );
    assert!(
        report["argmax_agreement"].as_f64().unwrap() >= 0.99,
        "{name}: {report}"
    );
    report
}
