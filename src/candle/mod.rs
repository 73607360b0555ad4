//! # rosa from candle (feature `candle`)
//!
//! rosa's sparse products as [candle](https://github.com/huggingface/candle) custom ops
//! with backward passes.
//!
//! | item | what it is |
//! |---|---|
//! | [`SparseMask`] | a fixed CSR structure (row_ptr, col_idx, transpose plan), built once |
//! | [`SparseMask::spmm`] | `C = S X`; backward: dValues = SDDMM(dC, X), dX = S^T dC |
//! | [`SparseMask::spmm_t`] | `C = S^T X` through the plan; backward: dValues = SDDMM(X, dC), dX = S dC |
//! | [`SparseMask::sddmm`] | `values = (L R^T)` at the mask; backward: dL = G R, dR = G^T L |
//! | [`rosa_error`] | the typed [`crate::Error`] inside a candle error |
//!
//! S's values are a 1-D tensor *input* of every op, so candle's autograd gives them
//! gradients (make them a [`candle_core::Var`]); the mask's structure never changes. The
//! ops take f32, f16 and bf16 tensors (one dtype per call; f32 accumulation, rounded
//! once, as everywhere in rosa) and run on the CPU through [`crate::cpu`]. Bad shapes,
//! dtypes and devices are errors, never panics.
//!
//! On the GPU (not yet built): each op's `cuda_fwd` hook is where rosa's CUDA kernels
//! go, launched on candle's stream with the mask's structure uploaded once per device;
//! the backward passes need nothing more, being written with the same ops. Until then a
//! CUDA tensor gets candle's "no cuda implementation" error.
//!
//! ```
//! use candle_core::{Device, Tensor, Var};
//! use rosa::candle::SparseMask;
//! use rosa::Csr;
//! # fn main() -> candle_core::Result<()> {
//! let s = Csr::from_triplets(2, 3, &[(0, 1, 2.0f32), (1, 0, 1.0), (1, 2, 3.0)])?;
//! let mask = SparseMask::from_csr(&s);
//! let values = Var::from_tensor(&mask.values(&s, &Device::Cpu)?)?;
//! let x = Tensor::ones((3, 2), candle_core::DType::F32, &Device::Cpu)?;
//! let c = mask.spmm(&values, &x)?;
//! assert_eq!(c.to_vec2::<f32>()?, [[2.0, 2.0], [4.0, 4.0]]);
//! let grads = c.sum_all()?.backward()?;
//! assert_eq!(grads.get(&values).unwrap().to_vec1::<f32>()?, [2.0, 2.0, 2.0]);
//! # Ok(())
//! # }
//! ```
//!
mod error;
mod mask;
mod sddmm;
mod spmm;
mod storage;

pub use error::rosa_error;
pub use mask::SparseMask;
