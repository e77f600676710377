//! `train --init-from`: fine-tuning from a tinygpt run or a Hugging Face folder, with
//! `configs/finetune-gpt2.toml` (its `[model]` comes from the weights), and `import --hf`'s
//! one-line refusals of what tinygpt cannot compute.

mod common;

use std::path::Path;

use common::*;

fn val_losses(run: &Path) -> Vec<f64> {
    metrics(run)
        .iter()
        .filter_map(|m| m["val_loss"].as_f64())
        .collect()
}

/// `configs/finetune-gpt2.toml` shrunk to test size: the tiny model's context, a few steps.
fn finetune(out: &str, init_from: &str, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "train",
        "--config",
        "configs/finetune-gpt2.toml",
        "--init-from",
        init_from,
        "--out",
        out,
    ];
    for setting in [
        "model.block_size=8",
        "model.dropout=0.0",
        "train.batch_size=8",
        "train.grad_accum=1",
        "train.max_steps=30",
        "train.lr=2e-3",
        "train.min_lr=2e-3",
        "train.eval_interval=30",
        "train.eval_batches=4",
        "train.sample_tokens=8",
        "train.sample_prompt=\"\\n\"",
    ] {
        args.extend(["--set", setting]);
    }
    args.extend_from_slice(extra);
    tinygpt(&args)
}

#[test]
fn fine_tuning_starts_from_the_weights_it_is_given_and_lowers_the_val_loss() {
    let scratch = Scratch::new("finetune");
    let source = scratch.str("source");
    train_tiny(&source, &["--set", "train.max_steps=100"]);
    // Through Hugging Face and back: the imported model is what fine-tuning starts from.
    let folder = scratch.str("source-hf");
    tinygpt_ok(&[
        "export", "--run", &source, "--format", "hf", "--out", &folder,
    ]);
    let imported = scratch.str("imported");
    tinygpt_ok(&["import", "--hf", &folder, "--out", &imported]);

    let tuned = scratch.str("tuned");
    let out = finetune(&tuned, &imported, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!(
            "fine-tuning: weights and tokenizer from {imported}"
        )),
        "{}",
        stderr(&out)
    );
    let tuned_losses = val_losses(Path::new(&tuned));
    let (start, end) = (tuned_losses[0], *tuned_losses.last().unwrap());
    assert!(
        end < start,
        "fine-tuning did not lower the val loss: {tuned_losses:?}"
    );

    // The same config from scratch starts where an untrained model does: far worse.
    let fresh = scratch.str("fresh");
    train_tiny(
        &fresh,
        &["--set", "model.block_size=8", "--set", "train.max_steps=1"],
    );
    let fresh_start = val_losses(Path::new(&fresh))[0];
    assert!(
        start < fresh_start - 0.5,
        "{start} vs untrained {fresh_start}"
    );

    // Straight from the Hugging Face folder: the same weights, so the same first val loss.
    let direct = scratch.str("direct");
    let out = finetune(&direct, &folder, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(val_losses(Path::new(&direct))[0], start);

    // The run keeps the model's tokenizer and architecture, its context cropped to 8.
    let tokenizer = |run: &str| std::fs::read(format!("{run}/tokenizer.json")).unwrap();
    assert_eq!(tokenizer(&tuned), tokenizer(&source));
    let config = std::fs::read_to_string(format!("{tuned}/config.toml")).unwrap();
    for line in [
        "block_size = 8",
        "n_layer = 2",
        "n_embd = 32",
        "vocab_size = 84",
    ] {
        assert!(config.contains(line), "{line} not in\n{config}");
    }
    // And it resumes like any run.
    let resumed = tinygpt(&["train", "--resume", &tuned, "--set", "train.max_steps=35"]);
    assert!(resumed.status.success(), "{}", stderr(&resumed));
}

#[test]
fn fine_tuning_refuses_what_the_weights_cannot_be() {
    let scratch = Scratch::new("finetune-errors");
    let source = scratch.str("source");
    train_tiny(&source, &["--set", "train.max_steps=5"]);

    let out = finetune(&scratch.str("a"), &source, &["--set", "model.n_layer=3"]);
    assert_clean_error(&out, "model.n_layer = 3 but the model in");
    let out = finetune(
        &scratch.str("b"),
        &source,
        &["--set", "model.block_size=64"],
    );
    assert_clean_error(&out, "only model.dropout and a smaller model.block_size");

    let corpus = scratch.str("accents.txt");
    std::fs::write(&corpus, "Café au lait ✓\n".repeat(2000)).unwrap();
    let set_corpus = format!("data.corpus={corpus:?}");
    let out = finetune(&scratch.str("c"), &source, &["--set", &set_corpus]);
    assert_clean_error(&out, "2 character(s) the tokenizer of");
    assert!(stderr(&out).contains("'é' '✓'"), "{}", stderr(&out));

    let out = finetune(&scratch.str("d"), &scratch.str("nowhere"), &[]);
    assert_clean_error(&out, "neither a tinygpt run");
    for dir in ["a", "b", "c", "d"] {
        assert!(
            !scratch.path(dir).exists(),
            "a refused run left {dir} behind"
        );
    }
}

/// A Hugging Face folder from a tiny run's export, its config.json edited by `edit`.
fn hf_folder(scratch: &Scratch, name: &str, edit: impl Fn(&mut serde_json::Value)) -> String {
    let run = scratch.str("run");
    if !Path::new(&run).exists() {
        train_tiny(&run, &["--set", "train.max_steps=2"]);
    }
    let folder = scratch.str(name);
    tinygpt_ok(&["export", "--run", &run, "--format", "hf", "--out", &folder]);
    let path = format!("{folder}/config.json");
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    edit(&mut config);
    std::fs::write(&path, config.to_string()).unwrap();
    folder
}

#[test]
fn import_refuses_in_one_line_what_tinygpt_cannot_compute() {
    let scratch = Scratch::new("import-errors");
    type Edit = Box<dyn Fn(&mut serde_json::Value)>;
    let cases: Vec<(&str, Edit, &str)> = vec![
        (
            "mixtral",
            Box::new(|c| c["model_type"] = "mixtral".into()),
            "model_type \"mixtral\" is not one tinygpt computes",
        ),
        (
            "relu",
            Box::new(|c| c["activation_function"] = "relu".into()),
            "activation_function \"relu\" is not one tinygpt has",
        ),
        (
            "inner",
            Box::new(|c| c["n_inner"] = 100.into()),
            "tensor h.0.mlp.c_fc.weight has shape [32, 128], the model expects [32, 100]",
        ),
        (
            "cross",
            Box::new(|c| c["add_cross_attention"] = true.into()),
            "add_cross_attention is true",
        ),
        (
            "scaled",
            Box::new(|c| c["scale_attn_by_inverse_layer_idx"] = true.into()),
            "tinygpt scales by 1/√head_size only",
        ),
        (
            "epsilon",
            Box::new(|c| c["layer_norm_epsilon"] = 2.0.into()),
            "layer_norm_eps",
        ),
        (
            "wider",
            Box::new(|c| c["n_embd"] = 64.into()),
            "tensor wte.weight has shape [84, 32], the model expects [84, 64]",
        ),
    ];
    for (name, edit, needle) in cases {
        let folder = hf_folder(&scratch, name, edit);
        let out = tinygpt(&["import", "--hf", &folder, "--out", &scratch.str("x")]);
        assert_clean_error(&out, needle);
        assert!(!scratch.path("x").exists());
    }

    let pickle = hf_folder(&scratch, "pickle", |_| {});
    std::fs::rename(
        format!("{pickle}/model.safetensors"),
        format!("{pickle}/pytorch_model.bin"),
    )
    .unwrap();
    let out = tinygpt(&["import", "--hf", &pickle, "--out", &scratch.str("x")]);
    assert_clean_error(
        &out,
        "pytorch_model.bin (a pickle) but no model.safetensors",
    );

    let no_tokenizer = hf_folder(&scratch, "no-tokenizer", |_| {});
    std::fs::remove_file(format!("{no_tokenizer}/tokenizer.json")).unwrap();
    let out = tinygpt(&["import", "--hf", &no_tokenizer, "--out", &scratch.str("x")]);
    assert_clean_error(&out, "has no tokenizer.json");

    let out = tinygpt(&["import", "--out", &scratch.str("x")]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--weights"), "{}", stderr(&out));
}

#[test]
fn an_hf_export_never_overwrites_a_folder_of_the_users() {
    let scratch = Scratch::new("export-folder");
    let run = scratch.str("run");
    train_tiny(&run, &["--set", "train.max_steps=2"]);
    let folder = scratch.path("mine");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(folder.join("notes.md"), "my notes").unwrap();
    let out_dir = folder.to_str().unwrap();
    let out = tinygpt(&["export", "--run", &run, "--format", "hf", "--out", out_dir]);
    assert_clean_error(&out, "already holds files");
    assert_eq!(std::fs::read_dir(&folder).unwrap().count(), 1);
    // --force writes the export's own files and leaves the user's alone.
    let forced = [
        "export", "--run", &run, "--format", "hf", "--out", out_dir, "--force",
    ];
    tinygpt_ok(&forced);
    assert_eq!(
        std::fs::read_to_string(folder.join("notes.md")).unwrap(),
        "my notes"
    );
    assert!(folder.join("model.safetensors").is_file());
    let file = scratch.str("file");
    std::fs::write(&file, "x").unwrap();
    let out = tinygpt(&[
        "export", "--run", &run, "--format", "hf", "--out", &file, "--force",
    ]);
    assert_clean_error(&out, "is a file");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "x");
}
