//! The KV cache: same logits as recomputing the whole context, at every step, across slides
//! of the context window.

use burn::tensor::Device;
use tinygpt_model::generate::argmax;
use tinygpt_model::{Generator, Gpt, GptConfig};

fn model(seed: u64) -> Gpt {
    let config = GptConfig {
        vocab_size: 17,
        block_size: 8,
        n_layer: 2,
        n_head: 2,
        n_embd: 16,
        dropout: 0.0,
        bias: true,
        tie_embeddings: true,
        activation: Default::default(),
        layer_norm_eps: 1e-5,
        ..GptConfig::default()
    };
    Gpt::new(&config, seed, &Device::flex()).unwrap()
}

/// Feeds the same token sequence to a cached and an uncached generator.
fn logits_both_ways(model: &Gpt, prompt: &[u32], tokens: &[u32]) -> Vec<(Vec<f32>, Vec<f32>)> {
    let device = Device::flex();
    let mut cached = Generator::new(model, prompt, true, &device);
    let mut plain = Generator::new(model, prompt, false, &device);
    let mut all = Vec::new();
    for &t in tokens {
        all.push((cached.next_logits(), plain.next_logits()));
        cached.push(t);
        plain.push(t);
    }
    all
}

#[test]
fn cached_logits_equal_recomputed_logits_at_every_step() {
    let model = model(0);
    // 40 tokens through a block of 8: the window slides several times.
    let tokens: Vec<u32> = (0..40).map(|i| (i * 5 + 3) % 17).collect();
    for (step, (cached, plain)) in logits_both_ways(&model, &[1, 2, 3], &tokens)
        .iter()
        .enumerate()
    {
        assert_eq!(cached.len(), 17);
        let diff = cached
            .iter()
            .zip(plain)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(diff < 1e-4, "step {step}: logits differ by {diff}");
    }
}

#[test]
fn greedy_with_and_without_cache_agree_past_block_size() {
    let device = Device::flex();
    for seed in 0..3 {
        let model = model(seed);
        let run = |use_cache| {
            let mut g = Generator::new(&model, &[5], use_cache, &device);
            for _ in 0..30 {
                let next = argmax(&g.next_logits());
                g.push(next);
            }
            g.tokens().to_vec()
        };
        let with_cache = run(true);
        assert_eq!(with_cache.len(), 31);
        assert_eq!(with_cache, run(false));
    }
}

#[test]
fn the_window_keeps_half_a_block_after_sliding() {
    // After sliding, the context is the newest block_size / 2 tokens: a generator started from
    // exactly those tokens gives the same next logits.
    let model = model(1);
    let device = Device::flex();
    let tokens: Vec<u32> = (0..8).collect();
    let mut long = Generator::new(&model, &tokens, true, &device);
    long.next_logits();
    long.push(8); // 9 tokens > block_size 8: slide to the last 4
    let slid = long.next_logits();
    let fresh = Generator::new(&model, &[5, 6, 7, 8], false, &device).next_logits();
    let diff = slid
        .iter()
        .zip(&fresh)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    assert!(diff < 1e-5, "{diff}");
}
