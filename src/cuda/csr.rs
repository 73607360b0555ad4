//! A CSR matrix in device memory, with its row swizzle and transpose plan.

use cudarc::driver::CudaSlice;

use super::mem;
use super::result::{driver, Structure};
use super::{CudaScalar, Device, DeviceMask};
use crate::tune::ProblemKey;
use crate::{Csr, CsrRef, Error, Op, Result, StructureId};

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
    mask: DeviceMask,
    pub(crate) values: CudaSlice<T>,
}

impl<T: CudaScalar> DeviceCsr<T> {
    /// Uploads `a` with its swizzle and transpose plan (built here, O(nnz), once).
    pub fn from_host(dev: &Device, a: CsrRef<'_, T>) -> Result<Self> {
        Ok(DeviceCsr {
            mask: DeviceMask::from_host(dev, &a)?,
            values: mem::upload(dev.stream(), a.values())?,
        })
    }

    /// Replaces the values (same structure), e.g. after an optimizer step on the host.
    pub fn set_values(&mut self, values: &[T]) -> Result<()> {
        if values.len() != self.nnz() {
            return Err(Error::ValuesLength {
                got: values.len(),
                nnz: self.nnz(),
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
        mem::download(&self.values, self.nnz())
    }

    /// The whole matrix back on the host.
    pub fn to_host(&self) -> Result<Csr<T>> {
        let (row_ptr, col_idx) = self.mask.download()?;
        Csr::from_parts(
            self.rows(),
            self.cols(),
            row_ptr,
            col_idx,
            self.values_to_host()?,
        )
    }

    /// Rows.
    pub fn rows(&self) -> usize {
        self.mask.rows()
    }

    /// Columns.
    pub fn cols(&self) -> usize {
        self.mask.cols()
    }

    /// Stored entries.
    pub fn nnz(&self) -> usize {
        self.mask.nnz()
    }

    /// The structure fingerprint of the host matrix this was built from.
    pub fn structure_id(&self) -> StructureId {
        self.mask.structure_id()
    }

    /// The structure alone, for launches over other values of the same mask (see
    /// [`super::SparseView`]).
    pub fn mask(&self) -> &DeviceMask {
        &self.mask
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
        self.mask.problem_key(op, T::DTYPE, n)
    }

    /// The structure of `A` as the kernels walk it.
    pub(crate) fn structure(&self) -> Structure<'_> {
        self.mask.structure()
    }

    pub(crate) fn stream_of(&self) -> &cudarc::driver::CudaStream {
        self.mask.stream_of()
    }

    pub(crate) fn shape(&self) -> String {
        self.mask.shape()
    }

    /// The mask structure and the values as separate borrows, for SDDMM writing into
    /// `values` while the kernel reads the structure.
    pub(crate) fn split_mut(&mut self) -> (&DeviceMask, &mut CudaSlice<T>) {
        (&self.mask, &mut self.values)
    }
}
