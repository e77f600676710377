//! Branch-free `exp`, GELU, softmax rows, LayerNorm rows and the dropout mask for f32 slices,
//! each compiled three times, for AVX-512, for AVX2+FMA and for the baseline target, the
//! widest the CPU has chosen at run time (or the one `TINYGPT_VECTOR_LEVEL` names): one
//! portable binary whose loops run sixteen or eight lanes wide instead of calling libm one
//! scalar at a time.
//!
//! The three give the same bits: the element-wise loops do the same IEEE operations in every
//! lane (Rust never fuses a multiply and an add on its own), and the sums keep eight partial
//! accumulators whatever the vector width, so a run resumed on another kind of CPU continues
//! exactly.

#[cfg(test)]
use std::cell::Cell;
use std::mem::MaybeUninit;
use std::sync::OnceLock;

/// The vector instructions a kernel runs compiled for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Baseline,
    /// AVX2 and FMA (x86-64-v3).
    Avx2,
    /// AVX-512 F, VL, DQ and BW (x86-64-v4).
    Avx512,
    /// AVX-512 with AVX512_BF16: the element-wise kernels as [`Level::Avx512`], and the bf16
    /// products (`VDPBF16PS`) that `train.precision = "bf16"` multiplies with.
    Avx512Bf16,
    /// AVX512_BF16 with AMX-BF16 tiles granted to this process: the linear maps' bf16 products
    /// on `TDPBF16PS` (attention's stay on `VDPBF16PS`).
    Amx,
}

impl Level {
    /// Whether this CPU runs code compiled for `self`.
    pub fn available(self) -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            use std::is_x86_feature_detected as has;
            match self {
                Level::Baseline => true,
                Level::Avx2 => has!("avx2") && has!("fma"),
                Level::Avx512 => {
                    Level::Avx2.available()
                        && has!("avx512f")
                        && has!("avx512vl")
                        && has!("avx512dq")
                        && has!("avx512bw")
                }
                Level::Avx512Bf16 => Level::Avx512.available() && has!("avx512bf16"),
                Level::Amx => Level::Avx512Bf16.available() && crate::features::amx_permitted(),
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            self == Level::Baseline
        }
    }

    /// Every level, narrowest first.
    pub const ALL: [Level; 5] = [
        Level::Baseline,
        Level::Avx2,
        Level::Avx512,
        Level::Avx512Bf16,
        Level::Amx,
    ];

    /// The name `TINYGPT_VECTOR_LEVEL` takes for this level.
    pub fn name(self) -> &'static str {
        match self {
            Level::Baseline => "baseline",
            Level::Avx2 => "avx2",
            Level::Avx512 => "avx512",
            Level::Avx512Bf16 => "avx512bf16",
            Level::Amx => "amx",
        }
    }

    /// The level `TINYGPT_VECTOR_LEVEL` holds the kernels to: `Ok(None)` when it is unset or
    /// empty, else as [`Level::from_setting`] reads it.
    pub fn from_environment() -> Result<Option<Level>, String> {
        match std::env::var_os(LEVEL_VARIABLE) {
            Some(value) if !value.is_empty() => {
                Level::from_setting(&value.to_string_lossy()).map(Some)
            }
            _ => Ok(None),
        }
    }

    /// The level a `TINYGPT_VECTOR_LEVEL` value names, or an error for the user (naming the
    /// fix) when it names no level or one this CPU lacks.
    pub fn from_setting(value: &str) -> Result<Level, String> {
        let Some(level) = Level::ALL.into_iter().find(|level| level.name() == value) else {
            return Err(format!(
                "{LEVEL_VARIABLE}={value} names no vector level: use baseline, avx2, avx512, \
                 avx512bf16 or amx, or unset it for the widest this CPU runs ({})",
                Level::best().name()
            ));
        };
        if !level.available() {
            return Err(format!(
                "{LEVEL_VARIABLE}={value}: this CPU cannot run {value} code (the widest it \
                 runs is {}); choose that or a narrower level, or unset it",
                Level::best().name()
            ));
        }
        Ok(level)
    }

    /// The level the kernels run at: the one `TINYGPT_VECTOR_LEVEL` names, else the best. A
    /// setting this CPU cannot honour falls back to the best (the binary reports it as an
    /// error before any kernel runs).
    pub fn chosen() -> Level {
        static CHOSEN: OnceLock<Level> = OnceLock::new();
        *CHOSEN.get_or_init(|| {
            Level::from_environment()
                .ok()
                .flatten()
                .unwrap_or_else(Level::best)
        })
    }

    /// The widest level this CPU runs.
    pub fn best() -> Level {
        static BEST: OnceLock<Level> = OnceLock::new();
        *BEST.get_or_init(|| {
            Level::ALL
                .into_iter()
                .rev()
                .find(|level| level.available())
                .unwrap_or(Level::Baseline)
        })
    }
}

#[cfg(test)]
thread_local! {
    /// A level this thread's kernels are held to (by [`with_level`]), instead of the best.
    static HELD: Cell<Option<Level>> = const { Cell::new(None) };
}

/// Runs `f` with this thread's kernels compiled for `level`, so tests can compare the paths.
/// Panics when the CPU lacks `level`.
#[cfg(test)]
pub fn with_level<R>(level: Level, f: impl FnOnce() -> R) -> R {
    assert!(level.available(), "this CPU cannot run {level:?} code");
    let before = HELD.with(|held| held.replace(Some(level)));
    let result = f();
    HELD.with(|held| held.set(before));
    result
}

/// The environment variable that holds the vectorised kernels to one [`Level`], so that one
/// binary can time its levels against each other on the CPU at hand (they give the same bits).
pub const LEVEL_VARIABLE: &str = "TINYGPT_VECTOR_LEVEL";

/// The level kernels run at on this thread: one the CPU has ([`Level::chosen`], outside tests
/// that hold another).
#[inline]
pub fn level() -> Level {
    #[cfg(test)]
    if let Some(level) = HELD.with(Cell::get) {
        return level;
    }
    Level::chosen()
}

/// Generates `pub fn $name(..)` that runs `$body` compiled for the [`level`] of this thread:
/// AVX-512, AVX2+FMA or the baseline target.
macro_rules! vectorised {
    ($(#[$meta:meta])* pub fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block) => {
        $(#[$meta])*
        pub fn $name($($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            fn body($($arg: $ty),*) $(-> $ret)? $body

            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512vl,avx512dq,avx512bw,avx2,fma")]
                unsafe fn avx512($($arg: $ty),*) $(-> $ret)? {
                    body($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                unsafe fn avx2($($arg: $ty),*) $(-> $ret)? {
                    body($($arg),*)
                }
                match level() {
                    // SAFETY: `level` only names a level the CPU has.
                    Level::Avx512 | Level::Avx512Bf16 | Level::Amx => return unsafe { avx512($($arg),*) },
                    Level::Avx2 => return unsafe { avx2($($arg),*) },
                    Level::Baseline => {}
                }
            }
            body($($arg),*)
        }
    };
}

pub(crate) use vectorised;

const LOG2_E: f32 = std::f32::consts::LOG2_E;
const SQRT_2: f32 = std::f32::consts::SQRT_2;
/// 1/√(2π), the standard normal density at 0.
const INV_SQRT_2PI: f32 = 0.398_942_3;

/// e^x within 2 ulp for x in [-87, 88] (Cephes' `expf`: x = n·ln2 + r, a degree-6 polynomial for
/// e^r, 2^n through the exponent bits). Inputs outside are clamped, so e^(-inf) ≈ 1e-38, not 0.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    let x = x.clamp(-87.0, 88.0);
    let n = (x * LOG2_E + 0.5).floor();
    // ln 2 split in two so that n·ln2 is exact in the first part.
    let r = x - n * 0.693_359_4 + n * 2.121_944_4e-4;
    let poly = ((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2)
        * r
        + 1.666_666_5e-1)
        * r
        + 0.5;
    let e_r = poly * r * r + r + 1.0;
    // SAFETY: n is an integer in [-126, 127] after the clamp; `as i32` would also be correct
    // but its saturation checks stop the loop from vectorising.
    let n: i32 = unsafe { n.to_int_unchecked() };
    e_r * f32::from_bits(((n + 127) as u32) << 23)
}

/// Φ(x) = ½(1 + erf(x/√2)) and φ(x) = e^(-x²/2)/√(2π) together: they share one `exp`.
/// erf is Abramowitz & Stegun 7.1.26 (absolute error ≤ 1.5e-7).
#[inline(always)]
fn normal_cdf_pdf(x: f32) -> (f32, f32) {
    let u = x / SQRT_2;
    let a = u.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * a);
    let poly = ((((1.061_405_4 * t - 1.453_152) * t + 1.421_413_8) * t - 0.284_496_74) * t
        + 0.254_829_6)
        * t;
    let gauss = exp(-u * u); // e^(-x²/2)
    let erf_abs = 1.0 - poly * gauss;
    let erf = if u < 0.0 { -erf_abs } else { erf_abs };
    (0.5 * (1.0 + erf), INV_SQRT_2PI * gauss)
}

vectorised! {
    /// `y = x·Φ(x)`, the exact (erf) GELU, and its derivative `Φ(x) + x·φ(x)` for the
    /// backward pass (both come out of one evaluation of Φ and φ).
    pub fn gelu_forward(x: &[f32], y: &mut [MaybeUninit<f32>], derivative: &mut [MaybeUninit<f32>]) {
        for ((y, d), &x) in y.iter_mut().zip(derivative).zip(x) {
            let (cdf, pdf) = normal_cdf_pdf(x);
            y.write(x * cdf);
            d.write(cdf + x * pdf);
        }
    }
}

/// √(2/π), GPT-2's tanh approximation's scale.
const SQRT_2_OVER_PI: f32 = 0.797_884_6;
/// The cubic term's coefficient in GPT-2's tanh approximation.
const GELU_TANH_CUBIC: f32 = 0.044_715;

vectorised! {
    /// GPT-2's GELU (`gelu_new`), `y = ½x(1 + tanh(u))` with `u = √(2/π)(x + 0.044715x³)`, and
    /// its derivative `½(1 + t) + ½x(1 − t²)·√(2/π)(1 + 3·0.044715x²)` with `t = tanh(u)`.
    pub fn gelu_tanh_forward(x: &[f32], y: &mut [MaybeUninit<f32>], derivative: &mut [MaybeUninit<f32>]) {
        for ((y, d), &x) in y.iter_mut().zip(derivative).zip(x) {
            let u = SQRT_2_OVER_PI * (x + GELU_TANH_CUBIC * x * x * x);
            // With e = e^{2u}: 1 − t = 2/(e + 1) and 1 + t = 2e/(e + 1), each without
            // cancellation, so 1 − t² = (1 − t)(1 + t) stays accurate in both tails (where
            // x·(1 − t²) would otherwise magnify t's rounding).
            let e = exp(2.0 * u);
            let (one_minus_t, one_plus_t) = (2.0 / (e + 1.0), 2.0 * e / (e + 1.0));
            y.write(0.5 * x * one_plus_t);
            d.write(
                0.5 * one_plus_t
                    + 0.5 * x * one_minus_t * one_plus_t * SQRT_2_OVER_PI
                        * (1.0 + 3.0 * GELU_TANH_CUBIC * x * x),
            );
        }
    }
}

vectorised! {
    /// `row ← e^(row - max(row))`, returning the sum of the new row.
    pub fn exp_shifted(row: &mut [f32]) -> f32 {
        let max = lanes(row, f32::NEG_INFINITY, f32::max);
        for v in row.iter_mut() {
            *v = exp(*v - max);
        }
        lanes(row, 0.0, |a, b| a + b)
    }
}

vectorised! {
    /// `Σ a·b`.
    pub fn dot(a: &[f32], b: &[f32]) -> f32 {
        let mut acc = [0.0f32; 8];
        let (a8, b8) = (a.chunks_exact(8), b.chunks_exact(8));
        let tail: f32 = a8.remainder().iter().zip(b8.remainder()).map(|(a, b)| a * b).sum();
        for (a, b) in a8.zip(b8) {
            for i in 0..8 {
                acc[i] += a[i] * b[i];
            }
        }
        acc.iter().sum::<f32>() + tail
    }
}

/// Folds `values` with `op` over eight independent lanes (so the loop vectorises), then
/// folds the lanes and the tail.
#[inline(always)]
pub fn lanes(values: &[f32], init: f32, op: impl Fn(f32, f32) -> f32 + Copy) -> f32 {
    let mut acc = [init; 8];
    let chunks = values.chunks_exact(8);
    let tail = chunks.remainder().iter().fold(init, |a, &v| op(a, v));
    for chunk in chunks {
        for i in 0..8 {
            acc[i] = op(acc[i], chunk[i]);
        }
    }
    acc.iter().fold(tail, |a, &v| op(a, v))
}

vectorised! {
    /// One row of LayerNorm: `y = (x − mean)/√(var + ε)·γ + β`. Returns (mean, 1/√(var + ε)).
    pub fn layer_norm_row(x: &[f32], gamma: &[f32], beta: &[f32], epsilon: f32, y: &mut [MaybeUninit<f32>]) -> (f32, f32) {
        let n = x.len() as f32;
        let mean = lanes(x, 0.0, |a, b| a + b) / n;
        let mut centred_sq = [0.0f32; 8];
        let chunks = x.chunks_exact(8);
        let tail: f32 = chunks.remainder().iter().map(|v| (v - mean) * (v - mean)).sum();
        for chunk in chunks {
            for i in 0..8 {
                centred_sq[i] += (chunk[i] - mean) * (chunk[i] - mean);
            }
        }
        let var = (centred_sq.iter().sum::<f32>() + tail) / n;
        let rstd = 1.0 / (var + epsilon).sqrt();
        for (((y, &x), &g), &b) in y.iter_mut().zip(x).zip(gamma).zip(beta) {
            y.write((x - mean) * rstd * g + b);
        }
        (mean, rstd)
    }
}

vectorised! {
    /// Backward of one LayerNorm row: writes dx and adds this row's share of dγ and dβ.
    /// With x̂ = (x − mean)·rstd and g = dy·γ: dx = rstd·(g − mean(g) − x̂·mean(g·x̂)).
    pub fn layer_norm_row_backward(
        x: &[f32],
        dy: &[f32],
        gamma: &[f32],
        stats: (f32, f32),
        dx: &mut [MaybeUninit<f32>],
        d_gamma: &mut [f32],
        d_beta: &mut [f32],
    ) {
        let (mean, rstd) = stats;
        let n = x.len();
        let (dy, gamma, dx) = (&dy[..n], &gamma[..n], &mut dx[..n]);
        let (d_gamma, d_beta) = (&mut d_gamma[..n], &mut d_beta[..n]);
        let (mut g_sum, mut gx_sum) = ([0.0f32; 8], [0.0f32; 8]);
        let (x8, dy8, gamma8) = (x.chunks_exact(8), dy.chunks_exact(8), gamma.chunks_exact(8));
        let (mut g_tail, mut gx_tail) = (0.0, 0.0);
        for ((&x, &dy), &gamma) in x8.remainder().iter().zip(dy8.remainder()).zip(gamma8.remainder()) {
            g_tail += dy * gamma;
            gx_tail += dy * gamma * (x - mean) * rstd;
        }
        for ((x, dy), gamma) in x8.zip(dy8).zip(gamma8) {
            for i in 0..8 {
                let g = dy[i] * gamma[i];
                g_sum[i] += g;
                gx_sum[i] += g * (x[i] - mean) * rstd;
            }
        }
        let g_mean = (g_sum.iter().sum::<f32>() + g_tail) / n as f32;
        let gx_mean = (gx_sum.iter().sum::<f32>() + gx_tail) / n as f32;
        for k in 0..n {
            let x_hat = (x[k] - mean) * rstd;
            dx[k].write(rstd * (dy[k] * gamma[k] - g_mean - x_hat * gx_mean));
            d_gamma[k] += dy[k] * x_hat;
            d_beta[k] += dy[k];
        }
    }
}

/// A 32-bit integer hash in which every input bit flips about half the output bits
/// (Wellons' `lowbias32`); a bijection, so distinct inputs never collide.
#[inline(always)]
fn mix32(mut x: u32) -> u32 {
    x ^= x >> 16;
    x = x.wrapping_mul(0x7feb_352d);
    x ^= x >> 15;
    x = x.wrapping_mul(0x846c_a68b);
    x ^ (x >> 16)
}

/// The hash that decides element `index`'s dropout under `key`: two rounds, one per key half.
#[inline(always)]
pub fn dropout_hash(key: u64, index: u32) -> u32 {
    mix32(mix32(index ^ key as u32) ^ (key >> 32) as u32)
}

vectorised! {
    /// `y = x·scale` where the element's hash is below `keep_below`, else 0; element `i` of the
    /// slice has index `first_index + i`.
    pub fn apply_dropout_mask(x: &[f32], y: &mut [MaybeUninit<f32>], key: u64, first_index: u32, keep_below: u32, scale: f32) {
        for (i, (y, &x)) in y.iter_mut().zip(x).enumerate() {
            let hash = dropout_hash(key, first_index.wrapping_add(i as u32));
            y.write(if hash < keep_below { x * scale } else { 0.0 });
        }
    }
}
