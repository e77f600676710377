//! A chat run for tests: a small Shakespeare base fine-tuned on a small synthetic conversation
//! set from `data/make_chat.py`, the way `configs/chat-sft.toml` fine-tunes the default run.

use std::path::PathBuf;

use super::{Scratch, tinygpt_ok, workspace_root};

/// The runs a chat test uses, in a scratch directory of their own.
pub struct ChatRuns {
    pub scratch: Scratch,
    /// A base run (context 64, no role tokens).
    pub base: PathBuf,
    /// `base` fine-tuned on conversations.
    pub chat: PathBuf,
    /// The held-out conversations.
    pub val: PathBuf,
    /// The fine-tuning config.
    pub config: PathBuf,
}

/// Writes the conversations (`train` of them, `val` held out) and the fine-tuning config.
pub fn conversations(scratch: &Scratch, train: usize, val: usize, steps: usize) -> PathBuf {
    let status = std::process::Command::new("python3")
        .arg(workspace_root().join("data/make_chat.py"))
        .args(["--out", &scratch.str("chat")])
        .args(["--train", &train.to_string(), "--val", &val.to_string()])
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "data/make_chat.py failed");
    let config = scratch.path("sft.toml");
    std::fs::write(
        &config,
        format!(
            r#"[data]
corpus = "{dir}/train.jsonl"
val_corpus = "{dir}/val.jsonl"
format = "chat"

[train]
batch_size = 8
max_steps = {steps}
lr = 3e-3
min_lr = 3e-4
warmup_steps = 2
eval_interval = 20
eval_batches = 2
log_interval = 5
sample_tokens = 8
sample_prompt = "<|user_start|>what comes after 41?<|user_end|><|assistant_start|>"
"#,
            dir = scratch.str("chat")
        ),
    )
    .unwrap();
    config
}

pub fn chat_runs(name: &str) -> ChatRuns {
    let scratch = Scratch::new(name);
    let config = conversations(&scratch, 1500, 40, 40);
    let (base, chat) = (scratch.path("base"), scratch.path("chat-run"));
    tinygpt_ok(&[
        "train",
        "--config",
        "configs/tiny-test.toml",
        "--out",
        &base.display().to_string(),
        "--set",
        "model.block_size=64",
        "--set",
        "train.max_steps=30",
    ]);
    tinygpt_ok(&[
        "train",
        "--config",
        &config.display().to_string(),
        "--init-from",
        &base.display().to_string(),
        "--out",
        &chat.display().to_string(),
    ]);
    ChatRuns {
        val: scratch.path("chat/val.jsonl"),
        base,
        chat,
        config,
        scratch,
    }
}
