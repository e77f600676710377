//! What a training step's products multiply in: f32, or bf16 operands with f32 sums. A
//! setting of the thread that runs a forward pass, read by each fused op there and saved for
//! its backward pass.

use std::cell::Cell;

use crate::{cpu, math};

/// The number format of the fused linear maps' and attention's products (stored-pattern and
/// tiled; forward, and the backward pass that follows): f32, or bf16 operands with f32 sums
/// (`VDPBF16PS`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Precision {
    #[default]
    Fp32,
    Bf16,
}

thread_local! {
    /// The precision this thread's fused products multiply in (set by [`with_precision`]).
    static PRECISION: Cell<Precision> = const { Cell::new(Precision::Fp32) };
}

/// Runs `f` (a training step's forward pass) with this thread's fused products multiplying in
/// `precision`; each op's backward pass multiplies as its forward pass did, whichever thread
/// runs it. Panics for bf16 where [`bf16_products`] refuses it (check that first).
pub fn with_precision<R>(precision: Precision, f: impl FnOnce() -> R) -> R {
    if precision == Precision::Bf16
        && let Err(message) = bf16_products()
    {
        panic!("{message}");
    }
    struct Restore(Precision);
    impl Drop for Restore {
        fn drop(&mut self) {
            PRECISION.with(|p| p.set(self.0));
        }
    }
    let _restore = Restore(PRECISION.with(|p| p.replace(precision)));
    f()
}

/// The precision this thread's fused products multiply in.
pub(crate) fn precision() -> Precision {
    PRECISION.with(Cell::get)
}

/// Whether this process can multiply in bf16: on a CPU with AVX512_BF16, not held below it by
/// `TINYGPT_VECTOR_LEVEL`. Otherwise the reason, naming the widest level here and the fix.
pub fn bf16_products() -> Result<(), String> {
    let level = math::level();
    if level >= cpu::Level::Avx512Bf16 {
        return Ok(());
    }
    let widest = cpu::Level::best();
    let fix = "set train.precision = \"fp32\"";
    Err(if level < widest && widest >= cpu::Level::Avx512Bf16 {
        format!(
            "bf16 products need AVX512_BF16, which this CPU has, but {}={} holds this process \
             below it: unset it, or {fix}",
            cpu::LEVEL_VARIABLE,
            level.name()
        )
    } else {
        format!(
            "bf16 products need a CPU with AVX512_BF16; this one's widest level is {}: {fix}",
            widest.name()
        )
    })
}
