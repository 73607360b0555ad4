//! SDDMM `values = (L R^T)` sampled at a mask, as a candle custom op with backward.

use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};

use super::storage::{matrix, output, same_float, storage, Elem};
use super::SparseMask;
use crate::{cpu, CsrMut, MatRef};

/// `values[p] = sum_k L[i, k] R[j, k]` for each entry p = (i, j) of the mask, with L
/// the first input and R the second.
///
/// With `G` the incoming gradient on the values (a sparse matrix on the same mask), the
/// backward pass is `dL = G R` (SpMM) and `dR = G^T L` (transposed SpMM).
///
/// A CUDA forward slots in as `cuda_fwd`, as for the SpMM op.
struct Sddmm {
    mask: SparseMask,
}

impl Sddmm {
    const NAME: &'static str = "rosa-sddmm";

    fn fwd<T: Elem>(
        &self,
        l: &[T],
        ll: &Layout,
        r: &[T],
        lr: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (lm, lk, l) = matrix(Self::NAME, l, ll)?;
        let (rn, rk, r) = matrix(Self::NAME, r, lr)?;
        let (l, r) = (MatRef::new(&l, lm, lk)?, MatRef::new(&r, rn, rk)?);
        let m = &self.mask;
        let mut values = output::<T>(m.nnz(), 1)?;
        let out = CsrMut::new(m.rows(), m.cols(), m.row_ptr(), m.col_idx(), &mut values)?;
        cpu::sddmm(1.0, l, r, 0.0, out)?;
        Ok((storage(values), Shape::from(m.nnz())))
    }
}

impl CustomOp2 for Sddmm {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        same_float!(Self::NAME, s1, s2, |l, r| self.fwd(l, l1, r, l2))
    }

    fn bwd(
        &self,
        l: &Tensor,
        r: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let grad = &grad.contiguous()?;
        Ok((
            Some(self.mask.spmm(grad, r)?),
            Some(self.mask.spmm_t(grad, l)?),
        ))
    }
}

impl SparseMask {
    /// SDDMM: for each stored entry p = (i, j) of this mask, `out[p] = sum_k L[i, k] R[j, k]`,
    /// with L dense (rows x k), R dense (cols x k) and `out` 1-D (`nnz`, in `row_ptr` /
    /// `col_idx` order), all of one dtype: f32, f16 or bf16 (accumulated in f32).
    /// Differentiable in `l` and `r`. Errors as [`SparseMask::spmm`] does.
    ///
    /// ```
    /// use candle_core::{Device, Tensor};
    /// use rosa::candle::SparseMask;
    /// use rosa::Csr;
    /// let mask = SparseMask::from_csr(&Csr::from_triplets(2, 2, &[(0, 1, 1.0f32), (1, 0, 1.0)]).unwrap());
    /// let l = Tensor::new(&[[1.0f32, 2.0], [3.0, 4.0]], &Device::Cpu).unwrap();
    /// let r = Tensor::new(&[[1.0f32, 0.0], [0.0, 1.0]], &Device::Cpu).unwrap();
    /// // (L R^T)[0, 1] = L[0] . R[1] = 2, (L R^T)[1, 0] = L[1] . R[0] = 3
    /// assert_eq!(mask.sddmm(&l, &r).unwrap().to_vec1::<f32>().unwrap(), [2.0, 3.0]);
    /// ```
    pub fn sddmm(&self, l: &Tensor, r: &Tensor) -> Result<Tensor> {
        l.apply_op2(r, Sddmm { mask: self.clone() })
    }
}
