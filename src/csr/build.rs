//! Building CSR matrices from triplets and dense matrices, and back to dense.

use super::validate::check_index;
use super::{Csr, CsrRef, CsrShape};
use crate::error::try_vec;
use crate::{Dense, Error, MatRef, Result, Scalar};

/// One stored value on its way into a CSR matrix: its position, its value in f64, and
/// where it came from (a file's line, or a triplet's index) for error messages.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Entry {
    pub row: u32,
    pub col: u32,
    pub value: f64,
    pub origin: usize,
}

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
        let mut entries = try_vec(triplets.len(), || {
            format!("{} triplets to sort", triplets.len())
        })?;
        for (index, &(row, col, value)) in triplets.iter().enumerate() {
            if row >= rows || col >= cols {
                return Err(Error::TripletOutOfRange {
                    index,
                    row,
                    col,
                    rows,
                    cols,
                });
            }
            entries.push(Entry {
                row: row as u32,
                col: col as u32,
                value: value.to_f32() as f64,
                origin: index,
            });
        }
        Self::from_entries(rows, cols, &mut entries, |sum, _, _| Ok(T::from_f64(sum)))
    }

    /// Builds a matrix from entries whose positions lie inside `rows x cols`, summing
    /// the values at each position in f64 (in `origin` order) and handing each sum to
    /// `round`, with the first entry at that position and their count.
    ///
    /// The one place duplicates are summed: [`Csr::from_triplets`] and the file readers,
    /// which refuse a sum their dtype cannot hold, both come here. Every buffer is
    /// allocated fallibly: `row_ptr` alone is `4 (rows + 1)` bytes whatever `entries`
    /// holds.
    pub(crate) fn from_entries(
        rows: usize,
        cols: usize,
        entries: &mut [Entry],
        mut round: impl FnMut(f64, &Entry, usize) -> Result<T>,
    ) -> Result<Self> {
        check_index("rows", rows)?;
        check_index("cols", cols)?;
        entries.sort_unstable_by_key(|e| (e.row, e.col, e.origin));
        let same = |a: &Entry, b: &Entry| (a.row, a.col) == (b.row, b.col);
        let nnz = entries.chunk_by(same).count();
        check_index("nnz", nnz)?;
        let mut row_ptr = try_vec(rows + 1, || {
            format!("row_ptr of a {rows}-row matrix ({} i32 offsets)", rows + 1)
        })?;
        row_ptr.resize(rows + 1, 0i32);
        let mut col_idx = try_vec(nnz, || format!("col_idx of {nnz} nonzeros"))?;
        let mut values = try_vec(nnz, || format!("values of {nnz} nonzeros"))?;
        for group in entries.chunk_by(same) {
            let first = &group[0];
            let sum = group.iter().map(|e| e.value).sum::<f64>();
            row_ptr[first.row as usize + 1] += 1;
            col_idx.push(first.col as i32);
            values.push(round(sum, first, group.len())?);
        }
        for i in 0..rows {
            row_ptr[i + 1] += row_ptr[i];
        }
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
