//! Token streams, the train/val split, and batches of next-token windows.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::DataError;
use crate::chat::assistant_targets;
use crate::config::check_val_fraction;
use crate::tokenizer::{ChatTokens, Tokenizer};
use crate::tokens::Tokens;

/// The corpus as token ids, split once: train is the head, val the tail.
#[derive(Debug, Clone)]
pub struct Splits {
    pub train: Tokens,
    pub val: Tokens,
}

impl Splits {
    /// Splits `tokens` so the last `val_fraction` of them is validation data.
    pub fn new(tokens: Vec<u32>, val_fraction: f64, block_size: usize) -> Result<Self, DataError> {
        check_val_fraction(val_fraction)?;
        let n_val = (tokens.len() as f64 * val_fraction).round() as usize;
        let all = Tokens::from(tokens);
        let n_train = all.len() - n_val;
        Self::from_parts(
            all.slice(0..n_train),
            all.slice(n_train..all.len()),
            block_size,
        )
    }

    /// Train and val streams encoded separately; each must hold one window of
    /// `block_size + 1` tokens.
    pub fn from_parts(train: Tokens, val: Tokens, block_size: usize) -> Result<Self, DataError> {
        let needed = block_size + 1;
        for (split, data) in [("train", &train), ("val", &val)] {
            if data.len() < needed {
                return Err(DataError::SplitTooShort {
                    split,
                    tokens: data.len(),
                    needed,
                });
            }
        }
        Ok(Self { train, val })
    }
}

/// A batch of `batch_size` windows: `inputs[b, t]` is followed by `targets[b, t]`.
/// Both are row-major `[batch_size, block_size]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    pub inputs: Vec<i64>,
    pub targets: Vec<i64>,
    pub batch_size: usize,
    pub block_size: usize,
    /// Which targets the loss learns (1) and which it skips (0), row-major like `targets`;
    /// `None`: all of them. A chat corpus learns only the assistant's turns.
    pub learn: Option<Vec<f32>>,
}

impl Batch {
    /// Builds a batch from the windows starting at `starts`.
    pub fn from_starts(tokens: &Tokens, starts: &[usize], block_size: usize) -> Self {
        let mut inputs = Vec::with_capacity(starts.len() * block_size);
        let mut targets = Vec::with_capacity(starts.len() * block_size);
        for &start in starts {
            let window = tokens.to_vec(start..start + block_size + 1);
            inputs.extend(window[..block_size].iter().map(|&t| i64::from(t)));
            targets.extend(window[1..].iter().map(|&t| i64::from(t)));
        }
        Self {
            inputs,
            targets,
            batch_size: starts.len(),
            block_size,
            learn: None,
        }
    }
}

/// Where each conversation of a chat corpus starts in a token stream, and the role tokens:
/// a chat run's windows start where conversations do (so a window always sees the turns
/// before the reply it learns) and learn only the assistant's targets.
#[derive(Debug, Clone)]
pub struct Conversations {
    /// Every conversation start that leaves a full window, in order.
    pub starts: Vec<usize>,
    pub chat: ChatTokens,
}

impl Conversations {
    /// The conversations of `tokens`, each starting at the stream's start or right after an
    /// `end_of_text`; a stream too short for any whole window keeps the start 0.
    pub fn of(tokens: &Tokens, end_of_text: u32, chat: ChatTokens, block_size: usize) -> Self {
        let last_start = tokens.len() - block_size - 1;
        let mut starts = vec![0];
        let chunk = 1 << 20;
        for from in (0..tokens.len()).step_by(chunk) {
            let ids = tokens.to_vec(from..(from + chunk).min(tokens.len()));
            starts.extend(
                ids.iter()
                    .enumerate()
                    .filter(|&(_, &id)| id == end_of_text)
                    .map(|(i, _)| from + i + 1)
                    .take_while(|&s| s <= last_start),
            );
        }
        Self { starts, chat }
    }

    /// The windows at `starts`, learning the assistant's targets only.
    pub fn batch(&self, tokens: &Tokens, starts: &[usize], block_size: usize) -> Batch {
        let mut batch = Batch::from_starts(tokens, starts, block_size);
        let learn = batch
            .inputs
            .chunks(block_size)
            .zip(batch.targets.chunks(block_size))
            .flat_map(|(inputs, targets)| assistant_targets(&self.chat, inputs, targets))
            .map(|learn| f32::from(u8::from(learn)))
            .collect();
        batch.learn = Some(learn);
        batch
    }

    /// `n_batches` fixed batches of conversations spread evenly over the stream (as
    /// [`fixed_batches`] spreads windows).
    pub fn fixed_batches(
        &self,
        tokens: &Tokens,
        n_batches: usize,
        batch_size: usize,
        block_size: usize,
    ) -> Vec<Batch> {
        let n_windows = n_batches * batch_size;
        let last = self.starts.len() - 1;
        let starts: Vec<usize> = (0..n_windows)
            .map(|i| match n_windows {
                1 => self.starts[0],
                n => self.starts[i * last / (n - 1)],
            })
            .collect();
        starts
            .chunks(batch_size)
            .map(|chunk| self.batch(tokens, chunk, block_size))
            .collect()
    }
}

/// The conversations of both splits of a chat corpus.
pub struct ChatSplits {
    pub train: Conversations,
    pub val: Conversations,
}

impl ChatSplits {
    /// The conversations of `splits` when the tokenizer is a chat model's and the corpus is
    /// a chat corpus.
    pub fn of(splits: &Splits, tokenizer: &Tokenizer, block_size: usize) -> Option<Self> {
        let (end, chat) = (tokenizer.end_of_text()?, tokenizer.chat_tokens()?);
        Some(Self {
            train: Conversations::of(&splits.train, end, chat, block_size),
            val: Conversations::of(&splits.val, end, chat, block_size),
        })
    }
}

/// Draws training batches from uniformly random window starts, reproducibly from a seed.
/// Its whole state is the RNG, which serialises, so a resumed run continues the same stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchSampler {
    rng: ChaCha8Rng,
    pub batch_size: usize,
    pub block_size: usize,
}

impl BatchSampler {
    pub fn new(seed: u64, batch_size: usize, block_size: usize) -> Self {
        Self {
            rng: ChaCha8Rng::seed_from_u64(seed),
            batch_size,
            block_size,
        }
    }

    pub fn sample(&mut self, tokens: &Tokens) -> Batch {
        let starts = self.starts(tokens);
        Batch::from_starts(tokens, &starts, self.block_size)
    }

    /// Moves past the next batch exactly as [`sample`](Self::sample) would, without copying
    /// its windows: in data-parallel training another rank trains on that batch.
    pub fn skip(&mut self, tokens: &Tokens) {
        self.starts(tokens);
    }

    /// A batch of conversations (see [`Conversations`]), drawn from the same stream of
    /// random numbers as [`sample`](Self::sample).
    pub fn sample_conversations(
        &mut self,
        tokens: &Tokens,
        conversations: &Conversations,
    ) -> Batch {
        let starts = self.conversation_starts(conversations);
        conversations.batch(tokens, &starts, self.block_size)
    }

    /// Moves past the next batch of conversations (another rank trains on it).
    pub fn skip_conversations(&mut self, conversations: &Conversations) {
        self.conversation_starts(conversations);
    }

    fn conversation_starts(&mut self, conversations: &Conversations) -> Vec<usize> {
        let n = conversations.starts.len();
        (0..self.batch_size)
            .map(|_| conversations.starts[self.rng.random_range(0..n)])
            .collect()
    }

    fn starts(&mut self, tokens: &Tokens) -> Vec<usize> {
        let last_start = tokens.len() - self.block_size - 1;
        (0..self.batch_size)
            .map(|_| self.rng.random_range(0..=last_start))
            .collect()
    }
}

/// `n_batches` fixed batches spread evenly over `tokens`: the same windows every time, so
/// validation losses compare across steps and runs.
pub fn fixed_batches(
    tokens: &Tokens,
    n_batches: usize,
    batch_size: usize,
    block_size: usize,
) -> Vec<Batch> {
    let last_start = tokens.len() - block_size - 1;
    let n_windows = n_batches * batch_size;
    let starts: Vec<usize> = (0..n_windows)
        .map(|i| {
            if n_windows == 1 {
                0
            } else {
                i * last_start / (n_windows - 1)
            }
        })
        .collect();
    starts
        .chunks(batch_size)
        .map(|chunk| Batch::from_starts(tokens, chunk, block_size))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(n: u32) -> Vec<u32> {
        (0..n).collect()
    }

    fn stream(n: u32) -> Tokens {
        Tokens::from(tokens(n))
    }

    #[test]
    fn split_puts_the_tail_in_val() {
        let splits = Splits::new(tokens(100), 0.1, 8).unwrap();
        assert_eq!(splits.train.all(), tokens(90));
        assert_eq!(splits.val.all(), (90..100).collect::<Vec<_>>());
    }

    #[test]
    fn split_refuses_a_val_split_shorter_than_one_window() {
        let err = Splits::new(tokens(100), 0.1, 16).unwrap_err();
        assert!(
            matches!(
                err,
                DataError::SplitTooShort {
                    split: "val",
                    tokens: 10,
                    needed: 17
                }
            ),
            "{err}"
        );
        assert!(Splits::new(tokens(100), 0.0, 4).is_err());
        assert!(Splits::new(tokens(100), 1.0, 4).is_err());
    }

    #[test]
    fn skipping_a_batch_moves_the_stream_as_sampling_it_does() {
        let data = stream(1000);
        let mut sampled = BatchSampler::new(3, 4, 16);
        let mut skipped = sampled.clone();
        let first = sampled.sample(&data);
        skipped.skip(&data);
        assert_eq!(sampled, skipped);
        assert_ne!(sampled.sample(&data), first);
        assert_eq!(
            skipped.sample(&data),
            BatchSampler::new(3, 4, 16).tap_two(&data)
        );
    }

    impl BatchSampler {
        /// The second batch of a fresh sampler.
        fn tap_two(mut self, tokens: &Tokens) -> Batch {
            self.sample(tokens);
            self.sample(tokens)
        }
    }

    #[test]
    fn batches_are_shifted_windows_of_the_right_shape() {
        let data = stream(1000);
        let mut sampler = BatchSampler::new(7, 4, 16);
        let batch = sampler.sample(&data);
        assert_eq!((batch.batch_size, batch.block_size), (4, 16));
        assert_eq!(batch.inputs.len(), 64);
        for (row_in, row_tgt) in batch.inputs.chunks(16).zip(batch.targets.chunks(16)) {
            for t in 0..16 {
                // consecutive ids: each target is the token after its input
                assert_eq!(row_tgt[t], row_in[t] + 1);
                if t > 0 {
                    assert_eq!(row_in[t], row_in[t - 1] + 1);
                }
            }
        }
    }

    #[test]
    fn same_seed_same_batches_different_seed_different_batches() {
        let data = stream(10_000);
        let draw = |seed| {
            let mut s = BatchSampler::new(seed, 8, 32);
            (0..5).map(|_| s.sample(&data)).collect::<Vec<_>>()
        };
        assert_eq!(draw(1), draw(1));
        assert_ne!(draw(1), draw(2));
    }

    #[test]
    fn sampler_state_round_trips_through_json() {
        let data = stream(10_000);
        let mut a = BatchSampler::new(3, 2, 8);
        a.sample(&data);
        let mut b: BatchSampler =
            serde_json::from_str(&serde_json::to_string(&a).unwrap()).unwrap();
        assert_eq!(a.sample(&data), b.sample(&data));
    }

    #[test]
    fn fixed_batches_cover_the_split_deterministically() {
        let data = stream(101);
        let batches = fixed_batches(&data, 2, 3, 10);
        assert_eq!(batches, fixed_batches(&data, 2, 3, 10));
        let firsts: Vec<i64> = batches
            .iter()
            .flat_map(|b| b.inputs.chunks(10).map(|r| r[0]))
            .collect();
        assert_eq!(firsts, vec![0, 18, 36, 54, 72, 90]);
    }
}
