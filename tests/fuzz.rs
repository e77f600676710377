//! Random `--set` values (wrong types, signs, huge and special numbers) fed to `train` and
//! `params`: every run ends with exit 0 or one `error:` line, never a panic, never an abort,
//! and never above a fixed memory ceiling. The draws are seeded, so a failure reproduces.
//!
//! This file holds one test so that `RUSAGE_CHILDREN` (the peak resident memory of the
//! processes this test waited for) measures this test's children alone.

mod common;

use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use common::*;

const KEYS: &[&str] = &[
    "model.vocab_size",
    "model.block_size",
    "model.n_layer",
    "model.n_head",
    "model.n_embd",
    "model.dropout",
    "model.bias",
    "model.tie_embeddings",
    "data.val_fraction",
    "data.vocab_size",
    "data.tokenizer",
    "train.batch_size",
    "train.max_steps",
    "train.lr",
    "train.min_lr",
    "train.warmup_steps",
    "train.weight_decay",
    "train.beta1",
    "train.beta2",
    "train.grad_clip",
    "train.grad_accum",
    "train.eval_interval",
    "train.eval_batches",
    "train.log_interval",
    "train.seed",
    "train.sample_tokens",
    "train.sample_prompt",
    "train.checkpoint_interval",
    "train.keep_checkpoints",
    "train.device",
];

const VALUES: &[&str] = &[
    "-1",
    "0",
    "1",
    "2",
    "3",
    "7",
    "0.5",
    "1.5",
    "1e-300",
    "1e308",
    "-1e308",
    "nan",
    "inf",
    "-inf",
    "4294967296",
    "9223372036854775807",
    "18446744073709551616",
    "\"many\"",
    "true",
    "\"\"",
    "[1, 2]",
    "{ a = 1 }",
    "bpe",
    "char",
    "ndarray",
];

/// The memory no run may exceed: the estimate refuses anything above 1 GiB, and a tiny run
/// with the binary's own overhead stays far below this.
const CEILING_BYTES: u64 = 2 << 30;
const LIMIT: &str = "1G";
const TIMEOUT: Duration = Duration::from_secs(120);

/// xorshift64*: a deterministic stream of draws.
struct Draws(u64);

impl Draws {
    fn next(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 33) as usize % n
    }

    fn overrides(&mut self, count: usize) -> Vec<String> {
        (0..count)
            .map(|_| {
                format!(
                    "{}={}",
                    KEYS[self.next(KEYS.len())],
                    VALUES[self.next(VALUES.len())]
                )
            })
            .collect()
    }
}

fn run_bounded(args: &[String]) -> Output {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut child = tinygpt_command(&args)
        .env("TINYGPT_MEMORY_LIMIT", LIMIT)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    // Drain the pipes on threads so the child never blocks on a full one.
    let mut out_pipe = child.stdout.take().unwrap();
    let mut err_pipe = child.stderr.take().unwrap();
    let out_thread = std::thread::spawn(move || {
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut out_pipe, &mut v).ok();
        v
    });
    let err_thread = std::thread::spawn(move || {
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut err_pipe, &mut v).ok();
        v
    });
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > TIMEOUT {
            child.kill().unwrap();
            panic!("tinygpt {args:?} ran past {TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: out_thread.join().unwrap(),
        stderr: err_thread.join().unwrap(),
    }
}

fn assert_exit_0_or_one_error_line(args: &[String], out: &Output) {
    let err = stderr(out);
    assert!(
        !err.contains("panicked") && !err.contains("internal error") && !err.contains("backtrace"),
        "tinygpt {args:?}:\n{err}"
    );
    match out.status.code() {
        Some(0) => {}
        Some(1) => {
            let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
            assert_eq!(errors.len(), 1, "tinygpt {args:?}:\n{err}");
            assert_eq!(
                err.lines().last(),
                Some(errors[0]),
                "the error is the last line: tinygpt {args:?}:\n{err}"
            );
        }
        _ => panic!("tinygpt {args:?} ended with {}:\n{err}", out.status),
    }
}

/// The largest peak resident memory of any child this process has waited for.
fn children_peak_bytes() -> u64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes a `rusage` into the valid pointer it is given.
    let usage = unsafe {
        assert_eq!(
            libc::getrusage(libc::RUSAGE_CHILDREN, usage.as_mut_ptr()),
            0
        );
        usage.assume_init()
    };
    usage.ru_maxrss as u64 * 1024
}

#[test]
fn random_overrides_end_in_success_or_one_error_line_within_the_memory_ceiling() {
    let scratch = Scratch::new("fuzz");
    let mut draws = Draws(0x5eed_1234_abcd_ef01);
    let (mut ok, mut refused) = (0, 0);
    // Each command gets 1 to 3 random overrides; returns whether it succeeded.
    let mut fuzz = |mut args: Vec<String>| {
        let count = 1 + draws.next(3);
        for set in draws.overrides(count) {
            args.extend(["--set".into(), set]);
        }
        let out = run_bounded(&args);
        assert_exit_0_or_one_error_line(&args, &out);
        out.status.success()
    };
    let mut tally = |succeeded: bool| {
        if succeeded {
            ok += 1;
        } else {
            refused += 1;
        }
    };
    for _ in 0..60 {
        tally(fuzz(
            ["params", "--config", "configs/tiny-test.toml"]
                .map(String::from)
                .to_vec(),
        ));
    }
    for i in 0..30 {
        let run = scratch.str(&format!("run-{i}"));
        tally(fuzz(
            [
                "train",
                "--config",
                "configs/tiny-test.toml",
                "--out",
                &run,
                "--stop-at-step",
                "3",
                "--set",
                "train.eval_interval=2",
                "--set",
                "train.sample_tokens=8",
            ]
            .map(String::from)
            .to_vec(),
        ));
    }
    let peak = children_peak_bytes();
    eprintln!(
        "fuzz: {ok} runs succeeded, {refused} refused in one line; peak child memory {} MiB",
        peak >> 20
    );
    assert!(ok >= 10 && refused >= 10, "the draws test both outcomes");
    assert!(
        peak < CEILING_BYTES,
        "a child used {} MiB, above the {} MiB ceiling",
        peak >> 20,
        CEILING_BYTES >> 20
    );
}
