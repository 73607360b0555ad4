//! SpMM `C = S X` and transposed SpMM `C = S^T X` as one candle custom op with backward.

use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};

use super::storage::{matrix, output, same_float, storage, vector, Elem};
use super::SparseMask;
use crate::{cpu, MatMut, MatRef};

/// `C = S X` (`transposed == false`) or `C = S^T X` (`true`), with S's values as the
/// first input and X as the second.
///
/// The backward pass is the same pair of products read the other way:
///
/// | forward | dValues | dX |
/// |---|---|---|
/// | `C = S X` | `(dC X^T)` at the mask: SDDMM(dC, X) | `S^T dC`: transposed SpMM |
/// | `C = S^T X` | `(X dC^T)` at the mask: SDDMM(X, dC) | `S dC`: SpMM |
///
/// A CUDA forward slots in as `cuda_fwd` (rosa's kernels on candle's stream, the mask's
/// structure uploaded once per device); the backward needs nothing more, since it is
/// written with these same ops.
struct Spmm {
    mask: SparseMask,
    transposed: bool,
}

impl Spmm {
    fn name(&self) -> &'static str {
        if self.transposed {
            "rosa-spmm-t"
        } else {
            "rosa-spmm"
        }
    }

    fn fwd<T: Elem>(
        &self,
        values: &[T],
        lv: &Layout,
        x: &[T],
        lx: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let op = self.name();
        let values = vector(op, values, lv)?;
        let (rows, n, x) = matrix(op, x, lx)?;
        let s = self.mask.csr(&values)?;
        let b = MatRef::new(&x, rows, n)?;
        let m = if self.transposed {
            self.mask.cols()
        } else {
            self.mask.rows()
        };
        let mut c = output::<T>(m, n)?;
        let cm = MatMut::new(&mut c, m, n)?;
        if self.transposed {
            cpu::spmm_t(1.0, s, self.mask.plan(), b, 0.0, cm)?;
        } else {
            cpu::spmm(1.0, s, b, 0.0, cm)?;
        }
        Ok((storage(c), Shape::from((m, n))))
    }
}

impl CustomOp2 for Spmm {
    fn name(&self) -> &'static str {
        Spmm::name(self)
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        same_float!(self.name(), s1, s2, |v, x| self.fwd(v, l1, x, l2))
    }

    fn bwd(
        &self,
        values: &Tensor,
        x: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let m = &self.mask;
        // Usually a transposed view (the layer's output is one); read twice below, so
        // gathered once here.
        let grad = &grad.contiguous()?;
        let (dv, dx) = if self.transposed {
            (m.sddmm(x, grad)?, m.spmm(values, grad)?)
        } else {
            (m.sddmm(grad, x)?, m.spmm_t(values, grad)?)
        };
        Ok((Some(dv), Some(dx)))
    }
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
        values.apply_op2(
            x,
            Spmm {
                mask: self.clone(),
                transposed: false,
            },
        )
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
        values.apply_op2(
            x,
            Spmm {
                mask: self.clone(),
                transposed: true,
            },
        )
    }
}
