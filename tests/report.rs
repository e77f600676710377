//! `tinygpt report` and `report --watch`, opened in a real headless Chromium (see
//! `common/browser.rs`).

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::browser::*;
use common::runs::*;
use common::*;

#[test]
fn report_shows_the_run() {
    let scratch = Scratch::new("pages-report");
    let run = scratch.str("run");
    run_ok(&tiny(
        &run,
        &[
            "--set",
            "train.max_steps=30",
            "--set",
            "train.eval_interval=10",
            "--set",
            "train.sample_tokens=30",
        ],
    ));
    let html = scratch.str("report.html");
    let out = tinygpt_ok(&["report", "--run", &run, "--out", &html]);
    assert!(stderr(&out).contains("step 30"), "{}", stderr(&out));
    let data = page_data(&html);
    let report = &data["report"];
    assert_eq!(report["state"], "finished");
    assert_eq!(
        report["curves"]["step"].as_array().unwrap().last().unwrap(),
        30
    );
    assert!(report["reload_seconds"].is_null());
    let sample = &report["sample"];
    assert_eq!(sample["prompt"], "\n");
    // The explorer covers the sample: its prompt and then the continuation, up to the context.
    let tokens = data["explorer"]["tokens"].as_array().unwrap();
    assert_eq!(tokens.len(), 16);
    assert_eq!(tokens[0], "⏎");
    // The greedy continuation is the one `sample --temperature 0` writes.
    let sampled = tinygpt_ok(&[
        "sample",
        "--run",
        &run,
        "--prompt",
        "\n",
        "--temperature",
        "0",
        "--max-new-tokens",
        "30",
    ]);
    assert_eq!(
        stdout(&sampled).trim_end(),
        format!("\n{}", sample["continuation"].as_str().unwrap()).trim_end()
    );

    // A second report replaces the first; a file the user wrote is kept.
    tinygpt_ok(&["report", "--run", &run, "--out", &html]);
    let mine = scratch.str("notes.html");
    std::fs::write(&mine, "<p>my notes</p>").unwrap();
    assert_clean_error(
        &tinygpt(&["report", "--run", &run, "--out", &mine]),
        "--force",
    );
    assert_eq!(std::fs::read_to_string(&mine).unwrap(), "<p>my notes</p>");

    if let Some(driver) = browser() {
        let shot = screenshot("report.png");
        let result = check_in_browser(&driver, "report", &[&html, &shot]);
        assert_eq!(result["tokens"], 16);
    }
}

/// A run without weights (here: removed) still gets its page, which says why the sample and
/// the explorer are missing.
#[test]
fn report_without_weights_says_why() {
    let scratch = Scratch::new("pages-no-weights");
    let run = scratch.str("run");
    run_ok(&tiny(&run, &[]));
    std::fs::remove_file(scratch.path("run/model.safetensors")).unwrap();
    std::fs::remove_dir_all(scratch.path("run/checkpoints")).unwrap();
    let html = scratch.str("r.html");
    let out = tinygpt_ok(&["report", "--run", &run, "--out", &html]);
    assert!(
        stderr(&out).contains("note: no sample or attention"),
        "{}",
        stderr(&out)
    );
    let data = page_data(&html);
    assert!(data["explorer"].is_null() && data["report"]["sample"].is_null());
    assert_eq!(data["report"]["state"], "broken");
    assert!(
        data["report"]["notes"][0]
            .as_str()
            .unwrap()
            .contains("no weights yet")
    );
    assert_eq!(
        data["report"]["curves"]["step"]
            .as_array()
            .unwrap()
            .last()
            .unwrap(),
        4
    );
}

/// `report --watch` follows a training run: the page it writes gets later steps (and reloads
/// itself in the browser); when the run stops, the last page is final and the watch ends.
#[test]
fn report_watch_follows_training() {
    let scratch = Scratch::new("pages-watch");
    let run = scratch.str("run");
    let html = scratch.str("live.html");
    // The watch starts first and waits for the run to appear.
    let mut watch = tinygpt_command(&[
        "report",
        "--run",
        &run,
        "--out",
        &html,
        "--watch",
        "--interval",
        "1",
    ])
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let (mut training, _rest) = spawn_long(
        &run,
        &[
            "--set",
            "train.eval_interval=10",
            "--set",
            "train.checkpoint_interval=10",
        ],
    );
    // The page's last logged step grows while training goes on.
    let step_of = |path: &str| -> Option<u64> {
        let text = std::fs::read_to_string(path).ok()?;
        text.contains("tinygpt-data").then(|| {
            page_data(path)["report"]["curves"]["step"]
                .as_array()
                .and_then(|s| s.last().and_then(|v| v.as_u64()))
                .unwrap_or(0)
        })
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut seen = Vec::new();
    while seen.len() < 3 && Instant::now() < deadline {
        if let Some(step) = step_of(&html)
            && seen.last().is_none_or(|&s| step > s)
        {
            seen.push(step);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(seen.len() >= 3, "page steps seen: {seen:?}");
    let data = page_data(&html);
    assert_eq!(data["report"]["reload_seconds"], 1);
    assert_eq!(data["report"]["state"], "running");
    if let Some(driver) = browser() {
        let result = check_in_browser(&driver, "watch", &[&html, "60"]);
        assert!(result["steps"].as_array().unwrap().len() >= 3);
    }
    // Ctrl-C stops the training with a checkpoint; the watch writes a final page and ends.
    signal(&training, "INT");
    assert_eq!(training.wait().unwrap().code(), Some(130));
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = watch.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the watch did not end after the run stopped"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(status.success());
    let data = page_data(&html);
    assert_eq!(data["report"]["state"], "stopped");
    assert!(data["report"]["reload_seconds"].is_null());
    assert!(data["explorer"].is_object());
}
