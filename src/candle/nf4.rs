//! A 4-bit NF4 base weight in [`RosaLinear`](super::RosaLinear) (QLoRA, QRoSA): the
//! products with W as one candle custom op that dequantizes W into rosa's shared f32
//! workspace ([`Weight`]) for each call, forward and backward alike, so no layer ever
//! keeps a dense copy of W, not even for autograd (which would otherwise hold every
//! layer's dequantized W from the forward pass to the backward one). CPU only: on another
//! device candle reports that the op has no implementation there.

use std::sync::Arc;

use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};

use super::storage::{matrix, output, storage};
use crate::train::{Backend, Cpu, Trans, Weight};
use crate::{MatMut, MatRef};

/// `Y = X W^T` (`transposed == false`: the forward product, X tokens x in) or `Y = X W`
/// (`true`: its input gradient, X tokens x out), X and Y f32.
struct Nf4Product {
    w: Arc<Weight>,
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
        let (w_rows, w_cols) = (self.w.rows(), self.w.cols());
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
        self.w.with_f32(|w| {
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

/// `X W^T` (or `X W` when `transposed`) for an NF4 [`Weight`], differentiable in X.
pub(super) fn product(w: &Arc<Weight>, x: &Tensor, transposed: bool) -> Result<Tensor> {
    x.apply_op1(Nf4Product {
        w: Arc::clone(w),
        transposed,
    })
}
