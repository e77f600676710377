//! `tinygpt chat`: a conversation with a chat run in the terminal (a line is a turn; `/reset`
//! starts over, `/quit` or end of input leaves), or with `--eval FILE` the run's exact-match
//! accuracy on held-out conversations: each one's last assistant reply is generated greedily
//! from the turns before it and compared with the reference, every conversation decoding
//! together through the same engine `serve` uses.

use std::io::{BufRead, Write};
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use tinygpt_data::chat::{self, Message};
use tinygpt_data::{Role, Tokenizer};
use tinygpt_model::sampling::SamplingParams;
use tinygpt_train::run::weights::TrainedRun;
use tokio::sync::mpsc;

use crate::output::StdoutError;
use crate::server::engine::{Engine, Event, Job};

use super::RunSelection;

#[derive(Debug, clap::Args)]
pub struct ChatArgs {
    #[command(flatten)]
    pub selection: RunSelection,
    /// A system message that opens the conversation.
    #[arg(long)]
    pub system: Option<String>,
    /// Softmax temperature; 0 is greedy.
    #[arg(long, default_value_t = 0.8, allow_negative_numbers = true)]
    pub temperature: f64,
    /// Keep only the K most likely tokens.
    #[arg(long)]
    pub top_k: Option<usize>,
    /// The most tokens of one reply.
    #[arg(long, default_value_t = 256)]
    pub max_tokens: usize,
    #[arg(long, default_value_t = 1337)]
    pub seed: u64,
    /// Score the run on the conversations of this JSONL file (greedy, exact match) and exit.
    #[arg(long, value_name = "FILE")]
    pub eval: Option<PathBuf>,
    /// With --eval: how many misses to show.
    #[arg(long, default_value_t = 5)]
    pub show_misses: usize,
}

pub fn chat_command(args: ChatArgs) -> Result<()> {
    if !(args.temperature >= 0.0 && args.temperature.is_finite()) {
        bail!(
            "--temperature {}: must be a number >= 0 (0 = greedy)",
            args.temperature
        );
    }
    if args.max_tokens == 0 || args.top_k == Some(0) {
        bail!("--max-tokens and --top-k must be at least 1");
    }
    let TrainedRun {
        tokenizer,
        model,
        device,
        ..
    } = args.selection.open()?;
    let reply_ends = chat::reply_ends(&tokenizer)
        .with_context(|| format!("--run {}", args.selection.run.display()))?;
    let block_size = model.block_size;
    let engine = Engine::start(model, tokenizer.clone(), device, 64)?;
    let context = Talk {
        engine: &engine,
        tokenizer: &tokenizer,
        block_size,
        reply_ends,
    };
    match &args.eval {
        Some(file) => evaluate(&context, file, &args),
        None => converse(&context, &args),
    }
}

/// What a chat command talks to.
struct Talk<'a> {
    engine: &'a Engine,
    tokenizer: &'a Tokenizer,
    block_size: usize,
    /// The tokens that end a reply (see `chat::reply_ends`).
    reply_ends: Vec<u32>,
}

impl Talk<'_> {
    /// Submits the reply to `messages`; its text arrives on the returned channel.
    fn reply(
        &self,
        messages: &[Message],
        sampling: SamplingParams,
        seed: u64,
        max_tokens: usize,
    ) -> Result<mpsc::UnboundedReceiver<Event>> {
        let prompt = chat::prompt_ids(self.tokenizer, messages)?;
        if prompt.len() > self.block_size {
            bail!(
                "the conversation is {} tokens, and the model reads at most {}: /reset to start over",
                prompt.len(),
                self.block_size
            );
        }
        let (events, receiver) = mpsc::unbounded_channel();
        let job = Job {
            prompt,
            sampling,
            seed,
            max_tokens,
            stops: Vec::new(),
            end_tokens: self.reply_ends.clone(),
            n: 1,
            events,
        };
        if !self.engine.submit(job) {
            bail!("the generation engine stopped");
        }
        Ok(receiver)
    }
}

fn converse(context: &Talk, args: &ChatArgs) -> Result<()> {
    let sampling = SamplingParams {
        temperature: args.temperature,
        top_k: args.top_k,
        top_p: None,
    };
    let mut messages: Vec<Message> = Vec::new();
    let opening = |messages: &mut Vec<Message>| {
        messages.clear();
        if let Some(system) = &args.system {
            messages.push(Message {
                role: Role::System,
                content: system.clone(),
            });
        }
    };
    opening(&mut messages);
    say!(
        "chatting with {} (/reset starts over, /quit or Ctrl-D leaves)",
        args.selection.run.display()
    );
    let stdin = std::io::stdin();
    let mut stdout = std::io::stdout();
    let mut seed = args.seed;
    for line in stdin.lock().lines() {
        let line = line.context("cannot read the terminal")?;
        let line = line.trim_end_matches('\r');
        match line.trim() {
            "" => continue,
            "/quit" | "/exit" => break,
            "/reset" => {
                opening(&mut messages);
                say!("(a new conversation)");
                continue;
            }
            _ => {}
        }
        messages.push(Message {
            role: Role::User,
            content: line.to_string(),
        });
        let mut events = match context.reply(&messages, sampling, seed, args.max_tokens) {
            Ok(events) => events,
            Err(e) => {
                say!("error: {e:#}");
                messages.pop();
                continue;
            }
        };
        seed = seed.wrapping_add(1);
        let mut reply = String::new();
        while let Some(event) = events.blocking_recv() {
            match event {
                Event::Text { text, .. } => {
                    reply.push_str(&text);
                    stdout
                        .write_all(text.as_bytes())
                        .and_then(|()| stdout.flush())
                        .map_err(StdoutError)?;
                }
                Event::Finished { .. } => break,
            }
        }
        stdout.write_all(b"\n").map_err(StdoutError)?;
        messages.push(Message {
            role: Role::Assistant,
            content: reply,
        });
    }
    Ok(())
}

fn evaluate(context: &Talk, file: &PathBuf, args: &ChatArgs) -> Result<()> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("cannot read --eval {}", file.display()))?;
    let greedy = SamplingParams {
        temperature: 0.0,
        top_k: None,
        top_p: None,
    };
    let mut cases = Vec::new();
    for (number, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let where_ = || format!("--eval {} line {}", file.display(), number + 1);
        let value: serde_json::Value = serde_json::from_str(line)
            .with_context(|| format!("{}: not JSON; fix or remove the line", where_()))?;
        let mut messages =
            chat::messages_of(&value).map_err(|e| anyhow::anyhow!("{}: {e}", where_()))?;
        let Some(last) = messages.iter().rposition(|m| m.role == Role::Assistant) else {
            bail!("{}: has no assistant reply to compare with", where_());
        };
        let reference = messages[last].content.clone();
        messages.truncate(last);
        // Room for the reference and a little more: a longer reply is a miss anyway.
        let max_tokens = context.tokenizer.encode(&reference).map_or(64, |t| t.len()) + 8;
        let events = context
            .reply(&messages, greedy, 0, max_tokens)
            .with_context(where_)?;
        cases.push((messages, reference, events));
    }
    if cases.is_empty() {
        bail!("--eval {}: no conversations in it", file.display());
    }
    let total = cases.len();
    let mut right = 0;
    let mut misses = Vec::new();
    for (messages, reference, mut events) in cases {
        let mut reply = String::new();
        while let Some(event) = events.blocking_recv() {
            match event {
                Event::Text { text, .. } => reply.push_str(&text),
                Event::Finished { .. } => break,
            }
        }
        if reply == reference {
            right += 1;
        } else if misses.len() < args.show_misses {
            let asked = messages.last().map_or(String::new(), |m| m.content.clone());
            misses.push(format!("  {asked:?} → {reply:?} (expected {reference:?})"));
        }
    }
    report(right, &misses, total)
}

fn report(right: usize, misses: &[String], total: usize) -> Result<()> {
    outln!(
        "exact match: {right}/{total} ({:.1}%)",
        100.0 * right as f64 / total as f64
    )?;
    if !misses.is_empty() {
        outln!("misses (first {}):", misses.len())?;
        for miss in misses {
            outln!("{miss}")?;
        }
    }
    Ok(())
}
