//! `tinygpt bench`: training-step and sampling throughput of a config on a device, with model
//! FLOPs utilisation against two peaks measured in the same run: the hardware's (on a CPU
//! device: every core running multiply-adds on its widest vectors, `tinygpt_train::cpu`)
//! and the device's own matmul's.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Result, ensure};
use burn::module::Module;
use burn::tensor::{Device, Distribution, Tensor};
use indicatif::HumanCount;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use tinygpt_data::Batch;
use tinygpt_model::generate::argmax;
use tinygpt_model::weights::module_tensors;
use tinygpt_model::{Generator, Gpt, ParamCount};

use crate::first_step::{check_first_step_dir, save_first_step};
use crate::memory;
use tinygpt_train::attention_probe::attention_seconds;
use tinygpt_train::config::TrainConfig;
use tinygpt_train::cpu::{Level, Peak, bf16_matmul_gflops, vector_isa};
use tinygpt_train::device::{BACKENDS, adapters, auto_device, parse_device};
use tinygpt_train::footprint::Footprint;
use tinygpt_train::model_config::model_config;
use tinygpt_train::optim::Optimizer;
use tinygpt_train::tensors::scalar;
use tinygpt_train::trainer::optimizer_step;
use tinygpt_train::{Precision, config::precision_name, device::check_precision};

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    #[arg(long, default_value = "configs/shakespeare-char.toml")]
    pub config: PathBuf,
    /// Compute device: auto, flex, ndarray, wgpu or wgpu:KIND (see `tinygpt devices`).
    #[arg(long, default_value = "flex")]
    pub device: String,
    /// Timed training steps (after the warm-up).
    #[arg(long, default_value_t = 10)]
    pub steps: usize,
    #[arg(long, default_value_t = 3)]
    pub warmup: usize,
    /// Tokens per sequence (the context) [default: the config's model.block_size].
    #[arg(long)]
    pub block_size: Option<usize>,
    /// Sequences per step [default: the config's train.batch_size, else 32].
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// New tokens for the sampling benchmark (0 skips it).
    #[arg(long, default_value_t = 256)]
    pub sample_tokens: usize,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Also write the first step's starting weights (`model.safetensors`) and its batch and
    /// loss (`first-step.json`) to this directory, for checking a reference implementation
    /// (bench/reference/gpt.py --check DIR).
    #[arg(long, value_name = "DIR")]
    pub save_first_step: Option<PathBuf>,
    /// Replace the files --save-first-step writes when DIR already holds them.
    #[arg(long)]
    pub force: bool,
    /// What the linear maps' products take [default: the config's train.precision].
    #[arg(long, value_parser = ["fp32", "bf16"])]
    pub precision: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct BenchReport {
    pub config: String,
    /// The model's shape, vocabulary included (for a reference implementation to rebuild).
    pub model: tinygpt_model::GptConfig,
    pub device: String,
    pub batch_size: usize,
    pub block_size: usize,
    pub params: usize,
    /// What the linear maps' products took: `fp32` or `bf16`.
    pub precision: String,
    pub train_tokens_per_sec: f64,
    pub step_ms_median: f64,
    pub step_ms_min: f64,
    pub step_ms_max: f64,
    pub flops_per_token: u64,
    pub achieved_gflops: f64,
    pub matmul_peak_gflops: f64,
    /// Achieved over the matmul peak.
    pub mfu: f64,
    /// The CPU's widest f32 vectors (`AVX-512F`, `AVX2+FMA`...).
    pub vector_isa: String,
    /// The level tinygpt's vector kernels ran at (`TINYGPT_VECTOR_LEVEL` or the widest).
    pub kernel_level: String,
    /// CPU threads the hardware peak was measured on (all the process may use).
    pub hardware_threads: usize,
    /// The CPU's fp32 peak on a CPU device (multiply-adds in registers on every core); none
    /// on a GPU.
    pub hardware_peak_gflops: Option<f64>,
    /// Achieved over the hardware peak of the precision the products took (fp32, or bf16):
    /// the MFU to compare across machines and frameworks.
    pub mfu_hardware: Option<f64>,
    /// The CPU's bf16 peak (its bf16 instruction in registers on every core) where it has AVX512_BF16,
    /// measured beside the fp32 one: the peak for runs whose products take bf16.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hardware_bf16_peak_gflops: Option<f64>,
    /// The instruction of that peak and of a bf16 run's linear maps: `VDPBF16PS`, or
    /// `TDPBF16PS` (AMX tiles) at the `amx` kernel level.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bf16_instruction: Option<String>,
    /// tinygpt's bf16 product (packing included) on 1024×1024 matrices, beside
    /// the fp32 matmul peak: the kernel a bf16 run multiplies with.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bf16_matmul_gflops: Option<f64>,
    /// The blocks' attention alone (the fused op, forward and backward, on the step's shape):
    /// milliseconds, and its share of the median step.
    pub attention_ms: f64,
    pub attention_share: f64,
    /// Minor page faults per timed step (Linux only).
    pub page_faults_per_step: Option<f64>,
    /// Peak resident memory of the process after the training steps (Linux only).
    pub peak_memory_mib: Option<f64>,
    pub sample_tokens: usize,
    pub sample_tokens_per_sec_kv_cache: Option<f64>,
    pub sample_tokens_per_sec_no_cache: Option<f64>,
}

pub fn bench_command(args: BenchArgs) -> Result<()> {
    let overrides: Vec<String> = args
        .block_size
        .map(|t| format!("model.block_size={t}"))
        .into_iter()
        .collect();
    let model_config = model_config(&args.config, &overrides)?;
    let train = tinygpt_train::config::RunConfig::load(&args.config, &[])
        .map(|c| c.train)
        .unwrap_or_default();
    let batch_size = args.batch_size.unwrap_or(train.batch_size);
    ensure!(
        args.steps > 0,
        "--steps must be at least 1 (the timed steps)"
    );
    ensure!(batch_size > 0, "--batch-size must be at least 1");
    if let Some(dir) = &args.save_first_step {
        check_first_step_dir(dir, args.force)?;
    }
    Footprint::steps(&model_config, batch_size, 1).check(
        "bench a smaller model (model.n_layer, n_embd, vocab_size, block_size) or pass a smaller --batch-size",
    )?;
    let device = parse_device(&args.device)?;
    let precision = match args.precision.as_deref() {
        Some("bf16") => Precision::Bf16,
        Some(_) => Precision::Fp32,
        None => train.precision,
    };
    check_precision(precision, &device, &args.device)?;
    let count = ParamCount::of(&model_config);
    let flops_per_token = count.train_flops_per_token(&model_config);

    // The peak is the best product of many spread over the run: ten before the training
    // steps, two after each timed step (outside its timing) and ten after. On a shared machine
    // one burst of products can land in a slow moment, and a low peak would overstate MFU.
    let mut peak = MatmulPeak::new(&device);
    peak.measure(10);
    // The hardware's peak the same way, on a CPU device: tries before, between and after.
    let hardware_threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let on_this_cpu = on_cpu(&args.device);
    let mut hardware = on_this_cpu.then(|| Peak::fp32(hardware_threads));
    let mut bf16 = on_this_cpu.then(|| Peak::bf16(hardware_threads)).flatten();
    let mut measure_hardware = |tries| {
        for peak in [&mut hardware, &mut bf16].into_iter().flatten() {
            peak.measure(tries);
        }
    };
    measure_hardware(10);

    // Training steps on synthetic batches: the speed does not depend on the text.
    let train_device = device.clone().autodiff();
    let mut model = Gpt::new(&model_config, 0, &train_device)?;
    let mut optim = Optimizer::new(&TrainConfig::default());
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let t = model_config.block_size;
    let mut times = Vec::new();
    let mut faults_before = None;
    for i in 0..args.warmup + args.steps {
        if i == args.warmup {
            faults_before = memory::usage().map(|(faults, _)| faults);
        }
        let tokens: Vec<u32> = (0..batch_size * (t + 1))
            .map(|_| rng.random_range(0..model_config.vocab_size as u32))
            .collect();
        let starts: Vec<usize> = (0..batch_size).map(|b| b * (t + 1)).collect();
        let batch = Batch::from_starts(&tokens.into(), &starts, t);
        let weights = (i == 0 && args.save_first_step.is_some()).then(|| module_tensors(&model));
        let inputs = weights.as_ref().map(|_| batch.clone());
        let started = Instant::now();
        let (next, loss, _) = optimizer_step(
            model,
            &mut optim,
            &[batch],
            [1e-3, 1.0],
            precision,
            &train_device,
        );
        model = next;
        let loss = scalar(loss);
        if let (Some(dir), Some(weights), Some(batch)) = (&args.save_first_step, weights, inputs) {
            save_first_step(dir, &weights, &batch, loss)?;
        }
        let _ = train_device.sync(); // a GPU may still be applying the update
        if i >= args.warmup {
            times.push(started.elapsed().as_secs_f64());
            peak.measure(2);
            measure_hardware(2);
        }
    }
    let usage_after = memory::usage();
    // Page faults in the timed steps: zero when each step reuses the memory of the one before.
    let page_faults_per_step = faults_before
        .zip(usage_after)
        .map(|(before, (after, _))| (after - before) as f64 / args.steps as f64);
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    // Three tries (their median) when steps are short; one when a step takes seconds.
    let tries = if median < 1.0 { 3 } else { 1 };
    // In the step's precision: a bf16 run's attention multiplies in bf16.
    let attention_s = tinygpt_train::with_precision(precision, || {
        attention_seconds(&model_config, batch_size, &device, tries)
    });
    let tokens_per_step = (batch_size * t) as f64;
    let tokens_per_sec = tokens_per_step / median;
    let achieved = tokens_per_sec * flops_per_token as f64 / 1e9;
    peak.measure(10);
    measure_hardware(10);
    let peak = peak.gflops();
    let isa = vector_isa();
    let hardware_peak = hardware.map(|h| h.gflops());
    let bf16_instruction = bf16.as_ref().map(|h| h.instruction.to_string());
    let hardware_bf16_peak = bf16.map(|h| h.gflops());
    let bf16_matmul = on_this_cpu.then(|| bf16_matmul_gflops(10)).flatten();

    let (mut cached, mut plain) = (None, None);
    if args.sample_tokens > 0 {
        let model = model.valid();
        cached = Some(sample_speed(&model, args.sample_tokens, true, &device));
        plain = Some(sample_speed(&model, args.sample_tokens, false, &device));
    }
    let report = BenchReport {
        config: args.config.display().to_string(),
        model: model_config.clone(),
        device: args.device.clone(),
        batch_size,
        block_size: t,
        params: count.total(),
        precision: precision_name(precision).to_string(),
        train_tokens_per_sec: tokens_per_sec,
        step_ms_median: median * 1e3,
        step_ms_min: times[0] * 1e3,
        step_ms_max: times[times.len() - 1] * 1e3,
        flops_per_token,
        achieved_gflops: achieved,
        matmul_peak_gflops: peak,
        mfu: achieved / peak,
        vector_isa: isa.name.to_string(),
        kernel_level: Level::chosen().name().to_string(),
        hardware_threads,
        hardware_peak_gflops: hardware_peak,
        mfu_hardware: match precision {
            Precision::Fp32 => hardware_peak,
            Precision::Bf16 => hardware_bf16_peak,
        }
        .map(|hardware| achieved / hardware),
        hardware_bf16_peak_gflops: hardware_bf16_peak,
        bf16_instruction,
        bf16_matmul_gflops: bf16_matmul,
        attention_ms: attention_s * 1e3,
        attention_share: attention_s / median,
        page_faults_per_step,
        peak_memory_mib: usage_after.map(|(_, peak)| peak as f64 / (1 << 20) as f64),
        sample_tokens: args.sample_tokens,
        sample_tokens_per_sec_kv_cache: cached,
        sample_tokens_per_sec_no_cache: plain,
    };
    if args.json {
        outln!("{}", serde_json::to_string(&report)?)?;
    } else {
        print_report(&report)?;
    }
    Ok(())
}

fn print_report(r: &BenchReport) -> Result<()> {
    outln!(
        "{} on {} ({} parameters, batch {} × {} tokens; {} products; vector kernels: {})",
        r.config,
        r.device,
        HumanCount(r.params as u64),
        r.batch_size,
        r.block_size,
        r.precision,
        r.kernel_level
    )?;
    outln!(
        "train: {} tok/s | step {:.1} ms median ({:.1}–{:.1}) | {:.1} GFLOP/s of {} FLOPs/token",
        HumanCount(r.train_tokens_per_sec as u64),
        r.step_ms_median,
        r.step_ms_min,
        r.step_ms_max,
        r.achieved_gflops,
        HumanCount(r.flops_per_token),
    )?;
    let matmul = format!(
        "MFU {:.1}% of the matmul peak ({:.1} GFLOP/s)",
        100.0 * r.mfu,
        r.matmul_peak_gflops
    );
    let bf16_run = r.precision == "bf16";
    let instruction = r.bf16_instruction.as_deref().unwrap_or("VDPBF16PS");
    match (
        r.mfu_hardware,
        r.hardware_peak_gflops,
        r.hardware_bf16_peak_gflops,
    ) {
        (Some(mfu), _, Some(peak)) if bf16_run => outln!(
            "MFU {:.1}% of the hardware's bf16 peak ({peak:.1} GFLOP/s: {instruction} on {} threads) | {matmul}",
            100.0 * mfu,
            r.hardware_threads
        )?,
        (Some(mfu), Some(peak), _) => outln!(
            "MFU {:.1}% of the hardware's fp32 peak ({peak:.1} GFLOP/s: {} on {} threads) | {matmul}",
            100.0 * mfu,
            r.vector_isa,
            r.hardware_threads
        )?,
        _ => outln!("{matmul}")?,
    }
    if let (Some(bf16), Some(fp32)) = (r.hardware_bf16_peak_gflops, r.hardware_peak_gflops) {
        let products = if bf16_run {
            "this run's products take bf16"
        } else {
            "this run's products are fp32"
        };
        outln!(
            "bf16 peak: {bf16:.1} GFLOP/s ({instruction} on {} threads, {:.2}× the fp32 peak; {products})",
            r.hardware_threads,
            bf16 / fp32
        )?;
    }
    if let Some(product) = r.bf16_matmul_gflops {
        outln!(
            "bf16 product (tinygpt's {instruction} kernel, 1024³, packing included): {product:.1} GFLOP/s, {:.2}× the fp32 matmul",
            product / r.matmul_peak_gflops
        )?;
    }
    outln!(
        "attention: {:.1} ms of the step ({:.0}%: the fused op alone, forward and backward, every block)",
        r.attention_ms,
        100.0 * r.attention_share
    )?;
    if let (Some(faults), Some(peak)) = (r.page_faults_per_step, r.peak_memory_mib) {
        outln!("memory: {peak:.0} MiB peak resident | {faults:.0} page faults per step")?;
    }
    if let (Some(cached), Some(plain)) = (
        r.sample_tokens_per_sec_kv_cache,
        r.sample_tokens_per_sec_no_cache,
    ) {
        outln!(
            "sample {} tokens: {:.0} tok/s with the KV cache, {:.0} tok/s without ({:.1}×)",
            r.sample_tokens,
            cached,
            plain,
            cached / plain
        )?;
    }
    Ok(())
}

/// The weights a step started from, its batch and its mean loss, for a reference to redo.
/// Whether `device` (a `--device` name) computes on this CPU, whose peak is then the
/// hardware's.
fn on_cpu(device: &str) -> bool {
    let name = if device == "auto" {
        auto_device(&adapters())
    } else {
        device
    };
    BACKENDS
        .iter()
        .any(|b| b.name == name && b.cpu_device.is_some())
}

/// The device's f32 matmul peak: the fastest of many 1024×1024 products.
struct MatmulPeak {
    a: Tensor<2>,
    b: Tensor<2>,
    device: Device,
    fastest_s: f64,
}

impl MatmulPeak {
    const N: usize = 1024;

    fn new(device: &Device) -> Self {
        let random = || Tensor::<2>::random([Self::N, Self::N], Distribution::Default, device);
        Self {
            a: random(),
            b: random(),
            device: device.clone(),
            fastest_s: f64::INFINITY,
        }
    }

    /// Times `products` more products.
    fn measure(&mut self, products: usize) {
        for _ in 0..products {
            let started = Instant::now();
            // Reading a reduction of the whole product, then syncing, waits for a GPU queue too.
            let c = self.a.clone().matmul(self.b.clone());
            c.sum().into_data();
            let _ = self.device.sync();
            self.fastest_s = self.fastest_s.min(started.elapsed().as_secs_f64());
        }
    }

    fn gflops(&self) -> f64 {
        2.0 * Self::N.pow(3) as f64 / self.fastest_s / 1e9
    }
}

/// Greedy tokens per second from a one-token prompt.
fn sample_speed(model: &Gpt, n: usize, use_cache: bool, device: &Device) -> f64 {
    let mut generator = Generator::new(model, &[0], use_cache, device);
    let started = Instant::now();
    for _ in 0..n {
        let next = argmax(&generator.next_logits());
        generator.push(next);
    }
    n as f64 / started.elapsed().as_secs_f64()
}
