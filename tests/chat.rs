//! Fine-tuning on conversations: a base run gains the role tokens, learns only the assistant's
//! turns, resumes bit-exactly, answers in `tinygpt chat` and is scored by `chat --eval`; the
//! exports carry the role tokens and the template that transformers and the `gguf` reader see.

mod common;

use common::chat::{chat_runs, conversations};
use common::{Scratch, assert_clean_error, python_with, stdout, tinygpt, tinygpt_ok};
use std::io::Write;
use std::process::Stdio;
use tinygpt_data::tokenizer::CHAT_TOKENS;
use tinygpt_data::{Role, Tokenizer};

#[test]
fn a_base_run_fine_tunes_on_conversations_and_answers() {
    let runs = chat_runs("chat-sft");
    let base = Tokenizer::load(&runs.base.join("tokenizer.json")).unwrap();
    let chat = Tokenizer::load(&runs.chat.join("tokenizer.json")).unwrap();
    assert!(base.chat_tokens().is_none() && base.end_of_text().is_none());
    // The base's characters keep their ids; <|endoftext|> and the six role tokens follow.
    assert_eq!(chat.vocab_size(), base.vocab_size() + 7);
    assert_eq!(chat.end_of_text(), Some(base.vocab_size() as u32));
    let roles = chat.chat_tokens().unwrap();
    assert_eq!(roles.start(Role::System), base.vocab_size() as u32 + 1);
    assert_eq!(roles.end(Role::Assistant), base.vocab_size() as u32 + 6);
    assert_eq!(chat.encode("ROMEO").unwrap(), base.encode("ROMEO").unwrap());
    let config = std::fs::read_to_string(runs.chat.join("config.toml")).unwrap();
    assert!(
        config.contains(&format!("vocab_size = {}", chat.vocab_size())),
        "{config}"
    );

    // The val loss is over the assistant's tokens only: a few of them, so it falls fast.
    let metrics = common::metrics(&runs.chat);
    let val: Vec<f64> = metrics
        .iter()
        .filter_map(|m| m["val_loss"].as_f64())
        .collect();
    assert!(val.len() >= 2 && val.last() < val.first(), "{val:?}");

    // Scored on the held-out conversations.
    let scored = stdout(&tinygpt_ok(&[
        "chat",
        "--run",
        &runs.chat.display().to_string(),
        "--eval",
        &runs.val.display().to_string(),
    ]));
    assert!(scored.starts_with("exact match: "), "{scored}");
    assert!(scored.contains("/40 ("), "{scored}");

    // A conversation in the terminal: a line per turn, a reply per line.
    let mut child = common::tinygpt_command(&[
        "chat",
        "--run",
        &runs.chat.display().to_string(),
        "--temperature",
        "0",
        "--max-tokens",
        "10",
    ])
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"what comes after 41?\nreverse abc\n/quit\nnever read\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let replies = String::from_utf8(out.stdout).unwrap();
    assert_eq!(replies.lines().count(), 2, "{replies:?}");
    assert!(
        !replies.contains("<|"),
        "role tokens are never printed: {replies:?}"
    );

    // A base run has no role tokens: one error line that says what to do.
    let refused = tinygpt(&["chat", "--run", &runs.base.display().to_string()]);
    assert_clean_error(&refused, "no chat role tokens");
}

#[test]
fn a_chat_run_resumes_bit_exactly() {
    let scratch = Scratch::new("chat-resume");
    let config = conversations(&scratch, 400, 20, 30);
    let base = scratch.str("base");
    tinygpt_ok(&[
        "train",
        "--config",
        "configs/tiny-test.toml",
        "--out",
        &base,
        "--set",
        "model.block_size=64",
        "--set",
        "train.max_steps=10",
    ]);
    let config = config.display().to_string();
    let (straight, halves) = (scratch.str("straight"), scratch.str("halves"));
    tinygpt_ok(&[
        "train",
        "--config",
        &config,
        "--init-from",
        &base,
        "--out",
        &straight,
    ]);
    tinygpt_ok(&[
        "train",
        "--config",
        &config,
        "--init-from",
        &base,
        "--out",
        &halves,
        "--stop-at-step",
        "15",
    ]);
    tinygpt_ok(&["train", "--resume", &halves]);
    let weights = |run: &str| std::fs::read(format!("{run}/model.safetensors")).unwrap();
    assert!(
        weights(&straight) == weights(&halves),
        "resumed weights differ"
    );
}

#[test]
fn a_chat_corpus_without_replies_or_with_bad_lines_is_refused_in_one_line() {
    let scratch = Scratch::new("chat-bad");
    let corpus = scratch.path("bad.jsonl");
    let config = scratch.path("bad.toml");
    let write_config = || {
        std::fs::write(
            &config,
            format!(
                "[model]\nblock_size = 16\nn_layer = 1\nn_head = 1\nn_embd = 8\n[data]\ncorpus = \"{}\"\nformat = \"chat\"\n[train]\nmax_steps = 1\n",
                corpus.display()
            ),
        )
        .unwrap()
    };
    write_config();
    for (lines, needle) in [
        (
            "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}\n",
            "no assistant message",
        ),
        ("{\"text\": \"hello\"}\n", "no \"messages\" list"),
        (
            "{\"messages\": [{\"role\": \"robot\", \"content\": \"hi\"}]}\n",
            "role \"robot\"",
        ),
    ] {
        std::fs::write(&corpus, lines.repeat(5)).unwrap();
        let out = tinygpt(&[
            "train",
            "--config",
            &config.display().to_string(),
            "--out",
            &scratch.str("run"),
        ]);
        assert_clean_error(&out, needle);
    }
}

#[test]
fn exports_carry_the_role_tokens_and_the_chat_template() {
    let runs = chat_runs("chat-export");
    let chat = Tokenizer::load(&runs.chat.join("tokenizer.json")).unwrap();
    let (hf, gguf) = (runs.scratch.str("hf"), runs.scratch.str("model.gguf"));
    let run = runs.chat.display().to_string();
    tinygpt_ok(&["export", "--run", &run, "--format", "hf", "--out", &hf]);
    tinygpt_ok(&["export", "--run", &run, "--format", "gguf", "--out", &gguf]);
    let messages = [
        tinygpt_data::chat::Message {
            role: Role::System,
            content: "be brief".into(),
        },
        tinygpt_data::chat::Message {
            role: Role::User,
            content: "what comes after 41?".into(),
        },
    ];
    let ours = tinygpt_data::chat::prompt_ids(&chat, &messages).unwrap();
    let Some(python) = python_with(&["transformers", "gguf"]) else {
        return;
    };
    let script = r#"
import json, sys
import numpy as np
from transformers import AutoTokenizer
import gguf
hf, path = sys.argv[1], sys.argv[2]
tok = AutoTokenizer.from_pretrained(hf)
messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "what comes after 41?"}]
ids = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
if isinstance(ids, dict) or hasattr(ids, "input_ids"):
    ids = ids["input_ids"]
reader = gguf.GGUFReader(path)
def field(name):
    f = reader.fields[name]
    return f.parts[f.data[0]]
names = ["<|endoftext|>", "<|system_start|>", "<|system_end|>", "<|user_start|>", "<|user_end|>", "<|assistant_start|>", "<|assistant_end|>"]
tokens = reader.fields["tokenizer.ggml.tokens"]
texts = [bytes(tokens.parts[i]).decode() for i in tokens.data]
types = [int(reader.fields["tokenizer.ggml.token_type"].parts[i][0]) for i in reader.fields["tokenizer.ggml.token_type"].data]
print(json.dumps({
    "ids": list(map(int, ids)),
    "special": [tok.convert_tokens_to_ids(n) for n in names],
    "eos": tok.eos_token,
    "decoded": tok.decode(ids),
    "gguf_eot": int(field("tokenizer.ggml.eot_token_id")[0]),
    "gguf_template": bytes(field("tokenizer.chat_template")).decode(),
    "gguf_types": [types[texts.index(n)] for n in names],
}))
"#;
    let out = std::process::Command::new(python)
        .args(["-c", script, &hf, &gguf])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let theirs: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        theirs["ids"],
        serde_json::json!(ours),
        "transformers' apply_chat_template"
    );
    let end = chat.end_of_text().unwrap();
    let expected: Vec<u32> = (end..end + 7).collect();
    assert_eq!(theirs["special"], serde_json::json!(expected));
    assert_eq!(theirs["eos"], "<|assistant_end|>");
    assert_eq!(
        theirs["decoded"],
        "<|system_start|>be brief<|system_end|><|user_start|>what comes after 41?<|user_end|><|assistant_start|>"
    );
    assert_eq!(theirs["gguf_eot"], end + 6);
    assert_eq!(theirs["gguf_template"], tinygpt_data::chat::JINJA_TEMPLATE);
    // llama.cpp's CONTROL type (3): matched whole, never split into characters.
    assert_eq!(theirs["gguf_types"], serde_json::json!(vec![3; 7]));
    assert_eq!(CHAT_TOKENS.len(), 6);
}

#[test]
fn the_committed_conversations_are_what_the_generator_writes() {
    let scratch = Scratch::new("chat-data");
    let status = std::process::Command::new("python3")
        .arg(common::workspace_root().join("data/make_chat.py"))
        .args(["--out", &scratch.str("chat")])
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    for split in ["train.jsonl", "val.jsonl"] {
        let committed =
            std::fs::read(common::workspace_root().join("data/chat").join(split)).unwrap();
        let written = std::fs::read(scratch.path("chat").join(split)).unwrap();
        assert!(
            committed == written,
            "data/chat/{split} is not what data/make_chat.py writes"
        );
    }
    // The held-out questions are not in train.
    let questions = |split: &str| -> std::collections::HashSet<String> {
        std::fs::read_to_string(common::workspace_root().join("data/chat").join(split))
            .unwrap()
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                v["messages"][0]["content"].as_str().unwrap().to_string()
            })
            .collect()
    };
    let (train, val) = (questions("train.jsonl"), questions("val.jsonl"));
    assert!(val.len() > 300 && train.is_disjoint(&val));
}
