//! `tinygpt serve`'s limits: hostile requests get their 4xx in OpenAI's error shape and the
//! server keeps serving; a client that hangs up frees its place; an API key is required when
//! given; a full server answers 503; SIGTERM ends streams cleanly and exits 0.

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::server::{Server, openai_client, parse};
use common::{Scratch, train_tiny};
use serde_json::{Value, json};

const JSON: &str = "Content-Type: application/json";

/// A plain run (tiny-test: context 16, no end-of-text), trained once for every test here.
fn plain_run() -> &'static Path {
    static RUN: OnceLock<(Scratch, PathBuf)> = OnceLock::new();
    &RUN.get_or_init(|| {
        let scratch = Scratch::new("serve-limits");
        let plain = scratch.path("plain");
        train_tiny(&plain.display().to_string(), &[]);
        (scratch, plain)
    })
    .1
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
    let server = Server::start(plain_run(), &["--max-tokens", "1000"]);
    let post = |body: &str| server.post("/v1/completions", body);
    let chat = |body: &str| server.post("/v1/chat/completions", body);
    let long_prompt = format!(r#"{{"prompt": "{}"}}"#, "ROMEO ".repeat(10));
    // (what, the response, its status, what its message says)
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
            post(&long_prompt),
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
            chat(r#"{"messages": [{"role": "bot", "content": "x"}]}"#),
            400,
            "\"bot\"",
        ),
        (
            "no messages",
            chat(r#"{"messages": []}"#),
            400,
            "at least one",
        ),
        (
            "10 MB body",
            server.request("POST", "/v1/completions", &[JSON], &vec![b' '; 10 << 20]),
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
    let server = Server::start(plain_run(), &["--api-key", "sekrit"]);
    let body = br#"{"prompt": "A", "max_tokens": 3}"#;
    let json = JSON;
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
    let server = Server::start(plain_run(), &["--max-in-flight", "1"]);
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
    let mut server = Server::start(plain_run(), &["--grace-seconds", "0.3"]);
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
    let server = Server::start(plain_run(), &[]);
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
