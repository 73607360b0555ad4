//! The transpose plan: the structure of A^T and where each of its entries lives in A.

use super::{Csr, CsrShape, StructureId};
use crate::error::{try_vec, Error};
use crate::{Result, Scalar};

/// The CSR structure of `A^T` plus, for each of its entries, the index of the same entry
/// in `A`'s values.
///
/// A sparse adapter's mask is fixed, so the plan is built once (O(nnz)) and every
/// transposed product `A^T B` reads `A`'s current values through it: nothing is
/// transposed per call. The plan remembers which structure it belongs to and the kernels
/// refuse it for any other.
///
/// ```
/// use rosa::{Csr, CsrShape};
/// // A = [[1, 2],
/// //      [0, 3]]
/// let a = Csr::from_parts(2, 2, vec![0, 2, 3], vec![0, 1, 1], vec![1.0f32, 2.0, 3.0]).unwrap();
/// let plan = a.transpose_plan();
/// // A^T = [[1, 0], [2, 3]]: row 1 of A^T holds A's entries 1 and 2.
/// assert_eq!(plan.row_ptr(), &[0, 1, 3]);
/// assert_eq!(plan.col_idx(), &[0, 0, 1]);
/// assert_eq!(plan.perm(), &[0, 1, 2]);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransposePlan {
    source: StructureId,
    row_ptr: Vec<i32>,
    col_idx: Vec<i32>,
    perm: Vec<i32>,
}

impl TransposePlan {
    /// Builds the plan, every buffer allocated fallibly: `row_ptr` is `4 (cols + 1)`
    /// bytes whatever `nnz` is.
    pub(crate) fn try_new(source: StructureId, row_ptr: &[i32], col_idx: &[i32]) -> Result<Self> {
        let (rows, cols, nnz) = (source.rows, source.cols, source.nnz);
        let offsets = |what: &str| {
            let what = format!(
                "{what} of a transpose plan for {cols} columns ({} i32)",
                cols + 1
            );
            move || what
        };
        // Counting sort by column; walking A's rows in order keeps each row of A^T sorted.
        let mut t_ptr = try_vec(cols + 1, offsets("row_ptr"))?;
        t_ptr.resize(cols + 1, 0i32);
        for &c in col_idx {
            t_ptr[c as usize + 1] += 1;
        }
        for j in 0..cols {
            t_ptr[j + 1] += t_ptr[j];
        }
        let mut next = try_vec(cols, offsets("cursors"))?;
        next.extend_from_slice(&t_ptr[..cols]);
        let entries = || format!("{nnz} entries of a transpose plan (2 x {nnz} i32)");
        let mut t_col = try_vec(nnz, entries)?;
        t_col.resize(nnz, 0i32);
        let mut perm = try_vec(nnz, entries)?;
        perm.resize(nnz, 0i32);
        for (i, w) in row_ptr.windows(2).enumerate().take(rows) {
            for (p, &c) in col_idx
                .iter()
                .enumerate()
                .take(w[1] as usize)
                .skip(w[0] as usize)
            {
                let c = c as usize;
                let q = next[c] as usize;
                next[c] += 1;
                t_col[q] = i as i32;
                perm[q] = p as i32;
            }
        }
        Ok(TransposePlan {
            source,
            row_ptr: t_ptr,
            col_idx: t_col,
            perm,
        })
    }

    /// The structure this plan was built from.
    pub fn source(&self) -> StructureId {
        self.source
    }

    /// Row offsets of `A^T` (`A.cols() + 1` of them).
    pub fn row_ptr(&self) -> &[i32] {
        &self.row_ptr
    }

    /// Column indices of `A^T`, that is row indices of `A`.
    pub fn col_idx(&self) -> &[i32] {
        &self.col_idx
    }

    /// For entry `q` of `A^T`, the index of the same entry in `A`'s values.
    pub fn perm(&self) -> &[i32] {
        &self.perm
    }

    /// The rows of `A^T` ordered longest first (ties by index): the load-balancing order
    /// the GPU kernels walk the transposed product in, as [`super::CsrShape::row_swizzle`]
    /// is for `A`.
    ///
    /// ```
    /// use rosa::{Csr, CsrShape};
    /// // A^T has rows of lengths 1, 0, 2.
    /// let a = Csr::from_triplets(2, 3, &[(0, 2, 1.0f32), (1, 0, 2.0), (1, 2, 3.0)]).unwrap();
    /// assert_eq!(a.transpose_plan().row_swizzle(), [2, 0, 1]);
    /// ```
    pub fn row_swizzle(&self) -> Vec<i32> {
        super::stats::row_swizzle(self.row_ptr())
    }

    /// Errors unless this plan was built from a matrix with structure `id`.
    pub fn check(&self, id: StructureId) -> Result<()> {
        if self.source == id {
            Ok(())
        } else {
            Err(Error::PlanMismatch {
                plan: self.source.to_string(),
                matrix: id.to_string(),
            })
        }
    }
}

impl<T: Scalar> Csr<T> {
    /// `A^T` as a CSR matrix of its own (`cols x rows`), through the transpose plan: for
    /// baselines that transpose once (cuSPARSE or sprs on a stored `A^T`), where our
    /// kernels read `A`'s values through the plan instead.
    ///
    /// ```
    /// use rosa::{Csr, CsrShape};
    /// let a = Csr::from_parts(2, 3, vec![0, 2, 3], vec![0, 2, 1], vec![1.0f32, 2.0, 3.0])?;
    /// let t = a.transpose()?;
    /// assert_eq!((t.rows(), t.cols()), (3, 2));
    /// assert_eq!(t.to_dense().as_slice(), &[1.0, 0.0, 0.0, 3.0, 2.0, 0.0]);
    /// # Ok::<(), rosa::Error>(())
    /// ```
    pub fn transpose(&self) -> Result<Csr<T>> {
        let plan = self.transpose_plan();
        let values = plan
            .perm()
            .iter()
            .map(|&p| self.values()[p as usize])
            .collect();
        Csr::from_parts(
            self.cols(),
            self.rows(),
            plan.row_ptr().to_vec(),
            plan.col_idx().to_vec(),
            values,
        )
    }
}
