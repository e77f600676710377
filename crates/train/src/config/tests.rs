use super::*;

const MINIMAL: &str = r#"
[model]
block_size = 8
n_layer = 1
n_head = 2
n_embd = 16
[data]
corpus = "data/shakespeare.txt"
"#;

fn load(text: &str, overrides: &[&str]) -> Result<RunConfig> {
    let file = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
    std::fs::write(file.path(), text).unwrap();
    let overrides: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
    RunConfig::load(file.path(), &overrides)
}

#[test]
fn defaults_fill_missing_keys() {
    let config = load(MINIMAL, &[]).unwrap();
    assert_eq!(config.train, TrainConfig::default());
    assert_eq!(config.data.tokenizer, "char");
    assert_eq!(config.data.val_fraction, 0.1);
    assert_eq!(config.model.vocab_size, 0);
    assert!(config.model.bias && config.model.tie_embeddings);
}

#[test]
fn overrides_set_numbers_bools_and_bare_strings() {
    let config = load(
        MINIMAL,
        &[
            "train.max_steps=500",
            "train.lr=3e-4",
            "model.bias=false",
            "data.corpus=other.txt",
            "train.device=ndarray",
        ],
    )
    .unwrap();
    assert_eq!(config.train.max_steps, 500);
    assert_eq!(config.train.lr, 3e-4);
    assert!(!config.model.bias);
    assert_eq!(
        config.data.corpus,
        tinygpt_data::CorpusSpec::from("other.txt")
    );
    assert_eq!(config.train.device, "ndarray");
}

#[test]
fn unknown_keys_and_bad_values_are_named() {
    let err = load(MINIMAL, &["train.max_stepz=5"]).unwrap_err();
    assert!(format!("{err:#}").contains("max_stepz"), "{err:#}");
    let err = load(MINIMAL, &["optim.lr=5"]).unwrap_err();
    assert!(format!("{err:#}").contains("unknown section"), "{err:#}");
    let err = load(MINIMAL, &["train.max_steps"]).unwrap_err();
    assert!(format!("{err:#}").contains("SECTION.KEY=VALUE"), "{err:#}");
    let err = load(MINIMAL, &["model.n_head=3"]).unwrap_err();
    assert!(format!("{err:#}").contains("model.n_embd"), "{err:#}");
    let err = load(MINIMAL, &["train.min_lr=1"]).unwrap_err();
    assert!(format!("{err:#}").contains("train.min_lr"), "{err:#}");
    let err = load(MINIMAL, &["train.max_steps=\"many\""]).unwrap_err();
    assert!(
        format!("{err:#}").contains("train.max_steps: invalid type"),
        "{err:#}"
    );
}

#[test]
fn resume_accepts_schedule_changes_and_names_the_rest() {
    let saved = load(MINIMAL, &[]).unwrap();
    let longer = saved
        .with_overrides(&["train.max_steps=9000".into(), "train.device=ndarray".into()])
        .unwrap();
    assert_eq!(longer.train.max_steps, 9000);
    check_resumable(&saved, &longer).unwrap();

    let reshaped = saved
        .with_overrides(&["model.n_embd=64".into(), "train.seed=1".into()])
        .unwrap();
    let err = check_resumable(&saved, &reshaped).unwrap_err().to_string();
    assert!(err.contains("model.n_embd (run: 16, now: 64)"), "{err}");
    assert!(err.contains("train.seed (run: 1337, now: 1)"), "{err}");
}

#[test]
fn shipped_configs_load() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs");
    for name in [
        "shakespeare-char",
        "shakespeare-bpe",
        "tiny-test",
        "nanogpt-char",
    ] {
        let path = root.join(format!("{name}.toml"));
        RunConfig::load(&path, &[]).unwrap_or_else(|e| panic!("{name}: {e:#}"));
    }
}
