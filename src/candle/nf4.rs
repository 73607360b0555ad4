//! A 4-bit NF4 base weight in [`RosaLinear`](super::RosaLinear) (QLoRA, QRoSA): the
//! products with W as one candle custom op that dequantizes W for each call, forward and
//! backward alike, so no layer ever keeps a dense copy of W, not even for autograd (which
//! would otherwise hold every layer's dequantized W from the forward pass to the backward
//! one). On the CPU W is decoded into rosa's shared f32 workspace ([`Weight`]); on CUDA
//! (feature `candle-cuda`) rosa's NF4 kernel dequantizes it into a buffer of candle's
//! stream-ordered pool for candle's own GEMM, freed after it, so one W's worth of memory
//! is reused layer after layer. Other devices report that the op has no implementation.

use std::sync::Arc;

use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};

use super::storage::{matrix, output, storage};
use crate::quant::Nf4Matrix;
use crate::train::{Backend, Cpu, Trans, Weight};
use crate::{MatMut, MatRef};

/// A layer's 4-bit W: the host matrix (as a [`Weight::Nf4`], which the CPU product
/// decodes per call) and, with `candle-cuda`, its upload on each CUDA device it has run
/// on (made on first use there).
#[derive(Debug)]
pub(super) struct Nf4Base {
    pub(super) w: Weight,
    #[cfg(feature = "candle-cuda")]
    pub(super) devices: std::sync::Mutex<Vec<Arc<super::cuda::Nf4OnDevice>>>,
}

impl Nf4Base {
    pub(super) fn new(q: Nf4Matrix) -> Self {
        Nf4Base {
            w: Weight::Nf4(q),
            #[cfg(feature = "candle-cuda")]
            devices: std::sync::Mutex::default(),
        }
    }

    /// The 4-bit matrix.
    pub(super) fn matrix(&self) -> Option<&Nf4Matrix> {
        match &self.w {
            Weight::Nf4(q) => Some(q),
            _ => None,
        }
    }
}

/// `Y = X W^T` (`transposed == false`: the forward product, X tokens x in) or `Y = X W`
/// (`true`: its input gradient, X tokens x out), X and Y f32.
struct Nf4Product {
    w: Arc<Nf4Base>,
    transposed: bool,
}

impl CustomOp1 for Nf4Product {
    fn name(&self) -> &'static str {
        "rosa-nf4-matmul"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let CpuStorage::F32(x) = s else {
            use candle_core::backend::BackendStorage;
            return Err(candle_core::Error::UnsupportedDTypeForOp(
                s.dtype(),
                self.name(),
            ));
        };
        let (rows, inner, x) = matrix(self.name(), x, l)?;
        let w = &self.w.w;
        let (w_rows, w_cols) = (w.rows(), w.cols());
        let (want, cols) = if self.transposed {
            (w_rows, w_cols)
        } else {
            (w_cols, w_rows)
        };
        if inner != want {
            return Err(candle_core::Error::ShapeMismatchBinaryOp {
                lhs: l.shape().clone(),
                rhs: Shape::from((w_rows, w_cols)),
                op: self.name(),
            });
        }
        let mut y = output::<f32>(rows, cols)?;
        let xm = MatRef::new(&x, rows, inner)?;
        let op_w = if self.transposed { Trans::N } else { Trans::T };
        w.with_f32(|w| {
            Cpu.gemm(
                1.0,
                xm,
                Trans::N,
                w,
                op_w,
                0.0,
                MatMut::new(&mut y, rows, cols)?,
            )
        })?;
        Ok((storage(y), Shape::from((rows, cols))))
    }

    #[cfg(feature = "candle-cuda")]
    fn cuda_fwd(
        &self,
        s: &candle_core::CudaStorage,
        l: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        super::cuda::nf4_product(self.name(), &self.w, self.transposed, s, l)
    }

    /// `dX = dY W` for the forward product (and `dY W^T` for its transpose): the same op,
    /// the other way, so the backward pass dequantizes W again instead of keeping it.
    fn bwd(&self, _x: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(product(
            &self.w,
            &grad.contiguous()?,
            !self.transposed,
        )?))
    }
}

/// `X W^T` (or `X W` when `transposed`) for an NF4 W, differentiable in X.
pub(super) fn product(w: &Arc<Nf4Base>, x: &Tensor, transposed: bool) -> Result<Tensor> {
    x.apply_op1(Nf4Product {
        w: Arc::clone(w),
        transposed,
    })
}
