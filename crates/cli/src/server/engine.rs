//! The generation engine behind `serve` and `chat`: one thread owns the model and decodes every
//! request's sequences together, one token each per step ([`Lanes`], continuous batching).
//! Requests arrive on a channel and leave as events on their own channels; a request whose
//! receiver is gone (the client hung up) is dropped from the batch at the next step.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;

use burn::tensor::Device;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tinygpt_data::{IncrementalDecoder, Tokenizer};
use tinygpt_model::sampling::{SamplingParams, sample};
use tinygpt_model::{Gpt, LaneId, Lanes};
use tokio::sync::mpsc::UnboundedSender;

use crate::stream::StopStream;

/// What to generate for one request.
pub struct Job {
    /// Non-empty, at most the model's `block_size` tokens.
    pub prompt: Vec<u32>,
    pub sampling: SamplingParams,
    /// Choice i draws from `seed` with ChaCha stream i (choice 0: what `sample --seed` draws).
    pub seed: u64,
    pub max_tokens: usize,
    /// Generation ends right before any of these texts (never sent).
    pub stops: Vec<String>,
    /// Tokens that end generation (not sent): end of text, or the assistant's end.
    pub end_tokens: Vec<u32>,
    /// Independent choices for the same prompt.
    pub n: usize,
    pub events: UnboundedSender<Event>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// New text of one choice.
    Text { choice: usize, text: String },
    /// A choice ended, after `tokens` generated tokens.
    Finished {
        choice: usize,
        reason: Finish,
        tokens: usize,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    /// An end token or a stop string.
    Stop,
    /// `max_tokens`, or the server cut the request short while shutting down.
    Length,
}

impl Finish {
    pub fn name(self) -> &'static str {
        match self {
            Finish::Stop => "stop",
            Finish::Length => "length",
        }
    }
}

/// The handle requests are sent through; the engine thread ends when every handle is gone.
#[derive(Clone)]
pub struct Engine {
    jobs: mpsc::Sender<Job>,
    cut: Arc<AtomicBool>,
}

impl Engine {
    /// Starts the engine thread; it decodes at most `max_lanes` sequences at once (more wait).
    pub fn start(
        model: Gpt,
        tokenizer: Tokenizer,
        device: Device,
        max_lanes: usize,
    ) -> anyhow::Result<Engine> {
        let (jobs, inbox) = mpsc::channel();
        let cut = Arc::new(AtomicBool::new(false));
        let cutting = cut.clone();
        std::thread::Builder::new()
            .name("engine".into())
            .spawn(move || run(&model, &tokenizer, &device, max_lanes, &inbox, &cutting))
            .map_err(|e| anyhow::anyhow!("cannot start the engine thread: {e}"))?;
        Ok(Engine { jobs, cut })
    }

    /// Queues a job; false when the engine has stopped.
    pub fn submit(&self, job: Job) -> bool {
        self.jobs.send(job).is_ok()
    }

    /// Ends every sequence in flight at its next token (finish reason `length`), and every
    /// job still queued: the server is shutting down.
    pub fn cut_everything(&self) {
        self.cut.store(true, Ordering::SeqCst);
    }
}

/// One choice of one job, as it generates.
struct Sequence<'t> {
    choice: usize,
    job: Arc<JobShared>,
    rng: ChaCha8Rng,
    text: IncrementalDecoder<'t>,
    stream: StopStream<Vec<u8>>,
    generated: usize,
}

/// What the choices of one job share.
struct JobShared {
    sampling: SamplingParams,
    max_tokens: usize,
    end_tokens: Vec<u32>,
    events: UnboundedSender<Event>,
}

enum Next {
    Continue,
    Done,
}

impl Sequence<'_> {
    /// Takes the sampled `token`: sends the text it settles, and says whether the sequence
    /// goes on (then `token` is fed back) or has finished.
    fn take(&mut self, token: u32) -> Next {
        if self.job.end_tokens.contains(&token) {
            return self.finish(Finish::Stop);
        }
        self.generated += 1;
        let piece = self.text.push(token).unwrap_or_default();
        let stopped = self.stream.push(&piece).unwrap_or(true);
        self.send_written();
        if stopped {
            return self.finish_now(Finish::Stop);
        }
        if self.generated >= self.job.max_tokens {
            return self.finish(Finish::Length);
        }
        Next::Continue
    }

    /// Sends what is held back (a partial stop string, a partial character), then the end.
    fn finish(&mut self, reason: Finish) -> Next {
        let rest = self.text.finish().unwrap_or_default();
        let stopped = self.stream.push(&rest).unwrap_or(true);
        if !stopped {
            let _ = self.stream.finish();
        }
        self.send_written();
        self.finish_now(reason)
    }

    fn finish_now(&mut self, reason: Finish) -> Next {
        let _ = self.job.events.send(Event::Finished {
            choice: self.choice,
            reason,
            tokens: self.generated,
        });
        Next::Done
    }

    fn send_written(&mut self) {
        let bytes = std::mem::take(self.stream.out_mut());
        if !bytes.is_empty() {
            let text = String::from_utf8(bytes).expect("stop streams write whole characters");
            let _ = self.job.events.send(Event::Text {
                choice: self.choice,
                text,
            });
        }
    }
}

fn run(
    model: &Gpt,
    tokenizer: &Tokenizer,
    device: &Device,
    max_lanes: usize,
    inbox: &mpsc::Receiver<Job>,
    cut: &AtomicBool,
) {
    let mut lanes = Lanes::new(model, device);
    let mut sequences: HashMap<LaneId, Sequence> = HashMap::new();
    let mut waiting: std::collections::VecDeque<Job> = Default::default();
    loop {
        // Idle: sleep until a job comes (or every handle is gone).
        if lanes.is_empty() && waiting.is_empty() {
            match inbox.recv() {
                Ok(job) => waiting.push_back(job),
                Err(_) => return,
            }
        }
        waiting.extend(inbox.try_iter());
        if cut.load(Ordering::SeqCst) {
            for job in waiting.drain(..) {
                for choice in 0..job.n {
                    let _ = job.events.send(Event::Finished {
                        choice,
                        reason: Finish::Length,
                        tokens: 0,
                    });
                }
            }
            for (id, mut sequence) in sequences.drain() {
                sequence.finish(Finish::Length);
                lanes.remove(id);
            }
            if let Ok(job) = inbox.recv_timeout(std::time::Duration::from_millis(50)) {
                waiting.push_back(job);
            }
            continue;
        }
        // Admit what fits (a job's choices join together).
        while let Some(job) = waiting.pop_front() {
            if !lanes.is_empty() && lanes.len() + job.n > max_lanes {
                waiting.push_front(job);
                break;
            }
            if job.events.is_closed() {
                continue;
            }
            let shared = Arc::new(JobShared {
                sampling: job.sampling,
                max_tokens: job.max_tokens,
                end_tokens: job.end_tokens.clone(),
                events: job.events.clone(),
            });
            for choice in 0..job.n {
                let id = lanes.add(&job.prompt);
                let mut rng = ChaCha8Rng::seed_from_u64(job.seed);
                rng.set_stream(choice as u64);
                sequences.insert(
                    id,
                    Sequence {
                        choice,
                        job: shared.clone(),
                        rng,
                        text: IncrementalDecoder::new(tokenizer),
                        stream: StopStream::new(Vec::new(), &job.stops),
                        generated: 0,
                    },
                );
            }
        }
        // Every lane draws its next token from its logits; the live ones step together.
        let mut next = Vec::with_capacity(lanes.len());
        for id in lanes.ids() {
            let sequence = sequences.get_mut(&id).expect("every lane has a sequence");
            let gone = sequence.job.events.is_closed();
            let token = sample(lanes.logits(id), &sequence.job.sampling, &mut sequence.rng);
            if gone || matches!(sequence.take(token), Next::Done) {
                sequences.remove(&id);
                lanes.remove(id);
            } else {
                next.push((id, token));
            }
        }
        if !next.is_empty() {
            lanes.advance(&next);
        }
    }
}
