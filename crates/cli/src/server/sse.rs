//! Server-sent events of a streaming request: a chunk per piece of text, one that ends each
//! choice, the usage when asked for, and `data: [DONE]` (also when the engine is gone).

use std::convert::Infallible;
use std::time::Duration;

use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use tokio::sync::{OwnedSemaphorePermit, mpsc};

use super::engine::Event;
use super::request::Plan;
use super::response::{self, Endpoint, Header};

/// Server-sent events as the choices generate: one chunk per piece of text, one that ends
/// each choice, the usage when asked for, and `data: [DONE]`.
pub fn stream(
    endpoint: Endpoint,
    id: String,
    model: String,
    created: u64,
    plan: Plan,
    events: mpsc::UnboundedReceiver<Event>,
    permit: OwnedSemaphorePermit,
) -> Sse<impl futures_util::Stream<Item = Result<SseEvent, Infallible>>> {
    let state = Streaming {
        id,
        model,
        endpoint,
        created,
        events,
        pending: Default::default(),
        first: vec![true; plan.n],
        remaining: plan.n,
        completion_tokens: 0,
        prompt_tokens: plan.prompt.len(),
        include_usage: plan.include_usage,
        done: false,
        _permit: permit,
    };
    let chunks = futures_util::stream::unfold(state, |mut s| async move {
        loop {
            if let Some(data) = s.pending.pop_front() {
                return Some((Ok(SseEvent::default().data(data)), s));
            }
            if s.done {
                return None;
            }
            let event = s.events.recv().await;
            s.take(event);
        }
    });
    Sse::new(chunks).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

/// One streaming request's state: what has been sent, what is waiting to be.
struct Streaming {
    endpoint: Endpoint,
    model: String,
    id: String,
    created: u64,
    events: mpsc::UnboundedReceiver<Event>,
    pending: std::collections::VecDeque<String>,
    /// Per choice: nothing sent yet (a chat stream's first chunk names the role).
    first: Vec<bool>,
    remaining: usize,
    completion_tokens: usize,
    prompt_tokens: usize,
    include_usage: bool,
    done: bool,
    /// Held until the stream ends (or the client hangs up): a place among those in flight.
    _permit: OwnedSemaphorePermit,
}

impl Streaming {
    fn take(&mut self, event: Option<Event>) {
        let header = Header {
            endpoint: self.endpoint,
            id: &self.id,
            created: self.created,
            model: &self.model,
        };
        match event {
            Some(Event::Text { choice, text }) => {
                let chunk = response::chunk(&header, choice, Some(&text), self.first[choice], None);
                self.first[choice] = false;
                self.pending.push_back(chunk.to_string());
            }
            Some(Event::Finished {
                choice,
                reason,
                tokens,
            }) => {
                let chunk = response::chunk(
                    &header,
                    choice,
                    None,
                    self.first[choice],
                    Some(reason.name()),
                );
                self.first[choice] = false;
                self.pending.push_back(chunk.to_string());
                self.completion_tokens += tokens;
                self.remaining -= 1;
                if self.remaining == 0 {
                    if self.include_usage {
                        let usage = response::usage_chunk(
                            &header,
                            self.prompt_tokens,
                            self.completion_tokens,
                        );
                        self.pending.push_back(usage.to_string());
                    }
                    self.pending.push_back("[DONE]".into());
                    self.done = true;
                }
            }
            // The engine is gone: end the stream as cleanly as it can.
            None => {
                self.pending.push_back("[DONE]".into());
                self.done = true;
            }
        }
    }
}
