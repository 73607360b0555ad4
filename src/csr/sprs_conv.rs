//! Conversion to and from `sprs` matrices.

use super::{Csr, CsrShape};
use crate::{Result, Scalar};
use sprs::{CsMat, CsMatViewI, SpIndex};

impl<T: Scalar> Csr<T> {
    /// Copies a `sprs` matrix, CSR or CSC, with any index type.
    ///
    /// Index values beyond the i32 range of this layout are rejected.
    ///
    /// ```
    /// use rosa::{Csr, CsrShape};
    /// let s = sprs::CsMat::new_csc((2, 2), vec![0, 1, 2], vec![1, 0], vec![3.0f32, 4.0]);
    /// let a = Csr::from_sprs(s.view()).unwrap();
    /// assert_eq!(a.to_dense().as_slice(), &[0.0, 4.0, 3.0, 0.0]);
    /// ```
    pub fn from_sprs<I: SpIndex, Iptr: SpIndex>(m: CsMatViewI<'_, T, I, Iptr>) -> Result<Self> {
        let triplets: Vec<(usize, usize, T)> = m
            .iter()
            .map(|(&v, (r, c))| (r.index(), c.index(), v))
            .collect();
        Self::from_triplets(m.rows(), m.cols(), &triplets)
    }

    /// Copies into a `sprs` CSR matrix with `usize` indices.
    ///
    /// ```
    /// use rosa::Csr;
    /// let a = Csr::from_parts(1, 3, vec![0, 2], vec![0, 2], vec![1.0f32, 2.0]).unwrap();
    /// let s = a.to_sprs();
    /// assert_eq!(s.get(0, 2), Some(&2.0));
    /// assert_eq!(Csr::from_sprs(s.view()).unwrap(), a);
    /// ```
    pub fn to_sprs(&self) -> CsMat<T> {
        CsMat::new(
            (self.rows(), self.cols()),
            self.row_ptr().iter().map(|&p| p as usize).collect(),
            self.col_idx().iter().map(|&c| c as usize).collect(),
            self.values().to_vec(),
        )
    }
}
