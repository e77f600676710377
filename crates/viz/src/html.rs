//! Self-contained HTML pages: the attention explorer and the run report. Each page is one file
//! with its CSS, JavaScript and data inline, so it opens from disk with no network.
//!
//! Corpus text never becomes markup: every string the page shows travels in one JSON data
//! block, escaped so that no `<` can close the script element, and the page's JavaScript
//! puts it on screen with `textContent`. The templates live in `templates/` beside this crate.

use base64::Engine;
use serde::Serialize;

const STYLE: &str = include_str!("../templates/page.css");
const EXPLORER_HTML: &str = include_str!("../templates/explorer.html");
const EXPLORER_JS: &str = include_str!("../templates/explorer.js");
const ATTENTION_PAGE: &str = include_str!("../templates/attention.html");
const REPORT_PAGE: &str = include_str!("../templates/report.html");
const REPORT_JS: &str = include_str!("../templates/report.js");

/// A prompt seen through every head of a model.
#[derive(Debug, Clone)]
pub struct Explorer {
    /// The prompt's tokens as text.
    pub tokens: Vec<String>,
    /// The size of one head's queries and keys (the scores are divided by its square root).
    pub d_head: usize,
    pub heads: Vec<ExplorerHead>,
}

/// One head's scores: `scores[query]` holds query·key / √d for keys `0..=query`. The future
/// keys are −∞; the page shows them masked and computes the pattern as their softmax.
#[derive(Debug, Clone)]
pub struct ExplorerHead {
    pub layer: usize,
    pub head: usize,
    pub scores: Vec<Vec<f32>>,
}

/// What the report page shows of a run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub run: String,
    /// finished, stopped, running, …
    pub state: String,
    /// Label and value pairs for the summary table.
    pub summary: Vec<(String, String)>,
    /// The run's config.toml.
    pub config: String,
    /// The parameter table as text.
    pub params: String,
    pub curves: Curves,
    pub sample: Option<Sample>,
    /// Why a part is missing (no weights yet, …).
    pub notes: Vec<String>,
    /// Seconds between reloads while `report --watch` keeps rewriting the page.
    pub reload_seconds: Option<u32>,
}

/// The metrics of a run, one entry per logged step (`None` where a step has no such value).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Curves {
    pub step: Vec<usize>,
    pub train_loss: Vec<Option<f64>>,
    pub val_loss: Vec<Option<f64>>,
    pub val_bpb: Vec<Option<f64>>,
    pub lr: Vec<Option<f64>>,
    pub tokens_per_sec: Vec<Option<f64>>,
}

/// The greedy continuation of the run's sample prompt.
#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    pub prompt: String,
    pub continuation: String,
}

/// The attention explorer for one prompt, as a page of its own.
pub fn attention_page(explorer: &Explorer) -> String {
    #[derive(Serialize)]
    struct Data<'a> {
        explorer: ExplorerData<'a>,
    }
    let data = Data {
        explorer: ExplorerData::of(explorer),
    };
    fill(
        ATTENTION_PAGE,
        &[
            ("STYLE", STYLE),
            ("EXPLORER_HTML", EXPLORER_HTML),
            ("EXPLORER_JS", EXPLORER_JS),
            ("DATA", &script_json(&data)),
        ],
    )
}

/// The run report, with the attention explorer for the run's sample prompt when the run has
/// weights.
pub fn report_page(report: &Report, explorer: Option<&Explorer>) -> String {
    #[derive(Serialize)]
    struct Data<'a> {
        report: &'a Report,
        explorer: Option<ExplorerData<'a>>,
    }
    let data = Data {
        report,
        explorer: explorer.map(ExplorerData::of),
    };
    fill(
        REPORT_PAGE,
        &[
            ("STYLE", STYLE),
            ("TITLE", &escape_html(&report.run)),
            ("EXPLORER_HTML", EXPLORER_HTML),
            ("EXPLORER_JS", EXPLORER_JS),
            ("REPORT_JS", REPORT_JS),
            ("DATA", &script_json(&data)),
        ],
    )
}

/// The explorer as the page reads it: each head's scores as little-endian f32 in base64,
/// row after row (1 + 2 + … + T values). Exact, and a third of the size of decimal text.
#[derive(Serialize)]
struct ExplorerData<'a> {
    tokens: &'a [String],
    d_head: usize,
    heads: Vec<HeadData>,
}

#[derive(Serialize)]
struct HeadData {
    layer: usize,
    head: usize,
    scores: String,
}

impl<'a> ExplorerData<'a> {
    fn of(explorer: &'a Explorer) -> Self {
        let heads = explorer
            .heads
            .iter()
            .map(|h| {
                let bytes: Vec<u8> = h
                    .scores
                    .iter()
                    .flatten()
                    .flat_map(|x| x.to_le_bytes())
                    .collect();
                HeadData {
                    layer: h.layer,
                    head: h.head,
                    scores: base64::engine::general_purpose::STANDARD.encode(bytes),
                }
            })
            .collect();
        Self {
            tokens: &explorer.tokens,
            d_head: explorer.d_head,
            heads,
        }
    }
}

/// JSON that is safe inside `<script type="application/json">`: `<`, `>` and `&` become
/// `\u003c` escapes, which JSON reads back as the same characters, so the text can never
/// close the element or open a comment.
fn script_json(value: &impl Serialize) -> String {
    let json = serde_json::to_string(value).expect("page data serializes");
    json.replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029")
}

fn escape_html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// Replaces each `{{NAME}}` of `template` by its value, in one pass: a value is never
/// scanned again, so data that happens to contain `{{…}}` stays as it is.
fn fill(template: &str, values: &[(&str, &str)]) -> String {
    let mut out =
        String::with_capacity(template.len() + values.iter().map(|v| v.1.len()).sum::<usize>());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find("}}").expect("template placeholders are closed");
        let name = &after[..end];
        let value = values
            .iter()
            .find(|(key, _)| *key == name)
            .unwrap_or_else(|| panic!("template placeholder {{{{{name}}}}} has no value"));
        out.push_str(value.1);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    out
}

const CHAT_PAGE: &str = include_str!("../templates/chat.html");

/// The page `tinygpt serve` answers `GET /` with: chat or complete against the server's own
/// API, tokens appearing as they stream (self-contained; text only through `textContent`).
pub fn chat_page() -> &'static str {
    static PAGE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    PAGE.get_or_init(|| CHAT_PAGE.replace("{{STYLE}}", STYLE))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn explorer(tokens: &[&str]) -> Explorer {
        let t = tokens.len();
        Explorer {
            tokens: tokens.iter().map(|s| s.to_string()).collect(),
            d_head: 4,
            heads: vec![ExplorerHead {
                layer: 0,
                head: 0,
                scores: (0..t).map(|q| vec![0.5; q + 1]).collect(),
            }],
        }
    }

    /// The only `</script>` in a page are the template's own closing tags, whatever the
    /// tokens contain.
    #[test]
    fn corpus_text_cannot_close_the_script() {
        let evil = "</script><img src=x onerror=alert(1)><!--";
        let page = attention_page(&explorer(&[evil, "{{DATA}}", "&amp;"]));
        let template_closings =
            ATTENTION_PAGE.matches("</script>").count() + EXPLORER_JS.matches("</script>").count();
        assert_eq!(page.matches("</script>").count(), template_closings);
        assert!(!page.contains("<img"));
        assert!(!page.contains("<!--"));
        // The data reads back as the same text.
        let start = page.find("id=\"tinygpt-data\">").unwrap() + "id=\"tinygpt-data\">".len();
        let end = start + page[start..].find("</script>").unwrap();
        let data: serde_json::Value = serde_json::from_str(&page[start..end]).unwrap();
        assert_eq!(data["explorer"]["tokens"][0], evil);
        assert_eq!(data["explorer"]["tokens"][1], "{{DATA}}");
        assert_eq!(data["explorer"]["tokens"][2], "&amp;");
    }

    #[test]
    fn scores_travel_exactly_as_f32() {
        let mut e = explorer(&["a", "b"]);
        e.heads[0].scores = vec![vec![1.5], vec![-0.1, f32::MIN_POSITIVE]];
        let data = ExplorerData::of(&e);
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(&data.heads[0].scores)
            .unwrap();
        let floats: Vec<f32> = bytes
            .chunks(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        assert_eq!(floats, [1.5, -0.1, f32::MIN_POSITIVE]);
    }

    #[test]
    fn fill_replaces_once() {
        assert_eq!(
            fill("a{{X}}b{{Y}}c", &[("X", "{{Y}}"), ("Y", "1")]),
            "a{{Y}}b1c"
        );
    }

    #[test]
    fn title_is_escaped() {
        assert_eq!(escape_html("<b>&\"'"), "&lt;b&gt;&amp;&quot;&#39;");
    }
}
