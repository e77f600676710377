//! Helpers of the HTML page tests: the headless Chromium driver (`tests/browser/pages.mjs`,
//! puppeteer-core over the system browser), screenshots, a page's data block, and `attention`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use super::*;

/// The browser driver's directory, when Chromium and its node modules are installed.
pub fn browser() -> Option<PathBuf> {
    let driver = workspace_root().join("tests/browser");
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let ready = Path::new(&chromium).is_file()
        && driver.join("node_modules/puppeteer-core").is_dir()
        && Command::new("node").arg("--version").output().is_ok();
    if ready {
        return Some(driver);
    }
    let how = "apt-get install chromium nodejs npm; npm ci --prefix tests/browser";
    if std::env::var_os("CI").is_some() {
        panic!("CI must run the browser tests: {how} (.ci/run does)");
    }
    eprintln!("skipping the browser checks: {how}");
    None
}

/// `node pages.mjs MODE ARGS...`, which must succeed; returns its JSON summary.
pub fn check_in_browser(driver: &Path, mode: &str, args: &[&str]) -> serde_json::Value {
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
pub fn screenshot(name: &str) -> String {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name).display().to_string()
}

/// The data block of a page, parsed.
pub fn page_data(path: &str) -> serde_json::Value {
    let page = std::fs::read_to_string(path).unwrap();
    let start = page.find(r#"id="tinygpt-data">"#).unwrap() + r#"id="tinygpt-data">"#.len();
    let end = start + page[start..].find("</script>").unwrap();
    serde_json::from_str(&page[start..end]).unwrap()
}

/// `tinygpt attention --run RUN --prompt PROMPT --format FORMAT --out OUT`, run to completion.
pub fn attention(run: &str, prompt: &str, format: &str, out: &str) -> Output {
    tinygpt(&[
        "attention",
        "--run",
        run,
        "--prompt",
        prompt,
        "--format",
        format,
        "--out",
        out,
    ])
}

/// The explorer's tokens joined, with the visible-space marks turned back into spaces.
pub fn shown_text(data: &serde_json::Value) -> String {
    data["explorer"]["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().replace('␣', " "))
        .collect()
}
