//! Models that travel, checked by the other side's own code (`tests/oracles/interop.py`):
//! `transformers` loads tinygpt's Hugging Face exports and computes its logits, tokens, text and
//! greedy generations; tinygpt imports what `save_pretrained` wrote, computes its logits and
//! writes it back byte for byte; ggml's `gguf` reader reads the GGUF export back and llama.cpp
//! tokenizes and scores text as tinygpt does. Runs where python has the packages (`.ci/run`
//! installs them: CI runs these); elsewhere each test says why it skipped.

mod common;

use std::path::Path;

use common::oracle::*;
use common::*;

/// A tiny run trained long enough to say something: char or BPE, tied or not, either GELU.
/// "char": tied, exact GELU, on the em-dash corpus; "bpe": untied, tanh GELU, no biases.
fn trained(scratch: &Scratch, name: &str) -> std::path::PathBuf {
    let corpus_path = scratch.str("em-dash.txt");
    std::fs::write(&corpus_path, em_dash_corpus()).unwrap();
    let corpus = format!("data.corpus={corpus_path:?}");
    let settings: &[&str] = match name {
        "char" => &["model.activation=\"gelu\"", &corpus],
        "bpe" => &[
            "data.tokenizer=\"bpe\"",
            "data.vocab_size=300",
            "model.tie_embeddings=false",
            "model.activation=\"gelu_tanh\"",
            "model.bias=false",
        ],
        _ => unreachable!("char or bpe"),
    };
    let out = scratch.str(name);
    let mut extra = vec!["--set", "train.max_steps=150"];
    for s in settings {
        extra.extend(["--set", s]);
    }
    train_tiny(&out, &extra);
    scratch.path(name)
}

#[test]
fn transformers_loads_the_hf_export_and_computes_what_tinygpt_does() {
    let Some(python) = python_with(&["torch", "transformers"]) else {
        return;
    };
    let scratch = Scratch::new("interop-hf-export");
    for name in ["char", "bpe"] {
        let run = trained(&scratch, name);
        let text = em_dash_corpus();
        transformers_agrees(&python, &scratch, &run, name, "GPT2LMHeadModel", &text, 16);
    }
}

#[test]
fn a_gpt2_saved_by_transformers_imports_computes_the_same_logits_and_exports_byte_identically() {
    let Some(python) = python_with(&["torch", "transformers", "tokenizers"]) else {
        return;
    };
    let scratch = Scratch::new("interop-hf-import");
    for (name, activation, tie) in [
        ("erf-tied", "gelu", true),
        ("tanh-untied", "gelu_new", false),
    ] {
        let folder = scratch.str(&format!("{name}-hf"));
        let spec = serde_json::json!({
            "corpus": workspace_root().join("data/shakespeare.txt"),
            "vocab_size": 320,
            "block_size": 24,
            "n_layer": 2,
            "n_head": 4,
            "n_embd": 32,
            "activation": activation,
            "layer_norm_eps": 1e-3,
            "tie": tie,
            "seed": 5,
        });
        let spec_path = scratch.path(&format!("{name}-spec.json"));
        std::fs::write(&spec_path, spec.to_string()).unwrap();
        oracle(&python, &["make-hf", &folder, spec_path.to_str().unwrap()]);

        let run = scratch.path(&format!("{name}-run"));
        tinygpt_ok(&["import", "--hf", &folder, "--out", run.to_str().unwrap()]);
        let config = std::fs::read_to_string(run.join("config.toml")).unwrap();
        let gelu = if tie {
            "activation = \"gelu\""
        } else {
            "activation = \"gelu_tanh\""
        };
        assert!(config.contains(gelu), "{config}");
        assert!(config.contains("layer_norm_eps = 0.001"), "{config}");
        assert!(
            config.contains(&format!("tie_embeddings = {tie}")),
            "{config}"
        );

        let expected: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(format!("{folder}/expected.json")).unwrap(),
        )
        .unwrap();
        let ids: Vec<Vec<u32>> = serde_json::from_value(expected["ids"].clone()).unwrap();
        let theirs: Vec<Vec<Vec<f32>>> =
            serde_json::from_value(expected["logits"].clone()).unwrap();
        let ours = logits(&run, &ids);
        let diff = max_diff(&ours, &theirs);
        eprintln!("{name}: max |Δlogit| {diff}");
        assert!(diff < 1e-4, "{name}: {diff}");
        // The tokenizer came along: the same ids for the same text.
        let text = corpus()[..300].to_string();
        let hf_tokenizer =
            tinygpt_data::Tokenizer::load(Path::new(&format!("{folder}/tokenizer.json"))).unwrap();
        assert_eq!(
            tokenizer(&run).encode(&text).unwrap(),
            hf_tokenizer.encode(&text).unwrap()
        );

        let back = scratch.str(&format!("{name}-back"));
        export(&run, "hf", &back);
        let original = std::fs::read(format!("{folder}/model.safetensors")).unwrap();
        let round_trip = std::fs::read(format!("{back}/model.safetensors")).unwrap();
        assert!(
            original == round_trip,
            "{name}: HF → tinygpt → HF changed model.safetensors"
        );
        // And the imported run is a run: it samples.
        tinygpt_ok(&[
            "sample",
            "--run",
            run.to_str().unwrap(),
            "--max-new-tokens",
            "8",
        ]);
    }
}

#[test]
fn llama_cpp_reads_the_gguf_export_tokenizes_like_tinygpt_and_agrees_on_logits() {
    let Some(python) = python_with(&["gguf", "llama_cpp", "safetensors", "numpy"]) else {
        return;
    };
    let scratch = Scratch::new("interop-gguf");
    let val = em_dash_val();
    assert!(val.contains('\u{2014}'));
    let val = val.as_str();
    for name in ["char", "bpe"] {
        let run = trained(&scratch, name);
        let report = llama_cpp_report(&python, &scratch, &run, name, val);
        // llama.cpp computes GELU as tanh's approximation through an fp16 table (about 1e-3
        // relative); the char model was even trained with the exact erf GELU.
        assert!(
            report["max_logit_diff"].as_f64().unwrap() < 2e-2,
            "{name}: {report}"
        );
    }
}
