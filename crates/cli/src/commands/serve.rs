//! `tinygpt serve`: a trained run behind an OpenAI-compatible HTTP API and a chat page.

use std::time::Duration;

use anyhow::{Result, bail};
use tinygpt_train::run::weights::TrainedRun;

use crate::server::engine::Engine;
use crate::server::request::Limits;
use crate::server::{self, Options};

use super::RunSelection;

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub selection: RunSelection,
    /// Address to listen on (127.0.0.1: this machine only; 0.0.0.0: every interface).
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Port to listen on (0: any free one, printed at start).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Require `Authorization: Bearer KEY` on every API request [env: TINYGPT_API_KEY].
    #[arg(long, env = "TINYGPT_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// The model's name in the API [default: the run directory's name].
    #[arg(long)]
    pub model_name: Option<String>,
    /// Requests in flight at once; more are answered 503.
    #[arg(long, default_value_t = 64)]
    pub max_in_flight: usize,
    /// Sequences decoded together in one step (more wait for a place).
    #[arg(long, default_value_t = 64)]
    pub max_batch: usize,
    /// The most tokens a request may generate per choice.
    #[arg(long, default_value_t = 1024)]
    pub max_tokens: usize,
    /// The most choices (`n`) one request may ask for.
    #[arg(long, default_value_t = 8)]
    pub max_n: usize,
    /// The largest request body, in bytes.
    #[arg(long, default_value_t = 1 << 20)]
    pub max_body_bytes: usize,
    /// After SIGTERM or Ctrl-C, seconds the requests in flight may go on before they are cut.
    #[arg(long, default_value_t = 5.0)]
    pub grace_seconds: f64,
}

pub fn serve_command(args: ServeArgs) -> Result<()> {
    for (name, value) in [
        ("--max-in-flight", args.max_in_flight),
        ("--max-batch", args.max_batch),
        ("--max-tokens", args.max_tokens),
        ("--max-n", args.max_n),
        ("--max-body-bytes", args.max_body_bytes),
    ] {
        if value == 0 {
            bail!("{name} 0: must be at least 1");
        }
    }
    if !(args.grace_seconds >= 0.0 && args.grace_seconds.is_finite()) {
        bail!(
            "--grace-seconds {}: must be a number of seconds >= 0",
            args.grace_seconds
        );
    }
    if args.api_key.as_deref() == Some("") {
        bail!("--api-key is empty: give a key, or leave the option out to serve without one");
    }
    let TrainedRun {
        tokenizer,
        model,
        device,
        ..
    } = args.selection.open()?;
    let model_id = args.model_name.clone().unwrap_or_else(|| {
        let dir = args
            .selection
            .run
            .canonicalize()
            .unwrap_or(args.selection.run.clone());
        dir.file_name()
            .map_or_else(|| "tinygpt".into(), |n| n.to_string_lossy().into_owned())
    });
    let block_size = model.block_size;
    let engine = Engine::start(model, tokenizer.clone(), device, args.max_batch)?;
    let options = Options {
        host: args.host,
        port: args.port,
        api_key: args.api_key,
        model_id,
        max_in_flight: args.max_in_flight,
        limits: Limits {
            max_tokens: args.max_tokens,
            max_n: args.max_n,
        },
        max_body_bytes: args.max_body_bytes,
        grace: Duration::from_secs_f64(args.grace_seconds),
    };
    server::serve(options, engine, tokenizer, block_size)
}
