//! The OpenAI API's requests as tinygpt reads them: checked, tokenized, planned.
//!
//! Fields OpenAI defines and tinygpt does not use (`logprobs`, `presence_penalty`, `user`,
//! ...) are accepted and ignored, as llama.cpp's server does; a field of the wrong type, or a
//! value outside its range, is a 400 naming the field.

use serde::Deserialize;
use serde_json::Value;
use tinygpt_data::chat::{self, Message};
use tinygpt_data::{Role, Tokenizer, prompt_tokens};
use tinygpt_model::sampling::SamplingParams;

use super::error::ApiError;

/// The limits a server enforces on every request.
#[derive(Debug, Clone)]
pub struct Limits {
    /// The largest `max_tokens` a request may ask for.
    pub max_tokens: usize,
    /// The most choices (`n`) one request may ask for.
    pub max_n: usize,
}

/// What the two endpoints share.
#[derive(Debug, Deserialize)]
struct Common {
    model: Option<String>,
    max_tokens: Option<u64>,
    max_completion_tokens: Option<u64>,
    temperature: Option<f64>,
    top_p: Option<f64>,
    top_k: Option<u64>,
    stop: Option<OneOrMany>,
    seed: Option<i64>,
    n: Option<u64>,
    stream: Option<bool>,
    stream_options: Option<StreamOptions>,
}

#[derive(Debug, Deserialize)]
struct StreamOptions {
    include_usage: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

/// The fields only completions have (read apart from [`Common`]: serde's `flatten` would hide
/// which field a type error is in).
#[derive(Debug, Deserialize)]
struct CompletionRequest {
    prompt: Option<OneOrMany>,
}

#[derive(Debug, Deserialize)]
struct ChatRequest {
    messages: Vec<Value>,
}

/// A request, checked and tokenized: what the engine needs, and how to answer.
#[derive(Debug)]
pub struct Plan {
    pub prompt: Vec<u32>,
    pub sampling: SamplingParams,
    pub seed: u64,
    pub max_tokens: usize,
    pub stops: Vec<String>,
    pub n: usize,
    pub stream: bool,
    pub include_usage: bool,
    /// Tokens that end a choice (not sent): the end of text, and a chat's end of turn.
    pub end_tokens: Vec<u32>,
}

/// The served model's facts a request is checked against.
pub struct Model<'a> {
    pub id: &'a str,
    pub tokenizer: &'a Tokenizer,
    pub block_size: usize,
}

/// The body as a JSON object, its shared fields, and the endpoint's own.
fn parse<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<(Common, T), ApiError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::invalid(
            None,
            format!("the body is not valid JSON ({e}): send a JSON object"),
        )
    })?;
    if !value.is_object() {
        return Err(ApiError::invalid(None, "the body must be a JSON object"));
    }
    Ok((typed(value.clone())?, typed(value)?))
}

fn typed<T: for<'de> Deserialize<'de>>(value: Value) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let field = (path != ".").then_some(path);
        let message = match &field {
            Some(f) => format!("{f}: {}", e.inner()),
            None => e.inner().to_string(),
        };
        ApiError::invalid(field.as_deref(), message)
    })
}

/// `POST /v1/completions`.
pub fn completion(body: &[u8], model: &Model, limits: &Limits) -> Result<Plan, ApiError> {
    let (common, request): (Common, CompletionRequest) = parse(body)?;
    let text = match request.prompt {
        None => String::new(),
        Some(OneOrMany::One(text)) => text,
        Some(OneOrMany::Many(mut texts)) if texts.len() == 1 => texts.remove(0),
        Some(OneOrMany::Many(_)) => {
            return Err(ApiError::invalid(
                Some("prompt"),
                "prompt: give one string (a list of prompts is one request each)",
            ));
        }
    };
    // As `tinygpt sample`: an empty prompt starts from a newline.
    let prompt = prompt_tokens(model.tokenizer, &text, usize::MAX)
        .map_err(|e| ApiError::invalid(Some("prompt"), format!("prompt: {e}")))?
        .tokens;
    let end_tokens = model.tokenizer.end_of_text().into_iter().collect();
    plan(common, prompt, end_tokens, model, limits, 16)
}

/// `POST /v1/chat/completions`: the messages rendered with the chat template, an open
/// assistant turn after them.
pub fn chat_completion(body: &[u8], model: &Model, limits: &Limits) -> Result<Plan, ApiError> {
    let (common, request): (Common, ChatRequest) = parse(body)?;
    let messages = messages(&request.messages)?;
    let invalid =
        |e: tinygpt_data::DataError| ApiError::invalid(Some("messages"), format!("messages: {e}"));
    let prompt = chat::prompt_ids(model.tokenizer, &messages).map_err(invalid)?;
    let end_tokens = chat::reply_ends(model.tokenizer).map_err(invalid)?;
    plan(common, prompt, end_tokens, model, limits, 256)
}

/// OpenAI's messages: `content` a string or a list of text parts; `developer` is `system`.
fn messages(list: &[Value]) -> Result<Vec<Message>, ApiError> {
    if list.is_empty() {
        return Err(ApiError::invalid(
            Some("messages"),
            "messages: give at least one message",
        ));
    }
    let plain: Vec<Value> = list
        .iter()
        .map(|m| {
            let mut m = m.clone();
            if m["role"] == "developer" {
                m["role"] = "system".into();
            }
            if let Some(parts) = m["content"].as_array() {
                let text: Option<String> = parts
                    .iter()
                    .map(|p| (p["type"] == "text").then(|| p["text"].as_str()).flatten())
                    .collect();
                if let Some(text) = text {
                    m["content"] = text.into();
                }
            }
            m
        })
        .collect();
    let messages = chat::parse_list(&plain)
        .map_err(|e| ApiError::invalid(Some("messages"), format!("messages: {e}")))?;
    if messages.last().map(|m| m.role) == Some(Role::Assistant) {
        return Err(ApiError::invalid(
            Some("messages"),
            "messages: the last message is the assistant's; end with the user's turn",
        ));
    }
    Ok(messages)
}

fn plan(
    common: Common,
    prompt: Vec<u32>,
    end_tokens: Vec<u32>,
    model: &Model,
    limits: &Limits,
    default_max_tokens: usize,
) -> Result<Plan, ApiError> {
    if let Some(asked) = &common.model
        && asked != model.id
    {
        return Err(ApiError {
            status: axum::http::StatusCode::NOT_FOUND,
            message: format!(
                "the model {asked:?} does not exist: this server serves {:?} (GET /v1/models)",
                model.id
            ),
            param: Some("model".into()),
            code: Some("model_not_found"),
        });
    }
    if prompt.len() > model.block_size {
        return Err(ApiError::invalid(
            Some("messages"),
            format!(
                "the prompt is {} tokens, and this model reads at most {} (its block_size): shorten it",
                prompt.len(),
                model.block_size
            ),
        )
        .with_code("context_length_exceeded"));
    }
    let max_tokens = match common.max_completion_tokens.or(common.max_tokens) {
        None => default_max_tokens.min(limits.max_tokens),
        Some(0) => {
            return Err(ApiError::invalid(
                Some("max_tokens"),
                "max_tokens: must be at least 1",
            ));
        }
        Some(m) if m > limits.max_tokens as u64 => {
            return Err(ApiError::invalid(
                Some("max_tokens"),
                format!(
                    "max_tokens {m}: this server generates at most {} tokens per choice",
                    limits.max_tokens
                ),
            ));
        }
        Some(m) => m as usize,
    };
    let temperature = common.temperature.unwrap_or(1.0);
    if !(0.0..=2.0).contains(&temperature) {
        return Err(ApiError::invalid(
            Some("temperature"),
            format!("temperature {temperature}: must be between 0 and 2 (0 = greedy)"),
        ));
    }
    if let Some(p) = common.top_p
        && !(p > 0.0 && p <= 1.0)
    {
        return Err(ApiError::invalid(
            Some("top_p"),
            format!("top_p {p}: must be in (0, 1]"),
        ));
    }
    if common.top_k == Some(0) {
        return Err(ApiError::invalid(
            Some("top_k"),
            "top_k: must be at least 1 (omit it to keep every token)",
        ));
    }
    let n = common.n.unwrap_or(1);
    if n == 0 || n > limits.max_n as u64 {
        return Err(ApiError::invalid(
            Some("n"),
            format!("n {n}: must be between 1 and {}", limits.max_n),
        ));
    }
    let stops = match common.stop {
        None => Vec::new(),
        Some(OneOrMany::One(s)) => vec![s],
        Some(OneOrMany::Many(list)) if list.len() <= 4 => list,
        Some(OneOrMany::Many(_)) => {
            return Err(ApiError::invalid(
                Some("stop"),
                "stop: give at most 4 stop strings",
            ));
        }
    };
    let seed = match common.seed {
        // A request without a seed draws afresh.
        None => rand::random(),
        Some(seed) => seed as u64,
    };
    Ok(Plan {
        prompt,
        sampling: SamplingParams {
            temperature,
            top_k: common.top_k.map(|k| k as usize),
            top_p: common.top_p,
        },
        seed,
        max_tokens,
        stops,
        n: n as usize,
        stream: common.stream.unwrap_or(false),
        include_usage: common
            .stream_options
            .and_then(|o| o.include_usage)
            .unwrap_or(false),
        end_tokens,
    })
}
