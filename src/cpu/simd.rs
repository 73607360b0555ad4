//! Run-time choice of the instruction set for the hot loops.
//!
//! The crate is compiled for baseline x86-64 (SSE2) so its binaries run anywhere; where
//! the CPU has AVX2 and FMA, the same loop bodies are compiled a second time with those
//! enabled (8-wide fused multiply-adds) and chosen at run time.

/// How a loop body multiplies and adds: generic so one body serves both builds.
pub(super) trait MulAdd: Copy {
    /// Whether this is the AVX2 + FMA build: kernels may then call
    /// `#[target_feature(enable = "avx2,fma")]` functions.
    const AVX2_FMA: bool;
    /// `a * b + c`.
    fn mul_add(a: f32, b: f32, c: f32) -> f32;
}

/// Separate multiply and add: what baseline x86-64 has in hardware.
#[derive(Clone, Copy)]
pub(super) struct Plain;

impl MulAdd for Plain {
    const AVX2_FMA: bool = false;
    #[inline(always)]
    fn mul_add(a: f32, b: f32, c: f32) -> f32 {
        a * b + c
    }
}

/// Fused multiply-add: one rounding, one instruction where FMA is enabled. Only
/// [`dispatch!`]'s AVX2 + FMA build, entered after [`isa`] found both, names it, which is
/// what makes its `AVX2_FMA` promise true.
#[derive(Clone, Copy)]
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
pub(super) struct Fused;

impl MulAdd for Fused {
    const AVX2_FMA: bool = true;
    #[inline(always)]
    fn mul_add(a: f32, b: f32, c: f32) -> f32 {
        a.mul_add(b, c)
    }
}

use std::sync::atomic::{AtomicBool, Ordering};

/// The instruction sets the CPU kernels are built for.
///
/// ```
/// use rosa::cpu::{isa, set_baseline_only, Isa};
/// set_baseline_only(true); // e.g. to compare results bit for bit across machines
/// assert_eq!(isa(), Isa::Baseline);
/// set_baseline_only(false);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isa {
    /// The compile target's baseline (SSE2 on x86-64): separate multiply and add.
    Baseline,
    /// AVX2 with fused multiply-add, chosen at run time where the CPU has both.
    Avx2Fma,
}

static BASELINE_ONLY: AtomicBool = AtomicBool::new(false);

/// Keeps the kernels on the baseline instruction set (`true`) or lets them use the best
/// the CPU has (`false`, the default). Results differ only by rounding: fused
/// multiply-adds round once where the baseline rounds twice.
pub fn set_baseline_only(on: bool) {
    BASELINE_ONLY.store(on, Ordering::Relaxed);
}

/// The instruction set the kernels use now.
pub fn isa() -> Isa {
    if !BASELINE_ONLY.load(Ordering::Relaxed) && cpu_has_avx2_fma() {
        Isa::Avx2Fma
    } else {
        Isa::Baseline
    }
}

/// Whether this CPU can run the AVX2 + FMA builds (cached by std after the first call).
fn cpu_has_avx2_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Defines `$name(args) -> ret`, which runs `$body::<Fused>` compiled with AVX2 and FMA
/// when the CPU has them and `$body::<Plain>` otherwise. `$body` must be
/// `#[inline(always)]` so it is compiled into each variant.
macro_rules! dispatch {
    ($(#[$doc:meta])* fn $name:ident $(<$($g:ident: $bound:path),*>)? ($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? => $body:ident) => {
        $(#[$doc])*
        fn $name $(<$($g: $bound),*>)? ($($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2,fma")]
                fn fast $(<$($g: $bound),*>)? ($($arg: $ty),*) $(-> $ret)? {
                    $body::<$crate::cpu::simd::Fused $(, $($g),*)?>($($arg),*)
                }
                if $crate::cpu::simd::isa() == $crate::cpu::simd::Isa::Avx2Fma {
                    // SAFETY: `fast` needs AVX2 and FMA, and `isa()` reports `Avx2Fma`
                    // only when the CPU has both.
                    return unsafe { fast $(::<$($g),*>)? ($($arg),*) };
                }
            }
            $body::<$crate::cpu::simd::Plain $(, $($g),*)?>($($arg),*)
        }
    };
}
pub(super) use dispatch;
