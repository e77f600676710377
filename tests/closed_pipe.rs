//! Every subcommand with its standard output closed before it writes (`tinygpt runs | head
//! -0`, a reader that went away), then with standard error closed too (`tinygpt train 2>&1 |
//! head`): no panic, no "internal error", and exit 0, since the work is done before the
//! output is printed (a run saved, a file exported); the rest of the output simply has
//! nowhere to go (README, "What tinygpt promises").

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use common::runs::*;
use common::*;

/// `tinygpt ARGS` with a standard output (and with `stderr_too` a standard error) whose
/// reading end is already closed.
fn into_closed_pipe(args: &[&str], stderr_too: bool) -> std::process::Output {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let mut command = tinygpt_command(args);
    if stderr_too {
        command.stderr(writer.try_clone().unwrap());
    }
    command.stdout(writer).output().unwrap()
}

/// The subcommands `tinygpt --help` lists.
fn subcommands() -> BTreeSet<String> {
    let help = stdout(&tinygpt_ok(&["--help"]));
    help.lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .map(String::from)
        .collect()
}

#[test]
fn every_subcommand_ends_cleanly_when_its_reader_went_away() {
    let scratch = Scratch::new("closed-pipe");
    let run = scratch.str("run");
    run_ok(&tiny(&run, &[]));
    let at = |name: &str| scratch.str(name);
    let (exported, imported, trained) = (at("exported.safetensors"), at("imported"), at("trained"));
    let train = tiny(&trained, &[]);
    let train: Vec<&str> = train.iter().map(String::as_str).collect();
    let tiny_config = "configs/tiny-test.toml";
    let scratch_dir = scratch.0.to_string_lossy().into_owned();
    let (plot, report) = (at("loss.png"), at("report.html"));
    let chats = common::chat::chat_runs("closed-pipe-chat");
    let (chat_run, chat_val) = (
        chats.chat.display().to_string(),
        chats.val.display().to_string(),
    );
    let commands: Vec<Vec<&str>> = vec![
        train,
        vec!["sample", "--run", &run, "--max-new-tokens", "300"],
        vec!["params", "--config", tiny_config],
        vec![
            "attention",
            "--run",
            &run,
            "--prompt",
            "To be",
            "--format",
            "text",
        ],
        vec![
            "attention",
            "--run",
            &run,
            "--prompt",
            "To be",
            "--format",
            "json",
        ],
        vec![
            "bench",
            "--config",
            tiny_config,
            "--steps",
            "1",
            "--warmup",
            "0",
            "--sample-tokens",
            "8",
        ],
        vec![
            "bench",
            "--config",
            tiny_config,
            "--steps",
            "1",
            "--warmup",
            "0",
            "--json",
        ],
        vec!["eval", "--run", &run],
        vec!["eval", "--run", &run, "--json"],
        vec!["plot", "--run", &run, "--out", &plot],
        vec!["report", "--run", &run, "--out", &report],
        vec!["export", "--run", &run, "--out", &exported],
        vec!["import", "--weights", &exported, "--out", &imported],
        vec!["runs", &scratch_dir],
        vec!["tokenize", "--config", tiny_config],
        vec!["tokenize", "--config", tiny_config, "--json"],
        vec!["devices"],
        vec!["devices", "--json"],
        vec!["chat", "--run", &chat_run, "--eval", &chat_val],
        vec!["chat", "--run", &chat_run, "--max-tokens", "4"],
    ];
    let mut tested: BTreeSet<String> = commands.iter().map(|c| c[0].to_string()).collect();
    // `serve` runs until it is stopped: it must serve, and stop with 0, whatever its output.
    for stderr_too in [false, true] {
        serves_and_stops_into_a_closed_pipe(&run, stderr_too);
    }
    tested.insert("serve".into());
    assert_eq!(tested, subcommands(), "a subcommand is missing here");
    for args in &commands {
        let out = into_closed_pipe(args, false);
        let err = stderr(&out);
        assert!(
            !err.contains("internal error") && !err.contains("panicked"),
            "{args:?}:\n{err}"
        );
        assert_eq!(out.status.code(), Some(0), "{args:?}:\n{err}");
    }
    // `tinygpt train 2>&1 | head`: standard error closed too. Nothing can be read from it, so
    // the exit code says it all (a panic there would abort: 134).
    std::fs::remove_dir_all(&trained).unwrap();
    std::fs::remove_dir_all(&imported).unwrap();
    for path in [&exported, &plot, &report] {
        std::fs::remove_file(path).unwrap();
    }
    for args in &commands {
        let out = into_closed_pipe(args, true);
        assert_eq!(out.status.code(), Some(0), "{args:?}, stderr closed too");
    }
    // The work was done although nobody read the output.
    assert!(Path::new(&trained).join("model.safetensors").is_file());
    assert!(Path::new(&exported).is_file() && Path::new(&plot).is_file());
    assert!(Path::new(&imported).join("model.safetensors").is_file());
    assert!(Path::new(&report).is_file());
}

/// `tinygpt serve` with its output closed (and its standard error with `stderr_too`) still
/// answers, and SIGTERM still ends it with 0.
fn serves_and_stops_into_a_closed_pipe(run: &str, stderr_too: bool) {
    let port = 20_000 + (std::process::id() % 20_000) as u16 + u16::from(stderr_too);
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let mut command = tinygpt_command(&["serve", "--run", run, "--port", &port.to_string()]);
    if stderr_too {
        command.stderr(writer.try_clone().unwrap());
    } else {
        command.stderr(std::process::Stdio::null());
    }
    let mut child = command.stdout(writer).spawn().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let address = format!("127.0.0.1:{port}");
    let answered = loop {
        if let Ok(mut socket) = std::net::TcpStream::connect(&address) {
            use std::io::{Read, Write};
            socket
                .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .unwrap();
            let mut answer = String::new();
            let _ = socket.read_to_string(&mut answer);
            break answer.starts_with("HTTP/1.1 200");
        }
        assert!(std::time::Instant::now() < deadline, "serve never listened");
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert!(answered, "serve did not answer /health");
    signal(&child, "TERM");
    let status = child.wait().unwrap();
    assert_eq!(
        status.code(),
        Some(0),
        "serve, stderr closed too: {stderr_too}"
    );
}
