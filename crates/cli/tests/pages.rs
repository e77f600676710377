//! The HTML pages (`attention --format html`, `report`, `report --watch`), opened in a real
//! headless Chromium by `tests/browser/pages.mjs` (puppeteer-core over the system browser).
//! `.ci/run` installs both; elsewhere these tests say what is missing and pass without the
//! browser part.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::runs::*;
use common::*;

/// The browser driver's directory, when Chromium and its node modules are installed.
fn browser() -> Option<PathBuf> {
    let driver = workspace_root().join("crates/cli/tests/browser");
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let ready = Path::new(&chromium).is_file()
        && driver.join("node_modules/puppeteer-core").is_dir()
        && Command::new("node").arg("--version").output().is_ok();
    if ready {
        return Some(driver);
    }
    let how = "apt-get install chromium nodejs npm; npm ci --prefix crates/cli/tests/browser";
    if std::env::var_os("CI").is_some() {
        panic!("CI must run the browser tests: {how} (.ci/run does)");
    }
    eprintln!("skipping the browser checks: {how}");
    None
}

/// `node pages.mjs MODE ARGS...`, which must succeed; returns its JSON summary.
fn check_in_browser(driver: &Path, mode: &str, args: &[&str]) -> serde_json::Value {
    let out = Command::new("node")
        .arg(driver.join("pages.mjs"))
        .arg(mode)
        .args(args)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "browser check {mode} failed:\n{}{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(text.trim()).unwrap()
}

/// Screenshots go where CI keeps artifacts: target/tmp/screenshots.
fn screenshot(name: &str) -> String {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name).display().to_string()
}

/// The data block of a page, parsed.
fn page_data(path: &str) -> serde_json::Value {
    let page = std::fs::read_to_string(path).unwrap();
    let start = page.find(r#"id="tinygpt-data">"#).unwrap() + r#"id="tinygpt-data">"#.len();
    let end = start + page[start..].find("</script>").unwrap();
    serde_json::from_str(&page[start..end]).unwrap()
}

#[test]
fn attention_page_shows_the_models_values() {
    let scratch = Scratch::new("pages-attention");
    let run = scratch.str("run");
    run_ok(&tiny(
        &run,
        &[
            "--set",
            "train.max_steps=30",
            "--set",
            "train.eval_interval=10",
        ],
    ));
    let prompt = "ROMEO: But soft, what light";
    let (html, json) = (scratch.str("a.html"), scratch.str("a.json"));
    let out = tinygpt_ok(&[
        "attention",
        "--run",
        &run,
        "--prompt",
        prompt,
        "--format",
        "html",
        "--out",
        &html,
    ]);
    assert!(
        stderr(&out).contains("4 heads, 16 tokens"),
        "{}",
        stderr(&out)
    );
    tinygpt_ok(&[
        "attention",
        "--run",
        &run,
        "--prompt",
        prompt,
        "--format",
        "json",
        "--out",
        &json,
    ]);
    // The page alone: self-contained (no src= or href= leaving it) and small.
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(!page.contains("src=\"http") && !page.contains("href=\"http"));
    assert!(page.len() < 64 * 1024, "{} bytes for 16 tokens", page.len());
    let data = page_data(&html);
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(data["explorer"]["tokens"], expected["tokens"]);
    assert_eq!(data["explorer"]["heads"].as_array().unwrap().len(), 4);
    // The JSON now carries the scores of the visible keys: row q has q + 1.
    let scores = expected["patterns"][0]["scores"].as_array().unwrap();
    assert!(
        scores
            .iter()
            .enumerate()
            .all(|(q, row)| row.as_array().unwrap().len() == q + 1)
    );

    // An existing page is kept without --force.
    let again = tinygpt(&[
        "attention",
        "--run",
        &run,
        "--prompt",
        prompt,
        "--format",
        "html",
        "--out",
        &html,
    ]);
    assert_clean_error(&again, "--force");
    let no_out = tinygpt(&[
        "attention",
        "--run",
        &run,
        "--prompt",
        prompt,
        "--format",
        "html",
    ]);
    assert_clean_error(&no_out, "--out FILE.html");

    if let Some(driver) = browser() {
        let shot = screenshot("attention.png");
        let result = check_in_browser(&driver, "attention", &[&html, &json, &shot]);
        assert_eq!(result["tokens"], 16);
        assert_eq!(result["compared"], 4 * 4 * 16);
        assert!(std::fs::metadata(&shot).unwrap().len() > 10_000);
    }
}

/// The page budget: a 64-token prompt on the default model (4 layers × 4 heads) stays within a
/// few hundred KB. Computed from the encoding, without training the default model: the scores
/// of one head are 64·65/2 f32 in base64.
#[test]
fn a_64_token_page_on_the_default_model_fits_the_budget() {
    let scratch = Scratch::new("pages-budget");
    let run = scratch.str("run");
    run_ok(&tiny(
        &run,
        &[
            "--set",
            "model.n_layer=4",
            "--set",
            "model.n_head=4",
            "--set",
            "model.block_size=64",
            "--set",
            "train.max_steps=2",
        ],
    ));
    let html = scratch.str("a.html");
    let prompt: String = "To be, or not to be, that is the question: Whether 'tis nobler in th"
        .chars()
        .take(64)
        .collect();
    tinygpt_ok(&[
        "attention",
        "--run",
        &run,
        "--prompt",
        &prompt,
        "--format",
        "html",
        "--out",
        &html,
    ]);
    let size = std::fs::metadata(&html).unwrap().len();
    assert!(size < 300 * 1024, "{size} bytes");
    assert_eq!(
        page_data(&html)["explorer"]["heads"]
            .as_array()
            .unwrap()
            .len(),
        16
    );
}

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

/// Corpus text with markup in it (a token, the sample prompt, the config) is shown as text:
/// no element is made from it and no script runs.
#[test]
fn hostile_text_is_shown_not_executed() {
    let scratch = Scratch::new("pages-hostile");
    let hostile = "</script><img src=x onerror=alert(1)>";
    let corpus = scratch.path("corpus.txt");
    std::fs::write(
        &corpus,
        format!("{hostile} plain words here.\n").repeat(300),
    )
    .unwrap();
    let run = scratch.str("run");
    run_ok(&tiny(
        &run,
        &[
            "--set",
            &format!("data.corpus={}", corpus.display()),
            "--set",
            &format!("train.sample_prompt={hostile}"),
            "--set",
            "model.block_size=48",
        ],
    ));
    let (page, report) = (scratch.str("a.html"), scratch.str("r.html"));
    tinygpt_ok(&[
        "attention",
        "--run",
        &run,
        "--prompt",
        hostile,
        "--format",
        "html",
        "--out",
        &page,
    ]);
    tinygpt_ok(&["report", "--run", &run, "--out", &report]);
    for path in [&page, &report] {
        let html = std::fs::read_to_string(path).unwrap();
        assert!(!html.contains("<img"), "{path} has the text as markup");
        let shown = shown_text(&page_data(path));
        assert!(shown.starts_with(hostile), "{path} shows {shown:?}");
    }
    if let Some(driver) = browser() {
        check_in_browser(&driver, "hostile", &[&page, hostile]);
        check_in_browser(&driver, "hostile", &[&report, hostile]);
    }
}

/// The explorer's tokens joined, with the visible-space marks turned back into spaces.
fn shown_text(data: &serde_json::Value) -> String {
    data["explorer"]["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().replace('␣', " "))
        .collect()
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
