//! What this CPU can do at most: its widest f32 vector instructions, and the fp32 FLOP/s its
//! cores reach with multiply-adds alone (and the bf16 FLOP/s of `VDPBF16PS` where it has
//! AVX512_BF16), from a loop that never touches memory. `bench`
//! reports MFU against this physical peak, beside the peak of the matmul it runs, so a
//! kernel that leaves half of every vector register idle cannot look efficient.

use std::time::Instant;

/// The instructions tinygpt's own vector kernels (GELU, softmax, LayerNorm, AdamW, dropout)
/// run compiled for, and the variable that holds them to one. gemm's products choose theirs
/// by the CPU alone.
pub use crate::math::{LEVEL_VARIABLE, Level};

pub use crate::bf16::{has_amx_bf16, has_avx512_bf16};

/// The widest f32 vector instructions this CPU runs (checked at run time).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VectorIsa {
    /// `AVX-512F`, `AVX2+FMA`, `AVX`, `SSE2`, `NEON` or `scalar`.
    pub name: &'static str,
    /// f32 values per vector register.
    pub f32_lanes: usize,
    /// Whether a multiply-add is one instruction (two FLOPs per lane).
    pub fma: bool,
}

/// The widest vector instructions this CPU has.
pub fn vector_isa() -> VectorIsa {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx512f") {
            return VectorIsa {
                name: "AVX-512F",
                f32_lanes: 16,
                fma: true,
            };
        }
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            return VectorIsa {
                name: "AVX2+FMA",
                f32_lanes: 8,
                fma: true,
            };
        }
        if std::is_x86_feature_detected!("avx") {
            return VectorIsa {
                name: "AVX",
                f32_lanes: 8,
                fma: false,
            };
        }
        VectorIsa {
            name: "SSE2",
            f32_lanes: 4,
            fma: false,
        }
    }
    #[cfg(target_arch = "aarch64")]
    {
        VectorIsa {
            name: "NEON",
            f32_lanes: 4,
            fma: true,
        }
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        VectorIsa {
            name: "scalar",
            f32_lanes: 1,
            fma: false,
        }
    }
}

/// Independent multiply-add chains per thread: more than FMA latency × FMA units (4 × 2 on
/// current x86 cores) keeps every unit busy, and 12 accumulators plus two constants fit the
/// 16 registers of AVX2.
const CHAINS: usize = 12;

/// A peak of `threads` threads running at once, each running `CHAINS` chains of one
/// instruction in registers: fp32 multiply-adds with the widest vectors [`vector_isa`] found
/// ([`Peak::fp32`]), or bf16 pair dot products, `VDPBF16PS` ([`Peak::bf16`]). Like any peak
/// it is the best of many short tries; spread them over a run so that a busy moment cannot
/// hide it.
pub struct Peak {
    /// The instruction the loop runs: the f32 ISA's name, `VDPBF16PS` or `TDPBF16PS`.
    pub instruction: &'static str,
    /// One thread's loop of `iterations` rounds over every chain.
    run: fn(u64) -> f32,
    /// FLOPs of one round over every chain.
    flops_per_round: f64,
    threads: usize,
    /// Iterations per try: about 20 ms on one thread.
    iterations: u64,
    best_gflops: f64,
}

impl Peak {
    /// fp32 multiply-adds: two FLOPs per lane.
    pub fn fp32(threads: usize) -> Self {
        let isa = vector_isa();
        // `vector_isa` is a cached feature check.
        let run: fn(u64) -> f32 = |n| chains(vector_isa(), n);
        Self::calibrated(isa.name, run, (CHAINS * isa.f32_lanes * 2) as f64, threads)
    }

    /// The peak of the instruction a bf16 run's linear maps multiply with at the kernels'
    /// level: AMX tiles (`TDPBF16PS`, 16 × 16 × 32 × 2 FLOPs each) at [`Level::Amx`], else
    /// bf16 pair dot products (`VDPBF16PS`: 16 lanes × 2 products × 2 FLOPs); `None` when this
    /// CPU lacks AVX512_BF16.
    pub fn bf16(threads: usize) -> Option<Self> {
        if !crate::bf16::has_avx512_bf16() {
            return None;
        }
        if crate::math::level() >= Level::Amx {
            let run: fn(u64) -> f32 = crate::bf16::amx::peak_loop;
            let flops = crate::bf16::amx::PEAK_FLOPS_PER_ROUND as f64;
            return Some(Self::calibrated("TDPBF16PS", run, flops, threads));
        }
        #[cfg(target_arch = "x86_64")]
        {
            // SAFETY: the CPU has AVX512_BF16 (checked above).
            let run: fn(u64) -> f32 = |n| unsafe { crate::bf16::x86::peak_loop::<CHAINS>(n) };
            let flops = (CHAINS * 16 * 2 * 2) as f64;
            Some(Self::calibrated("VDPBF16PS", run, flops, threads))
        }
        #[cfg(not(target_arch = "x86_64"))]
        None
    }

    fn calibrated(
        instruction: &'static str,
        run: fn(u64) -> f32,
        flops_per_round: f64,
        threads: usize,
    ) -> Self {
        let mut iterations = 1u64 << 12;
        loop {
            let started = Instant::now();
            run(iterations);
            if started.elapsed().as_secs_f64() > 0.02 || iterations > 1 << 40 {
                break;
            }
            iterations *= 2;
        }
        Self {
            instruction,
            run,
            flops_per_round,
            threads: threads.max(1),
            iterations,
            best_gflops: 0.0,
        }
    }

    /// Runs `tries` more tries, all threads at once.
    pub fn measure(&mut self, tries: usize) {
        let flops = self.threads as f64 * self.flops_per_round * self.iterations as f64;
        for _ in 0..tries {
            let started = Instant::now();
            std::thread::scope(|scope| {
                for _ in 0..self.threads {
                    scope.spawn(|| (self.run)(std::hint::black_box(self.iterations)));
                }
            });
            let gflops = flops / started.elapsed().as_secs_f64() / 1e9;
            self.best_gflops = self.best_gflops.max(gflops);
        }
    }

    /// The best rate measured so far, in GFLOP/s.
    pub fn gflops(&self) -> f64 {
        self.best_gflops
    }
}

/// The speed of tinygpt's bf16 product ([`crate::bf16::matmul::multiply`], packing
/// included) on two 1024×1024 matrices: the best of `tries`, in GFLOP/s; `None` without
/// AVX512_BF16.
pub fn bf16_matmul_gflops(tries: usize) -> Option<f64> {
    const N: usize = 1024;
    let a: Vec<f32> = (0..N * N)
        .map(|i| ((i % 251) as f32 - 125.0) / 125.0)
        .collect();
    let b: Vec<f32> = (0..N * N)
        .map(|i| ((i % 241) as f32 - 120.0) / 120.0)
        .collect();
    let mut fastest = f64::INFINITY;
    for _ in 0..tries {
        let started = Instant::now();
        std::hint::black_box(crate::bf16::matmul::multiply(&a, &b, [N, N, N])?);
        fastest = fastest.min(started.elapsed().as_secs_f64());
    }
    Some(2.0 * (N * N * N) as f64 / fastest / 1e9)
}

/// `iterations` rounds of `acc ← acc·a + b` on every chain; returns the sum so that nothing
/// is optimised away.
fn chains(isa: VectorIsa, iterations: u64) -> f32 {
    let iterations = std::hint::black_box(iterations);
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: each path runs only when `vector_isa` found its features on this CPU.
        match isa.name {
            "AVX-512F" => return unsafe { x86::avx512(iterations) },
            "AVX2+FMA" => return unsafe { x86::avx2_fma(iterations) },
            _ => {}
        }
    }
    portable(isa, iterations)
}

/// Multiply then add, `f32_lanes` wide, for CPUs without the paths above (the compiler
/// vectorises the lanes; two FLOPs per lane, fused or not).
fn portable(isa: VectorIsa, iterations: u64) -> f32 {
    let (a, b) = (
        std::hint::black_box(0.999_999f32),
        std::hint::black_box(1e-7f32),
    );
    let mut acc = [[1.0f32; 16]; CHAINS];
    let lanes = isa.f32_lanes.min(16);
    for _ in 0..iterations {
        for chain in acc.iter_mut() {
            for v in chain[..lanes].iter_mut() {
                *v = *v * a + b;
            }
        }
    }
    acc.iter().flat_map(|c| &c[..lanes]).sum()
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::CHAINS;

    #[target_feature(enable = "avx512f")]
    pub unsafe fn avx512(iterations: u64) -> f32 {
        let (a, b) = (_mm512_set1_ps(0.999_999), _mm512_set1_ps(1e-7));
        let mut acc = [_mm512_set1_ps(1.0); CHAINS];
        for _ in 0..iterations {
            for v in acc.iter_mut() {
                *v = _mm512_fmadd_ps(*v, a, b);
            }
        }
        acc.iter().map(|&v| _mm512_reduce_add_ps(v)).sum()
    }

    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn avx2_fma(iterations: u64) -> f32 {
        let (a, b) = (_mm256_set1_ps(0.999_999), _mm256_set1_ps(1e-7));
        let mut acc = [_mm256_set1_ps(1.0); CHAINS];
        for _ in 0..iterations {
            for v in acc.iter_mut() {
                *v = _mm256_fmadd_ps(*v, a, b);
            }
        }
        let mut lanes = [0.0f32; 8];
        let mut total = 0.0;
        for v in acc {
            // SAFETY: `lanes` holds the eight f32 of one register.
            unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), v) };
            total += lanes.iter().sum::<f32>();
        }
        total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    fn the_isa_matches_the_kernels_cpu_flags() {
        let flags = std::fs::read_to_string("/proc/cpuinfo").unwrap();
        let flags: Vec<&str> = flags
            .lines()
            .find(|l| l.starts_with("flags"))
            .unwrap()
            .split_whitespace()
            .collect();
        let has = |f: &str| flags.contains(&f);
        let isa = vector_isa();
        let expected = if has("avx512f") {
            ("AVX-512F", 16)
        } else if has("avx2") && has("fma") {
            ("AVX2+FMA", 8)
        } else if has("avx") {
            ("AVX", 8)
        } else {
            ("SSE2", 4)
        };
        assert_eq!((isa.name, isa.f32_lanes), expected);
    }

    #[test]
    fn every_path_computes_the_same_chains() {
        // acc ← acc·a + b from 1.0, 1,000 times, on 12 chains of `lanes` values: every path
        // gives the same total (the FLOPs counted are the FLOPs done).
        let isa = vector_isa();
        let expected = portable(isa, 1000);
        let per_value = expected / (CHAINS * isa.f32_lanes) as f32;
        let mut by_hand = 1.0f32;
        for _ in 0..1000 {
            by_hand = by_hand.mul_add(0.999_999, 1e-7);
        }
        assert!(
            (per_value - by_hand).abs() < 1e-4,
            "{per_value} vs {by_hand}"
        );
        let fast = chains(isa, 1000);
        assert!(
            (fast - expected).abs() / expected < 1e-5,
            "{fast} vs {expected}"
        );
    }

    #[test]
    fn the_peak_is_the_best_of_its_tries() {
        let mut peak = Peak::fp32(1);
        assert_eq!(peak.gflops(), 0.0);
        peak.measure(1);
        let first = peak.gflops();
        assert!(first.is_finite() && first > 0.0, "{first}");
        peak.measure(2);
        assert!(peak.gflops() >= first);
    }

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn the_bf16_loop_computes_the_dot_products_it_counts() {
        let Some(mut peak) = Peak::bf16(1) else {
            assert!(!crate::bf16::has_avx512_bf16());
            eprintln!("skipped: this CPU has no AVX512_BF16, so no bf16 peak");
            return;
        };
        // Each lane of each chain: 1000 × acc ← dot_pair(acc, a, b) from 1.0, where the low
        // eight lanes pair 0.25s with 2e-3s and the high eight 0.5s with 1e-3s.
        use crate::bf16::{dot_pair, round};
        let lane = |a: f32, b: f32| {
            (0..1000).fold(1.0f32, |acc, _| dot_pair(acc, [round(a); 2], [round(b); 2]))
        };
        let expected = (CHAINS * 8) as f32 * (lane(0.25, 2e-3) + lane(0.5, 1e-3));
        // SAFETY: `Peak::bf16` returned a peak, so the CPU has AVX512_BF16.
        let computed = unsafe { crate::bf16::x86::peak_loop::<CHAINS>(1000) };
        assert!(
            (computed - expected).abs() / expected < 1e-5,
            "{computed} vs {expected}"
        );
        peak.measure(1);
        assert!(peak.gflops().is_finite() && peak.gflops() > 0.0);
    }
}
