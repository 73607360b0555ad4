//! Building CSR matrices from triplets and dense matrices, and back to dense.

use super::validate::check_index;
use super::{Csr, CsrRef, CsrShape};
use crate::{Dense, Error, MatRef, Result, Scalar};

impl<T: Scalar> Csr<T> {
    /// Builds a matrix from `(row, col, value)` triplets in any order.
    ///
    /// **Duplicates are summed** (in f64, rounded once to `T`), as Matrix Market and
    /// SciPy do. Explicit zeros are kept as stored entries: the structure is what the
    /// triplets name, which is what a fixed sparse mask needs.
    ///
    /// ```
    /// use rosa::{Csr, CsrShape};
    /// let a = Csr::from_triplets(2, 3, &[(1, 2, 1.0f32), (0, 0, 2.0), (1, 2, 0.5)]).unwrap();
    /// assert_eq!(a.nnz(), 2);
    /// assert_eq!(a.row(1), (&[2][..], &[1.5f32][..]));
    /// assert!(Csr::from_triplets(2, 3, &[(2, 0, 1.0f32)]).is_err());
    /// ```
    pub fn from_triplets(rows: usize, cols: usize, triplets: &[(usize, usize, T)]) -> Result<Self> {
        check_index("rows", rows)?;
        check_index("cols", cols)?;
        check_index("nnz", triplets.len())?;
        for (index, &(row, col, _)) in triplets.iter().enumerate() {
            if row >= rows || col >= cols {
                return Err(Error::TripletOutOfRange {
                    index,
                    row,
                    col,
                    rows,
                    cols,
                });
            }
        }
        let mut order: Vec<usize> = (0..triplets.len()).collect();
        order.sort_unstable_by_key(|&t| (triplets[t].0, triplets[t].1));
        let mut row_ptr = vec![0i32; rows + 1];
        let mut col_idx: Vec<i32> = Vec::with_capacity(triplets.len());
        let mut sums: Vec<f64> = Vec::with_capacity(triplets.len());
        let mut last: Option<(usize, usize)> = None;
        for &t in &order {
            let (r, c, v) = triplets[t];
            if last == Some((r, c)) {
                if let Some(s) = sums.last_mut() {
                    *s += v.to_f32() as f64;
                }
                continue;
            }
            last = Some((r, c));
            row_ptr[r + 1] += 1;
            col_idx.push(c as i32);
            sums.push(v.to_f32() as f64);
        }
        for i in 0..rows {
            row_ptr[i + 1] += row_ptr[i];
        }
        let values = sums.into_iter().map(|s| T::from_f32(s as f32)).collect();
        Csr::from_parts(rows, cols, row_ptr, col_idx, values)
    }

    /// Keeps the entries of a dense matrix for which `keep(row, col, value)` is true.
    ///
    /// ```
    /// use rosa::{Csr, CsrShape, Dense};
    /// let d = Dense::from_vec(2, 2, vec![0.0f32, 1.0, 2.0, 0.0]).unwrap();
    /// let a = Csr::from_dense(d.as_ref(), |_, _, v| v != 0.0).unwrap();
    /// assert_eq!(a.nnz(), 2);
    /// assert_eq!(a.to_dense(), d);
    /// ```
    pub fn from_dense(
        dense: MatRef<'_, T>,
        mut keep: impl FnMut(usize, usize, T) -> bool,
    ) -> Result<Self> {
        let (rows, cols) = (dense.rows(), dense.cols());
        check_index("rows", rows)?;
        check_index("cols", cols)?;
        let mut row_ptr = Vec::with_capacity(rows + 1);
        row_ptr.push(0i32);
        let (mut col_idx, mut values) = (Vec::new(), Vec::new());
        for i in 0..rows {
            for (j, &v) in dense.row(i).iter().enumerate() {
                if keep(i, j, v) {
                    col_idx.push(j as i32);
                    values.push(v);
                }
            }
            check_index("nnz", col_idx.len())?;
            row_ptr.push(col_idx.len() as i32);
        }
        Csr::from_parts(rows, cols, row_ptr, col_idx, values)
    }

    /// The dense equivalent (zeros where nothing is stored).
    pub fn to_dense(&self) -> Dense<T> {
        self.as_ref().to_dense()
    }
}

impl<T: Scalar> CsrRef<'_, T> {
    /// The dense equivalent (zeros where nothing is stored).
    pub fn to_dense(&self) -> Dense<T> {
        let mut d = Dense::zeros(self.rows(), self.cols());
        let cols = self.cols();
        let out = d.as_mut_slice();
        for i in 0..self.rows() {
            let (c, v) = self.row(i);
            for (&j, &x) in c.iter().zip(v) {
                out[i * cols + j as usize] = x;
            }
        }
        d
    }
}
