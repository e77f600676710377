//! `tinygpt serve`: a trained run behind the OpenAI HTTP API (what llama.cpp's server, vLLM
//! and Ollama speak), on axum. Handlers check and tokenize a request, hand it to the
//! [`engine`](engine::Engine) — one thread that decodes every request in flight together —
//! and answer with its events, whole or as server-sent events.
//!
//! Everything is bounded: the body's size, the prompt (at most the model's context: a 400
//! beyond), `max_tokens` and `n`, and the requests in flight (503 beyond). Every error is
//! OpenAI's JSON error shape with a 4xx; nothing a client sends stops the server.

pub mod engine;
pub mod error;
pub mod request;
pub mod response;
mod sse;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router, body::Bytes};
use serde_json::json;
use subtle::ConstantTimeEq;
use tinygpt_data::Tokenizer;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

use engine::{Engine, Event, Job};
use error::ApiError;
use request::{Limits, Model, Plan};
use response::{Choice, Endpoint, Header};

/// How a server runs.
pub struct Options {
    pub host: String,
    pub port: u16,
    pub api_key: Option<String>,
    /// The name `/v1/models` lists and requests name.
    pub model_id: String,
    /// Requests in flight at once (streaming or not); more get 503.
    pub max_in_flight: usize,
    pub limits: Limits,
    /// The largest request body, in bytes (413 beyond).
    pub max_body_bytes: usize,
    /// After SIGTERM or Ctrl-C: how long requests in flight may go on before they are cut.
    pub grace: Duration,
}

struct Served {
    engine: Engine,
    tokenizer: Tokenizer,
    model_id: String,
    block_size: usize,
    limits: Limits,
    in_flight: Arc<Semaphore>,
    api_key: Option<String>,
    created: u64,
    requests: AtomicU64,
}

/// Serves until SIGTERM or Ctrl-C; then stops accepting, lets the requests in flight finish
/// (for at most `grace`, then cuts them, each stream ending with `[DONE]`) and returns.
pub fn serve(
    options: Options,
    engine: Engine,
    tokenizer: Tokenizer,
    block_size: usize,
) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(run(options, engine, tokenizer, block_size))
}

async fn run(
    options: Options,
    engine: Engine,
    tokenizer: Tokenizer,
    block_size: usize,
) -> Result<()> {
    let address = format!("{}:{}", options.host, options.port);
    let listener = tokio::net::TcpListener::bind(&address)
        .await
        .with_context(|| format!("cannot listen on {address}: pass another --port (or --host)"))?;
    let bound = listener.local_addr().context("the listening address")?;
    let served = Arc::new(Served {
        engine: engine.clone(),
        tokenizer,
        model_id: options.model_id.clone(),
        block_size,
        limits: options.limits.clone(),
        in_flight: Arc::new(Semaphore::new(options.max_in_flight)),
        api_key: options.api_key.clone(),
        created: now(),
        requests: AtomicU64::new(0),
    });
    let api = Router::new()
        .route("/v1/models", get(models))
        .route("/v1/completions", post(completions))
        .route("/v1/chat/completions", post(chat_completions))
        .route_layer(middleware::from_fn_with_state(served.clone(), authorize));
    let app = Router::new()
        .route("/", get(page))
        .route("/health", get(health))
        .merge(api)
        .fallback(not_found)
        .method_not_allowed_fallback(wrong_method)
        .layer(DefaultBodyLimit::max(options.max_body_bytes))
        .with_state(served);
    say!(
        "serving {:?} at http://{bound} (OpenAI API under /v1, a chat page at /){}",
        options.model_id,
        if options.api_key.is_some() {
            "; requests need the API key"
        } else {
            ""
        }
    );
    let grace = options.grace;
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            stop_signal().await;
            say!(
                "stopping: no new requests; those in flight finish (cut after {}s)",
                grace.as_secs_f64()
            );
            tokio::spawn(async move {
                tokio::time::sleep(grace).await;
                engine.cut_everything();
            });
        })
        .await
        .context("the server failed")?;
    say!("stopped");
    Ok(())
}

async fn stop_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = terminate => {},
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// With `--api-key`: `Authorization: Bearer KEY`, compared in constant time.
async fn authorize(
    State(served): State<Arc<Served>>,
    headers: HeaderMap,
    request: Request,
    next: Next,
) -> Response {
    if let Some(key) = &served.api_key {
        let given = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if !bool::from(given.as_bytes().ct_eq(key.as_bytes())) {
            return ApiError::status(
                StatusCode::UNAUTHORIZED,
                "missing or wrong API key: send the header Authorization: Bearer <the key given to --api-key>",
            )
            .with_code("invalid_api_key")
            .into_response();
        }
    }
    next.run(request).await
}

async fn page() -> Html<&'static str> {
    Html(tinygpt_viz::chat_page())
}

async fn health() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

async fn models(State(served): State<Arc<Served>>) -> Json<serde_json::Value> {
    Json(json!({
        "object": "list",
        "data": [{
            "id": served.model_id,
            "object": "model",
            "created": served.created,
            "owned_by": "tinygpt",
            "context_length": served.block_size,
            "chat": served.tokenizer.chat_tokens().is_some(),
        }],
    }))
}

async fn not_found() -> ApiError {
    ApiError::status(
        StatusCode::NOT_FOUND,
        "no such endpoint: POST /v1/completions, POST /v1/chat/completions, GET /v1/models, GET /health",
    )
}

async fn wrong_method() -> ApiError {
    ApiError::status(
        StatusCode::METHOD_NOT_ALLOWED,
        "wrong method for this endpoint: completions are POST, models and health GET",
    )
}

async fn completions(
    State(served): State<Arc<Served>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    answer(served, Endpoint::Completions, body).await
}

async fn chat_completions(
    State(served): State<Arc<Served>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    answer(served, Endpoint::Chat, body).await
}

async fn answer(
    served: Arc<Served>,
    endpoint: Endpoint,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    match start(&served, endpoint, body) {
        Ok((plan, events, permit)) => match plan.stream {
            true => {
                let id = request_id(&served, endpoint);
                let model = served.model_id.clone();
                sse::stream(endpoint, id, model, now(), plan, events, permit).into_response()
            }
            false => whole(served, endpoint, plan, events, permit).await,
        },
        Err(error) => error.into_response(),
    }
}

type Started = (Plan, mpsc::UnboundedReceiver<Event>, OwnedSemaphorePermit);

/// Checks the request, takes a place among those in flight and hands it to the engine.
fn start(
    served: &Served,
    endpoint: Endpoint,
    body: Result<Bytes, BytesRejection>,
) -> Result<Started, ApiError> {
    let body = body.map_err(|rejection| {
        let status = rejection.status();
        let message = match status {
            StatusCode::PAYLOAD_TOO_LARGE => {
                "the request body is too large: send a smaller one".to_string()
            }
            _ => format!("cannot read the request body: {}", rejection.body_text()),
        };
        ApiError::status(status, message)
    })?;
    let model = Model {
        id: &served.model_id,
        tokenizer: &served.tokenizer,
        block_size: served.block_size,
    };
    let plan = match endpoint {
        Endpoint::Completions => request::completion(&body, &model, &served.limits)?,
        Endpoint::Chat => request::chat_completion(&body, &model, &served.limits)?,
    };
    let permit = served.in_flight.clone().try_acquire_owned().map_err(|_| {
        ApiError::status(
            StatusCode::SERVICE_UNAVAILABLE,
            "the server is busy (every place for a request in flight is taken): retry shortly",
        )
    })?;
    let (events, receiver) = mpsc::unbounded_channel();
    let job = Job {
        prompt: plan.prompt.clone(),
        sampling: plan.sampling,
        seed: plan.seed,
        max_tokens: plan.max_tokens,
        stops: plan.stops.clone(),
        end_tokens: plan.end_tokens.clone(),
        n: plan.n,
        events,
    };
    if !served.engine.submit(job) {
        return Err(ApiError::status(
            StatusCode::SERVICE_UNAVAILABLE,
            "the generation engine has stopped: restart the server",
        ));
    }
    Ok((plan, receiver, permit))
}

fn request_id(served: &Served, endpoint: Endpoint) -> String {
    let k = served.requests.fetch_add(1, Ordering::Relaxed);
    format!("{}-{:x}{:06x}", endpoint.id_prefix(), served.created, k)
}

/// Waits for every choice, then answers at once.
async fn whole(
    served: Arc<Served>,
    endpoint: Endpoint,
    plan: Plan,
    mut events: mpsc::UnboundedReceiver<Event>,
    permit: OwnedSemaphorePermit,
) -> Response {
    let mut choices: Vec<Choice> = (0..plan.n)
        .map(|_| Choice {
            text: String::new(),
            finish_reason: "",
            tokens: 0,
        })
        .collect();
    let mut remaining = plan.n;
    while remaining > 0 {
        match events.recv().await {
            Some(Event::Text { choice, text }) => choices[choice].text.push_str(&text),
            Some(Event::Finished {
                choice,
                reason,
                tokens,
            }) => {
                choices[choice].finish_reason = reason.name();
                choices[choice].tokens = tokens;
                remaining -= 1;
            }
            None => {
                return ApiError::status(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the generation engine stopped mid-request",
                )
                .into_response();
            }
        }
    }
    drop(permit);
    let id = request_id(&served, endpoint);
    let header = Header {
        endpoint,
        id: &id,
        created: now(),
        model: &served.model_id,
    };
    Json(response::response(&header, &choices, plan.prompt.len())).into_response()
}
