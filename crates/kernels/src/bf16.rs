//! bf16 numbers and the pair dot product of `VDPBF16PS` (AVX512_BF16), with the scalar
//! reference every bf16 kernel is tested against to the bit.
//!
//! A bf16 is an f32's top 16 bits: the same 8-bit exponent, 7 stored mantissa bits. Rounding
//! from f32 is to nearest, ties to even, as `VCVTNE2PS2BF16` does (a NaN stays a quiet NaN).
//! `VDPBF16PS` adds to each f32 lane the products of one pair of bf16s: the odd element's
//! product first, then the even one's, each sum rounded to nearest-even, with denormal inputs
//! and results read and written as zero (the instruction's fixed DAZ/FTZ). The products of two
//! bf16s are exact in f32 (8 + 8 significant bits), so these two roundings are the only ones.
//! The conversion reads a denormal f32 as zero too.
//!
//! No crate provides this (gemm's f16 converts to f32 and has no bf16): the instruction is
//! reached through `std::arch`, chosen at run time like the AVX-512 level.

/// The bf16 nearest `x` (ties to even), as its bits; a denormal becomes a zero of its sign,
/// as the instruction reads it.
pub fn round(x: f32) -> u16 {
    let bits = x.to_bits();
    if x.is_nan() {
        return ((bits >> 16) | 0x0040) as u16; // quiet, sign and payload's top kept
    }
    if x.is_subnormal() {
        return (bits >> 16) as u16 & 0x8000;
    }
    let rounding = 0x7fff + ((bits >> 16) & 1);
    (bits.wrapping_add(rounding) >> 16) as u16
}

/// The f32 a bf16 stands for (exact).
pub fn widen(bits: u16) -> f32 {
    f32::from_bits(u32::from(bits) << 16)
}

/// `x` with a denormal read as a zero of its sign (the instruction's DAZ and FTZ).
fn flushed(x: f32) -> f32 {
    if x.is_subnormal() {
        f32::from_bits(x.to_bits() & 0x8000_0000)
    } else {
        x
    }
}

/// One lane of `VDPBF16PS`: `acc + a[1]·b[1] + a[0]·b[0]`, summed in that order, each sum
/// rounded to nearest-even and flushed, the inputs flushed first.
pub fn dot_pair(acc: f32, a: [u16; 2], b: [u16; 2]) -> f32 {
    let product = |i: usize| flushed(widen(a[i])) * flushed(widen(b[i]));
    let acc = flushed(flushed(acc) + product(1));
    flushed(acc + product(0))
}

pub use crate::features::{has_amx_bf16, has_avx512_bf16};

/// `VDPBF16PS` over whole vectors: for every 16 lanes, `acc[j] = dot_pair(acc[j], a[2j..],
/// b[2j..])`. `None` when this CPU lacks AVX512_BF16 (the caller then says so). The test of
/// the instruction against [`dot_pair`] on any bit pattern; products go through `matmul`.
#[cfg(test)]
pub fn dot_pairs(acc: &mut [f32], a: &[u16], b: &[u16]) -> Option<()> {
    assert!(a.len() == 2 * acc.len() && b.len() == a.len());
    if !has_avx512_bf16() {
        return None;
    }
    #[cfg(target_arch = "x86_64")]
    // SAFETY: the CPU has AVX512_BF16 and AVX-512F (checked above).
    unsafe {
        x86::dot_pairs(acc, a, b)
    };
    Some(())
}

#[cfg(target_arch = "x86_64")]
pub(crate) mod x86 {
    use std::arch::x86_64::*;

    #[cfg(test)]
    #[target_feature(enable = "avx512f,avx512bf16")]
    pub unsafe fn dot_pairs(acc: &mut [f32], a: &[u16], b: &[u16]) {
        let whole = acc.len() / 16 * 16;
        for start in (0..whole).step_by(16) {
            // SAFETY: lanes start..start+16 of acc and 2·start..2·start+32 of a and b exist.
            unsafe {
                let sum = _mm512_loadu_ps(acc.as_ptr().add(start));
                let x: __m512bh =
                    std::mem::transmute(_mm512_loadu_si512(a.as_ptr().add(2 * start).cast()));
                let y: __m512bh =
                    std::mem::transmute(_mm512_loadu_si512(b.as_ptr().add(2 * start).cast()));
                _mm512_storeu_ps(acc.as_mut_ptr().add(start), _mm512_dpbf16_ps(sum, x, y));
            }
        }
        for j in whole..acc.len() {
            acc[j] = super::dot_pair(acc[j], [a[2 * j], a[2 * j + 1]], [b[2 * j], b[2 * j + 1]]);
        }
    }

    /// `iterations` rounds of `VDPBF16PS` on `chains` accumulators in registers (the bf16
    /// peak's loop); returns their sum so that nothing is optimised away.
    #[target_feature(enable = "avx512f,avx512bf16")]
    pub unsafe fn peak_loop<const CHAINS: usize>(iterations: u64) -> f32 {
        let a = _mm512_cvtne2ps_pbh(_mm512_set1_ps(0.5), _mm512_set1_ps(0.25));
        let b = _mm512_cvtne2ps_pbh(_mm512_set1_ps(1e-3), _mm512_set1_ps(2e-3));
        let mut acc = [_mm512_set1_ps(1.0); CHAINS];
        for _ in 0..iterations {
            for v in acc.iter_mut() {
                *v = _mm512_dpbf16_ps(*v, a, b);
            }
        }
        acc.iter().map(|&v| _mm512_reduce_add_ps(v)).sum()
    }

    /// `_mm512_cvtne2ps_pbh` on 32 values: the instruction's rounding, for the reference test.
    #[cfg(test)]
    #[target_feature(enable = "avx512f,avx512bf16")]
    pub unsafe fn round32(x: &[f32; 32]) -> [u16; 32] {
        // SAFETY: `x` holds 32 f32; the result is 32 bf16.
        unsafe {
            let low = _mm512_loadu_ps(x.as_ptr());
            let high = _mm512_loadu_ps(x.as_ptr().add(16));
            std::mem::transmute(_mm512_cvtne2ps_pbh(high, low))
        }
    }
}

pub mod amx;
pub mod matmul;
mod packing;

#[cfg(test)]
mod tests;
