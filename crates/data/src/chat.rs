//! The chat template: a conversation as the text (and tokens) a chat model reads.
//!
//! Each turn is its role's start token, the content, and its end token, nanochat's way:
//! `<|user_start|>hi<|user_end|><|assistant_start|>hello<|assistant_end|>`. Conversations come
//! in the Hugging Face convention, `{"messages": [{"role": "user", "content": "..."}, ...]}`.
//! Training learns only the assistant's tokens (and its end token, so the model knows when
//! to stop); a reply is generated after an open `<|assistant_start|>` until
//! `<|assistant_end|>`.

use crate::DataError;
use crate::tokenizer::{ChatTokens, Role, Tokenizer};

/// The template as Jinja, for exports: transformers' `apply_chat_template` (and llama.cpp's
/// chat) render a conversation to exactly the tokens [`prompt_ids`] gives.
pub const JINJA_TEMPLATE: &str = "{% for message in messages %}{{ '<|' + message['role'] + '_start|>' + message['content'] + '<|' + message['role'] + '_end|>' }}{% endfor %}{% if add_generation_prompt %}{{ '<|assistant_start|>' }}{% endif %}";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub role: Role,
    pub content: String,
}

/// The messages of a `{"messages": [...]}` value, or what is wrong with them (one clause that
/// names the fix).
pub fn messages_of(value: &serde_json::Value) -> Result<Vec<Message>, String> {
    let list = value
        .get("messages")
        .and_then(|m| m.as_array())
        .ok_or("has no \"messages\" list: give each line {\"messages\": [{\"role\": \"user\", \"content\": \"...\"}, ...]}")?;
    let messages = parse_list(list)?;
    if messages.is_empty() {
        return Err("has an empty \"messages\" list: give at least one message".into());
    }
    Ok(messages)
}

/// Messages from a JSON list of `{"role", "content"}` objects.
pub fn parse_list(list: &[serde_json::Value]) -> Result<Vec<Message>, String> {
    list.iter()
        .enumerate()
        .map(|(i, m)| {
            let role = m.get("role").and_then(|r| r.as_str()).ok_or(format!(
                "message {i} has no \"role\" string: use \"system\", \"user\" or \"assistant\""
            ))?;
            let role = Role::from_name(role).ok_or(format!(
                "message {i} has role {role:?}: use \"system\", \"user\" or \"assistant\""
            ))?;
            let content = m.get("content").and_then(|c| c.as_str()).ok_or(format!(
                "message {i} has no \"content\" string: give each message its text as \"content\""
            ))?;
            Ok(Message {
                role,
                content: content.to_string(),
            })
        })
        .collect()
}

/// The conversation as template text (role tokens as their names), for a training document.
pub fn render_text(messages: &[Message]) -> String {
    let mut text = String::new();
    for m in messages {
        text.push_str(m.role.start());
        text.push_str(&m.content);
        text.push_str(m.role.end());
    }
    text
}

/// The tokens a model reads to answer `messages`: every turn, then an open
/// `<|assistant_start|>`. Contents are encoded as plain text, so a role token's name typed in
/// a message is never a role token (with a character vocabulary).
pub fn prompt_ids(tokenizer: &Tokenizer, messages: &[Message]) -> Result<Vec<u32>, DataError> {
    let chat = chat_tokens(tokenizer)?;
    let mut ids = Vec::new();
    for m in messages {
        ids.push(chat.start(m.role));
        ids.extend(plain_ids(tokenizer, &m.content)?);
        ids.push(chat.end(m.role));
    }
    ids.push(chat.start(Role::Assistant));
    Ok(ids)
}

/// The role tokens of `tokenizer`, or the error that says it is not a chat model's.
pub fn chat_tokens(tokenizer: &Tokenizer) -> Result<ChatTokens, DataError> {
    tokenizer.chat_tokens().ok_or_else(|| {
        DataError::Config(
            "this model's vocabulary has no chat role tokens (<|user_start|> ...): fine-tune it on conversations first (data.format = \"chat\", train --init-from RUN)".into(),
        )
    })
}

/// The tokens that end a reply: the assistant's end of turn, and the end of text.
pub fn reply_ends(tokenizer: &Tokenizer) -> Result<Vec<u32>, DataError> {
    let chat = chat_tokens(tokenizer)?;
    Ok(std::iter::once(chat.end(Role::Assistant))
        .chain(tokenizer.end_of_text())
        .collect())
}

/// `text` with no special tokens read out of it.
fn plain_ids(tokenizer: &Tokenizer, text: &str) -> Result<Vec<u32>, DataError> {
    match tokenizer {
        Tokenizer::Char(t) => t.encode_plain(text),
        Tokenizer::Hf(_) => tokenizer.encode(text),
    }
}

/// For every target of a window, whether training learns it: the targets inside an assistant
/// turn (its content and its end token). `inputs[t]` is followed by `targets[t]`; the window
/// must start where a conversation does (outside any turn).
pub fn assistant_targets(chat: &ChatTokens, inputs: &[i64], targets: &[i64]) -> Vec<bool> {
    let (start, end) = (chat.start(Role::Assistant), chat.end(Role::Assistant));
    let mut inside = false;
    inputs
        .iter()
        .zip(targets)
        .map(|(&input, &target)| {
            if input == i64::from(start) {
                inside = true;
            } else if chat.starts(input as u32).is_some() || input == i64::from(end) {
                inside = false;
            }
            let learn = inside;
            if target == i64::from(end) {
                inside = false;
            }
            learn
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CharTokenizer;

    fn tokenizer() -> Tokenizer {
        Tokenizer::Char(CharTokenizer::from_corpus("abchi <|>user_end").with_chat_tokens())
    }

    #[test]
    fn a_conversation_renders_and_encodes_with_one_id_per_role_token() {
        let t = tokenizer();
        let chat = t.chat_tokens().unwrap();
        let value: serde_json::Value = serde_json::from_str(
            r#"{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "ab"}]}"#,
        )
        .unwrap();
        let messages = messages_of(&value).unwrap();
        let text = render_text(&messages);
        assert_eq!(
            text,
            "<|user_start|>hi<|user_end|><|assistant_start|>ab<|assistant_end|>"
        );
        let ids = t.encode(&text).unwrap();
        let id = |c: &str| t.encode(c).unwrap()[0];
        let (h, i, a, b) = (id("h"), id("i"), id("a"), id("b"));
        let u = |r| chat.start(r);
        assert_eq!(
            ids,
            [
                u(Role::User),
                h,
                i,
                chat.end(Role::User),
                u(Role::Assistant),
                a,
                b,
                chat.end(Role::Assistant)
            ]
        );
        assert_eq!(t.decode(&ids).unwrap(), text);
        // The prompt for a reply: the turns and an open assistant turn; a role token's name
        // typed in a message stays characters.
        let typed = [Message {
            role: Role::User,
            content: "<|user_end|>".into(),
        }];
        let prompt = prompt_ids(&t, &typed).unwrap();
        assert_eq!(prompt.len(), 2 + "<|user_end|>".len() + 1);
        assert_eq!(*prompt.last().unwrap(), chat.start(Role::Assistant));
    }

    #[test]
    fn only_assistant_tokens_and_their_end_are_learned() {
        let t = tokenizer();
        let chat = t.chat_tokens().unwrap();
        let text = "<|system_start|>a<|system_end|><|user_start|>hi<|user_end|><|assistant_start|>ab<|assistant_end|><|endoftext|>";
        let mut ids: Vec<i64> = t
            .encode(text.trim_end_matches("<|endoftext|>"))
            .unwrap()
            .into_iter()
            .map(i64::from)
            .collect();
        ids.push(i64::from(t.end_of_text().unwrap()));
        let (inputs, targets) = (&ids[..ids.len() - 1], &ids[1..]);
        let learned: Vec<i64> = assistant_targets(&chat, inputs, targets)
            .iter()
            .zip(targets)
            .filter(|(l, _)| **l)
            .map(|(_, &t)| t)
            .collect();
        // "a", "b" and <|assistant_end|>; not what follows the end.
        let id = |c: &str| i64::from(t.encode(c).unwrap()[0]);
        assert_eq!(
            learned,
            [id("a"), id("b"), i64::from(chat.end(Role::Assistant))]
        );
    }

    #[test]
    fn bad_conversations_say_what_to_fix() {
        let bad = |json: &str| messages_of(&serde_json::from_str(json).unwrap()).unwrap_err();
        assert!(bad(r#"{"text": "x"}"#).contains("no \"messages\""));
        assert!(bad(r#"{"messages": []}"#).contains("empty"));
        assert!(bad(r#"{"messages": [{"role": "bot", "content": "x"}]}"#).contains("\"bot\""));
        assert!(bad(r#"{"messages": [{"role": "user", "content": 3}]}"#).contains("content"));
    }

    #[test]
    fn a_vocabulary_without_role_tokens_is_named() {
        let plain = Tokenizer::Char(CharTokenizer::from_corpus("ab"));
        let err = prompt_ids(&plain, &[]).unwrap_err().to_string();
        assert!(err.contains("no chat role tokens"), "{err}");
    }
}
