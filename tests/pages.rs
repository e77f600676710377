//! `tinygpt attention --format html`, opened in a real headless Chromium (see
//! `common/browser.rs`). `.ci/run` installs the browser; elsewhere these tests check the page
//! files and skip the browser with a note.

mod common;

use common::browser::*;
use common::runs::*;
use common::*;

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
    let out = ok(attention(&run, prompt, "html", &html));
    assert!(
        stderr(&out).contains("4 heads, 16 tokens"),
        "{}",
        stderr(&out)
    );
    ok(attention(&run, prompt, "json", &json));
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
    let again = attention(&run, prompt, "html", &html);
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
    ok(attention(&run, &prompt, "html", &html));
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
    ok(attention(&run, hostile, "html", &page));
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
