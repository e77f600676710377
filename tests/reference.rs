//! The PyTorch reference in `bench/reference/gpt.py` is tinygpt's model: from the weights a
//! `tinygpt bench` step started with, it computes that step's loss. Runs where a python with
//! torch and safetensors is found (TINYGPT_TORCH_PYTHON, ~/.venvs/torch/bin/python, python3);
//! torch is optional (about 5.5 GB), so elsewhere, CI included, the test says why it skipped.

mod common;

use std::process::Command;

use common::*;

fn torch_python() -> Option<String> {
    let home_venv = std::env::var("HOME").map(|h| format!("{h}/.venvs/torch/bin/python"));
    let candidates = [std::env::var("TINYGPT_TORCH_PYTHON").ok(), home_venv.ok()]
        .into_iter()
        .flatten()
        .chain(["python3".to_string()]);
    for python in candidates {
        let ok = Command::new(&python)
            .args(["-c", "import torch, safetensors"])
            .output()
            .is_ok_and(|o| o.status.success());
        if ok {
            return Some(python);
        }
    }
    eprintln!(
        "skipped: no python with torch and safetensors (python3 -m venv ~/.venvs/torch && ~/.venvs/torch/bin/pip install torch numpy safetensors)"
    );
    None
}

/// `tinygpt bench` one step on `config` saving it, then the reference redoing it: the two losses.
fn losses(python: &str, scratch: &Scratch, config: &str) -> (f64, f64) {
    let dir = scratch.str("first-step");
    let out = tinygpt_ok(&[
        "bench",
        "--config",
        config,
        "--steps",
        "1",
        "--warmup",
        "0",
        "--sample-tokens",
        "0",
        "--json",
        "--save-first-step",
        &dir,
        // Each variant replaces the one before in this scratch folder.
        "--force",
    ]);
    let report: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    let checked = Command::new(python)
        .arg(workspace_root().join("bench/reference/gpt.py"))
        .args(["--model", &report["model"].to_string(), "--batch-size", "8"])
        .args(["--threads", "1", "--check", &dir])
        .output()
        .unwrap();
    assert!(checked.status.success(), "{}", stderr(&checked));
    let result: serde_json::Value = serde_json::from_str(stdout(&checked).trim()).unwrap();
    (
        result["loss_tinygpt"].as_f64().unwrap(),
        result["loss_reference"].as_f64().unwrap(),
    )
}

#[test]
fn the_pytorch_reference_computes_tinygpts_first_step_loss_from_its_weights() {
    let Some(python) = torch_python() else {
        return;
    };
    let scratch = Scratch::new("reference");
    let tiny = std::fs::read_to_string(workspace_root().join("configs/tiny-test.toml")).unwrap();
    // tiny-test with `model_keys` added to its [model] section, written as NAME.toml.
    let variant = |name: &str, model_keys: &str| {
        let config = tiny.replace("dropout = 0.0", &format!("dropout = 0.0\n{model_keys}"));
        assert_ne!(tiny, config);
        let path = scratch.str(&format!("{name}.toml"));
        std::fs::write(&path, config).unwrap();
        path
    };
    // Tied embeddings with biases (the default), an untied unembedding without biases, and
    // GPT-2's tanh GELU with another LayerNorm ε.
    let untied = variant("untied", "tie_embeddings = false\nbias = false");
    let gpt2 = variant(
        "gelu-tanh",
        "activation = \"gelu_tanh\"\nlayer_norm_eps = 1e-3",
    );
    // The modern switches: nanochat's shape (RoPE, parameter-free RMSNorm after the embedding
    // and in every block, QK-norm, ReLU², soft-cap, no biases, untied, modern init), and a
    // Llama/Qwen3-like one (RMSNorm and QK-norm with gains, SwiGLU).
    let nanochat = variant(
        "nanochat",
        "positions = \"rope\"\nnorm = \"rms_norm\"\nnorm_weight = false\nembedding_norm = true\nqk_norm = true\nactivation = \"relu2\"\nlogit_softcap = 15.0\ninit = \"modern\"\ntie_embeddings = false\nbias = false",
    );
    let llama = variant(
        "llama",
        "positions = \"rope\"\nrope_base = 500.0\nnorm = \"rms_norm\"\nqk_norm = true\nactivation = \"swiglu\"\ntie_embeddings = false\nbias = false\nlayer_norm_eps = 1e-6",
    );
    // Grouped-query attention: tiny-test's two query heads share one key/value head (with
    // rotated, normalised keys, so the sharing is checked after they are placed).
    let gqa = variant(
        "gqa",
        "n_kv_head = 1\npositions = \"rope\"\nnorm = \"rms_norm\"\nqk_norm = true\ntie_embeddings = false",
    );
    // Sliding windows: the first block's queries see their last 5 positions, the last block's
    // all 16 (with GQA and RoPE).
    let window = variant(
        "window",
        "attention_window = 5\nwindow_pattern = \"SL\"\nn_kv_head = 1\npositions = \"rope\"\nnorm = \"rms_norm\"",
    );
    let mut seen = Vec::new();
    let configs = [
        "configs/tiny-test.toml",
        untied.as_str(),
        gpt2.as_str(),
        nanochat.as_str(),
        llama.as_str(),
        gqa.as_str(),
        window.as_str(),
    ];
    for config in configs {
        let (ours, reference) = losses(&python, &scratch, config);
        assert!(
            ours > 1.0,
            "{config}: a first loss near ln(vocab), got {ours}"
        );
        assert!(
            (ours - reference).abs() < 1e-5,
            "{config}: tinygpt {ours} vs the PyTorch reference {reference}"
        );
        seen.push(ours);
    }
    // The variants are different models (same seed and batch): their losses differ.
    for (i, a) in seen.iter().enumerate() {
        assert!(seen[i + 1..].iter().all(|b| b != a), "{seen:?}");
    }
}
