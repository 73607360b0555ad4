//! A CSR matrix in device memory, with its row swizzle and transpose plan.

use cudarc::driver::CudaSlice;

use super::mem;
use super::result::{driver, Structure};
use super::{CudaScalar, Device};
use crate::csr::row_swizzle;
use crate::tune::ProblemKey;
use crate::{Csr, CsrRef, CsrShape, Error, Op, Result, StructureId};

/// A validated CSR matrix on a GPU, with everything the three kernels walk uploaded once:
/// `row_ptr`, `col_idx`, values, the longest-first row swizzle, and the transpose plan
/// (structure of `A^T`, its own swizzle, and the permutation into `A`'s values), so that
/// transposed SpMM reads the current values without transposing anything per call.
///
/// Built only from a host matrix that passed validation, and its structure is immutable:
/// that is what lets the kernels index without bounds checks. The values can be replaced
/// ([`DeviceCsr::set_values`]) or written by [`super::sddmm`].
///
/// ```no_run
/// use rosa::cuda::{Device, DeviceCsr};
/// use rosa::CsrShape;
/// let dev = Device::new(0)?;
/// let a = rosa::random::csr::<f32>(64, 32, 0.1, 3)?;
/// let d = DeviceCsr::from_host(&dev, a.as_ref())?;
/// assert_eq!((d.rows(), d.cols(), d.nnz()), (a.rows(), a.cols(), a.nnz()));
/// assert_eq!(d.to_host()?, a);
/// # Ok::<(), rosa::Error>(())
/// ```
#[derive(Debug)]
pub struct DeviceCsr<T> {
    id: StructureId,
    rows: usize,
    cols: usize,
    nnz: usize,
    /// Coefficient of variation of the row lengths: part of the tuning key, computed once
    /// here so that a launch need not read the structure back.
    row_cv: f64,
    row_ptr: CudaSlice<i32>,
    col_idx: CudaSlice<i32>,
    swizzle: CudaSlice<i32>,
    t_row_ptr: CudaSlice<i32>,
    t_col_idx: CudaSlice<i32>,
    t_perm: CudaSlice<i32>,
    t_swizzle: CudaSlice<i32>,
    pub(crate) values: CudaSlice<T>,
}

impl<T: CudaScalar> DeviceCsr<T> {
    /// Uploads `a` with its swizzle and transpose plan (built here, O(nnz), once).
    pub fn from_host(dev: &Device, a: CsrRef<'_, T>) -> Result<Self> {
        let s = dev.stream();
        let up = |v: &[i32]| mem::upload(s, v);
        let plan = a.transpose_plan();
        Ok(DeviceCsr {
            id: a.structure_id(),
            rows: a.rows(),
            cols: a.cols(),
            nnz: a.nnz(),
            row_cv: a.row_stats().cv,
            row_ptr: up(a.row_ptr())?,
            col_idx: up(a.col_idx())?,
            swizzle: up(&a.row_swizzle())?,
            t_row_ptr: up(plan.row_ptr())?,
            t_col_idx: up(plan.col_idx())?,
            t_perm: up(plan.perm())?,
            t_swizzle: up(&row_swizzle(plan.row_ptr()))?,
            values: mem::upload(s, a.values())?,
        })
    }

    /// Replaces the values (same structure), e.g. after an optimizer step on the host.
    pub fn set_values(&mut self, values: &[T]) -> Result<()> {
        if values.len() != self.nnz {
            return Err(Error::ValuesLength {
                got: values.len(),
                nnz: self.nnz,
            });
        }
        if values.is_empty() {
            return Ok(());
        }
        let s = self.values.stream().clone();
        s.memcpy_htod(values, &mut self.values)
            .map_err(driver("cuMemcpyHtoDAsync"))
    }

    /// Copies the values back; waits for the work queued before it.
    pub fn values_to_host(&self) -> Result<Vec<T>> {
        mem::download(&self.values, self.nnz)
    }

    /// The whole matrix back on the host.
    pub fn to_host(&self) -> Result<Csr<T>> {
        Csr::from_parts(
            self.rows,
            self.cols,
            mem::download(&self.row_ptr, self.rows + 1)?,
            mem::download(&self.col_idx, self.nnz)?,
            self.values_to_host()?,
        )
    }

    /// Rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Columns.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Stored entries.
    pub fn nnz(&self) -> usize {
        self.nnz
    }

    /// The structure fingerprint of the host matrix this was built from.
    pub fn structure_id(&self) -> StructureId {
        self.id
    }

    /// The values buffer, for interop: `nnz` elements, or one unused padding element when
    /// there are none.
    pub fn values(&self) -> &CudaSlice<T> {
        &self.values
    }

    /// The tuning key of `op` on this matrix with dense dimension `n` (the inner one for
    /// SDDMM): the same as [`ProblemKey::for_matrix`] on the host matrix.
    ///
    /// ```no_run
    /// use rosa::cuda::{Device, DeviceCsr, Op};
    /// use rosa::tune::ProblemKey;
    /// let dev = Device::new(0)?;
    /// let a = rosa::random::csr::<f32>(1024, 512, 0.02, 1)?;
    /// let d = DeviceCsr::from_host(&dev, a.as_ref())?;
    /// assert_eq!(d.problem_key(Op::Sddmm, 64), ProblemKey::for_matrix(Op::Sddmm, rosa::DType::F32, &a, 64));
    /// # Ok::<(), rosa::Error>(())
    /// ```
    pub fn problem_key(&self, op: Op, n: usize) -> ProblemKey {
        let cells = self.rows as f64 * self.cols as f64;
        let density = if cells > 0.0 {
            self.nnz as f64 / cells
        } else {
            0.0
        };
        ProblemKey::new(op, T::DTYPE, self.rows, self.cols, n, density, self.row_cv)
    }

    pub(crate) fn stream_of(&self) -> &cudarc::driver::CudaStream {
        self.values.stream()
    }

    /// The structure of `A` as the kernels walk it.
    pub(crate) fn structure(&self) -> Structure<'_> {
        Structure {
            rows: self.rows,
            cols: self.cols,
            nnz: self.nnz,
            row_ptr: &self.row_ptr,
            col_idx: &self.col_idx,
            swizzle: &self.swizzle,
            perm: None,
        }
    }

    /// The structure of `A^T` (from the plan), with the gather into `A`'s values.
    pub(crate) fn transposed(&self) -> Structure<'_> {
        Structure {
            rows: self.cols,
            cols: self.rows,
            nnz: self.nnz,
            row_ptr: &self.t_row_ptr,
            col_idx: &self.t_col_idx,
            swizzle: &self.t_swizzle,
            perm: Some(&self.t_perm),
        }
    }

    /// The mask structure and the values as separate borrows, for SDDMM writing into
    /// `values` while the kernel reads the structure.
    pub(crate) fn split_mut(&mut self) -> (Structure<'_>, &mut CudaSlice<T>) {
        (
            Structure {
                rows: self.rows,
                cols: self.cols,
                nnz: self.nnz,
                row_ptr: &self.row_ptr,
                col_idx: &self.col_idx,
                swizzle: &self.swizzle,
                perm: None,
            },
            &mut self.values,
        )
    }

    pub(crate) fn shape(&self) -> String {
        crate::error::shape(self.rows, self.cols)
    }
}
