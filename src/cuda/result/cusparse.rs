//! The checked layer over cuSPARSE (the baselines of the GPU bench): part of
//! [`super`], so still the only place with `unsafe` on the CUDA path.
//!
//! cudarc 0.19 gives cuSPARSE's raw bindings only (dlopen-ed on first use), so this file
//! owns the handle and the generic-API descriptors, destroys them on drop, and re-checks
//! every buffer length against what a call reads or writes. A descriptor keeps raw device
//! pointers, so each plan borrows the buffers it points at for as long as it lives: they
//! can be neither freed nor touched through another path while cuSPARSE may use them.

use std::ffi::{c_void, CStr};
use std::sync::Arc;

use cudarc::cusparse::sys::{
    self as cs, cudaDataType, cusparseDnMatDescr_t, cusparseHandle_t, cusparseOperation_t,
    cusparseSpMatDescr_t, cusparseStatus_t,
};
use cudarc::driver::{CudaSlice, CudaStream, DevicePtr, DevicePtrMut};

use super::{driver, i64_of, need, Structure};
use crate::{DType, Error, Result};

/// Whether the cuSPARSE library can be loaded: cudarc panics on first use when it cannot.
pub(crate) fn present() -> bool {
    super::culib_present!(cs::is_culib_present)
}

/// A cuSPARSE status from a call that runs a product, as a crate result: anything but
/// success is an [`Error::Cuda`] naming the call.
fn check(call: &'static str, status: cusparseStatus_t) -> Result<()> {
    match status {
        cusparseStatus_t::CUSPARSE_STATUS_SUCCESS => Ok(()),
        other => Err(status_error(call, other)),
    }
}

/// A cuSPARSE status from making a plan (descriptors, workspace query, preprocessing):
/// the one rule of what "cuSPARSE declines this case" means, for the bench and the tests
/// alike. `NOT_SUPPORTED`, and `INVALID_VALUE` (our own checks of shapes, lengths and
/// emptiness ran before, so it can only be the combination of dtype, layout, operation and
/// algorithm that this cuSPARSE refuses), are [`Error::Unsupported`]; any other status is
/// a failure ([`Error::Cuda`]).
fn check_setup(call: &'static str, status: cusparseStatus_t) -> Result<()> {
    match status {
        cusparseStatus_t::CUSPARSE_STATUS_NOT_SUPPORTED
        | cusparseStatus_t::CUSPARSE_STATUS_INVALID_VALUE => Err(Error::Unsupported(format!(
            "{call}: cuSPARSE declines this case ({status:?})"
        ))),
        other => check(call, other),
    }
}

fn status_error(call: &'static str, status: cusparseStatus_t) -> Error {
    // SAFETY: cusparseGetErrorString returns a static NUL-terminated string for every
    // status value (NULL is checked anyway).
    let text = unsafe { cs::cusparseGetErrorString(status) };
    let message = if text.is_null() {
        format!("{status:?}")
    } else {
        // SAFETY: non-null, static and NUL-terminated, as above.
        unsafe { CStr::from_ptr(text) }
            .to_string_lossy()
            .into_owned()
    };
    Error::Cuda {
        call,
        code: status as i32,
        message,
    }
}

/// cuSPARSE runs on the runtime API, which uses the context current on the calling thread.
fn bind(stream: &CudaStream) -> Result<()> {
    stream
        .context()
        .bind_to_thread()
        .map_err(driver("cuCtxSetCurrent"))
}

fn data_type(d: DType) -> cudaDataType {
    match d {
        DType::F32 => cudaDataType::CUDA_R_32F,
        DType::F16 => cudaDataType::CUDA_R_16F,
        DType::Bf16 => cudaDataType::CUDA_R_16BF,
    }
}

/// Every call accumulates in f32, whatever the storage type, like our kernels; the host
/// scalars alpha and beta are then f32 too.
const COMPUTE: cudaDataType = cudaDataType::CUDA_R_32F;

/// A cuSPARSE handle whose work is queued on one stream.
#[derive(Debug)]
pub(crate) struct Handle {
    raw: cusparseHandle_t,
    stream: Arc<CudaStream>,
}

impl Handle {
    pub(crate) fn new(stream: &Arc<CudaStream>) -> Result<Self> {
        bind(stream)?;
        let mut raw = std::ptr::null_mut();
        // SAFETY: `raw` is a valid out-pointer; the library was found loadable by the
        // caller (`present`).
        check("cusparseCreate", unsafe { cs::cusparseCreate(&mut raw) })?;
        let handle = Handle {
            raw,
            stream: stream.clone(),
        };
        // SAFETY: a live handle, and a live stream of the bound context that `handle`
        // keeps alive (`Arc`) for as long as the handle exists.
        check("cusparseSetStream", unsafe {
            cs::cusparseSetStream(raw, stream.cu_stream() as cs::cudaStream_t)
        })?;
        Ok(handle)
    }

    /// `cusparseGetVersion`: 1000 major + 100 minor + patch.
    pub(crate) fn version(&self) -> Result<i32> {
        bind(&self.stream)?;
        let mut v: std::ffi::c_int = 0;
        // SAFETY: a live handle and a valid out-pointer.
        check("cusparseGetVersion", unsafe {
            cs::cusparseGetVersion(self.raw, &mut v)
        })?;
        Ok(v)
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        // Nothing to report from a destructor: a failure here leaks one handle.
        if bind(&self.stream).is_ok() {
            // SAFETY: created by cusparseCreate and destroyed only here.
            let _ = unsafe { cs::cusparseDestroy(self.raw) };
        }
    }
}

/// A sparse-matrix descriptor, destroyed on drop.
struct SpMat(cusparseSpMatDescr_t);

impl SpMat {
    /// A CSR descriptor over `s`'s offsets and columns and the `values` at `values_ptr`.
    fn csr(s: &Structure<'_>, values_ptr: u64, dtype: DType, stream: &CudaStream) -> Result<Self> {
        let (row_ptr, _g1) = s.row_ptr.device_ptr(stream);
        let (col_idx, _g2) = s.col_idx.device_ptr(stream);
        let mut raw = std::ptr::null_mut();
        // SAFETY: the pointers are live device buffers whose lengths the caller checked
        // against rows + 1 offsets and nnz columns and values; 32-bit indices as stored.
        check_setup("cusparseCreateCsr", unsafe {
            cs::cusparseCreateCsr(
                &mut raw,
                i64_of(s.rows),
                i64_of(s.cols),
                i64_of(s.nnz),
                row_ptr as usize as *mut c_void,
                col_idx as usize as *mut c_void,
                values_ptr as usize as *mut c_void,
                cs::cusparseIndexType_t::CUSPARSE_INDEX_32I,
                cs::cusparseIndexType_t::CUSPARSE_INDEX_32I,
                cs::cusparseIndexBase_t::CUSPARSE_INDEX_BASE_ZERO,
                data_type(dtype),
            )
        })?;
        Ok(SpMat(raw))
    }
}

impl Drop for SpMat {
    fn drop(&mut self) {
        // SAFETY: created by cusparseCreateCsr and destroyed only here.
        let _ = unsafe { cs::cusparseDestroySpMat(self.0) };
    }
}

/// A packed row-major dense-matrix descriptor, destroyed on drop.
struct DnMat(cusparseDnMatDescr_t);

impl DnMat {
    fn row_major(rows: usize, cols: usize, ptr: u64, dtype: DType) -> Result<Self> {
        let mut raw = std::ptr::null_mut();
        // SAFETY: `ptr` is a live device buffer the caller checked to hold rows * cols
        // elements; the leading dimension is the row length (packed).
        check_setup("cusparseCreateDnMat", unsafe {
            cs::cusparseCreateDnMat(
                &mut raw,
                i64_of(rows),
                i64_of(cols),
                i64_of(cols.max(1)),
                ptr as usize as *mut c_void,
                data_type(dtype),
                cs::cusparseOrder_t::CUSPARSE_ORDER_ROW,
            )
        })?;
        Ok(DnMat(raw))
    }
}

impl Drop for DnMat {
    fn drop(&mut self) {
        // SAFETY: created by cusparseCreateDnMat and destroyed only here.
        let _ = unsafe { cs::cusparseDestroyDnMat(self.0) };
    }
}

fn operation(transpose: bool) -> cusparseOperation_t {
    if transpose {
        cusparseOperation_t::CUSPARSE_OPERATION_TRANSPOSE
    } else {
        cusparseOperation_t::CUSPARSE_OPERATION_NON_TRANSPOSE
    }
}

fn non_empty(what: &'static str, dims: &[usize]) -> Result<()> {
    if dims.contains(&0) {
        return Err(Error::InvalidArgument(format!(
            "{what}: the cuSPARSE baseline needs non-empty operands"
        )));
    }
    Ok(())
}

/// The workspace a call asked for (one byte when it asked for none: the driver refuses
/// empty allocations).
fn workspace(stream: &Arc<CudaStream>, bytes: usize) -> Result<CudaSlice<u8>> {
    super::super::mem::zeros(stream, bytes)
}

/// `c = alpha op(a) b + beta c`: a sparse M x K `a` (op: as stored, or transposed), a
/// dense `b` with op(a)'s columns as rows, `c` with op(a)'s rows, all row-major.
pub(crate) struct SpmmArgs<'a, T> {
    pub a: Structure<'a>,
    pub values: &'a CudaSlice<T>,
    pub transpose: bool,
    pub b: &'a CudaSlice<T>,
    pub c: &'a mut CudaSlice<T>,
    pub n: usize,
    pub alpha: f32,
    pub beta: f32,
    /// A `cusparseSpMMAlg_t` value.
    pub alg: cs::cusparseSpMMAlg_t,
}

/// An SpMM with its descriptors, workspace and preprocessing done: [`SpmmPlan::run`] is
/// the call a user who amortizes the setup would time.
pub(crate) struct SpmmPlan<'a, T> {
    handle: &'a Handle,
    args: SpmmArgs<'a, T>,
    descr: (SpMat, DnMat, DnMat),
    buffer: CudaSlice<u8>,
}

impl<'a, T: crate::Scalar> SpmmPlan<'a, T> {
    pub(crate) fn new(handle: &'a Handle, args: SpmmArgs<'a, T>) -> Result<Self> {
        let stream = &handle.stream;
        let (m, k, n) = (args.a.rows, args.a.cols, args.n);
        let (b_rows, c_rows) = if args.transpose { (m, k) } else { (k, m) };
        non_empty("cusparseSpMM", &[m, k, n, args.a.nnz])?;
        args.a.check(args.values.len())?;
        need("b", args.b.len(), b_rows * n)?;
        need("c", args.c.len(), c_rows * n)?;
        bind(stream)?;
        let descr = {
            let (values, _g1) = args.values.device_ptr(stream);
            let (b, _g2) = args.b.device_ptr(stream);
            let (c, _g3) = args.c.device_ptr(stream);
            (
                SpMat::csr(&args.a, values, T::DTYPE, stream)?,
                DnMat::row_major(b_rows, n, b, T::DTYPE)?,
                DnMat::row_major(c_rows, n, c, T::DTYPE)?,
            )
        };
        let mut bytes = 0usize;
        // SAFETY: live handle and descriptors; alpha and beta are host f32 scalars of the
        // f32 compute type; `bytes` is a valid out-pointer.
        check_setup("cusparseSpMM_bufferSize", unsafe {
            cs::cusparseSpMM_bufferSize(
                handle.raw,
                operation(args.transpose),
                operation(false),
                &args.alpha as *const f32 as *const c_void,
                descr.0 .0,
                descr.1 .0,
                &args.beta as *const f32 as *const c_void,
                descr.2 .0,
                COMPUTE,
                args.alg,
                &mut bytes,
            )
        })?;
        let buffer = workspace(stream, bytes)?;
        let mut plan = SpmmPlan {
            handle,
            args,
            descr,
            buffer,
        };
        plan.call(true)?;
        Ok(plan)
    }

    /// Queues the SpMM on the handle's stream.
    pub(crate) fn run(&mut self) -> Result<()> {
        self.call(false)
    }

    fn call(&mut self, preprocess: bool) -> Result<()> {
        let stream = &self.handle.stream;
        bind(stream)?;
        let a = &mut self.args;
        // The guards order these buffers on the stream, as for our kernels' launches.
        let (_, _g1) = a.a.row_ptr.device_ptr(stream);
        let (_, _g2) = a.a.col_idx.device_ptr(stream);
        let (_, _g3) = a.values.device_ptr(stream);
        let (_, _g4) = a.b.device_ptr(stream);
        let (_, _g5) = a.c.device_ptr_mut(stream);
        let (buf, _g6) = self.buffer.device_ptr_mut(stream);
        let (sp, dn_b, dn_c) = (&self.descr.0, &self.descr.1, &self.descr.2);
        let f = if preprocess {
            cs::cusparseSpMM_preprocess
        } else {
            cs::cusparseSpMM
        };
        let check = if preprocess { check_setup } else { check };
        // SAFETY: the descriptors point at the buffers this plan borrows (lengths checked
        // in `new`), the workspace has the size cuSPARSE asked for, alpha and beta are host
        // f32 scalars of the f32 compute type; cuSPARSE queues on the handle's stream.
        check(
            if preprocess {
                "cusparseSpMM_preprocess"
            } else {
                "cusparseSpMM"
            },
            unsafe {
                f(
                    self.handle.raw,
                    operation(a.transpose),
                    operation(false),
                    &a.alpha as *const f32 as *const c_void,
                    sp.0,
                    dn_b.0,
                    &a.beta as *const f32 as *const c_void,
                    dn_c.0,
                    COMPUTE,
                    a.alg,
                    buf as usize as *mut c_void,
                )
            },
        )
    }
}

/// `out = alpha (l r^T) at out's structure + beta out`: `l` rows x k, `r` cols x k, both
/// row-major, `out` a CSR rows x cols.
pub(crate) struct SddmmArgs<'a, T> {
    pub s: Structure<'a>,
    pub out: &'a mut CudaSlice<T>,
    pub l: &'a CudaSlice<T>,
    pub r: &'a CudaSlice<T>,
    pub k: usize,
    pub alpha: f32,
    pub beta: f32,
}

/// An SDDMM with its descriptors, workspace and preprocessing done.
pub(crate) struct SddmmPlan<'a, T> {
    handle: &'a Handle,
    args: SddmmArgs<'a, T>,
    descr: (DnMat, DnMat, SpMat),
    buffer: CudaSlice<u8>,
}

impl<'a, T: crate::Scalar> SddmmPlan<'a, T> {
    pub(crate) fn new(handle: &'a Handle, args: SddmmArgs<'a, T>) -> Result<Self> {
        let stream = &handle.stream;
        let (m, n, k) = (args.s.rows, args.s.cols, args.k);
        non_empty("cusparseSDDMM", &[m, n, k, args.s.nnz])?;
        args.s.check(args.out.len())?;
        need("l", args.l.len(), m * k)?;
        need("r", args.r.len(), n * k)?;
        bind(stream)?;
        let descr = {
            let (l, _g1) = args.l.device_ptr(stream);
            let (r, _g2) = args.r.device_ptr(stream);
            let (out, _g3) = args.out.device_ptr(stream);
            (
                DnMat::row_major(m, k, l, T::DTYPE)?,
                DnMat::row_major(n, k, r, T::DTYPE)?,
                SpMat::csr(&args.s, out, T::DTYPE, stream)?,
            )
        };
        let mut bytes = 0usize;
        // SAFETY: as in SpmmPlan::new; op(B) = R^T (k x n) reads R as stored.
        check_setup("cusparseSDDMM_bufferSize", unsafe {
            cs::cusparseSDDMM_bufferSize(
                handle.raw,
                operation(false),
                operation(true),
                &args.alpha as *const f32 as *const c_void,
                descr.0 .0,
                descr.1 .0,
                &args.beta as *const f32 as *const c_void,
                descr.2 .0,
                COMPUTE,
                cs::cusparseSDDMMAlg_t::CUSPARSE_SDDMM_ALG_DEFAULT,
                &mut bytes,
            )
        })?;
        let buffer = workspace(stream, bytes)?;
        let mut plan = SddmmPlan {
            handle,
            args,
            descr,
            buffer,
        };
        plan.call(true)?;
        Ok(plan)
    }

    /// Queues the SDDMM on the handle's stream.
    pub(crate) fn run(&mut self) -> Result<()> {
        self.call(false)
    }

    fn call(&mut self, preprocess: bool) -> Result<()> {
        let stream = &self.handle.stream;
        bind(stream)?;
        let a = &mut self.args;
        let (_, _g1) = a.s.row_ptr.device_ptr(stream);
        let (_, _g2) = a.s.col_idx.device_ptr(stream);
        let (_, _g3) = a.l.device_ptr(stream);
        let (_, _g4) = a.r.device_ptr(stream);
        let (_, _g5) = a.out.device_ptr_mut(stream);
        let (buf, _g6) = self.buffer.device_ptr_mut(stream);
        let (dn_l, dn_r, sp) = (&self.descr.0, &self.descr.1, &self.descr.2);
        let f = if preprocess {
            cs::cusparseSDDMM_preprocess
        } else {
            cs::cusparseSDDMM
        };
        let check = if preprocess { check_setup } else { check };
        // SAFETY: as in SpmmPlan::call.
        check(
            if preprocess {
                "cusparseSDDMM_preprocess"
            } else {
                "cusparseSDDMM"
            },
            unsafe {
                f(
                    self.handle.raw,
                    operation(false),
                    operation(true),
                    &a.alpha as *const f32 as *const c_void,
                    dn_l.0,
                    dn_r.0,
                    &a.beta as *const f32 as *const c_void,
                    sp.0,
                    COMPUTE,
                    cs::cusparseSDDMMAlg_t::CUSPARSE_SDDMM_ALG_DEFAULT,
                    buf as usize as *mut c_void,
                )
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rule's two "declined" statuses need no library; every other status is a
    /// failure, whose message would need cuSPARSE loaded (not asked here).
    #[test]
    fn setup_declines_only_not_supported_and_invalid_value() {
        assert!(check_setup("x", cusparseStatus_t::CUSPARSE_STATUS_SUCCESS).is_ok());
        for status in [
            cusparseStatus_t::CUSPARSE_STATUS_NOT_SUPPORTED,
            cusparseStatus_t::CUSPARSE_STATUS_INVALID_VALUE,
        ] {
            let err = check_setup("cusparseSpMM_bufferSize", status).unwrap_err();
            assert!(
                matches!(&err, Error::Unsupported(why) if why.contains(&format!("{status:?}"))),
                "{err}"
            );
        }
    }
}
