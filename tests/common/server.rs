//! `tinygpt serve` in tests: a server on a free port, plain HTTP/1.1 requests over a socket
//! (so a test controls every byte, hostile ones included), and the official `openai` client as
//! the oracle.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration;

use super::{python_with, tinygpt_command, workspace_root};

/// A running `tinygpt serve`, killed when dropped.
pub struct Server {
    pub child: Child,
    /// `127.0.0.1:PORT`.
    pub address: String,
}

impl Server {
    /// `tinygpt serve --run RUN --port 0 EXTRA...`, once it says where it listens.
    pub fn start(run: &Path, extra: &[&str]) -> Server {
        let run = run.display().to_string();
        let mut args = vec!["serve", "--run", &run, "--port", "0"];
        args.extend_from_slice(extra);
        let mut child = tinygpt_command(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let address = loop {
            let line = lines
                .next()
                .expect("serve ended before it listened")
                .unwrap();
            if let Some(rest) = line.split("at http://").nth(1) {
                break rest.split_whitespace().next().unwrap().to_string();
            }
        };
        std::thread::spawn(move || for _ in lines {});
        Server { child, address }
    }

    pub fn url(&self) -> String {
        format!("http://{}/v1", self.address)
    }

    /// One request; returns the status and the body.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[&str],
        body: &[u8],
    ) -> (u16, String) {
        let mut socket = self.send(method, path, headers, body);
        let mut response = Vec::new();
        // A server that refuses a body before reading all of it may reset the connection
        // once it has answered: what arrived is the answer.
        let _ = socket.read_to_end(&mut response);
        parse(&response)
    }

    /// A JSON POST.
    pub fn post(&self, path: &str, body: &str) -> (u16, String) {
        self.request(
            "POST",
            path,
            &["Content-Type: application/json"],
            body.as_bytes(),
        )
    }

    /// Sends a request and returns the socket, for reading the response as it comes.
    pub fn send(&self, method: &str, path: &str, headers: &[&str], body: &[u8]) -> TcpStream {
        let mut socket = TcpStream::connect(&self.address).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(120)))
            .unwrap();
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: {}\r\n",
            self.address,
            body.len()
        );
        for h in headers {
            head.push_str(h);
            head.push_str("\r\n");
        }
        head.push_str("\r\n");
        socket.write_all(head.as_bytes()).unwrap();
        // A body the server refuses early may never be read to its end (that is its right),
        // so a large one is written on a thread while the answer is read here.
        if body.len() > 1 << 16 {
            let mut writer = socket.try_clone().unwrap();
            let body = body.to_vec();
            std::thread::spawn(move || {
                let _ = writer.write_all(&body);
            });
        } else {
            let _ = socket.write_all(body);
        }
        socket
    }

    /// A long streamed greedy completion of `prompt`, once its first bytes have arrived
    /// (returned with the socket, to read the rest or hang up).
    pub fn long_stream(&self, prompt: &str) -> (TcpStream, Vec<u8>) {
        let body = format!(
            r#"{{"prompt": "{prompt}", "max_tokens": 1000, "temperature": 0, "stream": true}}"#
        );
        let mut socket = self.send(
            "POST",
            "/v1/completions",
            &["Content-Type: application/json"],
            body.as_bytes(),
        );
        let mut first = vec![0u8; 64];
        socket.read_exact(&mut first).unwrap();
        (socket, first)
    }

    /// `GET /health` answers 200.
    pub fn healthy(&self) -> bool {
        self.request("GET", "/health", &[], b"").0 == 200
    }

    /// The server's resident memory in kB.
    pub fn rss_kb(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Status and body of a whole HTTP/1.1 response (chunked bodies joined).
pub fn parse(response: &[u8]) -> (u16, String) {
    let text = String::from_utf8_lossy(response).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let body = if chunked {
        unchunk(body)
    } else {
        body.to_string()
    };
    (status, body)
}

fn unchunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 || rest.len() < size {
            out.push_str(&rest[..size.min(rest.len())]);
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}

/// The `openai` client's results for `requests` (see tests/oracles/openai_client.py), or
/// `None` where no python has the client (never in CI).
pub fn openai_client(
    server: &Server,
    key: Option<&str>,
    requests: &serde_json::Value,
    parallel: usize,
) -> Option<Vec<serde_json::Value>> {
    let python = python_with(&["openai"])?;
    let payload = serde_json::json!({"requests": requests, "parallel": parallel});
    let mut child = std::process::Command::new(python)
        .arg(workspace_root().join("tests/oracles/openai_client.py"))
        .arg(server.url())
        .args(key)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(payload.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the openai client failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(serde_json::from_slice(&out.stdout).unwrap())
}
