//! `tinygpt serve`: the official `openai` client gets what `tinygpt sample` gives (greedy, seeded,
//! stop strings, max_tokens, n, streaming or not); 32 clients at once all get their own answers
//! in bounded memory; the chat page streams a reply in a browser. Its limits: serve_limits.rs.

mod common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use common::chat::{ChatRuns, chat_runs};
use common::server::{Server, openai_client};
use common::{Scratch, stdout, tinygpt_ok, train_tiny};
use serde_json::{Value, json};

/// A plain run (tiny-test, context 16, no end-of-text) and a chat run, trained once for every
/// test of this file.
struct Runs {
    plain: PathBuf,
    chats: ChatRuns,
    _scratch: Scratch,
}

fn runs() -> &'static Runs {
    static RUNS: OnceLock<Runs> = OnceLock::new();
    RUNS.get_or_init(|| {
        let scratch = Scratch::new("serve");
        let plain = scratch.path("plain");
        train_tiny(&plain.display().to_string(), &[]);
        Runs {
            plain,
            chats: chat_runs("serve-chat"),
            _scratch: scratch,
        }
    })
}

/// What `tinygpt sample` generates after `prompt` (its stdout without the prompt and the
/// final newline).
fn sample(run: &Path, prompt: &str, extra: &[&str]) -> String {
    let run = run.display().to_string();
    let mut args = vec!["sample", "--run", &run, "--prompt", prompt];
    args.extend_from_slice(extra);
    let out = stdout(&tinygpt_ok(&args));
    out.strip_prefix(prompt)
        .and_then(|s| s.strip_suffix('\n'))
        .unwrap_or_else(|| panic!("sample printed {out:?}"))
        .to_string()
}

fn completion(args: Value, stream: bool) -> Value {
    json!({"kind": "completion", "stream": stream, "args": args})
}

fn text(result: &Value) -> &str {
    result["texts"][0]
        .as_str()
        .unwrap_or_else(|| panic!("{result}"))
}

#[test]
fn the_openai_client_gets_what_sample_gives() {
    let runs = runs();
    let server = Server::start(&runs.plain, &[]);
    let greedy = json!({"model": "plain", "prompt": "ROMEO:", "max_tokens": 24, "temperature": 0});
    let seeded = json!({"model": "plain", "prompt": "ROMEO:", "max_tokens": 24, "temperature": 1.0, "seed": 7});
    let requests = json!([
        completion(greedy.clone(), false),
        completion(greedy.clone(), true),
        completion(seeded.clone(), false),
        completion(seeded.clone(), true),
        completion(json!({"model": "plain", "prompt": "ROMEO:", "max_tokens": 24, "temperature": 1.0, "seed": 7, "n": 3}), false),
        completion(json!({"model": "plain", "prompt": "ROMEO:", "max_tokens": 5, "temperature": 0}), false),
        {"kind": "models"},
    ]);
    let Some(results) = openai_client(&server, None, &requests, 1) else {
        return;
    };
    let expected_greedy = sample(
        &runs.plain,
        "ROMEO:",
        &["--temperature", "0", "--max-new-tokens", "24"],
    );
    assert_eq!(text(&results[0]), expected_greedy);
    assert_eq!(text(&results[1]), expected_greedy, "streamed");
    assert_eq!(results[0]["finish_reasons"][0], "length");
    assert_eq!(results[0]["usage"]["completion_tokens"], 24);
    assert_eq!(results[0]["usage"]["prompt_tokens"], 6);
    assert_eq!(results[0]["object"], "text_completion");
    let expected_seeded = sample(
        &runs.plain,
        "ROMEO:",
        &[
            "--temperature",
            "1.0",
            "--seed",
            "7",
            "--max-new-tokens",
            "24",
        ],
    );
    assert_eq!(
        text(&results[2]),
        expected_seeded,
        "seed 7 draws as sample --seed 7 does"
    );
    assert_eq!(text(&results[3]), expected_seeded, "streamed");
    assert_ne!(expected_seeded, expected_greedy);
    let choices = results[4]["texts"].as_array().unwrap();
    assert_eq!(choices.len(), 3);
    assert_eq!(
        choices[0],
        expected_seeded.as_str(),
        "choice 0 is the n = 1 draw"
    );
    assert!(
        choices[1] != choices[0] || choices[2] != choices[0],
        "{choices:?}"
    );
    assert_eq!(results[5]["usage"]["completion_tokens"], 5);
    assert_eq!(text(&results[5]), &expected_greedy[..5]);
    assert_eq!(results[6]["ids"], json!(["plain"]));

    // A stop string: the text right before its first appearance, never the string itself.
    let stop: String = expected_greedy.chars().skip(6).take(2).collect();
    let args = json!({"model": "plain", "prompt": "ROMEO:", "max_tokens": 24, "temperature": 0, "stop": [stop]});
    let stopped = openai_client(
        &server,
        None,
        &json!([completion(args.clone(), false), completion(args, true)]),
        1,
    )
    .unwrap();
    let before = &expected_greedy[..expected_greedy.find(&stop).unwrap()];
    assert_eq!(
        before,
        sample(
            &runs.plain,
            "ROMEO:",
            &[
                "--temperature",
                "0",
                "--max-new-tokens",
                "24",
                "--stop",
                &stop
            ]
        )
    );
    for result in &stopped {
        assert_eq!(text(result), before, "stop {stop:?}");
        assert_eq!(result["finish_reasons"][0], "stop");
    }
}

#[test]
fn chat_completions_render_the_template_and_stop_at_the_turns_end() {
    let runs = runs();
    let server = Server::start(&runs.chats.chat, &["--model-name", "chatty"]);
    let question = "what comes after 41?";
    let args = json!({"model": "chatty", "messages": [{"role": "user", "content": question}], "max_tokens": 12, "temperature": 0});
    let requests = json!([
        {"kind": "chat", "args": args},
        {"kind": "chat", "stream": true, "args": args},
    ]);
    let Some(results) = openai_client(&server, None, &requests, 1) else {
        return;
    };
    let prompt = format!("<|user_start|>{question}<|user_end|><|assistant_start|>");
    let expected = sample(
        &runs.chats.chat,
        &prompt,
        &[
            "--temperature",
            "0",
            "--max-new-tokens",
            "12",
            "--stop",
            "<|assistant_end|>",
        ],
    );
    assert_eq!(text(&results[0]), expected);
    assert_eq!(text(&results[1]), expected, "streamed");
    assert_eq!(results[0]["object"], "chat.completion");
    assert_eq!(
        results[0]["usage"]["prompt_tokens"],
        question.len() + 3,
        "one token per role token"
    );
    // A plain run has no role tokens: a chat request is a 400 that says so.
    let plain = Server::start(&runs.plain, &[]);
    let (status, body) = plain.post(
        "/v1/chat/completions",
        r#"{"messages": [{"role": "user", "content": "hi"}]}"#,
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("no chat role tokens"), "{body}");
}

#[test]
fn thirty_two_clients_at_once_all_get_their_own_answers_in_bounded_memory() {
    let runs = runs();
    let server = Server::start(&runs.plain, &[]);
    let prompts = [
        "A", "B", "C", "D", "E", "F", "G", "H", "I", "K", "L", "M", "N", "O", "P", "R", "S", "T",
        "W", "Y", "a", "b", "c", "d", "e", "f", "g", "h", "i", "l", "m", "n",
    ];
    let requests: Vec<Value> = prompts
        .iter()
        .enumerate()
        .map(|(i, p)| {
            completion(
                json!({"model": "plain", "prompt": p, "max_tokens": 40 + i, "temperature": 0}),
                i % 2 == 0,
            )
        })
        .collect();
    let requests = Value::Array(requests);
    let Some(alone) = openai_client(&server, None, &requests, 1) else {
        return;
    };
    let together = openai_client(&server, None, &requests, 32).unwrap();
    let first_rss = server.rss_kb();
    for _ in 0..3 {
        let again = openai_client(&server, None, &requests, 32).unwrap();
        assert_eq!(again.len(), 32);
        for (a, b) in again.iter().zip(&alone) {
            assert_eq!(a["texts"], b["texts"]);
        }
    }
    for (i, (a, b)) in together.iter().zip(&alone).enumerate() {
        assert_eq!(
            a["texts"], b["texts"],
            "client {i}: batched differs from alone"
        );
        assert_eq!(text(a).chars().count(), 40 + i, "client {i}");
    }
    let grown = server.rss_kb().saturating_sub(first_rss);
    assert!(
        grown < 64 * 1024,
        "memory grew by {grown} kB over 96 more requests"
    );
}

#[test]
fn the_chat_page_streams_a_reply_in_a_browser() {
    let Some(driver) = common::browser::browser() else {
        return;
    };
    let runs = runs();
    let url_of = |server: &Server| format!("http://{}/", server.address);
    // A chat model answers in the chat; a model without role tokens completes the text.
    let chat = Server::start(&runs.chats.chat, &[]);
    let plain = Server::start(&runs.plain, &[]);
    let message = "what comes after 41?";
    let (status, body) = chat.post(
        "/v1/chat/completions",
        &json!({"messages": [{"role": "user", "content": message}], "temperature": 0, "max_tokens": 128}).to_string(),
    );
    assert_eq!(status, 200, "{body}");
    let answer: Value = serde_json::from_str(&body).unwrap();
    let reply = answer["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, body) = plain.post(
        "/v1/completions",
        &json!({"prompt": "ROMEO:", "temperature": 0, "max_tokens": 128}).to_string(),
    );
    assert_eq!(status, 200, "{body}");
    let answer: Value = serde_json::from_str(&body).unwrap();
    let completion = format!("ROMEO:{}", answer["choices"][0]["text"].as_str().unwrap());
    let hostile = "<img src=x onerror=alert(1)>";
    for (server, message, expected, name) in [
        (&chat, message, reply.as_str(), "chat-page-chat.png"),
        (
            &plain,
            "ROMEO:",
            completion.as_str(),
            "chat-page-complete.png",
        ),
    ] {
        let shot = common::browser::screenshot(name);
        let result = common::browser::check_in_browser(
            &driver,
            "chat",
            &[&url_of(server), message, expected, hostile, &shot],
        );
        assert_eq!(result["reply"], expected);
    }
}
