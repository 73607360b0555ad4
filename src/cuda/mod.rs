//! The CUDA backend (feature `cuda`): hand-written SpMM, transposed SpMM and SDDMM kernels
//! from `csrc/`, behind safe launchers with the CPU kernels' semantics.
//!
//! Layered like cudarc: [`sys`](self) holds the bindgen output of `csrc/rosa_kernels.h`,
//! a checked layer turns C status codes into [`Error`](crate::Error)s and owns every
//! `unsafe` (`launch`, its cudarc-free half, which `rosa::emu` compiles too, and `result`,
//! the launchers on cudarc's buffers), and this module's items are the safe API. Buffers, streams and events come
//! from cudarc (driver loaded at run time), so a binary built with `cuda` still starts,
//! and reports [`Error::NoDevice`](crate::Error::NoDevice), where there is no GPU.
//!
//! | launcher | computes | shapes |
//! |---|---|---|
//! | [`spmm`] | `C = alpha A B + beta C` | A: M x K sparse, B: K x N, C: M x N |
//! | [`spmm_t`] | `C = alpha A^T B + beta C` | A: M x K sparse, B: M x N, C: K x N |
//! | [`spmm_f32_out`], [`spmm_t_f32_out`] | the same with bf16 A and B, f32 C | as above |
//! | [`sddmm`] | `out[p] = alpha (L R^T)[i, j] + beta out[p]` | L: M x k, R: N x k, out: M x N mask |
//!
//! [`DeviceNf4`] holds an NF4-quantized frozen weight ([`crate::quant::Nf4Matrix`]) on the
//! device, and [`dequantize`] writes a tile of its rows into a reused f32 / f16 / bf16
//! workspace before a dense GEMM (QRoSA).
//!
//! [`CudaBackend`] runs the trainer's products ([`crate::train::Backend`]) on these
//! launchers and [`Blas`], staging each call's operands through host memory.
//!
//! [`Blas`] wraps cuBLAS's dense GEMM and [`Sparse`] cuSPARSE's CSR SpMM and SDDMM on
//! the same buffers: the baselines of [`crate::bench::gpu`]. [`DeviceRosaLinear`] and
//! [`DeviceAdamW`] train the RoSA layer on the device, with the elementwise kernels
//! ([`axpby`], [`cast`], [`bias_add`], [`row_sum`], [`sum_squares`], [`csr_add`], [`csr_add_from`]) doing
//! the work around the products.
//!
//! ```no_run
//! use rosa::cuda::{self, Device, DeviceCsr, DeviceDense};
//! let dev = match Device::new(0) {
//!     Ok(dev) => dev,
//!     Err(e) => { eprintln!("no GPU: {e}"); return Ok(()); }
//! };
//! let a = rosa::random::csr::<f32>(512, 256, 0.02, 1)?;
//! let b = rosa::random::dense::<f32>(256, 64, 2);
//! let da = DeviceCsr::from_host(&dev, a.as_ref())?;
//! let db = DeviceDense::from_host(&dev, b.as_ref())?;
//! let mut dc = DeviceDense::zeros(&dev, 512, 64)?;
//! cuda::spmm(&dev, 1.0, &da, &db, 0.0, &mut dc)?;
//! let mut c = rosa::Dense::zeros(512, 64);
//! rosa::cpu::spmm(1.0, a.as_ref(), b.as_ref(), 0.0, c.as_mut())?;
//! # Ok::<(), rosa::Error>(())
//! ```

mod backend;
mod blas;
mod ceilings;
mod config;
mod csr;
mod dense;
mod device;
mod elementwise;
mod launch;
mod layer;
mod mask;
mod mem;
mod optim;
mod quant;
pub mod raw;
#[cfg(test)]
mod raw_tests;
mod result;
mod sddmm;
mod sparse;
mod spmm;
mod sys;
mod view;

pub use crate::Op;
pub use backend::CudaBackend;
pub use blas::{Blas, BlasScalar, Math, Transpose};
pub use ceilings::Probes;
pub use config::KernelConfig;
pub use csr::DeviceCsr;
pub use dense::DeviceDense;
pub use device::{device_count, Device, DeviceInfo};
pub use elementwise::{axpby, bias_add, cast, csr_add, csr_add_from, row_sum, sum_squares};
pub use layer::{DeviceParam, DeviceRosaLinear};
pub use mask::DeviceMask;
pub use optim::DeviceAdamW;
pub use quant::{dequantize, DeviceNf4};
pub use sddmm::{sddmm, sddmm_with};
pub use sparse::{Sparse, SparseSddmm, SparseSpmm, SpmmAlg};
pub use spmm::{spmm, spmm_f32_out, spmm_t, spmm_t_f32_out, spmm_t_with, spmm_with};
pub use view::{
    DenseOperand, DenseOperandMut, DenseView, DenseViewMut, SparseOperand, SparseOperandMut,
    SparseView, SparseViewMut,
};

/// An element type the CUDA kernels take: [`f32`], [`f16`](crate::f16) or
/// [`bf16`](crate::bf16), the [`Scalar`](crate::Scalar)s that cudarc can also copy.
///
/// ```
/// fn on_gpu<T: rosa::cuda::CudaScalar>() -> rosa::DType { T::DTYPE }
/// assert_eq!(on_gpu::<rosa::bf16>(), rosa::DType::Bf16);
/// ```
pub trait CudaScalar:
    crate::Scalar + cudarc::driver::DeviceRepr + cudarc::driver::ValidAsZeroBits
{
}

impl<T> CudaScalar for T where
    T: crate::Scalar + cudarc::driver::DeviceRepr + cudarc::driver::ValidAsZeroBits
{
}
