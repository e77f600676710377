//! `tinygpt bench`: its figures agree with each other, and steady training steps reuse memory.

mod common;

use common::{Scratch, assert_clean_error, cpu_has, isa_from_cpuinfo, stdout, tinygpt, tinygpt_ok};
use serde_json::Value;

/// Held while a bench runs: two benches measuring peaks at once on the same cores would each
/// see a busy machine (the test harness runs this file's tests in parallel).
static ONE_BENCH_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn bench_json(config: &str, extra: &[&str]) -> Value {
    let _alone = ONE_BENCH_AT_A_TIME
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let mut args = vec!["bench", "--config", config, "--json"];
    args.extend_from_slice(extra);
    let out = tinygpt_ok(&args);
    serde_json::from_str(stdout(&out).trim()).expect("one JSON object")
}

fn number(report: &Value, key: &str) -> f64 {
    report[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} in {report}"))
}

#[test]
fn bench_figures_agree_with_each_other_and_the_params_accounting() {
    let report = bench_json(
        "configs/tiny-test.toml",
        &["--steps", "3", "--warmup", "1", "--sample-tokens", "8"],
    );
    let tokens_per_step = number(&report, "batch_size") * number(&report, "block_size");
    assert_eq!(tokens_per_step, 8.0 * 16.0, "the config's batch and block");
    let (min, median, max) = (
        number(&report, "step_ms_min"),
        number(&report, "step_ms_median"),
        number(&report, "step_ms_max"),
    );
    assert!(0.0 < min && min <= median && median <= max, "{report}");
    let tokens_per_sec = number(&report, "train_tokens_per_sec");
    assert!((tokens_per_sec - tokens_per_step / (median / 1e3)).abs() < 1e-6 * tokens_per_sec);
    let achieved = tokens_per_sec * number(&report, "flops_per_token") / 1e9;
    assert!((number(&report, "achieved_gflops") - achieved).abs() < 1e-9 * achieved);
    let mfu = achieved / number(&report, "matmul_peak_gflops");
    assert!((number(&report, "mfu") - mfu).abs() < 1e-12);
    // On flex the hardware peak is the CPU's: its widest vectors on every core.
    let hardware = number(&report, "hardware_peak_gflops");
    // No matmul runs faster than the FMA units it is made of; both peaks are the best of
    // tries spread over the run, so a busy moment lowers neither alone.
    assert!(
        hardware >= number(&report, "matmul_peak_gflops"),
        "{report}"
    );
    let mfu_hardware = number(&report, "mfu_hardware");
    assert!((mfu_hardware - achieved / hardware).abs() < 1e-12);
    assert!(mfu_hardware > 0.0 && mfu_hardware <= 1.0, "{report}");
    if cfg!(all(target_arch = "x86_64", target_os = "linux")) {
        assert_eq!(report["vector_isa"], isa_from_cpuinfo(), "the CPU's ISA");
    }
    assert_eq!(
        number(&report, "hardware_threads") as usize,
        std::thread::available_parallelism().unwrap().get()
    );

    // FLOPs per token and the parameter count are the `params` command's figures.
    let params = stdout(&tinygpt_ok(&[
        "params",
        "--config",
        "configs/tiny-test.toml",
    ]));
    let figure = |label: &str| -> f64 {
        let line = params.lines().find(|l| l.starts_with(label)).unwrap();
        line.split_whitespace()
            .last()
            .unwrap()
            .replace(',', "")
            .parse()
            .unwrap()
    };
    assert_eq!(
        number(&report, "flops_per_token"),
        figure("training FLOPs per token")
    );
    assert_eq!(number(&report, "params"), figure("everything"));

    assert!(number(&report, "sample_tokens_per_sec_kv_cache") > 0.0);
    assert!(number(&report, "sample_tokens_per_sec_no_cache") > 0.0);
    if cfg!(target_os = "linux") {
        assert!(number(&report, "peak_memory_mib") > 1.0, "{report}");
    }
}

/// A step whose attention pattern (320 sequences × 256² f32, 84 MB) is bigger than a glibc
/// thread arena's 64 MiB heap. Untuned, malloc maps such blocks on their own and unmaps them
/// on free, and every step page-faults them back in: about 20,000 faults per step here.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[test]
fn steady_training_steps_reuse_their_memory_without_page_faults() {
    let scratch = Scratch::new("bench-memory");
    let config = scratch.str("big-attention.toml");
    std::fs::write(
        &config,
        "[model]\nblock_size = 256\nn_layer = 1\nn_head = 1\nn_embd = 16\ndropout = 0.1\n\n\
         [data]\ncorpus = \"data/shakespeare.txt\"\n\n[train]\nbatch_size = 320\n",
    )
    .unwrap();
    let report = bench_json(
        &config,
        &["--steps", "3", "--warmup", "2", "--sample-tokens", "0"],
    );
    let faults = number(&report, "page_faults_per_step");
    assert!(faults < 1000.0, "{faults} page faults per step");
}

#[test]
fn bench_refuses_zero_steps_and_zero_batch_with_clear_errors() {
    let out = tinygpt(&[
        "bench",
        "--config",
        "configs/tiny-test.toml",
        "--steps",
        "0",
    ]);
    assert_clean_error(&out, "--steps must be at least 1");
    let out = tinygpt(&[
        "bench",
        "--config",
        "configs/tiny-test.toml",
        "--batch-size",
        "0",
    ]);
    assert_clean_error(&out, "--batch-size must be at least 1");
}

#[test]
fn the_bf16_peak_is_measured_exactly_where_the_cpu_has_avx512_bf16() {
    let report = bench_json(
        "configs/tiny-test.toml",
        &["--steps", "1", "--warmup", "0", "--sample-tokens", "0"],
    );
    let devices: Value =
        serde_json::from_str(stdout(&tinygpt_ok(&["devices", "--json"])).trim()).unwrap();
    let has = cpu_has("avx512_bf16");
    assert_eq!(devices["cpu_bf16"]["avx512_bf16"], has, "{devices}");
    assert_eq!(
        devices["cpu_bf16"]["amx_bf16"],
        cpu_has("amx_bf16"),
        "{devices}"
    );
    assert_eq!(report.get("bf16_matmul_gflops").is_some(), has, "{report}");
    match report.get("hardware_bf16_peak_gflops") {
        Some(peak) => {
            assert!(has, "a bf16 peak on a CPU without AVX512_BF16: {report}");
            assert!(peak.as_f64().unwrap() > 0.0, "{report}");
            assert!(number(&report, "bf16_matmul_gflops") > 0.0, "{report}");
        }
        None => {
            assert!(!has, "no bf16 peak on a CPU with AVX512_BF16: {report}");
            eprintln!("note: this CPU has no AVX512_BF16, so bench reports no bf16 peak");
        }
    }
}
