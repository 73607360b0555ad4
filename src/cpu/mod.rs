//! The CPU backend: parallel (rayon) kernels that accumulate in f32 for every dtype.
//!
//! Each kernel computes `C = alpha * op + beta * C`. As in BLAS, `beta == 0` means C is
//! not read, so an uninitialized or NaN-filled output is overwritten cleanly.
//!
//! For f16 and bf16, products and sums are formed in f32 and rounded to `T` once, when
//! written ([`Scalar::from_f32`](crate::Scalar::from_f32)): an f16 result is exact to f16
//! rounding even when its products overflow f16, and a result beyond f16's range is
//! written as `±inf`. NaN and infinities in any operand propagate as IEEE 754 says (a
//! stored zero times an infinity is NaN), and only into the outputs that read them.
//!
//! | kernel | computes | shapes |
//! |---|---|---|
//! | [`spmm`] | `C = alpha A B + beta C` | A: M x K sparse, B: K x N, C: M x N |
//! | [`spmm_t`] | `C = alpha A^T B + beta C` | A: M x K sparse, B: M x N, C: K x N |
//! | [`sddmm`] | `out[p] = alpha (L R^T)[i, j] + beta out[p]`, p = (i, j) in the mask | L: M x k, R: N x k, mask: M x N |

#[cfg(target_arch = "x86_64")]
mod blocked;
mod convert;
mod partition;
mod sddmm;
mod simd;
mod spmm;

pub use sddmm::sddmm;
pub use simd::{isa, set_baseline_only, Isa};
pub use spmm::{spmm, spmm_t};
// The argument checks, for `cuda::CudaBackend` to refuse what the CPU kernels refuse.
#[cfg(feature = "cuda")]
pub(crate) use {
    sddmm::check_sddmm,
    spmm::{check_spmm, check_spmm_t},
};

use crate::{Error, Result};

/// Scaling factors must be finite: a NaN alpha would silently poison every output.
pub(crate) fn check_scalars(op: &'static str, alpha: f32, beta: f32) -> Result<()> {
    if alpha.is_finite() && beta.is_finite() {
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!(
            "{op}: alpha ({alpha}) and beta ({beta}) must be finite"
        )))
    }
}

/// `alpha * acc + beta * old`, without reading `old` when `beta == 0`.
#[inline(always)]
fn scale_into<T: crate::Scalar>(out: &mut [T], acc: &[f32], alpha: f32, beta: f32) {
    if beta == 0.0 {
        for (o, &a) in out.iter_mut().zip(acc) {
            *o = T::from_f32(alpha * a);
        }
    } else {
        for (o, &a) in out.iter_mut().zip(acc) {
            *o = T::from_f32(alpha * a + beta * o.to_f32());
        }
    }
}
