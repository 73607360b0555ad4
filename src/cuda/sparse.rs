//! cuSPARSE's CSR SpMM and SDDMM on our [`DeviceCsr`] and row-major [`DeviceDense`]
//! buffers: the sparse baselines the kernels are measured against.
//!
//! Setup (descriptors, workspace, `cusparseSpMM_preprocess` / `cusparseSDDMM_preprocess`)
//! happens once when a plan is made, as a user who calls the same product many times
//! would amortize it; [`SparseSpmm::run`] and [`SparseSddmm::run`] are the calls to time.
//!
//! - SpMM: CSR A with `CUSPARSE_SPMM_CSR_ALG2` or `ALG3`, B and C row-major
//!   (`CUSPARSE_ORDER_ROW`). `A^T B` passes `CUSPARSE_OPERATION_TRANSPOSE` on the same
//!   CSR arrays (no transposed copy: ours reads A's values through its transpose plan,
//!   so neither side gets a materialized A^T).
//! - SDDMM: `CUSPARSE_SDDMM_ALG_DEFAULT`, L as stored and R transposed (row-major
//!   `rows x k` and `cols x k`), into the CSR's values.
//!
//! Everything accumulates in f32. One rule says what "cuSPARSE declines this case" means,
//! for the bench (which reports such a baseline as "n/a") and the tests (which fail on
//! anything else): while a plan is made, status `NOT_SUPPORTED`, or `INVALID_VALUE`
//! after our own checks of shapes, lengths and emptiness have passed (so only the
//! combination of dtype, layout, operation and algorithm is left to refuse), is an
//! [`Error::Unsupported`]. Every other status, and any status from a run, is an
//! [`Error::Cuda`]: a failure.

use super::result::cusparse::{self, Handle, SddmmArgs, SddmmPlan, SpmmArgs, SpmmPlan};
use super::{CudaScalar, Device, DeviceCsr, DeviceDense, Transpose};
use crate::{Error, Result};

/// A cuSPARSE CSR SpMM algorithm.
///
/// ```
/// use rosa::cuda::SpmmAlg;
/// assert_eq!(SpmmAlg::ALL.map(SpmmAlg::name), ["ALG2", "ALG3"]);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpmmAlg {
    /// `CUSPARSE_SPMM_CSR_ALG2`: deterministic, row-major friendly.
    Csr2,
    /// `CUSPARSE_SPMM_CSR_ALG3`: partitions the nonzeros, benefits most from
    /// preprocessing.
    Csr3,
}

impl SpmmAlg {
    /// Both, in the order the bench tries them (see the type's example).
    pub const ALL: [SpmmAlg; 2] = [SpmmAlg::Csr2, SpmmAlg::Csr3];

    /// `ALG2` or `ALG3` (see the type's example).
    pub fn name(self) -> &'static str {
        match self {
            SpmmAlg::Csr2 => "ALG2",
            SpmmAlg::Csr3 => "ALG3",
        }
    }

    fn raw(self) -> cudarc::cusparse::sys::cusparseSpMMAlg_t {
        use cudarc::cusparse::sys::cusparseSpMMAlg_t as A;
        match self {
            SpmmAlg::Csr2 => A::CUSPARSE_SPMM_CSR_ALG2,
            SpmmAlg::Csr3 => A::CUSPARSE_SPMM_CSR_ALG3,
        }
    }
}

/// A cuSPARSE handle on a [`Device`]'s stream.
///
/// ```no_run
/// use rosa::cuda::{Device, DeviceCsr, DeviceDense, Sparse, SpmmAlg, Transpose};
/// let dev = Device::new(0)?;
/// let sparse = Sparse::new(&dev)?;
/// let a = DeviceCsr::from_host(&dev, rosa::random::csr::<f32>(256, 128, 0.05, 1)?.as_ref())?;
/// let b = DeviceDense::from_host(&dev, rosa::random::dense::<f32>(128, 32, 2).as_ref())?;
/// let mut c = DeviceDense::zeros(&dev, 256, 32)?;
/// let mut plan = sparse.spmm(SpmmAlg::Csr2, 1.0, &a, Transpose::No, &b, 0.0, &mut c)?;
/// plan.run()?; // C = A B, as often as needed
/// # Ok::<(), rosa::Error>(())
/// ```
#[derive(Debug)]
pub struct Sparse {
    handle: Handle,
    dev: Device,
}

/// A planned cuSPARSE SpMM, borrowing its operands (see [`Sparse::spmm`]): while it
/// lives, C is written only through it, and none of the buffers can be freed.
///
/// ```no_run
/// use rosa::cuda::{Device, DeviceCsr, DeviceDense, Sparse, SpmmAlg, Transpose};
/// let dev = Device::new(0)?;
/// let sparse = Sparse::new(&dev)?;
/// let a = DeviceCsr::from_host(&dev, rosa::random::csr::<f32>(64, 48, 0.1, 1)?.as_ref())?;
/// let b = DeviceDense::from_host(&dev, rosa::random::dense::<f32>(64, 8, 2).as_ref())?;
/// let mut c = DeviceDense::zeros(&dev, 48, 8)?;
/// let mut plan = sparse.spmm(SpmmAlg::Csr3, 1.0, &a, Transpose::Yes, &b, 0.0, &mut c)?;
/// let ms = dev.time_ms(|| plan.run())?; // C = A^T B, setup untimed
/// drop(plan);
/// println!("{ms:.3} ms, C[0] = {}", c.to_host()?.as_slice()[0]);
/// # Ok::<(), rosa::Error>(())
/// ```
pub struct SparseSpmm<'a, T>(SpmmPlan<'a, T>);

/// A planned cuSPARSE SDDMM, borrowing its operands (see [`Sparse::sddmm`]).
///
/// ```no_run
/// use rosa::cuda::{Device, DeviceCsr, DeviceDense, Sparse};
/// let dev = Device::new(0)?;
/// let sparse = Sparse::new(&dev)?;
/// let mut mask = DeviceCsr::from_host(&dev, rosa::random::csr::<f32>(64, 48, 0.1, 1)?.as_ref())?;
/// let l = DeviceDense::from_host(&dev, rosa::random::dense::<f32>(64, 16, 2).as_ref())?;
/// let r = DeviceDense::from_host(&dev, rosa::random::dense::<f32>(48, 16, 3).as_ref())?;
/// let mut plan = sparse.sddmm(1.0, &l, &r, 0.0, &mut mask)?;
/// plan.run()?; // mask values = (L R^T) at the mask
/// drop(plan);
/// let values = mask.values_to_host()?;
/// # Ok::<(), rosa::Error>(())
/// ```
pub struct SparseSddmm<'a, T>(SddmmPlan<'a, T>);

impl<T: CudaScalar> SparseSpmm<'_, T> {
    /// Queues `C = alpha op(A) B + beta C` on the device's stream (see the type's
    /// example).
    pub fn run(&mut self) -> Result<()> {
        self.0.run()
    }
}

impl<T: CudaScalar> SparseSddmm<'_, T> {
    /// Queues `out = alpha (L R^T) at out's structure + beta out` on the device's stream
    /// (see the type's example).
    pub fn run(&mut self) -> Result<()> {
        self.0.run()
    }
}

impl Sparse {
    /// Loads cuSPARSE (`libcusparse.so.12` in CUDA 13, through the loader path) and binds
    /// a handle to `dev`'s stream; a missing library is an `Err`, not a panic (see the
    /// type's example).
    pub fn new(dev: &Device) -> Result<Self> {
        if !cusparse::present() {
            return Err(Error::Unsupported(
                "cuSPARSE (libcusparse.so) is not on the loader path; add its directory to \
                 LD_LIBRARY_PATH (CUDA toolkit lib64, or the lib folder of the \
                 nvidia-cusparse wheel)"
                    .into(),
            ));
        }
        Ok(Sparse {
            handle: Handle::new(dev.stream())?,
            dev: dev.clone(),
        })
    }

    /// The loaded cuSPARSE's `cusparseGetVersion`: 1000 major + 100 minor + patch
    /// (12603 for 12.6.3).
    ///
    /// ```no_run
    /// let dev = rosa::cuda::Device::new(0)?;
    /// println!("cuSPARSE {}", rosa::cuda::Sparse::new(&dev)?.version()?);
    /// # Ok::<(), rosa::Error>(())
    /// ```
    pub fn version(&self) -> Result<i32> {
        self.handle.version()
    }

    /// Plans `C = alpha op(A) B + beta C` with `alg` (A sparse M x K; `op(A)` is A or
    /// A^T; B and C row-major): descriptors, workspace and preprocessing, outside any
    /// timing. Shape mismatches are [`Error::ShapeMismatch`]; a case this cuSPARSE does
    /// not support is [`Error::Unsupported`]. Examples: [`Sparse`], [`SparseSpmm`].
    #[allow(clippy::too_many_arguments)]
    pub fn spmm<'a, T: CudaScalar>(
        &'a self,
        alg: SpmmAlg,
        alpha: f32,
        a: &'a DeviceCsr<T>,
        ta: Transpose,
        b: &'a DeviceDense<T>,
        beta: f32,
        c: &'a mut DeviceDense<T>,
    ) -> Result<SparseSpmm<'a, T>> {
        let transpose = ta == Transpose::Yes;
        let (rows, inner) = if transpose {
            (a.cols(), a.rows())
        } else {
            (a.rows(), a.cols())
        };
        if b.rows() != inner || c.rows() != rows || c.cols() != b.cols() {
            return Err(Error::ShapeMismatch {
                op: "cusparse spmm",
                detail: format!(
                    "op(A) {rows} x {inner} times B {} into C {}",
                    b.shape(),
                    c.shape()
                ),
            });
        }
        self.dev.check_same(a.stream_of(), "A")?;
        self.dev.check_same(b.data.stream(), "B")?;
        self.dev.check_same(c.data.stream(), "C")?;
        let n = b.cols();
        let args = SpmmArgs {
            a: a.structure(),
            values: &a.values,
            transpose,
            b: &b.data,
            c: &mut c.data,
            n,
            alpha,
            beta,
            alg: alg.raw(),
        };
        Ok(SparseSpmm(SpmmPlan::new(&self.handle, args)?))
    }

    /// Plans `out = alpha (L R^T) at out's structure + beta out` (L: M x k, R: N x k, out
    /// an M x N CSR whose values are written): descriptors, workspace and preprocessing,
    /// outside any timing. Errors as [`Sparse::spmm`]. Example: [`SparseSddmm`].
    pub fn sddmm<'a, T: CudaScalar>(
        &'a self,
        alpha: f32,
        l: &'a DeviceDense<T>,
        r: &'a DeviceDense<T>,
        beta: f32,
        out: &'a mut DeviceCsr<T>,
    ) -> Result<SparseSddmm<'a, T>> {
        if l.rows() != out.rows() || r.rows() != out.cols() || l.cols() != r.cols() {
            return Err(Error::ShapeMismatch {
                op: "cusparse sddmm",
                detail: format!(
                    "L {} times R^T of R {} into a mask {}",
                    l.shape(),
                    r.shape(),
                    out.shape()
                ),
            });
        }
        self.dev.check_same(l.data.stream(), "L")?;
        self.dev.check_same(r.data.stream(), "R")?;
        self.dev.check_same(out.stream_of(), "out")?;
        let k = l.cols();
        let (mask, values) = out.split_mut();
        let args = SddmmArgs {
            s: mask.structure(),
            out: values,
            l: &l.data,
            r: &r.data,
            k,
            alpha,
            beta,
        };
        Ok(SparseSddmm(SddmmPlan::new(&self.handle, args)?))
    }
}
