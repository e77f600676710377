//! `tinygpt serve`: the official `openai` client gets what `tinygpt sample` gives (greedy, seeded,
//! stop strings, max_tokens, n, streaming or not); 32 clients at once all get their own answers
//! in bounded memory; hostile requests get their 4xx and the server keeps serving; an API key
//! is required when given; SIGTERM ends streams cleanly and exits 0.

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::chat::{ChatRuns, chat_runs};
use common::server::{Server, openai_client, parse};
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

/// Asserts an OpenAI-shaped error with `status` whose message contains `needle`.
fn assert_error(response: (u16, String), status: u16, needle: &str, what: &str) {
    let (got, body) = response;
    assert_eq!(got, status, "{what}: {body}");
    let value: Value =
        serde_json::from_str(&body).unwrap_or_else(|_| panic!("{what}: not JSON: {body}"));
    let message = value["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(needle),
        "{what}: {message:?} lacks {needle:?}"
    );
    assert!(value["error"]["type"].is_string(), "{what}: {body}");
}

#[test]
fn hostile_requests_get_their_4xx_and_the_server_keeps_serving() {
    let runs = runs();
    let server = Server::start(&runs.plain, &["--max-tokens", "1000"]);
    let post = |body: &str| server.post("/v1/completions", body);
    let cases: Vec<(&str, (u16, String), u16, &str)> = vec![
        (
            "malformed JSON",
            post("{\"prompt\": "),
            400,
            "not valid JSON",
        ),
        ("not an object", post("[1, 2]"), 400, "JSON object"),
        (
            "NaN",
            post(r#"{"prompt": "a", "temperature": NaN}"#),
            400,
            "not valid JSON",
        ),
        (
            "wrong type",
            post(r#"{"prompt": "a", "max_tokens": "many"}"#),
            400,
            "max_tokens",
        ),
        (
            "wrong prompt type",
            post(r#"{"prompt": {"a": 1}}"#),
            400,
            "prompt",
        ),
        (
            "negative temperature",
            post(r#"{"prompt": "a", "temperature": -1}"#),
            400,
            "temperature",
        ),
        (
            "huge temperature",
            post(r#"{"prompt": "a", "temperature": 1e300}"#),
            400,
            "temperature",
        ),
        (
            "max_tokens 10^12",
            post(r#"{"prompt": "a", "max_tokens": 1000000000000}"#),
            400,
            "at most 1000",
        ),
        (
            "max_tokens 0",
            post(r#"{"prompt": "a", "max_tokens": 0}"#),
            400,
            "at least 1",
        ),
        (
            "negative max_tokens",
            post(r#"{"prompt": "a", "max_tokens": -5}"#),
            400,
            "max_tokens",
        ),
        (
            "top_p 0",
            post(r#"{"prompt": "a", "top_p": 0}"#),
            400,
            "top_p",
        ),
        (
            "n 100",
            post(r#"{"prompt": "a", "n": 100}"#),
            400,
            "between 1 and 8",
        ),
        (
            "five stops",
            post(r#"{"prompt": "a", "stop": ["a","b","c","d","e"]}"#),
            400,
            "at most 4",
        ),
        (
            "unknown model",
            post(r#"{"model": "gpt-4", "prompt": "a"}"#),
            404,
            "does not exist",
        ),
        (
            "prompt past the context",
            post(&format!(r#"{{"prompt": "{}"}}"#, "ROMEO ".repeat(10))),
            400,
            "at most 16",
        ),
        (
            "unknown characters",
            post(r#"{"prompt": "\u2713"}"#),
            400,
            "does not know",
        ),
        (
            "bad role",
            server.post(
                "/v1/chat/completions",
                r#"{"messages": [{"role": "bot", "content": "x"}]}"#,
            ),
            400,
            "\"bot\"",
        ),
        (
            "no messages",
            server.post("/v1/chat/completions", r#"{"messages": []}"#),
            400,
            "at least one",
        ),
        (
            "10 MB body",
            server.request(
                "POST",
                "/v1/completions",
                &["Content-Type: application/json"],
                &vec![b' '; 10 << 20],
            ),
            413,
            "too large",
        ),
        (
            "no such endpoint",
            server.request("GET", "/v2/everything", &[], b""),
            404,
            "no such endpoint",
        ),
        (
            "wrong method",
            server.request("GET", "/v1/completions", &[], b""),
            405,
            "wrong method",
        ),
    ];
    for (what, response, status, needle) in cases {
        assert_error(response, status, needle, what);
        assert!(server.healthy(), "the server stopped after: {what}");
    }

    // A client that hangs up mid-stream: its sequence is dropped, the next request is served.
    let (socket, first) = server.long_stream("ROMEO:");
    assert!(
        String::from_utf8_lossy(&first).starts_with("HTTP/1.1 200"),
        "the stream started"
    );
    drop(socket);
    let (status, body) = post(r#"{"prompt": "ROMEO:", "max_tokens": 8, "temperature": 0}"#);
    assert_eq!(status, 200, "{body}");
    let value: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        value["choices"][0]["text"]
            .as_str()
            .unwrap()
            .chars()
            .count(),
        8
    );
}

#[test]
fn an_api_key_is_required_when_given() {
    let runs = runs();
    let server = Server::start(&runs.plain, &["--api-key", "sekrit"]);
    let body = br#"{"prompt": "A", "max_tokens": 3}"#;
    let json = "Content-Type: application/json";
    for (what, headers) in [
        ("no key", vec![json]),
        ("wrong key", vec![json, "Authorization: Bearer sekrit2"]),
        ("not bearer", vec![json, "Authorization: sekrit"]),
    ] {
        let response = server.request("POST", "/v1/completions", &headers, body);
        assert_error(response, 401, "API key", what);
    }
    assert_eq!(server.request("GET", "/v1/models", &[], b"").0, 401);
    let (status, out) = server.request(
        "POST",
        "/v1/completions",
        &[json, "Authorization: Bearer sekrit"],
        body,
    );
    assert_eq!(status, 200, "{out}");
    assert!(server.healthy(), "health needs no key");
    if let Some(results) = openai_client(&server, Some("sekrit"), &json!([{"kind": "models"}]), 1) {
        assert_eq!(results[0]["ids"], json!(["plain"]));
    }
}

#[test]
fn a_full_server_answers_503_and_serves_again_when_a_place_frees() {
    let runs = runs();
    let server = Server::start(&runs.plain, &["--max-in-flight", "1"]);
    let (long, _) = server.long_stream("A");
    let busy = server.post("/v1/completions", r#"{"prompt": "B", "max_tokens": 2}"#);
    assert_error(busy, 503, "busy", "a second request");
    drop(long);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, _) = server.post("/v1/completions", r#"{"prompt": "B", "max_tokens": 2}"#);
        if status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "the place never freed");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn sigterm_ends_streams_cleanly_and_exits_zero() {
    let runs = runs();
    let mut server = Server::start(&runs.plain, &["--grace-seconds", "0.3"]);
    let (mut stream, first) = server.long_stream("A");
    common::runs::signal(&server.child, "TERM");
    let mut rest = Vec::new();
    stream.read_to_end(&mut rest).unwrap();
    let mut all = first;
    all.extend(rest);
    let (status, body) = parse(&all);
    assert_eq!(status, 200);
    assert!(body.trim_end().ends_with("data: [DONE]"), "{body}");
    assert!(
        body.contains("\"finish_reason\":\"length\""),
        "cut as length: {body}"
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let code = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "serve did not exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(code.success(), "serve exited with {code:?}");
}

#[test]
fn the_chat_page_is_self_contained() {
    let runs = runs();
    let server = Server::start(&runs.plain, &[]);
    let (status, page) = server.request("GET", "/", &[], b"");
    assert_eq!(status, 200);
    assert!(page.contains("<title>tinygpt chat</title>"), "{page}");
    assert!(page.contains("/v1/chat/completions") && page.contains("textContent"));
    for forbidden in [
        "http://",
        "https://",
        "innerHTML",
        "outerHTML",
        "insertAdjacentHTML",
        "eval(",
    ] {
        assert!(!page.contains(forbidden), "the page uses {forbidden}");
    }
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
