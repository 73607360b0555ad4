//! SDDMM `values = (L R^T)` sampled at a fixed mask, with backward.

use candle_core::{CpuStorage, Layout, Result, Shape, Tensor};

use super::op::Kind;
use super::storage::{matrix, output, storage, Elem};
use super::SparseMask;
use crate::{cpu, CsrMut, MatRef};

/// `values[p] = sum_k L[i, k] R[j, k]` for each entry p = (i, j) of the mask.
pub(super) fn forward<T: Elem>(
    op: &'static str,
    mask: &SparseMask,
    l: &[T],
    ll: &Layout,
    r: &[T],
    lr: &Layout,
) -> Result<(CpuStorage, Shape)> {
    let (lm, lk, l) = matrix(op, l, ll)?;
    let (rn, rk, r) = matrix(op, r, lr)?;
    let (l, r) = (MatRef::new(&l, lm, lk)?, MatRef::new(&r, rn, rk)?);
    let mut values = output::<T>(mask.nnz(), 1)?;
    let out = CsrMut::new(
        mask.rows(),
        mask.cols(),
        mask.row_ptr(),
        mask.col_idx(),
        &mut values,
    )?;
    cpu::sddmm(1.0, l, r, 0.0, out)?;
    Ok((storage(values), Shape::from(mask.nnz())))
}

/// With `G` the gradient of the values (a sparse matrix on the same mask):
/// `dL = G R` (SpMM) and `dR = G^T L` (transposed SpMM).
pub(super) fn backward(
    mask: &SparseMask,
    l: &Tensor,
    r: &Tensor,
    grad: &Tensor,
) -> Result<(Tensor, Tensor)> {
    Ok((mask.spmm(grad, r)?, mask.spmm_t(grad, l)?))
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
        self.apply(Kind::Sddmm, l, r)
    }
}
