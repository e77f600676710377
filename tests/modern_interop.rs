//! Modern shapes that travel, checked by the other side's own code
//! (`tests/oracles/interop.py`): Llama-, Qwen3- and NanoChat-shaped tinygpt runs load in
//! transformers as `LlamaForCausalLM`, `Qwen3ForCausalLM` and `NanoChatForCausalLM` and compute
//! what tinygpt does; models transformers made of those classes import, compute transformers'
//! logits, fine-tune and go back; the `llama` and `qwen3` GGUF exports read back in ggml's
//! reader and score text in llama.cpp as tinygpt does (what no class holds is refused:
//! `tests/refused_shapes.rs`). Runs where python has the packages (`.ci/run` installs them);
//! elsewhere each test says why it skipped.

mod common;

use std::path::Path;

use common::oracle::*;
use common::shapes::{class, shape};
use common::*;

/// A tiny run of `arch` on the em-dash corpus (char) or a BPE vocabulary, trained long enough
/// to say something, with `extra` switches.
fn trained(scratch: &Scratch, arch: &str, vocabulary: &str, extra: &[&str]) -> std::path::PathBuf {
    let corpus_path = scratch.str("em-dash.txt");
    if !Path::new(&corpus_path).exists() {
        std::fs::write(&corpus_path, em_dash_corpus()).unwrap();
    }
    let corpus = format!("data.corpus={corpus_path:?}");
    let name = format!("{arch}-{vocabulary}");
    let out = scratch.str(&name);
    let mut args = vec!["--set", "train.max_steps=120"];
    let mut switches = shape(arch);
    switches.extend_from_slice(extra);
    match vocabulary {
        "char" => switches.push(&corpus),
        _ => switches.extend(["data.tokenizer=\"bpe\"", "data.vocab_size=300"]),
    }
    for s in &switches {
        args.extend(["--set", s]);
    }
    train_tiny(&out, &args);
    scratch.path(&name)
}

#[test]
fn each_modern_shape_exports_to_its_transformers_class_and_computes_what_tinygpt_does() {
    let Some(python) = python_with(&["torch", "transformers"]) else {
        return;
    };
    let scratch = Scratch::new("modern-interop-export");
    for arch in ["llama", "qwen3", "nanochat"] {
        for vocabulary in ["char", "bpe"] {
            let run = trained(&scratch, arch, vocabulary, &[]);
            let text = match vocabulary {
                "char" => em_dash_corpus(),
                _ => corpus(),
            };
            let name = format!("{arch}-{vocabulary}");
            transformers_agrees(&python, &scratch, &run, &name, class(arch), &text, 16);
            let config: serde_json::Value = serde_json::from_str(
                &std::fs::read_to_string(scratch.path(&format!("{name}-hf/config.json"))).unwrap(),
            )
            .unwrap();
            assert_eq!(config["num_key_value_heads"], 2, "{name}: {config}");
            assert_eq!(config["rope_parameters"]["rope_theta"], 500.0, "{name}");
            let width = if arch == "nanochat" { 128 } else { 88 };
            assert_eq!(config["intermediate_size"], width, "{name}");
        }
    }
}

/// The spec of a random model transformers makes (`interop.py make-llama`).
fn spec(arch: &str, dtype: &str, max_shard_size: &str, bias: bool, tie: bool) -> serde_json::Value {
    serde_json::json!({
        "arch": arch,
        "corpus": workspace_root().join("data/shakespeare.txt"),
        "vocab_size": 320,
        "block_size": 24,
        "n_layer": 2,
        "n_head": 4,
        "n_kv_head": 2,
        "n_embd": 32,
        "intermediate": 72,
        "rope_theta": 300.0,
        "eps": 1e-5,
        "softcap": 12.0,
        "bias": bias,
        "tie": tie,
        "dtype": dtype,
        "max_shard_size": max_shard_size,
        "seed": 11,
    })
}

#[test]
fn llama_qwen3_and_nanochat_models_made_by_transformers_import_fine_tune_and_go_back() {
    let Some(python) = python_with(&["torch", "transformers", "tokenizers"]) else {
        return;
    };
    let scratch = Scratch::new("modern-interop-import");
    let cases = [
        // One f32 file, with biases; bf16 in shards; f16, tied.
        ("llama", "float32", "10GB", true, false),
        ("qwen3", "bfloat16", "20KB", false, false),
        ("nanochat", "float16", "10GB", false, true),
    ];
    for (arch, dtype, shards, bias, tie) in cases {
        let folder = scratch.str(&format!("{arch}-made"));
        let spec_path = scratch.path(&format!("{arch}-spec.json"));
        std::fs::write(&spec_path, spec(arch, dtype, shards, bias, tie).to_string()).unwrap();
        let made = oracle(
            &python,
            &["make-llama", &folder, spec_path.to_str().unwrap()],
        );
        assert_eq!(made["class"], class(arch));
        if shards != "10GB" {
            assert!(
                Path::new(&folder)
                    .join("model.safetensors.index.json")
                    .exists()
            );
        }

        let run = scratch.path(&format!("{arch}-run"));
        tinygpt_ok(&["import", "--hf", &folder, "--out", run.to_str().unwrap()]);
        let config = std::fs::read_to_string(run.join("config.toml")).unwrap();
        for key in [
            "positions = \"rope\"",
            "rope_base = 300.0",
            "norm = \"rms_norm\"",
            "n_kv_head = 2",
            "mlp_width = 72",
            &format!("bias = {bias}"),
            &format!("tie_embeddings = {tie}"),
        ] {
            assert!(config.contains(key), "{arch}: {key} not in\n{config}");
        }
        let expected: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(format!("{folder}/expected.json")).unwrap(),
        )
        .unwrap();
        let ids: Vec<Vec<u32>> = serde_json::from_value(expected["ids"].clone()).unwrap();
        let theirs: Vec<Vec<Vec<f32>>> =
            serde_json::from_value(expected["logits"].clone()).unwrap();
        let diff = max_diff(&logits(&run, &ids), &theirs);
        eprintln!("{arch} ({dtype}): max |Δlogit| {diff}");
        assert!(diff < 1e-4, "{arch}: {diff}");

        if dtype == "float32" && shards == "10GB" {
            // HF → tinygpt → HF gives back save_pretrained's very bytes.
            let back = scratch.str(&format!("{arch}-back"));
            export(&run, "hf", &back);
            assert!(
                std::fs::read(format!("{folder}/model.safetensors")).unwrap()
                    == std::fs::read(format!("{back}/model.safetensors")).unwrap(),
                "{arch}: HF → tinygpt → HF changed model.safetensors"
            );
        }

        // Fine-tuned from the folder itself, exported back to the same class and loading again.
        let tuned = scratch.str(&format!("{arch}-tuned"));
        let mut args = vec![
            "train",
            "--config",
            "configs/finetune-llama.toml",
            "--init-from",
            &folder,
            "--out",
            &tuned,
        ];
        for setting in [
            "model.block_size=16",
            "train.batch_size=4",
            "train.grad_accum=1",
            "train.max_steps=6",
            "train.lr=1e-3",
            "train.min_lr=1e-3",
            "train.eval_interval=6",
            "train.eval_batches=2",
            "train.sample_tokens=4",
        ] {
            args.extend(["--set", setting]);
        }
        tinygpt_ok(&args);
        let tuned = Path::new(&tuned);
        assert!(tuned.join("model.safetensors").exists());
        let name = format!("{arch}-tuned");
        transformers_agrees(&python, &scratch, tuned, &name, class(arch), &corpus(), 16);
    }
}

#[test]
fn llama_cpp_reads_the_llama_and_qwen3_gguf_exports_and_scores_text_as_tinygpt_does() {
    let Some(python) = python_with(&["gguf", "llama_cpp", "safetensors", "numpy"]) else {
        return;
    };
    let scratch = Scratch::new("modern-interop-gguf");
    let val = em_dash_val();
    for (arch, vocabulary) in [("llama", "char"), ("qwen3", "bpe")] {
        let run = trained(&scratch, arch, vocabulary, &[]);
        let name = format!("{arch}-{vocabulary}");
        let report = llama_cpp_report(&python, &scratch, &run, &name, &val);
        let (loss, ours) = (
            report["loss"].as_f64().unwrap(),
            report["our_loss"].as_f64().unwrap(),
        );
        assert!((loss - ours).abs() < 1e-3, "{name}: {report}");
    }
}
