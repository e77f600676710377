//! Memory a run will need, estimated from its config before anything is allocated, so an
//! impossible size is one error line instead of an abort or the OOM killer.
//!
//! The estimate is a floor, not a promise: weights, gradients and AdamW's two moments (16
//! bytes per parameter), the activations one micro-batch keeps for the backward pass, and the
//! token ids of the batches held at once. It is compared with the memory the OS says is
//! available (`MemAvailable`), or with `TINYGPT_MEMORY_LIMIT` (bytes, or with a K/M/G/T
//! suffix) when that is set.

use anyhow::{Result, bail};
use tinygpt_model::{GptConfig, ParamCount};

use crate::config::RunConfig;

pub const LIMIT_ENV: &str = "TINYGPT_MEMORY_LIMIT";

/// An estimate, in bytes, with its parts for the message.
#[derive(Debug, Clone, PartialEq)]
pub struct Footprint {
    pub parts: Vec<(&'static str, u128)>,
}

impl Footprint {
    pub fn total(&self) -> u128 {
        self.parts
            .iter()
            .map(|(_, b)| b)
            .fold(0, |a, b| a.saturating_add(*b))
    }

    /// Training: weights, gradients and moments, one micro-batch's activations, and the
    /// token ids of the micro-batches of a step and of the fixed validation batches.
    pub fn training(config: &RunConfig) -> Self {
        let t = &config.train;
        Self::steps(
            &config.model,
            t.batch_size,
            t.grad_accum.saturating_add(t.eval_batches),
        )
    }

    /// Training steps of `batch_size` sequences with `batches` batches of ids held at once
    /// (`bench` holds one).
    pub fn steps(model: &GptConfig, batch_size: usize, batches: usize) -> Self {
        let params = parameters(model);
        let batch_ids = 8 * u(batch_size) * u(model.block_size);
        Self {
            parts: vec![
                ("weights, gradients and AdamW moments", 16 * params),
                ("activations", activations(model, u(batch_size))),
                ("batches", batch_ids.saturating_mul(u(batches))),
            ],
        }
    }

    /// Inference (sample, eval, attention, export): the weights and a batch of `batch`
    /// sequences' activations.
    pub fn inference(model: &GptConfig, batch: usize) -> Self {
        Self {
            parts: vec![
                ("weights", 4 * parameters(model)),
                ("activations", activations(model, u(batch))),
            ],
        }
    }

    /// Refuses when the estimate exceeds the memory available; `fix` says what to change.
    pub fn check(&self, fix: &str) -> Result<()> {
        let Some((available, source)) = available_memory()? else {
            return Ok(());
        };
        let need = self.total();
        if need > available as u128 {
            let parts: Vec<String> = self
                .parts
                .iter()
                .filter(|(_, b)| *b > 0)
                .map(|(what, b)| format!("{what} {}", bytes(*b)))
                .collect();
            bail!(
                "this needs about {} of memory ({}) but {} is available ({source}): {fix}",
                bytes(need),
                parts.join(", "),
                bytes(available as u128)
            );
        }
        Ok(())
    }
}

fn u(x: usize) -> u128 {
    x as u128
}

/// Parameters of a validated config (an unvalidated absurd one counts as "too many").
fn parameters(model: &GptConfig) -> u128 {
    ParamCount::checked_total(model).map_or(u128::MAX / 64, u128::from)
}

/// f32 activations kept for the backward pass by `batch` sequences: per block and token
/// about 20 residual-width vectors (LayerNorms, query/key/value, MLP and GELU) and, where the
/// fused attention keeps its pattern ([`tinygpt_kernels::keeps_pattern`]), the raw and
/// softmaxed scores of every head, else one log-sum-exp per head (the tiled kernel); then three
/// vocabulary-wide rows (logits, their softmax, their gradient).
fn activations(model: &GptConfig, batch: u128) -> u128 {
    let (c, t, h, v) = (
        u(model.n_embd),
        u(model.block_size),
        u(model.n_head),
        u(model.vocab_size),
    );
    let l = u(model.n_layer);
    // The layers that keep their pattern, windowed ones and the others apart.
    let windowed = u(model.windowed_layers());
    let kept = |layers, window| match tinygpt_kernels::keeps_pattern(model.block_size, window) {
        true => layers,
        false => 0,
    };
    let stored = kept(l - windowed, 0) + kept(windowed, model.attention_window);
    let tiled = l - stored;
    let scores = stored
        .saturating_mul(2u128.saturating_mul(h).saturating_mul(t))
        .saturating_add(tiled.saturating_mul(h));
    let per_token = l
        .saturating_mul(20u128.saturating_mul(c))
        .saturating_add(scores)
        .saturating_add(3u128.saturating_mul(v))
        .saturating_add(2u128.saturating_mul(c));
    4u128
        .saturating_mul(batch)
        .saturating_mul(t)
        .saturating_mul(per_token)
}

/// The memory limit: `TINYGPT_MEMORY_LIMIT`, else the OS's available memory; `None` where
/// neither is known (the check is then skipped).
fn available_memory() -> Result<Option<(u64, &'static str)>> {
    if let Ok(limit) = std::env::var(LIMIT_ENV) {
        let Some(bytes) = parse_bytes(&limit) else {
            bail!("{LIMIT_ENV}={limit:?}: use a number of bytes, optionally with K, M, G or T");
        };
        return Ok(Some((bytes, "TINYGPT_MEMORY_LIMIT")));
    }
    let Ok(meminfo) = std::fs::read_to_string("/proc/meminfo") else {
        return Ok(None);
    };
    let kib = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        });
    Ok(kib.map(|k| (k.saturating_mul(1024), "MemAvailable")))
}

/// `123`, `512M`, `2G`, `1.5T` → bytes.
fn parse_bytes(text: &str) -> Option<u64> {
    let text = text.trim();
    let (number, scale) = match text.char_indices().last()? {
        (i, 'K' | 'k') => (&text[..i], 1u64 << 10),
        (i, 'M' | 'm') => (&text[..i], 1 << 20),
        (i, 'G' | 'g') => (&text[..i], 1 << 30),
        (i, 'T' | 't') => (&text[..i], 1 << 40),
        _ => (text, 1),
    };
    let value: f64 = number.trim().parse().ok()?;
    (value.is_finite() && value >= 0.0).then_some((value * scale as f64) as u64)
}

/// Bytes for people: `812 MB`, `80.2 GB`, `3.4e12 TB`.
pub fn bytes(b: u128) -> String {
    let b = b as f64;
    for (unit, scale) in [("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)] {
        if b >= scale {
            let v = b / scale;
            return if v >= 1e6 {
                format!("{v:.1e} {unit}")
            } else {
                format!("{v:.1} {unit}")
            };
        }
    }
    format!("{b} bytes")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn default_config() -> RunConfig {
        let path = std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../configs/shakespeare-char.toml"
        ));
        let mut config = RunConfig::load(path, &[]).unwrap();
        config.model.vocab_size = 84;
        config
    }

    #[test]
    fn the_default_run_is_small_and_its_parts_are_counted_by_hand() {
        let config = default_config();
        let f = Footprint::training(&config);
        let params = ParamCount::of(&config.model).total() as u128;
        assert_eq!(f.parts[0].1, 16 * params);
        // 4 blocks × (20·128 + 2·4·64) + 3·84 + 2·128 floats per token, 32 × 64 tokens.
        assert_eq!(f.parts[1].1, 4 * 32 * 64 * (4 * (2560 + 512) + 252 + 256));
        // 8 bytes per id pair, 32 × 64 per batch, 1 + 20 batches.
        assert_eq!(f.parts[2].1, 8 * 32 * 64 * 21);
        assert!(f.total() < 200_000_000, "{}", bytes(f.total()));
    }

    #[test]
    fn an_impossible_model_is_refused_in_one_line_with_the_estimate() {
        let mut config = default_config();
        config.model.n_embd = 1_000_000;
        config.model.n_head = 1;
        let err = Footprint::training(&config)
            .check("make it smaller")
            .unwrap_err()
            .to_string();
        assert!(err.contains("TB of memory"), "{err}");
        assert!(err.ends_with(": make it smaller"), "{err}");
        assert!(!err.contains('\n'));
    }

    #[test]
    fn sizes_parse_with_suffixes() {
        assert_eq!(parse_bytes("123"), Some(123));
        assert_eq!(parse_bytes("2G"), Some(2 << 30));
        assert_eq!(parse_bytes("1.5k"), Some(1536));
        assert_eq!(parse_bytes("lots"), None);
        assert_eq!(parse_bytes("-1"), None);
        assert_eq!(bytes(812_000_000), "812.0 MB");
    }
}
