//! Continuous batching: lanes that join, leave and slide their windows at different times see
//! what a generator of their own sees, step by step, for every variant.

mod common;

use burn::tensor::Device;
use common::max_abs_diff;
use common::variants::{base, variants};
use tinygpt_model::generate::argmax;
use tinygpt_model::{Generator, Gpt, LaneId, Lanes};

/// One sequence in both worlds: its own generator, and its lane in the shared batch.
struct Pair<'a> {
    alone: Generator<'a>,
    lane: LaneId,
    left_at: usize,
}

fn lanes_match_generators(name: &str, model: &Gpt) {
    let device = Device::flex();
    let mut lanes = Lanes::new(model, &device);
    // (prompt, step it joins, step it leaves): staggered, one prompt a full block long, and 40
    // steps through a block of 12, so every lane slides its window at least once.
    // Two lanes join together with prompts as long, so they slide in the same steps.
    let schedule: [(&[u32], usize, usize); 6] = [
        (&[1, 2], 0, 40),
        (&[3], 3, 17),
        (&[4, 5, 6, 7, 8, 9, 10, 11, 12, 1, 2, 3], 5, 40),
        (&[9, 9, 9], 18, 33),
        (&[7, 3, 1], 20, 40),
        (&[2, 8, 5], 20, 38),
    ];
    let mut pairs: Vec<Pair> = Vec::new();
    for step in 0..40 {
        for (prompt, join, leave) in schedule {
            if join == step {
                let lane = lanes.add(prompt);
                let alone = Generator::new(model, prompt, true, &device);
                pairs.push(Pair {
                    alone,
                    lane,
                    left_at: leave,
                });
            }
        }
        for pair in pairs.iter_mut().filter(|p| p.left_at == step) {
            lanes.remove(pair.lane);
        }
        pairs.retain(|p| p.left_at != step);
        let mut next = Vec::new();
        for pair in &mut pairs {
            let expected = pair.alone.next_logits();
            let got = lanes.logits(pair.lane);
            let diff = max_abs_diff(&expected, got);
            assert!(
                diff < 1e-5,
                "{name}, step {step}, lane {}: {diff}",
                pair.lane
            );
            let token = argmax(&expected);
            pair.alone.push(token);
            next.push((pair.lane, token));
        }
        lanes.advance(&next);
        for pair in &pairs {
            assert_eq!(lanes.tokens(pair.lane), pair.alone.tokens(), "{name}");
        }
    }
    assert_eq!(lanes.len(), 3);
}

#[test]
fn every_lane_sees_what_its_own_generator_sees() {
    let device = Device::flex();
    for (name, config) in variants().into_iter().chain([("gpt2", base())]) {
        let model = Gpt::new(&config, 7, &device).unwrap();
        lanes_match_generators(name, &model);
    }
}

/// Seconds per decode step with 1 and 16 lanes (twice each, the first pass warming up) at the
/// default run's shape and recipe, run by hand:
/// `cargo test --release --workspace --test lanes -- --ignored --nocapture`. `STAGGER=1` gives
/// lane i a prompt 2i tokens longer, so that the lanes' windows slide at different steps as
/// clients that arrive apart do; `THREADS=N` runs it in a pool of N threads, as `serve
/// --threads N` does; `WIDE=1` takes nanogpt-char's width (with `BLOCK=256`).
#[test]
#[ignore]
fn time_a_step_by_lane_count() {
    match std::env::var("THREADS").map(|n| n.parse::<usize>().unwrap()) {
        Ok(threads) => rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(time_steps),
        Err(_) => time_steps(),
    }
}

fn time_steps() {
    let device = Device::flex();
    let flag = |name: &str| std::env::var(name).is_ok_and(|v| v == "1");
    let block_size = std::env::var("BLOCK").map_or(64, |b| b.parse().unwrap());
    let (layers, heads, width) = if flag("WIDE") {
        (6, 6, 384)
    } else {
        (4, 4, 128)
    };
    let config = tinygpt_model::GptConfig {
        vocab_size: 91,
        block_size,
        n_layer: layers,
        n_head: heads,
        n_embd: width,
        ..common::variants::modern()
    };
    let model = Gpt::new(&config, 1, &device).unwrap();
    for n in [1usize, 16, 1, 16] {
        let mut lanes = Lanes::new(&model, &device);
        for i in 0..n {
            let extra = if flag("STAGGER") { 2 * i } else { 0 };
            let prompt: Vec<u32> = (0..(3 + extra) as u32)
                .map(|t| 1 + (t + i as u32) % 90)
                .collect();
            lanes.add(&prompt);
        }
        let steps = 200;
        let started = std::time::Instant::now();
        for _ in 0..steps {
            let next: Vec<(LaneId, u32)> = lanes
                .ids()
                .into_iter()
                .map(|id| (id, argmax(lanes.logits(id))))
                .collect();
            lanes.advance(&next);
        }
        let per_step = started.elapsed().as_secs_f64() / steps as f64;
        println!(
            "{n} lanes: {:.3} ms per step, {:.0} tok/s",
            per_step * 1e3,
            n as f64 / per_step
        );
    }
}
