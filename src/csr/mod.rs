//! Compressed sparse row matrices: validated on construction, borrowed as views.
//!
//! The layout is the one the CUDA kernels read: `row_ptr: i32[rows + 1]`,
//! `col_idx: i32[nnz]` strictly increasing within each row, `values: T[nnz]`.

mod build;
mod sprs_conv;
mod stats;
mod transpose;
mod validate;

pub(crate) use build::Entry;
pub(crate) use validate::check_index;

pub use stats::{long_rows, RowStats};
pub use transpose::TransposePlan;
pub use validate::StructureId;

use crate::{Error, Result, Scalar};

/// An owned CSR matrix whose structure has been validated.
///
/// The structure (`row_ptr`, `col_idx`) is immutable once built; the values can be changed
/// in place, which is what a fixed-mask sparse adapter needs.
///
/// ```
/// use rosa::{Csr, CsrShape};
/// // [[1, 0, 2],
/// //  [0, 0, 0],
/// //  [0, 3, 0]]
/// let a = Csr::from_parts(3, 3, vec![0, 2, 2, 3], vec![0, 2, 1], vec![1.0f32, 2.0, 3.0]).unwrap();
/// assert_eq!(a.nnz(), 3);
/// assert_eq!(a.row(0), (&[0, 2][..], &[1.0, 2.0][..]));
/// assert_eq!(a.to_dense().get(2, 1), Some(3.0));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Csr<T> {
    id: StructureId,
    row_ptr: Vec<i32>,
    col_idx: Vec<i32>,
    values: Vec<T>,
}

/// A borrowed, validated CSR matrix: what the kernels take.
///
/// ```
/// use rosa::{CsrRef, CsrShape};
/// let (rp, ci, v) = ([0, 1, 1], [1], [5.0f32]);
/// let a = CsrRef::new(2, 3, &rp, &ci, &v).unwrap();
/// assert_eq!(a.row_len(0), 1);
/// assert!(CsrRef::new(2, 3, &[0, 1, 1], &[3], &v).is_err()); // column 3 of 3
/// ```
#[derive(Debug, Clone, Copy)]
pub struct CsrRef<'a, T> {
    id: StructureId,
    row_ptr: &'a [i32],
    col_idx: &'a [i32],
    values: &'a [T],
}

/// A CSR matrix with a borrowed structure and mutable values: the output of SDDMM.
///
/// ```
/// use rosa::Csr;
/// let mut a = Csr::from_parts(1, 2, vec![0, 1], vec![1], vec![0.0f32]).unwrap();
/// a.as_mut().values_mut()[0] = 4.0;
/// assert_eq!(a.values(), &[4.0]);
/// ```
#[derive(Debug)]
pub struct CsrMut<'a, T> {
    id: StructureId,
    row_ptr: &'a [i32],
    col_idx: &'a [i32],
    values: &'a mut [T],
}

impl<T: Scalar> Csr<T> {
    /// Takes ownership of raw CSR arrays after checking every structural rule.
    ///
    /// Rejected, each with its own [`Error`](crate::Error) naming the row and index:
    /// `row_ptr` of the wrong length, not starting at 0, decreasing, or ending at a value
    /// other than `col_idx.len()`; a column out of range, unsorted or repeated within a
    /// row; `values` of the wrong length; dimensions or nnz beyond `i32::MAX`.
    pub fn from_parts(
        rows: usize,
        cols: usize,
        row_ptr: Vec<i32>,
        col_idx: Vec<i32>,
        values: Vec<T>,
    ) -> Result<Self> {
        let id = validate::validate(rows, cols, &row_ptr, &col_idx, values.len())?;
        Ok(Csr {
            id,
            row_ptr,
            col_idx,
            values,
        })
    }

    /// An all-zero matrix with no stored entries.
    pub fn empty(rows: usize, cols: usize) -> Result<Self> {
        // Checked before `rows + 1` is computed and allocated.
        check_index("rows", rows)?;
        Self::from_parts(rows, cols, vec![0; rows + 1], Vec::new(), Vec::new())
    }

    /// A borrowed view.
    pub fn as_ref(&self) -> CsrRef<'_, T> {
        CsrRef {
            id: self.id,
            row_ptr: &self.row_ptr,
            col_idx: &self.col_idx,
            values: &self.values,
        }
    }

    /// A view with mutable values and the structure fixed.
    pub fn as_mut(&mut self) -> CsrMut<'_, T> {
        CsrMut {
            id: self.id,
            row_ptr: &self.row_ptr,
            col_idx: &self.col_idx,
            values: &mut self.values,
        }
    }

    /// The values, mutably; the structure cannot change.
    pub fn values_mut(&mut self) -> &mut [T] {
        &mut self.values
    }

    /// The same structure with other values (`values.len()` must equal `nnz`).
    pub fn with_values<U: Scalar>(&self, values: Vec<U>) -> Result<Csr<U>> {
        if values.len() != self.nnz() {
            return Err(crate::Error::ValuesLength {
                got: values.len(),
                nnz: self.nnz(),
            });
        }
        Ok(Csr {
            id: self.id,
            row_ptr: self.row_ptr.clone(),
            col_idx: self.col_idx.clone(),
            values,
        })
    }

    /// Converts the values to another element type (rounding to nearest).
    pub fn cast<U: Scalar>(&self) -> Csr<U> {
        Csr {
            id: self.id,
            row_ptr: self.row_ptr.clone(),
            col_idx: self.col_idx.clone(),
            values: self
                .values
                .iter()
                .map(|v| U::from_f32(v.to_f32()))
                .collect(),
        }
    }

    /// Gives back `(rows, cols, row_ptr, col_idx, values)`.
    pub fn into_parts(self) -> (usize, usize, Vec<i32>, Vec<i32>, Vec<T>) {
        (
            self.id.rows,
            self.id.cols,
            self.row_ptr,
            self.col_idx,
            self.values,
        )
    }
}

impl<'a, T: Scalar> CsrRef<'a, T> {
    /// Borrows raw CSR arrays after the same checks as [`Csr::from_parts`].
    pub fn new(
        rows: usize,
        cols: usize,
        row_ptr: &'a [i32],
        col_idx: &'a [i32],
        values: &'a [T],
    ) -> Result<Self> {
        let id = validate::validate(rows, cols, row_ptr, col_idx, values.len())?;
        Ok(CsrRef {
            id,
            row_ptr,
            col_idx,
            values,
        })
    }

    /// The values.
    pub fn values(&self) -> &'a [T] {
        self.values
    }

    /// Columns and values of row `i`. Panics if `i >= rows`, like slice indexing.
    pub fn row(&self, i: usize) -> (&'a [i32], &'a [T]) {
        let (s, e) = (self.row_ptr[i] as usize, self.row_ptr[i + 1] as usize);
        (&self.col_idx[s..e], &self.values[s..e])
    }

    /// Copies into an owned matrix.
    pub fn to_owned(&self) -> Csr<T> {
        Csr {
            id: self.id,
            row_ptr: self.row_ptr.to_vec(),
            col_idx: self.col_idx.to_vec(),
            values: self.values.to_vec(),
        }
    }
}

impl<'a, T: Scalar> CsrMut<'a, T> {
    /// Borrows a structure and a mutable value array after the checks of
    /// [`Csr::from_parts`].
    pub fn new(
        rows: usize,
        cols: usize,
        row_ptr: &'a [i32],
        col_idx: &'a [i32],
        values: &'a mut [T],
    ) -> Result<Self> {
        let id = validate::validate(rows, cols, row_ptr, col_idx, values.len())?;
        Ok(CsrMut {
            id,
            row_ptr,
            col_idx,
            values,
        })
    }

    /// The values, mutably.
    pub fn values_mut(&mut self) -> &mut [T] {
        self.values
    }

    /// A read-only view of the same matrix (no re-validation: the structure was checked
    /// when this was built).
    ///
    /// ```
    /// use rosa::{Csr, CsrShape};
    /// let mut a = Csr::from_parts(1, 2, vec![0, 1], vec![1], vec![3.0f32]).unwrap();
    /// let id = a.structure_id();
    /// let m = a.as_mut();
    /// assert_eq!(m.as_ref().structure_id(), id);
    /// assert_eq!(m.as_ref().values(), &[3.0]);
    /// ```
    pub fn as_ref(&self) -> CsrRef<'_, T> {
        CsrRef {
            id: self.id,
            row_ptr: self.row_ptr,
            col_idx: self.col_idx,
            values: self.values,
        }
    }

    /// The structure's index arrays and the mutable values, borrowed apart.
    pub(crate) fn split(self) -> (&'a [i32], &'a [i32], &'a mut [T]) {
        (self.row_ptr, self.col_idx, self.values)
    }
}

/// Read access shared by every CSR form; implemented for [`Csr`], [`CsrRef`] and
/// [`CsrMut`] so that each has the same accessors under the same names.
///
/// ```
/// use rosa::{Csr, CsrShape};
/// let a = Csr::from_parts(2, 4, vec![0, 1, 3], vec![2, 0, 3], vec![1.0f32; 3]).unwrap();
/// assert_eq!((a.rows(), a.cols(), a.nnz()), (2, 4, 3));
/// assert_eq!(a.density(), 3.0 / 8.0);
/// ```
pub trait CsrShape {
    /// The structure's fingerprint.
    fn structure_id(&self) -> StructureId;
    /// Row offsets, `rows + 1` of them.
    fn row_ptr(&self) -> &[i32];
    /// Column indices, `nnz` of them.
    fn col_idx(&self) -> &[i32];

    /// Number of rows.
    fn rows(&self) -> usize {
        self.structure_id().rows
    }
    /// Number of columns.
    fn cols(&self) -> usize {
        self.structure_id().cols
    }
    /// Number of stored entries.
    fn nnz(&self) -> usize {
        self.structure_id().nnz
    }
    /// Stored entries over `rows * cols` (0 for an empty shape).
    fn density(&self) -> f64 {
        let total = self.rows() as f64 * self.cols() as f64;
        if total == 0.0 {
            0.0
        } else {
            self.nnz() as f64 / total
        }
    }
    /// Stored entries in row `i`. Panics if `i >= rows`, like slice indexing.
    fn row_len(&self, i: usize) -> usize {
        (self.row_ptr()[i + 1] - self.row_ptr()[i]) as usize
    }
    /// Row-length statistics: min, max, mean, coefficient of variation.
    fn row_stats(&self) -> RowStats {
        stats::row_stats(self.row_ptr())
    }
    /// Row indices ordered longest first (ties by index): the load-balancing order the
    /// GPU kernels walk.
    fn row_swizzle(&self) -> Vec<i32> {
        stats::row_swizzle(self.row_ptr())
    }
    /// The structure of the transpose and the permutation into this matrix's values,
    /// built once and reused by every transposed product.
    ///
    /// Like a `Vec`, aborts the process if the memory cannot be had; where the shape
    /// came from input, use [`CsrShape::try_transpose_plan`].
    fn transpose_plan(&self) -> TransposePlan {
        self.try_transpose_plan().unwrap_or_else(|e| match e {
            Error::Alloc { bytes, .. } => std::alloc::handle_alloc_error(
                std::alloc::Layout::from_size_align(bytes as usize, 4)
                    .unwrap_or(std::alloc::Layout::new::<i32>()),
            ),
            // Nothing else fails: the structure was validated when the matrix was built.
            other => unreachable!("{other}"),
        })
    }
    /// [`CsrShape::transpose_plan`], or [`Error::Alloc`] when its `4 (cols + 1) + 8 nnz`
    /// bytes cannot be allocated.
    ///
    /// ```
    /// use rosa::{Csr, CsrShape};
    /// let a = Csr::from_triplets(2, 3, &[(1, 2, 1.0f32)]).unwrap();
    /// assert_eq!(a.try_transpose_plan().unwrap(), a.transpose_plan());
    /// ```
    fn try_transpose_plan(&self) -> Result<TransposePlan> {
        TransposePlan::try_new(self.structure_id(), self.row_ptr(), self.col_idx())
    }
}

macro_rules! impl_shape {
    ($($ty:ty),*) => {$(
        impl<T: Scalar> CsrShape for $ty {
            fn structure_id(&self) -> StructureId {
                self.id
            }
            fn row_ptr(&self) -> &[i32] {
                &self.row_ptr
            }
            fn col_idx(&self) -> &[i32] {
                &self.col_idx
            }
        }
    )*};
}
impl_shape!(Csr<T>, CsrRef<'_, T>, CsrMut<'_, T>);

impl<T: Scalar> Csr<T> {
    /// The values.
    pub fn values(&self) -> &[T] {
        &self.values
    }

    /// Columns and values of row `i`. Panics if `i >= rows`, like slice indexing.
    pub fn row(&self, i: usize) -> (&[i32], &[T]) {
        self.as_ref().row(i)
    }
}
