//! The OpenAI API's answers: whole responses, stream chunks and usage, for either endpoint.

use serde_json::{Value, json};

/// One finished choice.
pub struct Choice {
    pub text: String,
    pub finish_reason: &'static str,
    pub tokens: usize,
}

/// Which endpoint answers: they differ in object names and in where the text goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Completions,
    Chat,
}

impl Endpoint {
    pub fn id_prefix(self) -> &'static str {
        match self {
            Endpoint::Completions => "cmpl",
            Endpoint::Chat => "chatcmpl",
        }
    }

    fn object(self, chunk: bool) -> &'static str {
        match (self, chunk) {
            (Endpoint::Completions, _) => "text_completion",
            (Endpoint::Chat, false) => "chat.completion",
            (Endpoint::Chat, true) => "chat.completion.chunk",
        }
    }
}

/// The identity every response and chunk of one request carries.
pub struct Header<'a> {
    pub endpoint: Endpoint,
    pub id: &'a str,
    pub created: u64,
    pub model: &'a str,
}

fn usage(prompt: usize, completion: usize) -> Value {
    json!({
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    })
}

/// The whole answer of a request that does not stream.
pub fn response(header: &Header, choices: &[Choice], prompt_tokens: usize) -> Value {
    let completion_tokens: usize = choices.iter().map(|c| c.tokens).sum();
    let choices: Vec<Value> = choices
        .iter()
        .enumerate()
        .map(|(index, c)| match header.endpoint {
            Endpoint::Completions => json!({
                "index": index,
                "text": c.text,
                "logprobs": null,
                "finish_reason": c.finish_reason,
            }),
            Endpoint::Chat => json!({
                "index": index,
                "message": {"role": "assistant", "content": c.text},
                "logprobs": null,
                "finish_reason": c.finish_reason,
            }),
        })
        .collect();
    json!({
        "id": header.id,
        "object": header.endpoint.object(false),
        "created": header.created,
        "model": header.model,
        "choices": choices,
        "usage": usage(prompt_tokens, completion_tokens),
    })
}

/// A streamed piece of one choice: new text, or its end (`finish_reason` set, no text).
pub fn chunk(
    header: &Header,
    index: usize,
    text: Option<&str>,
    first: bool,
    finish_reason: Option<&str>,
) -> Value {
    let choice = match header.endpoint {
        Endpoint::Completions => json!({
            "index": index,
            "text": text.unwrap_or(""),
            "logprobs": null,
            "finish_reason": finish_reason,
        }),
        Endpoint::Chat => {
            let mut delta = serde_json::Map::new();
            if first {
                delta.insert("role".into(), "assistant".into());
            }
            if let Some(text) = text {
                delta.insert("content".into(), text.into());
            }
            json!({
                "index": index,
                "delta": delta,
                "logprobs": null,
                "finish_reason": finish_reason,
            })
        }
    };
    json!({
        "id": header.id,
        "object": header.endpoint.object(true),
        "created": header.created,
        "model": header.model,
        "choices": [choice],
    })
}

/// The last chunk when the client asked for usage (`stream_options.include_usage`).
pub fn usage_chunk(header: &Header, prompt_tokens: usize, completion_tokens: usize) -> Value {
    json!({
        "id": header.id,
        "object": header.endpoint.object(true),
        "created": header.created,
        "model": header.model,
        "choices": [],
        "usage": usage(prompt_tokens, completion_tokens),
    })
}
