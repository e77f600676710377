//! The modern recipe end to end: a run with every model switch and Muon trains, samples,
//! evaluates and shows its attention; exports to the formats that hold it, and the others
//! refuse in one line.

mod common;

use common::*;

#[test]
fn a_modern_run_learns_and_exports_only_to_formats_that_hold_it() {
    let scratch = Scratch::new("modern");
    let run = scratch.str("run");
    let mut switches = MODERN_RECIPE.to_vec();
    switches.extend(["--set", "train.min_lr=0.0"]);
    train_tiny(&run, &switches);
    let lines = metrics(&scratch.path("run"));
    let val: Vec<f64> = lines
        .iter()
        .filter_map(|l| l["val_loss"].as_f64())
        .collect();
    assert!(
        val.last().unwrap() < &(val[0] - 0.8),
        "did not learn: {val:?}"
    );

    // The run's config keeps the switches, and eval and sample read them back.
    let config = std::fs::read_to_string(scratch.path("run/config.toml")).unwrap();
    for key in [
        "positions = \"rope\"",
        "optimizer = \"muon\"",
        "schedule = \"wsd\"",
    ] {
        assert!(config.contains(key), "{key} not in {config}");
    }
    let eval = tinygpt_ok(&["eval", "--run", &run, "--json"]);
    let loss = serde_json::from_str::<serde_json::Value>(stdout(&eval).trim()).unwrap()["loss"]
        .as_f64()
        .unwrap();
    assert!(loss < val[0] - 0.8, "{loss}");
    let sample = tinygpt_ok(&[
        "sample",
        "--run",
        &run,
        "--prompt",
        "ROMEO:",
        "--max-new-tokens",
        "40",
    ]);
    assert!(stdout(&sample).starts_with("ROMEO:"), "{}", stdout(&sample));

    // The modern recipe is NanoChat's shape: transformers has the class, llama.cpp has none.
    let hf = scratch.str("export-hf");
    tinygpt_ok(&["export", "--run", &run, "--format", "hf", "--out", &hf]);
    let config = std::fs::read_to_string(scratch.path("export-hf/config.json")).unwrap();
    assert!(config.contains("\"NanoChatForCausalLM\""), "{config}");
    let gguf = scratch.str("export.gguf");
    let out = tinygpt(&["export", "--run", &run, "--format", "gguf", "--out", &gguf]);
    assert_clean_error(&out, "model.activation = \"relu2\"");
    assert!(!std::path::Path::new(&gguf).exists(), "wrote {gguf}");
    let safetensors = scratch.str("weights.safetensors");
    tinygpt_ok(&[
        "export",
        "--run",
        &run,
        "--format",
        "safetensors",
        "--out",
        &safetensors,
    ]);
    assert!(std::path::Path::new(&safetensors).exists());
}

#[test]
fn gpt2_formats_take_relu2_only_where_the_runtime_computes_it() {
    // transformers' GPT-2 computes "relu2"; llama.cpp's gpt2 does not.
    let scratch = Scratch::new("modern-relu2");
    let run = scratch.str("run");
    train_tiny(
        &run,
        &[
            "--set",
            "model.activation=relu2",
            "--set",
            "train.max_steps=5",
        ],
    );
    tinygpt_ok(&[
        "export",
        "--run",
        &run,
        "--format",
        "hf",
        "--out",
        &scratch.str("hf"),
    ]);
    let config = std::fs::read_to_string(scratch.path("hf/config.json")).unwrap();
    assert!(
        config.contains("\"activation_function\": \"relu2\""),
        "{config}"
    );
    let gguf = scratch.str("model.gguf");
    let out = tinygpt(&["export", "--run", &run, "--format", "gguf", "--out", &gguf]);
    assert_clean_error(&out, "model.activation = \"relu2\"");
}

#[test]
fn bad_modern_switches_are_one_error_line() {
    let scratch = Scratch::new("modern-errors");
    let cases: [(&[&str], &str); 4] = [
        (&["--set", "model.positions=alibi"], "model.positions"),
        (&["--set", "model.init=modern"], "model.init"),
        (&["--set", "train.optimizer=sgd"], "train.optimizer"),
        (
            &["--set", "train.warmdown_fraction=1.5"],
            "train.warmdown_fraction",
        ),
    ];
    for (i, (set, needle)) in cases.iter().enumerate() {
        let mut args = vec!["train", "--config", "configs/tiny-test.toml"];
        let out_dir = scratch.str(&format!("run-{i}"));
        args.extend(["--out", &out_dir]);
        args.extend_from_slice(set);
        assert_clean_error(&tinygpt(&args), needle);
        assert!(!std::path::Path::new(&out_dir).exists());
    }
}

#[test]
fn grouped_query_attention_is_counted_and_kept_out_of_gpt2_formats() {
    let gqa = ["--set", "model.n_kv_head=1"];
    let table = stdout(&tinygpt_ok(
        &[
            &["params", "--config", "configs/tiny-test.toml"][..],
            &gqa[..],
        ]
        .concat(),
    ));
    assert!(
        table.contains("2 heads of size 16 (1 key/value heads)"),
        "{table}"
    );
    let key = table.lines().find(|l| l.starts_with("key ")).unwrap();
    assert!(key.contains("32 × 16"), "{key}");
    let scratch = Scratch::new("gqa-export");
    let run = scratch.str("run");
    train_tiny(
        &run,
        &[&gqa[..], &["--set", "train.max_steps=2"][..]].concat(),
    );
    for format in ["hf", "gguf"] {
        let out_path = scratch.str(&format!("export-{format}"));
        let out = tinygpt(&[
            "export", "--run", &run, "--format", format, "--out", &out_path,
        ]);
        assert_clean_error(&out, "model.n_kv_head < n_head");
        assert!(!std::path::Path::new(&out_path).exists(), "{format}");
    }
}

#[test]
fn the_params_table_rows_add_up_to_its_weight_matrices_for_every_shape() {
    let number = |text: &str| -> usize { text.replace(',', "").parse().unwrap() };
    for extra in [
        &[][..],
        &["--set", "model.activation=swiglu"][..],
        &[
            "--set",
            "model.n_kv_head=1",
            "--set",
            "model.tie_embeddings=false",
        ][..],
    ] {
        let args = [&["params", "--config", "configs/tiny-test.toml"][..], extra].concat();
        let table = stdout(&tinygpt_ok(&args));
        let total = |name: &str| {
            let line = table.lines().find(|l| l.starts_with(name)).unwrap();
            number(line.split_whitespace().last().unwrap())
        };
        let rows: usize = table
            .lines()
            .skip_while(|l| !l.starts_with("token embedding"))
            .take_while(|l| !l.starts_with("weight matrices"))
            .filter(|l| !l.contains("tied"))
            .map(|l| number(l.split_whitespace().last().unwrap()))
            .sum();
        assert_eq!(rows, total("weight matrices"), "{extra:?}:\n{table}");
    }
}
