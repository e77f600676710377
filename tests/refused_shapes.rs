//! Shapes no architecture holds, and Llama-family folders tinygpt cannot compute: one
//! `error:` line each, naming the switch (or `config.json` key) and what would unblock it, and
//! nothing written.

mod common;

use std::path::Path;

use common::oracle::export;
use common::shapes::shape;
use common::*;

#[test]
fn shapes_no_class_holds_are_refused_in_one_line_and_nothing_is_written() {
    let scratch = Scratch::new("modern-interop-refused");
    let cases: [(&str, &[&str], &str, &str); 5] = [
        (
            "llama",
            &["model.logit_softcap=30.0"],
            "hf",
            "model.logit_softcap > 0",
        ),
        (
            "llama",
            &["model.logit_softcap=30.0"],
            "gguf",
            "model.logit_softcap > 0",
        ),
        ("qwen3", &["model.bias=true"], "hf", "model.bias = true"),
        (
            "llama",
            &["model.activation=gelu"],
            "hf",
            "model.activation = \"gelu\"",
        ),
        ("nanochat", &[], "gguf", "model.activation = \"relu2\""),
    ];
    for (i, (arch, extra, format, needle)) in cases.iter().enumerate() {
        let run = scratch.str(&format!("run-{i}"));
        let mut args = vec!["--set", "train.max_steps=2"];
        let mut switches = shape(arch);
        switches.extend_from_slice(extra);
        for s in &switches {
            args.extend(["--set", s]);
        }
        train_tiny(&run, &args);
        let out_path = scratch.str(&format!("export-{i}"));
        let out = tinygpt(&[
            "export", "--run", &run, "--format", format, "--out", &out_path,
        ]);
        assert_clean_error(&out, needle);
        assert!(
            !Path::new(&out_path).exists(),
            "{arch} {format}: wrote {out_path}"
        );
        let siblings: Vec<_> = std::fs::read_dir(scratch.path(""))
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
            .collect();
        assert!(siblings.is_empty(), "{siblings:?}");
    }
}

#[test]
fn llama_family_folders_tinygpt_cannot_compute_are_refused_in_one_line() {
    let scratch = Scratch::new("modern-interop-import-refused");
    let run = scratch.str("run");
    let mut args = vec!["--set", "train.max_steps=2"];
    for s in shape("llama") {
        args.extend(["--set", s]);
    }
    train_tiny(&run, &args);
    let folder = scratch.str("hf");
    export(Path::new(&run), "hf", &folder);
    let config_path = Path::new(&folder).join("config.json");
    let original: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&config_path).unwrap()).unwrap();
    // The export itself imports.
    tinygpt_ok(&["import", "--hf", &folder, "--out", &scratch.str("imported")]);

    type Edit = fn(&mut serde_json::Value);
    let cases: [(Edit, &str); 10] = [
        (
            |c| c["rope_parameters"]["rope_type"] = "llama3".into(),
            "rope_type \"llama3\"",
        ),
        (
            |c| {
                c.as_object_mut().unwrap().remove("rope_parameters");
                c["rope_scaling"] = serde_json::json!({"type": "linear", "factor": 2.0});
            },
            "rope_type \"linear\"",
        ),
        (
            |c| c["rope_parameters"]["partial_rotary_factor"] = 0.5.into(),
            "partial_rotary_factor",
        ),
        (
            |c| c["head_dim"] = 16.into(),
            "head_dim 16 is not hidden_size / num_attention_heads (8)",
        ),
        (
            |c| c["num_local_experts"] = 8.into(),
            "a mixture of experts",
        ),
        (
            |c| c["mlp_bias"] = false.into(),
            "attention_bias true but mlp_bias false",
        ),
        (|c| c["hidden_act"] = "gelu".into(), "hidden_act \"gelu\""),
        (
            |c| {
                c["model_type"] = "qwen3".into();
                c["layer_types"] = serde_json::json!(["sliding_attention", "full_attention"]);
            },
            "sliding-window attention",
        ),
        (
            |c| c["model_type"] = "qwen3_moe".into(),
            "model_type \"qwen3_moe\" is not one tinygpt computes",
        ),
        (
            |c| c["intermediate_size"] = 64.into(),
            "tensor model.layers.0.mlp.gate_proj.weight has shape [88, 32], the model expects [64, 32]",
        ),
    ];
    for (i, (edit, needle)) in cases.iter().enumerate() {
        let mut config = original.clone();
        edit(&mut config);
        std::fs::write(&config_path, config.to_string()).unwrap();
        let out_dir = scratch.str(&format!("x-{i}"));
        let out = tinygpt(&["import", "--hf", &folder, "--out", &out_dir]);
        assert_clean_error(&out, needle);
        assert!(!Path::new(&out_dir).exists(), "case {i} wrote {out_dir}");
        let tuned = scratch.str(&format!("t-{i}"));
        let out = tinygpt(&[
            "train",
            "--config",
            "configs/finetune-llama.toml",
            "--init-from",
            &folder,
            "--out",
            &tuned,
        ]);
        assert_clean_error(&out, needle);
        assert!(!Path::new(&tuned).exists(), "case {i} wrote {tuned}");
    }
}
