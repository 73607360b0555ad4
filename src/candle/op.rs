//! The one candle custom op behind [`SparseMask::spmm`], [`SparseMask::spmm_t`] and
//! [`SparseMask::sddmm`]: candle's plumbing (dtype dispatch, storage in and out) written
//! once, the products themselves in `spmm.rs` and `sddmm.rs`.

use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};

use super::storage::same_float;
use super::{sddmm, spmm, SparseMask};

/// Which product an op computes, with its inputs in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// `C = S X`: (values, X).
    Spmm,
    /// `C = S^T X`: (values, X).
    SpmmT,
    /// `values = (L R^T)` at the mask: (L, R).
    Sddmm,
}

/// A product over a fixed mask, as a candle [`CustomOp2`]: forwards on the CPU through
/// [`crate::cpu`] and, with feature `candle-cuda`, on candle's CUDA device through rosa's
/// kernels on candle's stream (`cuda.rs`). The backward passes need nothing more on
/// either: they are written with these same ops.
struct SparseOp {
    mask: SparseMask,
    kind: Kind,
}

impl CustomOp2 for SparseOp {
    fn name(&self) -> &'static str {
        match self.kind {
            Kind::Spmm => "rosa-spmm",
            Kind::SpmmT => "rosa-spmm-t",
            Kind::Sddmm => "rosa-sddmm",
        }
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (op, m) = (self.name(), &self.mask);
        same_float!(op, s1, s2, |a, b| match self.kind {
            Kind::Spmm => spmm::forward(op, m, false, a, l1, b, l2),
            Kind::SpmmT => spmm::forward(op, m, true, a, l1, b, l2),
            Kind::Sddmm => sddmm::forward(op, m, a, l1, b, l2),
        })
    }

    /// rosa's CUDA kernels on candle's stream (see `cuda.rs`).
    #[cfg(feature = "candle-cuda")]
    fn cuda_fwd(
        &self,
        s1: &candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        super::cuda::forward(self.name(), &self.mask, self.kind, s1, l1, s2, l2)
    }

    fn bwd(
        &self,
        a: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        // Usually a transposed view (the layer's output is one) and read twice: gathered
        // once here.
        let grad = &grad.contiguous()?;
        let (da, db) = match self.kind {
            Kind::Spmm => spmm::backward(&self.mask, false, a, b, grad)?,
            Kind::SpmmT => spmm::backward(&self.mask, true, a, b, grad)?,
            Kind::Sddmm => sddmm::backward(&self.mask, a, b, grad)?,
        };
        Ok((Some(da), Some(db)))
    }
}

impl SparseMask {
    /// Applies the op of `kind` to `(a, b)`, recording it for autograd.
    pub(super) fn apply(&self, kind: Kind, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        a.apply_op2(
            b,
            SparseOp {
                mask: self.clone(),
                kind,
            },
        )
    }
}
