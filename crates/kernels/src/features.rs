//! What this CPU and its OS grant the bf16 kernels: AVX512_BF16, and AMX-BF16 tiles (which
//! Linux hands a process only on request). Read by the kernel levels and the kernels alike,
//! and itself reads nothing of the crate.

use std::sync::OnceLock;

/// Whether this CPU has AVX512_BF16 (`VDPBF16PS`, `VCVTNE2PS2BF16`).
pub fn has_avx512_bf16() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx512bf16") && std::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Whether this CPU has AMX-BF16 tiles and the OS saves their state (CPUID leaf 7, EDX bits
/// 22 and 24, and XCR0 bits 17 and 18; std cannot detect AMX yet). Linux still grants a
/// process the tiles only on request (`arch_prctl`).
pub fn has_amx_bf16() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{__cpuid, __cpuid_count};
        // Leaf 7 is read only when leaf 0 lists it; XCR0 only when the OS enabled XSAVE.
        if __cpuid(0).eax < 7 {
            return false;
        }
        let edx = __cpuid_count(7, 0).edx;
        let tiles = edx & (1 << 22) != 0 && edx & (1 << 24) != 0;
        let os_xsave = __cpuid(1).ecx & (1 << 27) != 0;
        // SAFETY: XGETBV exists when the OS enabled XSAVE (checked first).
        tiles && os_xsave && unsafe { xcr0() } & (0b11 << 17) == 0b11 << 17
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "xsave")]
unsafe fn xcr0() -> u64 {
    // SAFETY: the caller checked that the OS enabled XSAVE.
    unsafe { std::arch::x86_64::_xgetbv(0) }
}

/// Whether this process may run AMX-BF16 tiles: the CPU has them, the OS saves their state,
/// and Linux granted the request (asked once, on the first call).
pub fn amx_permitted() -> bool {
    static PERMITTED: OnceLock<bool> = OnceLock::new();
    *PERMITTED.get_or_init(|| has_amx_bf16() && has_avx512_bf16() && request())
}

/// Asks Linux for the tile data state (`ARCH_REQ_XCOMP_PERM`, `XFEATURE_XTILEDATA`).
fn request() -> bool {
    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    {
        const ARCH_REQ_XCOMP_PERM: libc::c_long = 0x1023;
        const XFEATURE_XTILEDATA: libc::c_long = 18;
        // SAFETY: arch_prctl with these arguments only changes the process's permissions.
        unsafe {
            libc::syscall(
                libc::SYS_arch_prctl,
                ARCH_REQ_XCOMP_PERM,
                XFEATURE_XTILEDATA,
            ) == 0
        }
    }
    #[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
    {
        false
    }
}
