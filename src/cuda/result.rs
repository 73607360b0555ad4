//! The checked layer over [`super::sys`]: every `unsafe` of the crate's CUDA path is here
//! and in [`super::launch`], its cudarc-free half (status codes, the SpMM / SDDMM
//! parameters, the launch calls on raw addresses), which this file's launchers build on
//! and which `rosa::emu` compiles too.
//!
//! Each function turns a C status into a [`Result`] and takes typed device buffers rather
//! than raw pointers, re-checking the lengths the kernels index with, so nothing outside
//! this file can make a launch read or write out of bounds. What the kernels also rely on,
//! the contents of the index arrays (sorted, in-range columns, a true permutation for the
//! swizzle and the plan), is guaranteed by [`super::DeviceCsr`], which is only built from
//! a validated host matrix and never exposes its index buffers mutably.

use std::ffi::c_void;

use cudarc::cublas::CudaBlas;
use cudarc::driver::{
    CudaContext, CudaSlice, CudaStream, CudaView, CudaViewMut, DevicePtr, DevicePtrMut, DriverError,
};

use super::launch::{
    check, dtype_code, i32_of, i64_of, launch_sddmm, launch_spmm, sddmm_params, spmm_params,
    RawStructure,
};
use super::sys;
use crate::{DType, Error, Result};

pub(crate) mod ceilings;
pub(crate) mod cusparse;
pub(crate) mod quant;

/// Whether one of cudarc's CUDA libraries can be used: `$probe` is the `is_culib_present`
/// of its `sys` module. rosa alone has cudarc load the libraries at run time
/// (`dynamic-loading`), and cudarc panics on first use of one it cannot load, so this is
/// asked first.
#[cfg(not(feature = "candle-cuda"))]
macro_rules! culib_present {
    ($probe:path) => {
        // SAFETY: only tries to dlopen the library by its usual names; loading it runs no
        // CUDA call and a failed load is reported as `false`.
        unsafe { $probe() }
    };
}
/// Under `candle-cuda`, candle makes cudarc link the libraries instead (`dynamic-linking`,
/// where `is_culib_present` does not exist): the process could not have started without
/// them, so they are there by construction.
#[cfg(feature = "candle-cuda")]
macro_rules! culib_present {
    ($probe:path) => {
        true
    };
}
pub(crate) use culib_present;

/// Whether the CUDA driver library (`libcuda.so`) can be loaded. cudarc panics on first use
/// when it cannot, so this is asked before anything else touches the driver.
pub(crate) fn driver_present() -> bool {
    culib_present!(cudarc::driver::sys::is_culib_present)
}

/// The driver's CUDA version (1000 * major + 10 * minor), for the tuning fingerprint.
pub(crate) fn driver_version() -> Result<u32> {
    let mut version: std::ffi::c_int = 0;
    // SAFETY: writes one int through a valid pointer. Callers hold a Device, so the driver
    // library is loaded and initialized.
    unsafe { cudarc::driver::sys::cuDriverGetVersion(&mut version) }
        .result()
        .map_err(driver("cuDriverGetVersion"))?;
    Ok(u32::try_from(version).unwrap_or(0))
}

/// A driver error as a crate error naming the call that failed.
pub(crate) fn driver(call: &'static str) -> impl FnOnce(DriverError) -> Error {
    move |e| Error::Cuda {
        call,
        code: e.0 as i32,
        message: e
            .error_string()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|_| format!("{:?}", e.0)),
    }
}

fn need(what: &'static str, got: usize, want: usize) -> Result<()> {
    if got >= want {
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!(
            "{what}: device buffer has {got} elements, the launch needs {want}"
        )))
    }
}

/// `stream` as the opaque handle the C ABI takes, after binding its context to this
/// thread: the runtime API launches into the context current on the calling thread, which
/// must be the one the buffers and the stream belong to.
fn runtime_stream(stream: &CudaStream) -> Result<*mut c_void> {
    stream
        .context()
        .bind_to_thread()
        .map_err(driver("cuCtxSetCurrent"))?;
    Ok(stream.cu_stream() as *mut c_void)
}

/// The compressed structure a kernel walks: a CSR matrix, or A^T through a transpose plan.
pub(crate) struct Structure<'a> {
    pub rows: usize,
    pub cols: usize,
    pub nnz: usize,
    pub row_ptr: &'a CudaSlice<i32>,
    pub col_idx: &'a CudaSlice<i32>,
    pub swizzle: &'a CudaSlice<i32>,
    /// For A^T: the index in A's values of each entry.
    pub perm: Option<&'a CudaSlice<i32>>,
}

impl Structure<'_> {
    fn check(&self, values_len: usize) -> Result<()> {
        need("row_ptr", self.row_ptr.len(), self.rows + 1)?;
        need("swizzle", self.swizzle.len(), self.rows)?;
        need("col_idx", self.col_idx.len(), self.nnz)?;
        if let Some(perm) = self.perm {
            need("perm", perm.len(), self.nnz)?;
        }
        need("values", values_len, self.nnz)
    }
}

/// Launch arguments of SpMM / transposed SpMM, `c = alpha * s * b + beta * c`, with `s` the
/// walked structure (rows x cols), `b` (cols x n, row stride `ldb`), `c` (rows x n, row
/// stride `ldc`), row-major; `C` is `T`, or f32 for bf16 operands.
pub(crate) struct Spmm<'a, T, C> {
    pub s: Structure<'a>,
    pub values: CudaView<'a, T>,
    pub b: CudaView<'a, T>,
    pub ldb: usize,
    pub c: CudaViewMut<'a, C>,
    pub ldc: usize,
    pub n: usize,
    pub alpha: f32,
    pub beta: f32,
    /// The configuration's long-row count over `s` (0 unless it splits).
    pub long_rows: usize,
}

/// Elements a row-major `rows x n` operand of row stride `ld` spans.
fn span(rows: usize, n: usize, ld: usize) -> usize {
    if rows == 0 || n == 0 {
        0
    } else {
        (rows - 1).saturating_mul(ld).saturating_add(n)
    }
}

/// Launches `rosa_spmm` (no perm) or `rosa_spmm_t` (perm) on `stream`.
pub(crate) fn spmm<T: crate::Scalar, C: crate::Scalar>(
    stream: &CudaStream,
    config: usize,
    mut a: Spmm<'_, T, C>,
) -> Result<()> {
    a.s.check(a.values.len())?;
    let shape = RawStructure {
        rows: a.s.rows,
        cols: a.s.cols,
        long_rows: a.long_rows,
    };
    let mut params = spmm_params(
        T::DTYPE,
        C::DTYPE,
        &shape,
        a.n,
        a.ldb,
        a.ldc,
        a.alpha,
        a.beta,
    )?;
    need("b", a.b.len(), span(a.s.cols, a.n, a.ldb))?;
    need("c", a.c.len(), span(a.s.rows, a.n, a.ldc))?;
    let (row_ptr, _g1) = a.s.row_ptr.device_ptr(stream);
    let (col_idx, _g2) = a.s.col_idx.device_ptr(stream);
    let (swizzle, _g3) = a.s.swizzle.device_ptr(stream);
    let perm = a.s.perm.map(|p| p.device_ptr(stream));
    let (values, _g5) = a.values.device_ptr(stream);
    let (b, _g6) = a.b.device_ptr(stream);
    let (c, _g7) = a.c.device_ptr_mut(stream);
    params.row_ptr = ptr(row_ptr);
    params.col_idx = ptr(col_idx);
    params.perm = perm.as_ref().map_or(std::ptr::null(), |(p, _)| ptr(*p));
    params.row_swizzle = ptr(swizzle);
    params.values = ptr(values);
    params.b = ptr(b);
    params.c = ptr_mut(c);
    let s = runtime_stream(stream)?;
    // SAFETY: every pointer comes from a live device buffer of the stream's context whose
    // length was checked above against what the kernel indexes (rows + 1 offsets, nnz
    // columns/values/perm entries, rows swizzle entries, the spans of B and C at their
    // strides); the index contents are valid by construction of DeviceMask. `params`
    // outlives the call, which copies it into the launch. The guards (_g*) keep cudarc's
    // stream ordering.
    unsafe { launch_spmm(&params, a.s.perm.is_some(), config, s) }
}

/// Launch arguments of SDDMM: `out = alpha * (l r^T) at the structure + beta * out`, with
/// `l` (rows x k, row stride `ldl`) and `r` (cols x k, row stride `ldr`) row-major.
pub(crate) struct Sddmm<'a, T> {
    pub s: Structure<'a>,
    pub l: CudaView<'a, T>,
    pub ldl: usize,
    pub r: CudaView<'a, T>,
    pub ldr: usize,
    pub out: CudaViewMut<'a, T>,
    pub k: usize,
    pub alpha: f32,
    pub beta: f32,
    /// As [`Spmm::long_rows`].
    pub long_rows: usize,
}

/// Launches `rosa_sddmm` on `stream`.
pub(crate) fn sddmm<T: crate::Scalar>(
    stream: &CudaStream,
    config: usize,
    mut a: Sddmm<'_, T>,
) -> Result<()> {
    if a.s.perm.is_some() {
        return Err(Error::InvalidArgument(
            "sddmm walks a CSR structure, not a plan".into(),
        ));
    }
    a.s.check(a.out.len())?;
    let shape = RawStructure {
        rows: a.s.rows,
        cols: a.s.cols,
        long_rows: a.long_rows,
    };
    let mut params = sddmm_params(T::DTYPE, &shape, a.k, a.ldl, a.ldr, a.alpha, a.beta)?;
    need("l", a.l.len(), span(a.s.rows, a.k, a.ldl))?;
    need("r", a.r.len(), span(a.s.cols, a.k, a.ldr))?;
    let (row_ptr, _g1) = a.s.row_ptr.device_ptr(stream);
    let (col_idx, _g2) = a.s.col_idx.device_ptr(stream);
    let (swizzle, _g3) = a.s.swizzle.device_ptr(stream);
    let (l, _g4) = a.l.device_ptr(stream);
    let (r, _g5) = a.r.device_ptr(stream);
    let (out, _g6) = a.out.device_ptr_mut(stream);
    params.row_ptr = ptr(row_ptr);
    params.col_idx = ptr(col_idx);
    params.row_swizzle = ptr(swizzle);
    params.l = ptr(l);
    params.r = ptr(r);
    params.out = ptr_mut(out);
    let s = runtime_stream(stream)?;
    // SAFETY: as in `spmm`: lengths checked above (rows + 1 offsets, nnz columns and
    // outputs, rows swizzle entries, the spans of L and R at their strides), index
    // contents valid by construction, `params` outlives the call, guards keep stream
    // ordering.
    unsafe { launch_sddmm(&params, config, s) }
}

/// Whether the cuBLAS library can be loaded: cudarc panics on first use when it cannot.
pub(crate) fn cublas_present() -> bool {
    culib_present!(cudarc::cublas::sys::is_culib_present)
}

/// A cuBLAS error as a crate error naming the call that failed.
pub(crate) fn blas(
    call: &'static str,
) -> impl FnOnce(cudarc::cublas::result::CublasError) -> Error {
    move |e| Error::Cuda {
        call,
        code: e.0 as i32,
        message: format!("{:?}", e.0),
    }
}

/// Sets `handle`'s math mode: the default never rounds f32 operands to TF32 (half and
/// bf16 GEMMs still use tensor cores in it); `tf32` lets f32 GEMMs run on tensor cores
/// with TF32 inputs.
pub(crate) fn cublas_math(handle: &CudaBlas, tf32: bool) -> Result<()> {
    use cudarc::cublas::sys::{cublasMath_t, cublasSetMathMode};
    let mode = if tf32 {
        cublasMath_t::CUBLAS_TF32_TENSOR_OP_MATH
    } else {
        cublasMath_t::CUBLAS_DEFAULT_MATH
    };
    // SAFETY: `handle` is a live cuBLAS handle owned by `CudaBlas`; the call only sets a
    // flag on it.
    unsafe { cublasSetMathMode(*handle.handle(), mode) }
        .result()
        .map_err(blas("cublasSetMathMode"))
}

/// A column-major GEMM as cuBLAS sees it: `c (m x n) = alpha op(a) op(b) + beta c`, with
/// `op(a)` m x k and `op(b)` k x n, leading dimensions `lda`, `ldb`, `ldc`. `C` is the
/// output type: the inputs' own, or f32.
pub(crate) struct Gemm<'a, T, C = T> {
    pub trans_a: bool,
    pub trans_b: bool,
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub a: &'a CudaSlice<T>,
    pub lda: usize,
    pub b: &'a CudaSlice<T>,
    pub ldb: usize,
    pub c: &'a mut CudaSlice<C>,
    pub ldc: usize,
    pub alpha: f32,
    pub beta: f32,
}

/// Checks that each buffer holds the column-major matrix its leading dimension describes
/// and that every dimension fits cuBLAS's `int`s; `None` for an empty output.
fn gemm_config<T, C>(g: &Gemm<'_, T, C>) -> Result<Option<cudarc::cublas::GemmConfig<f32>>> {
    use cudarc::cublas::sys::cublasOperation_t::{CUBLAS_OP_N, CUBLAS_OP_T};
    if g.m == 0 || g.n == 0 {
        return Ok(None);
    }
    // Stored (rows, cols) of each operand in column-major order.
    let (a_rows, a_cols) = if g.trans_a { (g.k, g.m) } else { (g.m, g.k) };
    let (b_rows, b_cols) = if g.trans_b { (g.n, g.k) } else { (g.k, g.n) };
    for (what, ld, rows, cols, len) in [
        ("gemm a", g.lda, a_rows, a_cols, g.a.len()),
        ("gemm b", g.ldb, b_rows, b_cols, g.b.len()),
        ("gemm c", g.ldc, g.m, g.n, g.c.len()),
    ] {
        if ld < rows.max(1) {
            return Err(Error::InvalidArgument(format!(
                "{what}: leading dimension {ld} is below {rows} rows"
            )));
        }
        need(what, len, ld * cols)?;
    }
    let op = |t: bool| if t { CUBLAS_OP_T } else { CUBLAS_OP_N };
    Ok(Some(cudarc::cublas::GemmConfig {
        transa: op(g.trans_a),
        transb: op(g.trans_b),
        m: i32_of("gemm m", g.m)?,
        n: i32_of("gemm n", g.n)?,
        k: i32_of("gemm k", g.k)?,
        alpha: g.alpha,
        lda: i32_of("gemm lda", g.lda)?,
        ldb: i32_of("gemm ldb", g.ldb)?,
        beta: g.beta,
        ldc: i32_of("gemm ldc", g.ldc)?,
    }))
}

fn cuda_type(d: DType) -> cudarc::cublas::sys::cudaDataType_t {
    use cudarc::cublas::sys::cudaDataType_t;
    match d {
        DType::F32 => cudaDataType_t::CUDA_R_32F,
        DType::F16 => cudaDataType_t::CUDA_R_16F,
        DType::Bf16 => cudaDataType_t::CUDA_R_16BF,
    }
}

// ---------------------------------------------------------------- elementwise kernels
//
// Each wrapper re-checks that every buffer holds the elements the kernel indexes (the C
// side cannot see lengths), then launches on `stream`. The guards (_g*) keep cudarc's
// stream ordering of the buffers, as in `spmm`.

fn ptr<T>(p: u64) -> *const T {
    p as usize as *const T
}

fn ptr_mut<T>(p: u64) -> *mut T {
    p as usize as *mut T
}

/// The scalars of one AdamW step (see `rosa_adamw_params`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct AdamwStep {
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub weight_decay: f32,
    pub bias_correction1: f32,
    pub bias_correction2: f32,
    pub grad_scale: f32,
}

/// The four buffers of one AdamW update of `n` values.
pub(crate) struct AdamwBuffers<'a> {
    pub n: usize,
    pub param: &'a mut CudaSlice<f32>,
    pub grad: &'a CudaSlice<f32>,
    pub m: &'a mut CudaSlice<f32>,
    pub v: &'a mut CudaSlice<f32>,
}

/// Launches `rosa_adamw`.
pub(crate) fn adamw(stream: &CudaStream, b: AdamwBuffers<'_>, h: AdamwStep) -> Result<()> {
    for (what, len) in [
        ("adamw param", b.param.len()),
        ("adamw grad", b.grad.len()),
        ("adamw m", b.m.len()),
        ("adamw v", b.v.len()),
    ] {
        need(what, len, b.n)?;
    }
    let (param, _g1) = b.param.device_ptr_mut(stream);
    let (grad, _g2) = b.grad.device_ptr(stream);
    let (m, _g3) = b.m.device_ptr_mut(stream);
    let (v, _g4) = b.v.device_ptr_mut(stream);
    let params = sys::rosa_adamw_params {
        n: i64_of(b.n),
        param: ptr_mut(param),
        grad: ptr(grad),
        m: ptr_mut(m),
        v: ptr_mut(v),
        lr: h.lr,
        beta1: h.beta1,
        beta2: h.beta2,
        eps: h.eps,
        weight_decay: h.weight_decay,
        bias_correction1: h.bias_correction1,
        bias_correction2: h.bias_correction2,
        grad_scale: h.grad_scale,
    };
    let s = runtime_stream(stream)?;
    // SAFETY: the four buffers hold at least n f32 each (checked above) and are live device
    // memory of the stream's context; `params` outlives the call.
    check("rosa_adamw", unsafe { sys::rosa_adamw(&params, s) })
}

/// Launches `rosa_sum_squares`: `acc[0] += sum of x[..n]^2`.
pub(crate) fn sum_squares(
    stream: &CudaStream,
    n: usize,
    x: &CudaSlice<f32>,
    acc: &mut CudaSlice<f64>,
) -> Result<()> {
    need("sum_squares x", x.len(), n)?;
    need("sum_squares acc", acc.len(), 1)?;
    let (xp, _g1) = x.device_ptr(stream);
    let (ap, _g2) = acc.device_ptr_mut(stream);
    let s = runtime_stream(stream)?;
    // SAFETY: x holds n f32 and acc one f64 (checked above), both live device memory.
    check("rosa_sum_squares", unsafe {
        sys::rosa_sum_squares(i64_of(n), ptr(xp), ptr_mut(ap), s)
    })
}

/// Launches `rosa_axpby`: `y[..n] = alpha x[..n] + beta y[..n]`.
pub(crate) fn axpby(
    stream: &CudaStream,
    n: usize,
    alpha: f32,
    x: &CudaSlice<f32>,
    beta: f32,
    y: &mut CudaSlice<f32>,
) -> Result<()> {
    need("axpby x", x.len(), n)?;
    need("axpby y", y.len(), n)?;
    let (xp, _g1) = x.device_ptr(stream);
    let (yp, _g2) = y.device_ptr_mut(stream);
    let s = runtime_stream(stream)?;
    // SAFETY: x and y hold n f32 each (checked above), both live device memory.
    check("rosa_axpby", unsafe {
        sys::rosa_axpby(i64_of(n), alpha, ptr(xp), beta, ptr_mut(yp), s)
    })
}

/// Launches `rosa_cast`: `dst[..n] = src[..n]` converted.
pub(crate) fn cast<S: crate::Scalar, D: crate::Scalar>(
    stream: &CudaStream,
    n: usize,
    src: &CudaSlice<S>,
    dst: &mut CudaSlice<D>,
) -> Result<()> {
    need("cast src", src.len(), n)?;
    need("cast dst", dst.len(), n)?;
    let (sp, _g1) = src.device_ptr(stream);
    let (dp, _g2) = dst.device_ptr_mut(stream);
    let s = runtime_stream(stream)?;
    // SAFETY: src and dst hold n elements of the dtypes passed with them (checked above),
    // both live device memory.
    check("rosa_cast", unsafe {
        sys::rosa_cast(
            i64_of(n),
            dtype_code(S::DTYPE),
            ptr::<c_void>(sp),
            dtype_code(D::DTYPE),
            ptr_mut::<c_void>(dp),
            s,
        )
    })
}

/// Launches `rosa_bias_add`: `y[i, j] += bias[i]` for a packed rows x cols `y`.
pub(crate) fn bias_add(
    stream: &CudaStream,
    rows: usize,
    cols: usize,
    bias: &CudaSlice<f32>,
    y: &mut CudaSlice<f32>,
) -> Result<()> {
    need("bias_add bias", bias.len(), rows)?;
    need("bias_add y", y.len(), rows * cols)?;
    let (bp, _g1) = bias.device_ptr(stream);
    let (yp, _g2) = y.device_ptr_mut(stream);
    let s = runtime_stream(stream)?;
    // SAFETY: bias holds rows and y rows * cols f32 (checked above), both live.
    check("rosa_bias_add", unsafe {
        sys::rosa_bias_add(i64_of(rows), i64_of(cols), ptr(bp), ptr_mut(yp), s)
    })
}

/// Launches `rosa_row_sum`: `out[i] = sum_j x[i, j]` for a packed rows x cols `x`.
pub(crate) fn row_sum(
    stream: &CudaStream,
    rows: usize,
    cols: usize,
    x: &CudaSlice<f32>,
    out: &mut CudaSlice<f32>,
) -> Result<()> {
    need("row_sum x", x.len(), rows * cols)?;
    need("row_sum out", out.len(), rows)?;
    let (xp, _g1) = x.device_ptr(stream);
    let (op, _g2) = out.device_ptr_mut(stream);
    let s = runtime_stream(stream)?;
    // SAFETY: x holds rows * cols and out rows f32 (checked above), both live.
    check("rosa_row_sum", unsafe {
        sys::rosa_row_sum(i64_of(rows), i64_of(cols), ptr(xp), ptr_mut(op), s)
    })
}

/// Launches `rosa_csr_add`: `dense = base + alpha * S` at the entries of `S` (structure
/// `st`, no plan, f32 `values`), rounded once to `T`; `base` `None` is `dense` itself (an
/// in-place add). `dense` and `base` are packed row-major `st.rows x st.cols`.
pub(crate) fn csr_add<T: crate::Scalar>(
    stream: &CudaStream,
    st: Structure<'_>,
    values: &CudaSlice<f32>,
    alpha: f32,
    base: Option<&CudaSlice<T>>,
    dense: &mut CudaSlice<T>,
) -> Result<()> {
    if st.perm.is_some() {
        return Err(Error::InvalidArgument(
            "csr_add walks a CSR structure, not a plan".into(),
        ));
    }
    st.check(values.len())?;
    need("csr_add dense", dense.len(), st.rows * st.cols)?;
    if let Some(b) = base {
        need("csr_add base", b.len(), st.rows * st.cols)?;
    }
    let (rows, cols) = (i32_of("rows", st.rows)?, i32_of("cols", st.cols)?);
    let (row_ptr, _g1) = st.row_ptr.device_ptr(stream);
    let (col_idx, _g2) = st.col_idx.device_ptr(stream);
    let (vp, _g3) = values.device_ptr(stream);
    let bp = base.map(|b| b.device_ptr(stream));
    let (dp, _g5) = dense.device_ptr_mut(stream);
    let params = sys::rosa_csr_add_params {
        rows,
        cols,
        row_ptr: ptr(row_ptr),
        col_idx: ptr(col_idx),
        values: ptr(vp),
        dtype: dtype_code(T::DTYPE),
        base: bp.as_ref().map_or(std::ptr::null(), |(p, _)| ptr(*p)),
        base_ld: i64_of(st.cols),
        dense: ptr_mut(dp),
        ld: i64_of(st.cols),
        alpha,
    };
    let s = runtime_stream(stream)?;
    // SAFETY: rows + 1 offsets, nnz columns (each < cols by construction of DeviceCsr) and
    // nnz values, and rows * cols elements of T in dense and base (checked above); base is
    // a different allocation from dense (the borrow checker keeps `&` and `&mut` apart);
    // `params` outlives the call.
    check("rosa_csr_add", unsafe { sys::rosa_csr_add(&params, s) })
}

/// A GEMM with `T` inputs and a `C` output (the inputs' type, or f32), accumulated in f32
/// (`cublasGemmEx`, compute type 32F) with f32 alpha and beta: the scalars are never
/// rounded to the storage type (alpha = 0.3 in bf16 would be 0.30078125), and a bf16
/// weight times bf16-rounded activations can land in an f32 result unrounded. f32 inputs
/// run the plain SGEMM unless the handle's math mode allows TF32.
pub(crate) fn gemm<T: crate::Scalar, C: crate::Scalar>(
    handle: &CudaBlas,
    stream: &CudaStream,
    g: Gemm<'_, T, C>,
) -> Result<()> {
    use cudarc::cublas::sys::{cublasComputeType_t, cublasGemmAlgo_t};
    let Some(cfg) = gemm_config(&g)? else {
        return Ok(());
    };
    let (a, _g1) = g.a.device_ptr(stream);
    let (b, _g2) = g.b.device_ptr(stream);
    let (c, _g3) = g.c.device_ptr_mut(stream);
    // SAFETY: each buffer holds the `ld * cols` elements of its matrix (checked by
    // gemm_config), of the type passed beside it; alpha and beta are f32 as compute type
    // 32F requires, and live across the call. `stream` is the handle's (the caller's
    // contract), so the guards order the buffers with the GEMM.
    unsafe {
        cudarc::cublas::result::gemm_ex(
            *handle.handle(),
            cfg.transa,
            cfg.transb,
            cfg.m,
            cfg.n,
            cfg.k,
            (&cfg.alpha) as *const f32 as *const c_void,
            a as usize as *const c_void,
            cuda_type(T::DTYPE),
            cfg.lda,
            b as usize as *const c_void,
            cuda_type(T::DTYPE),
            cfg.ldb,
            (&cfg.beta) as *const f32 as *const c_void,
            c as usize as *mut c_void,
            cuda_type(C::DTYPE),
            cfg.ldc,
            cublasComputeType_t::CUBLAS_COMPUTE_32F,
            cublasGemmAlgo_t::CUBLAS_GEMM_DEFAULT,
        )
    }
    .map_err(blas("cublasGemmEx"))
}

/// The high-water mark, in bytes, of memory in use in `ctx`'s default memory pool (where
/// cudarc's stream-ordered allocations come from) since the last reset, then, with
/// `reset`, a new mark starting from the current use. `None` where the device has no
/// stream-ordered allocator (cudarc then allocates outside any pool).
pub(crate) fn pool_used_high(ctx: &CudaContext, reset: bool) -> Result<Option<u64>> {
    use cudarc::driver::sys::{self as dsys, CUmemPool_attribute};
    if !ctx.has_async_alloc() {
        return Ok(None);
    }
    ctx.bind_to_thread().map_err(driver("cuCtxSetCurrent"))?;
    let mut pool: dsys::CUmemoryPool = std::ptr::null_mut();
    // SAFETY: `pool` is a valid out-pointer; the device handle comes from a live context.
    unsafe { dsys::cuDeviceGetDefaultMemPool(&mut pool, ctx.cu_device()) }
        .result()
        .map_err(driver("cuDeviceGetDefaultMemPool"))?;
    let attr = CUmemPool_attribute::CU_MEMPOOL_ATTR_USED_MEM_HIGH;
    let mut high: u64 = 0;
    // SAFETY: this attribute is a cuuint64_t, and `high` is one, valid for the call.
    unsafe { dsys::cuMemPoolGetAttribute(pool, attr, (&mut high) as *mut u64 as *mut c_void) }
        .result()
        .map_err(driver("cuMemPoolGetAttribute"))?;
    if reset {
        // The driver accepts only 0 here: it restarts the mark at the current use.
        let mut zero: u64 = 0;
        // SAFETY: as above, a cuuint64_t valid for the call.
        unsafe { dsys::cuMemPoolSetAttribute(pool, attr, (&mut zero) as *mut u64 as *mut c_void) }
            .result()
            .map_err(driver("cuMemPoolSetAttribute"))?;
    }
    Ok(Some(high))
}
