//! The structure of a sparse matrix on a GPU, uploaded once and shared by every product
//! over it, whoever owns the values.

use cudarc::driver::{CudaSlice, CudaStream};

use super::mem;
use super::result::Structure;
use super::{Device, KernelConfig};
use crate::tune::ProblemKey;
use crate::{CsrShape, DType, Op, Result, StructureId};

/// The fixed structure of a sparse matrix `S` (rows x cols) on a GPU: `row_ptr`, `col_idx`,
/// the longest-first row swizzle, and the transpose plan (structure of `S^T`, its swizzle,
/// and the permutation into `S`'s values), all uploaded once. The values are not here:
/// they live in any device buffer of `nnz` elements (in `row_ptr` / `col_idx` order) that
/// the caller owns, for example a framework's tensor, and are passed to each launch as a
/// borrowed view ([`super::SparseView`]).
///
/// Built only from a validated host structure (anything [`CsrShape`]: a [`crate::Csr`] or
/// one of its views), and never handing out its index buffers mutably: that is what lets
/// the kernels index without bounds checks.
///
/// ```no_run
/// use rosa::cuda::{self, Device, DeviceDense, DeviceMask, SparseView};
/// let dev = Device::new(0)?;
/// let s = rosa::random::csr::<f32>(256, 128, 0.02, 1)?;
/// let mask = DeviceMask::from_host(&dev, &s)?;
/// // The values in a buffer of the caller's, e.g. a tensor's storage.
/// let values = dev.stream().clone_htod(s.values()).unwrap();
/// let x = DeviceDense::from_host(&dev, rosa::random::dense::<f32>(128, 64, 2).as_ref())?;
/// let mut y = DeviceDense::zeros(&dev, 256, 64)?;
/// cuda::spmm(&dev, 1.0, &SparseView::new(&mask, values.as_view())?, &x, 0.0, &mut y)?;
/// # Ok::<(), rosa::Error>(())
/// ```
#[derive(Debug)]
pub struct DeviceMask {
    id: StructureId,
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
    /// The launch's `long_rows` of every configuration, by op and table index, counted once
    /// here from the host arrays (a launch cannot read the swizzle back).
    long_rows: [Vec<usize>; 3],
}

/// `long_rows` of each configuration of `op` over a structure walked in `swizzle` order.
fn long_rows_by_config(op: Op, row_ptr: &[i32], swizzle: &[i32]) -> Vec<usize> {
    KernelConfig::all(op)
        .iter()
        .map(|c| c.long_rows(row_ptr, swizzle))
        .collect()
}

/// Slot of `op` in [`DeviceMask`]'s `long_rows`.
fn op_slot(op: Op) -> usize {
    match op {
        Op::Spmm => 0,
        Op::SpmmT => 1,
        Op::Sddmm => 2,
    }
}

impl DeviceMask {
    /// Uploads the structure of `s` with its swizzle and transpose plan (built here,
    /// O(nnz), once), ordered on the device's stream.
    ///
    /// # Errors
    /// [`crate::Error::Alloc`] when the host plan cannot be allocated, [`crate::Error::Cuda`]
    /// when a device allocation or copy fails.
    pub fn from_host(dev: &Device, s: &impl CsrShape) -> Result<Self> {
        let up = |v: &[i32]| mem::upload(dev.stream(), v);
        let plan = s.try_transpose_plan()?;
        let (swizzle, t_swizzle) = (s.row_swizzle(), plan.row_swizzle());
        Ok(DeviceMask {
            id: s.structure_id(),
            row_cv: s.row_stats().cv,
            row_ptr: up(s.row_ptr())?,
            col_idx: up(s.col_idx())?,
            swizzle: up(&swizzle)?,
            t_row_ptr: up(plan.row_ptr())?,
            t_col_idx: up(plan.col_idx())?,
            t_perm: up(plan.perm())?,
            t_swizzle: up(&t_swizzle)?,
            long_rows: [
                long_rows_by_config(Op::Spmm, s.row_ptr(), &swizzle),
                long_rows_by_config(Op::SpmmT, plan.row_ptr(), &t_swizzle),
                long_rows_by_config(Op::Sddmm, s.row_ptr(), &swizzle),
            ],
        })
    }

    /// Rows of `S`.
    pub fn rows(&self) -> usize {
        self.id.rows
    }

    /// Columns of `S`.
    pub fn cols(&self) -> usize {
        self.id.cols
    }

    /// Stored entries: the length every values buffer over this mask must have.
    pub fn nnz(&self) -> usize {
        self.id.nnz
    }

    /// The structure fingerprint of the host matrix this was built from.
    pub fn structure_id(&self) -> StructureId {
        self.id
    }

    /// The tuning key of `op` on this structure with values of `dtype` and dense
    /// dimension `n` (the inner one for SDDMM): the same as [`ProblemKey::for_matrix`] on
    /// the host matrix.
    pub fn problem_key(&self, op: Op, dtype: DType, n: usize) -> ProblemKey {
        let cells = self.rows() as f64 * self.cols() as f64;
        let density = if cells > 0.0 {
            self.nnz() as f64 / cells
        } else {
            0.0
        };
        ProblemKey::new(op, dtype, self.rows(), self.cols(), n, density, self.row_cv)
    }

    /// Coefficient of variation of the row lengths (as in [`crate::RowStats`]).
    pub(crate) fn row_cv(&self) -> f64 {
        self.row_cv
    }

    /// `config`'s `long_rows` over the structure its op walks (`S`, or `S^T` for
    /// [`Op::SpmmT`]); 0 for a configuration not in this build's table.
    pub(crate) fn long_rows(&self, config: &KernelConfig) -> usize {
        self.long_rows[op_slot(config.op)]
            .get(config.index)
            .copied()
            .unwrap_or(0)
    }

    pub(crate) fn stream_of(&self) -> &CudaStream {
        self.row_ptr.stream()
    }

    /// `S` as the kernels walk it.
    pub(crate) fn structure(&self) -> Structure<'_> {
        Structure {
            rows: self.rows(),
            cols: self.cols(),
            nnz: self.nnz(),
            row_ptr: &self.row_ptr,
            col_idx: &self.col_idx,
            swizzle: &self.swizzle,
            perm: None,
        }
    }

    /// `S^T` (from the plan), with the gather into `S`'s values.
    pub(crate) fn transposed(&self) -> Structure<'_> {
        Structure {
            rows: self.cols(),
            cols: self.rows(),
            nnz: self.nnz(),
            row_ptr: &self.t_row_ptr,
            col_idx: &self.t_col_idx,
            swizzle: &self.t_swizzle,
            perm: Some(&self.t_perm),
        }
    }

    /// The host row offsets and column indices, back from the device.
    pub(crate) fn download(&self) -> Result<(Vec<i32>, Vec<i32>)> {
        Ok((
            mem::download(&self.row_ptr, self.rows() + 1)?,
            mem::download(&self.col_idx, self.nnz())?,
        ))
    }

    pub(crate) fn shape(&self) -> String {
        crate::error::shape(self.rows(), self.cols())
    }
}
