//! SpMM `C = S X` and transposed SpMM `C = S^T X` over a fixed mask, with backward.

use candle_core::{CpuStorage, Layout, Result, Shape, Tensor};

use super::op::Kind;
use super::storage::{matrix, output, storage, vector, Elem};
use super::SparseMask;
use crate::{cpu, MatMut, MatRef};

/// `C = S X` (`transposed == false`) or `C = S^T X` (`true`), from S's values and X.
pub(super) fn forward<T: Elem>(
    op: &'static str,
    mask: &SparseMask,
    transposed: bool,
    values: &[T],
    lv: &Layout,
    x: &[T],
    lx: &Layout,
) -> Result<(CpuStorage, Shape)> {
    let values = vector(op, values, lv)?;
    let (rows, n, x) = matrix(op, x, lx)?;
    let s = mask.csr(&values)?;
    let b = MatRef::new(&x, rows, n)?;
    let m = if transposed { mask.cols() } else { mask.rows() };
    let mut c = output::<T>(m, n)?;
    let cm = MatMut::new(&mut c, m, n)?;
    if transposed {
        cpu::spmm_t(1.0, s, mask.plan(), b, 0.0, cm)?;
    } else {
        cpu::spmm(1.0, s, b, 0.0, cm)?;
    }
    Ok((storage(c), Shape::from((m, n))))
}

/// The gradients of S's values and of X, from the gradient of C: the same pair of
/// products read the other way.
///
/// | forward | dValues | dX |
/// |---|---|---|
/// | `C = S X` | `(dC X^T)` at the mask: SDDMM(dC, X) | `S^T dC`: transposed SpMM |
/// | `C = S^T X` | `(X dC^T)` at the mask: SDDMM(X, dC) | `S dC`: SpMM |
pub(super) fn backward(
    mask: &SparseMask,
    transposed: bool,
    values: &Tensor,
    x: &Tensor,
    grad: &Tensor,
) -> Result<(Tensor, Tensor)> {
    Ok(if transposed {
        (mask.sddmm(x, grad)?, mask.spmm(values, grad)?)
    } else {
        (mask.sddmm(grad, x)?, mask.spmm_t(values, grad)?)
    })
}

impl SparseMask {
    /// SpMM `C = S X`: S (rows x cols) with this mask and `values` (1-D, `nnz`), X dense
    /// (cols x N), C dense (rows x N), all of one dtype: f32, f16 or bf16 (accumulated in
    /// f32, rounded once). X may be strided (a transposed view, say). Differentiable in
    /// `values` and `x`.
    ///
    /// Errors (never panics): X not 2-D or with other than `cols` rows, `values` not 1-D or
    /// not `nnz` long ([`crate::Error`] inside candle's error, see
    /// [`rosa_error`](super::rosa_error)), mixed or unsupported dtypes, operands on
    /// different devices, or a device this build has no kernel for.
    ///
    /// ```
    /// use candle_core::{Device, Tensor, Var};
    /// use rosa::candle::SparseMask;
    /// use rosa::Csr;
    /// let s = Csr::from_triplets(2, 3, &[(0, 1, 2.0f32), (1, 0, 1.0), (1, 2, 3.0)]).unwrap();
    /// let mask = SparseMask::from_csr(&s);
    /// let values = Var::from_tensor(&mask.values(&s, &Device::Cpu).unwrap()).unwrap();
    /// let x = Tensor::new(&[[1.0f32, 0.0], [0.0, 1.0], [1.0, 1.0]], &Device::Cpu).unwrap();
    /// let c = mask.spmm(&values, &x).unwrap();
    /// assert_eq!(c.to_vec2::<f32>().unwrap(), [[0.0, 2.0], [4.0, 3.0]]);
    /// // d(sum C)/dS(i, j) = sum of row j of X
    /// let grads = c.sum_all().unwrap().backward().unwrap();
    /// assert_eq!(grads.get(&values).unwrap().to_vec1::<f32>().unwrap(), [1.0, 1.0, 2.0]);
    /// ```
    pub fn spmm(&self, values: &Tensor, x: &Tensor) -> Result<Tensor> {
        self.apply(Kind::Spmm, values, x)
    }

    /// Transposed SpMM `C = S^T X` through the transpose plan (S is never transposed):
    /// X dense (rows x N), C dense (cols x N); otherwise as [`SparseMask::spmm`].
    ///
    /// ```
    /// use candle_core::{Device, Tensor};
    /// use rosa::candle::SparseMask;
    /// use rosa::Csr;
    /// let s = Csr::from_triplets(2, 3, &[(0, 1, 2.0f32), (1, 0, 1.0), (1, 2, 3.0)]).unwrap();
    /// let mask = SparseMask::from_csr(&s);
    /// let values = mask.values(&s, &Device::Cpu).unwrap();
    /// let x = Tensor::new(&[[1.0f32], [10.0]], &Device::Cpu).unwrap();
    /// let c = mask.spmm_t(&values, &x).unwrap();
    /// assert_eq!(c.to_vec2::<f32>().unwrap(), [[10.0], [2.0], [30.0]]);
    /// ```
    pub fn spmm_t(&self, values: &Tensor, x: &Tensor) -> Result<Tensor> {
        self.apply(Kind::SpmmT, values, x)
    }
}
