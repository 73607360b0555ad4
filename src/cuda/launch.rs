//! The checked layer's cudarc-free half: C status codes as [`Error`]s, the tile table, the
//! SpMM / SDDMM parameter builders (every shape, stride and 32-bit limit checked) and the
//! launch calls over [`super::sys`], on raw addresses.
//!
//! One file for two builds: `rosa::cuda` (feature `cuda`), where `result` adds the
//! cudarc-typed launchers on top of it, and `rosa::emu` (feature `cuda-emu`), where the
//! same calls reach the emulated kernels (`#[path]`, as `sys`). Nothing here may name
//! cudarc. Layering: `sys` (bindings) -> this module and `result` (checked) -> the safe
//! API and [`super::raw`].

use std::ffi::{c_void, CStr};

use super::sys;
use crate::{DType, Error, Result};

/// The text of a status returned by the C ABI (negative: refused arguments, positive: a
/// `cudaError_t`).
pub(crate) fn status_string(code: i32) -> String {
    // SAFETY: rosa_status_string returns a pointer to a static NUL-terminated string for
    // every input (it never returns NULL).
    unsafe { CStr::from_ptr(sys::rosa_status_string(code)) }
        .to_string_lossy()
        .into_owned()
}

/// `Ok` for `ROSA_OK`, else [`Error::Cuda`] naming `call`, with the code and its text.
pub(crate) fn check(call: &'static str, code: i32) -> Result<()> {
    if code == sys::rosa_status::ROSA_OK {
        Ok(())
    } else {
        Err(Error::Cuda {
            call,
            code,
            message: status_string(code),
        })
    }
}

/// Number of compiled tile configurations of `op` (a `sys::rosa_op` value).
pub(crate) fn config_count(op: i32) -> usize {
    // SAFETY: a pure lookup in a static table; no pointers.
    let n = unsafe { sys::rosa_config_count(op) };
    usize::try_from(n).unwrap_or(0)
}

/// Tile configuration `index` of `op`.
pub(crate) fn config_get(op: i32, index: usize) -> Result<sys::rosa_config> {
    let index = i32::try_from(index).map_err(|_| {
        Error::InvalidArgument(format!("tile configuration index {index} is out of range"))
    })?;
    let mut out = sys::rosa_config::default();
    // SAFETY: `out` is a valid, writable rosa_config for the duration of the call.
    check("rosa_config_get", unsafe {
        sys::rosa_config_get(op, index, &mut out)
    })?;
    Ok(out)
}

pub(crate) fn dtype_code(d: DType) -> i32 {
    // The C enum has only small non-negative values; bindgen types it unsigned while the
    // params struct carries it as int32_t.
    (match d {
        DType::F32 => sys::rosa_dtype::ROSA_DTYPE_F32,
        DType::F16 => sys::rosa_dtype::ROSA_DTYPE_F16,
        DType::Bf16 => sys::rosa_dtype::ROSA_DTYPE_BF16,
    }) as i32
}

pub(crate) fn i32_of(what: &'static str, value: usize) -> Result<i32> {
    i32::try_from(value).map_err(|_| Error::IndexOverflow { what, value })
}

pub(crate) fn i64_of(value: usize) -> i64 {
    // Device buffers are far below 2^63 elements, so this never saturates in practice.
    i64::try_from(value).unwrap_or(i64::MAX)
}

pub(crate) fn check_ld(what: &'static str, ld: usize, n: usize) -> Result<()> {
    if ld >= n {
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!(
            "{what}: leading dimension {ld} is below its {n} columns"
        )))
    }
}

/// The shape of a walked structure, for the checks shared by the cudarc and raw paths.
pub(crate) struct RawStructure {
    pub rows: usize,
    pub cols: usize,
    /// Rows, in swizzle order, that get a block each (a splitting configuration's).
    pub long_rows: usize,
}

fn long_rows_of(s: &RawStructure) -> Result<i32> {
    if s.long_rows > s.rows {
        return Err(Error::InvalidArgument(format!(
            "long_rows {} exceeds the walked structure's {} rows",
            s.long_rows, s.rows
        )));
    }
    i32_of("long_rows", s.long_rows)
}

/// `rosa_spmm_params::c_f32` for operands of `dtype` and a C of `c_dtype`: C in the
/// operands' type, or f32 for bf16 operands (the only mixed pairing compiled, spmm.cu).
fn c_f32_of(dtype: DType, c_dtype: DType) -> Result<i32> {
    match (dtype, c_dtype) {
        (a, c) if a == c => Ok(0),
        (DType::Bf16, DType::F32) => Ok(1),
        _ => Err(Error::Unsupported(format!(
            "SpMM of {} operands with C in {}: C is in the operands' type, or f32 for bf16 operands",
            dtype.name(),
            c_dtype.name()
        ))),
    }
}

/// The C parameters of an SpMM over `s` of `dtype` operands into a C of `c_dtype`, with
/// every shape, stride and length checked; the pointers are filled in by the caller.
#[allow(clippy::too_many_arguments)]
pub(crate) fn spmm_params(
    dtype: DType,
    c_dtype: DType,
    s: &RawStructure,
    n: usize,
    ldb: usize,
    ldc: usize,
    alpha: f32,
    beta: f32,
) -> Result<sys::rosa_spmm_params> {
    check_ld("b", ldb, n)?;
    check_ld("c", ldc, n)?;
    Ok(sys::rosa_spmm_params {
        dtype: dtype_code(dtype),
        c_f32: c_f32_of(dtype, c_dtype)?,
        rows: i32_of("rows", s.rows)?,
        n: i32_of("n", n)?,
        b_rows: i32_of("cols", s.cols)?,
        long_rows: long_rows_of(s)?,
        row_ptr: std::ptr::null(),
        col_idx: std::ptr::null(),
        perm: std::ptr::null(),
        row_swizzle: std::ptr::null(),
        values: std::ptr::null(),
        b: std::ptr::null(),
        c: std::ptr::null_mut(),
        ldb: i64_of(ldb),
        ldc: i64_of(ldc),
        alpha,
        beta,
    })
}

/// The C parameters of an SDDMM over `s`, checked as [`spmm_params`].
pub(crate) fn sddmm_params(
    dtype: DType,
    s: &RawStructure,
    k: usize,
    ldl: usize,
    ldr: usize,
    alpha: f32,
    beta: f32,
) -> Result<sys::rosa_sddmm_params> {
    check_ld("l", ldl, k)?;
    check_ld("r", ldr, k)?;
    Ok(sys::rosa_sddmm_params {
        dtype: dtype_code(dtype),
        rows: i32_of("rows", s.rows)?,
        cols: i32_of("cols", s.cols)?,
        k: i32_of("k", k)?,
        long_rows: long_rows_of(s)?,
        row_ptr: std::ptr::null(),
        col_idx: std::ptr::null(),
        row_swizzle: std::ptr::null(),
        l: std::ptr::null(),
        r: std::ptr::null(),
        out: std::ptr::null_mut(),
        ldl: i64_of(ldl),
        ldr: i64_of(ldr),
        alpha,
        beta,
    })
}

/// Runs `rosa_spmm` (`transposed == false`) or `rosa_spmm_t` with filled-in parameters.
///
/// # Safety
/// Every pointer in `params` is valid device memory of the context current on this thread
/// (and of `stream`'s), holding what `rosa_kernels.h` says the kernel indexes, with valid
/// index contents; `stream` is a live stream of that context or null.
pub(crate) unsafe fn launch_spmm(
    params: &sys::rosa_spmm_params,
    transposed: bool,
    config: usize,
    stream: *mut c_void,
) -> Result<()> {
    let config = i32_of("config", config)?;
    if transposed {
        check("rosa_spmm_t", sys::rosa_spmm_t(params, config, stream))
    } else {
        check("rosa_spmm", sys::rosa_spmm(params, config, stream))
    }
}

/// Runs `rosa_sddmm` with filled-in parameters.
///
/// # Safety
/// As [`launch_spmm`].
pub(crate) unsafe fn launch_sddmm(
    params: &sys::rosa_sddmm_params,
    config: usize,
    stream: *mut c_void,
) -> Result<()> {
    let config = i32_of("config", config)?;
    check("rosa_sddmm", sys::rosa_sddmm(params, config, stream))
}
