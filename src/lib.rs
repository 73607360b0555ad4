//! # rosa
//!
//! Sparse kernels for sparse + low-rank fine-tuning (RoSA): CSR SpMM `C = A B`, transposed
//! SpMM `C = A^T B` and SDDMM `out = (L R^T) sampled at a mask`, on a parallel CPU backend
//! (the reference and the fallback) and, with the `cuda` feature, on hand-written CUDA
//! kernels.
//!
//! ```
//! use rosa::{cpu, Csr, CsrShape, Dense};
//! // A (2 x 3) = [[1, 0, 2], [0, 3, 0]]
//! let a = Csr::from_parts(2, 3, vec![0, 2, 3], vec![0, 2, 1], vec![1.0f32, 2.0, 3.0]).unwrap();
//! let b = Dense::from_fn(3, 2, |i, j| (i * 2 + j) as f32); // [[0, 1], [2, 3], [4, 5]]
//! let mut c = Dense::zeros(2, 2);
//! cpu::spmm(1.0, a.as_ref(), b.as_ref(), 0.0, c.as_mut()).unwrap();
//! assert_eq!(c.as_slice(), &[8.0, 11.0, 6.0, 9.0]);
//! ```

pub mod bench;
#[cfg(feature = "candle")]
pub mod candle;
pub mod cpu;
pub mod csr;
#[cfg(feature = "cuda")]
pub mod cuda;
pub mod dense;
mod dispatch;
pub mod dtype;
#[cfg(feature = "cuda-emu")]
pub mod emu;
pub mod error;
pub mod io;
pub mod op;
pub mod quant;
pub mod random;
pub mod train;
pub mod tune;

/// The types and traits most programs need, in one import.
pub mod prelude {
    pub use crate::{cpu, Csr, CsrRef, CsrShape, DType, Dense, MatMut, MatRef, Scalar};
}

pub use csr::{Csr, CsrMut, CsrRef, CsrShape, RowStats, StructureId, TransposePlan};
pub use dense::{Dense, MatMut, MatRef};
pub use dtype::{bf16, f16, DType, Scalar};
pub use error::{Error, Result};
pub use op::Op;

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
