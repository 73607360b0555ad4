//! The kernels on raw device pointers and a raw stream, for stacks that do not use cudarc.
//!
//! Everything here is `unsafe`: rosa cannot see the lengths behind a pointer, nor check
//! that index arrays are sorted and in range, so the caller promises both. What rosa can
//! check it still checks before anything is launched, with the same errors as the safe
//! launchers: the configuration's op, finite `alpha` / `beta`, shapes that fit together,
//! leading dimensions at least the row width, 32-bit index limits, and no null pointer
//! where the launch would read or write one.
//!
//! The index arrays are the host structure's, uploaded by the caller: `row_ptr` and
//! `col_idx` of a validated [`crate::Csr`], [`crate::CsrShape::row_swizzle`], and for the
//! transposed product the [`crate::TransposePlan`]'s `row_ptr`, `col_idx`, `perm` and
//! [`crate::TransposePlan::row_swizzle`]. Stacks that do use cudarc get the same kernels
//! without `unsafe` from `rosa::cuda::DeviceMask` and the view launchers.
//!
//! Needs no cudarc: only the checked launch layer (`launch`) over the bindings (`sys`) and
//! the tile table ([`KernelConfig`]). So the same file is also `rosa::emu::raw` (feature
//! `cuda-emu`), where the addresses are host pointers and the kernels run in the emulator
//! (tests/emu_raw.rs); the examples are the `cuda` build's and compile to nothing there.

use std::ffi::c_void;

use super::config::{check_config, check_long_rows};
use super::launch::{self, RawStructure};
use super::KernelConfig;
use crate::cpu::check_scalars;
use crate::{DType, Error, Op, Result};

/// A CSR structure in device memory, as the kernels walk it: `rows + 1` offsets,
/// `nnz` column indices in `0..cols` (sorted and unique within a row), `rows` swizzle
/// entries (a permutation of `0..rows`), and for a transposed product (`perm != 0`) the
/// `nnz` indices into the values of the matrix the plan was built from. Addresses are
/// `CUdeviceptr`s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawCsr {
    /// Rows of the walked structure (of `A^T` for a transposed product).
    pub rows: usize,
    /// Columns of the walked structure.
    pub cols: usize,
    /// Stored entries.
    pub nnz: usize,
    /// `i32[rows + 1]`.
    pub row_ptr: u64,
    /// `i32[nnz]`.
    pub col_idx: u64,
    /// `i32[rows]`.
    pub row_swizzle: u64,
    /// `i32[nnz]`, or 0 for a plain (not transposed) product.
    pub perm: u64,
    /// How many rows, in `row_swizzle` order, get a whole block each: 0 (always allowed)
    /// or, for a configuration that splits long rows, [`KernelConfig::long_rows`] of the
    /// host arrays. At most `rows`; any such count is correct, only the speed changes.
    pub long_rows: usize,
}

/// A row-major `rows x cols` matrix at device address `ptr`, row `i` at element `i * ld`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawDense {
    /// Device address of element (0, 0).
    pub ptr: u64,
    /// Rows.
    pub rows: usize,
    /// Columns.
    pub cols: usize,
    /// Row stride in elements, at least `cols`.
    pub ld: usize,
}

fn nonnull(what: &str, addr: u64, needed: bool) -> Result<()> {
    if addr == 0 && needed {
        Err(Error::InvalidArgument(format!(
            "{what} is a null device pointer"
        )))
    } else {
        Ok(())
    }
}

fn check_structure(s: &RawCsr) -> Result<()> {
    nonnull("row_ptr", s.row_ptr, true)?;
    nonnull("col_idx", s.col_idx, s.nnz > 0)?;
    nonnull("row_swizzle", s.row_swizzle, s.rows > 0)
}

/// `C = alpha S B + beta C` with values of `dtype` (f32 accumulation), where `S` is the
/// walked structure `s` over `values` (`nnz` elements): `A` itself, or `A^T` through a
/// transpose plan when `s.perm != 0` (then `config` must be an [`Op::SpmmT`]
/// configuration, else an [`Op::Spmm`] one). `B` is `s.cols x N`, `C` is `s.rows x N`;
/// `beta == 0` leaves the old `C` unread. Queued on `stream` (a `CUstream` /
/// `cudaStream_t`; null is the legacy default stream); returns once it is queued.
///
/// # Errors
/// [`Error::InvalidArgument`] / [`Error::ShapeMismatch`] / [`Error::IndexOverflow`] for
/// what is checked before the launch (see the module docs), [`Error::Cuda`] for a failed
/// launch.
///
/// # Safety
/// Every address is device memory of the context current on the calling thread (the one
/// `stream` belongs to), holding what [`RawCsr`] describes, `values` with `nnz` elements
/// and `b` / `c` the spans their shapes and strides give, all of `dtype`; the index arrays
/// are those of a validated structure (see the module docs); nothing else writes `c`
/// until the launch completes on `stream`.
///
/// ```no_run
/// # #[cfg(feature = "cuda")] {
/// use rosa::cuda::{raw, KernelConfig, Op};
/// use rosa::CsrShape;
/// # fn upload(_: &[u8]) -> u64 { 0 }
/// let a = rosa::random::csr::<f32>(64, 32, 0.1, 1)?;
/// let b = rosa::random::dense::<f32>(32, 16, 2);
/// let bytes = |v: &[i32]| v.iter().flat_map(|x| x.to_ne_bytes()).collect::<Vec<u8>>();
/// // Upload with your own stack's allocator and copy (here a stand-in `upload`).
/// let s = raw::RawCsr {
///     rows: 64, cols: 32, nnz: a.nnz(),
///     row_ptr: upload(&bytes(a.row_ptr())),
///     col_idx: upload(&bytes(a.col_idx())),
///     row_swizzle: upload(&bytes(&a.row_swizzle())),
///     perm: 0,
///     long_rows: 0, // or config.long_rows(a.row_ptr(), &a.row_swizzle())
/// };
/// # let (values, b_ptr, c_ptr) = (0u64, 0u64, 0u64);
/// let config = KernelConfig::heuristic(Op::Spmm, rosa::DType::F32, 16);
/// unsafe {
///     raw::spmm(
///         rosa::DType::F32, &config, 1.0, &s, values,
///         &raw::RawDense { ptr: b_ptr, rows: 32, cols: 16, ld: 16 },
///         0.0,
///         &raw::RawDense { ptr: c_ptr, rows: 64, cols: 16, ld: 16 },
///         std::ptr::null_mut(),
///     )?;
/// }
/// # }
/// # Ok::<(), rosa::Error>(())
/// ```
#[allow(clippy::too_many_arguments)]
pub unsafe fn spmm(
    dtype: DType,
    config: &KernelConfig,
    alpha: f32,
    s: &RawCsr,
    values: u64,
    b: &RawDense,
    beta: f32,
    c: &RawDense,
    stream: *mut c_void,
) -> Result<()> {
    // SAFETY: the caller's contract is spmm_into's, with C of `dtype`.
    unsafe { spmm_into(dtype, dtype, config, alpha, s, values, b, beta, c, stream) }
}

/// [`spmm`] into an f32 `C`: `C = alpha S B + beta C` with `values` and `B` of `dtype`,
/// accumulated in f32 as always and stored from the accumulators without a round to
/// `dtype`. For bf16 operands this is the sparse term of a bf16 layer (`y += S x`, or
/// `dX += S^T dY` through a plan) added straight into f32 activations, the raw form of
/// `rosa::cuda::spmm_f32_out` / `spmm_t_f32_out`; f32 operands give the plain f32 product.
/// Shapes, the configuration's op (by `s.perm`), stream and ordering as [`spmm`]: `B` is
/// `s.cols x N`, `C` is `s.rows x N`, `beta == 0` leaves the old `C` unread. The
/// configuration is the one [`spmm`] would take for the same operands (the reads, which
/// dominate, are the same).
///
/// # Errors
/// [`Error::Unsupported`] for f16 operands (that pairing is not compiled), before anything
/// is launched; otherwise as [`spmm`].
///
/// # Safety
/// As [`spmm`], except that `c` holds f32 elements (4 bytes each, row `i` at element
/// `i * c.ld`, so the address is 4-byte aligned) while `values` and `b` hold `dtype`.
///
/// ```no_run
/// # #[cfg(feature = "cuda")] {
/// use rosa::cuda::{raw, KernelConfig, Op};
/// use rosa::{bf16, CsrShape, DType};
/// # fn upload(_: &[u8]) -> u64 { 0 }
/// let a = rosa::random::csr::<bf16>(64, 32, 0.1, 1)?;
/// let bytes = |v: &[i32]| v.iter().flat_map(|x| x.to_ne_bytes()).collect::<Vec<u8>>();
/// // The transposed product, dX += S^T dY: the plan's arrays, walked as A^T (32 x 64).
/// let plan = a.transpose_plan();
/// let s = raw::RawCsr {
///     rows: 32, cols: 64, nnz: a.nnz(),
///     row_ptr: upload(&bytes(plan.row_ptr())),
///     col_idx: upload(&bytes(plan.col_idx())),
///     row_swizzle: upload(&bytes(&plan.row_swizzle())),
///     perm: upload(&bytes(plan.perm())),
///     long_rows: 0,
/// };
/// // bf16 values (A's, in A's order) and dY (64 x 16); dX is f32 (32 x 16).
/// # let (values, dy_ptr, dx_ptr) = (0u64, 0u64, 0u64);
/// let config = KernelConfig::heuristic(Op::SpmmT, DType::Bf16, 16);
/// unsafe {
///     raw::spmm_f32_out(
///         DType::Bf16, &config, 1.0, &s, values,
///         &raw::RawDense { ptr: dy_ptr, rows: 64, cols: 16, ld: 16 },
///         1.0,
///         &raw::RawDense { ptr: dx_ptr, rows: 32, cols: 16, ld: 16 },
///         std::ptr::null_mut(),
///     )?;
/// }
/// # }
/// # Ok::<(), rosa::Error>(())
/// ```
#[allow(clippy::too_many_arguments)]
pub unsafe fn spmm_f32_out(
    dtype: DType,
    config: &KernelConfig,
    alpha: f32,
    s: &RawCsr,
    values: u64,
    b: &RawDense,
    beta: f32,
    c: &RawDense,
    stream: *mut c_void,
) -> Result<()> {
    // SAFETY: the caller's contract is spmm_into's, with an f32 C.
    unsafe {
        spmm_into(
            dtype,
            DType::F32,
            config,
            alpha,
            s,
            values,
            b,
            beta,
            c,
            stream,
        )
    }
}

/// The one body of [`spmm`] and [`spmm_f32_out`]: operands of `dtype`, C of `c_dtype`
/// (the launch layer pairs the two or refuses them before anything is queued).
///
/// # Safety
/// As [`spmm`], with `c` holding `c_dtype` elements.
#[allow(clippy::too_many_arguments)]
unsafe fn spmm_into(
    dtype: DType,
    c_dtype: DType,
    config: &KernelConfig,
    alpha: f32,
    s: &RawCsr,
    values: u64,
    b: &RawDense,
    beta: f32,
    c: &RawDense,
    stream: *mut c_void,
) -> Result<()> {
    let transposed = s.perm != 0;
    let op = if transposed { Op::SpmmT } else { Op::Spmm };
    check_config(config, op)?;
    check_scalars(op.name(), alpha, beta)?;
    if b.rows != s.cols || c.rows != s.rows || c.cols != b.cols {
        return Err(Error::ShapeMismatch {
            op: op.name(),
            detail: format!(
                "walked structure {} x B {} -> C {}",
                crate::error::shape(s.rows, s.cols),
                crate::error::shape(b.rows, b.cols),
                crate::error::shape(c.rows, c.cols)
            ),
        });
    }
    check_structure(s)?;
    let n = c.cols;
    nonnull("values", values, s.nnz > 0)?;
    nonnull("b", b.ptr, s.nnz > 0 && n > 0)?;
    nonnull("c", c.ptr, s.rows > 0 && n > 0)?;
    check_long_rows(config, s.long_rows)?;
    let shape = RawStructure {
        rows: s.rows,
        cols: s.cols,
        long_rows: s.long_rows,
    };
    let mut p = launch::spmm_params(dtype, c_dtype, &shape, n, b.ld, c.ld, alpha, beta)?;
    p.row_ptr = s.row_ptr as usize as *const i32;
    p.col_idx = s.col_idx as usize as *const i32;
    p.row_swizzle = s.row_swizzle as usize as *const i32;
    p.perm = s.perm as usize as *const i32;
    p.values = values as usize as *const c_void;
    p.b = b.ptr as usize as *const c_void;
    p.c = c.ptr as usize as *mut c_void;
    // SAFETY: the caller's contract above is the launcher's.
    unsafe { launch::launch_spmm(&p, transposed, config.index, stream) }
}

/// `out[p] = alpha (L R^T)[i, j] + beta out[p]` for every stored entry `p = (i, j)` of the
/// structure `s` (`s.perm` must be 0), with `L` (`s.rows x k`), `R` (`s.cols x k`) and
/// `out` (`nnz` elements) of `dtype`; `beta == 0` leaves the old values unread. Queued on
/// `stream` as [`spmm`].
///
/// # Errors
/// As [`spmm`].
///
/// # Safety
/// As [`spmm`], with `out` in place of `c`.
#[allow(clippy::too_many_arguments)]
pub unsafe fn sddmm(
    dtype: DType,
    config: &KernelConfig,
    alpha: f32,
    l: &RawDense,
    r: &RawDense,
    beta: f32,
    s: &RawCsr,
    out: u64,
    stream: *mut c_void,
) -> Result<()> {
    check_config(config, Op::Sddmm)?;
    check_scalars("sddmm", alpha, beta)?;
    if s.perm != 0 {
        return Err(Error::InvalidArgument(
            "sddmm walks a CSR structure, not a plan: perm must be 0".into(),
        ));
    }
    if l.rows != s.rows || r.rows != s.cols || l.cols != r.cols {
        return Err(Error::ShapeMismatch {
            op: "sddmm",
            detail: format!(
                "L {} x R^T of R {} sampled at a {} mask",
                crate::error::shape(l.rows, l.cols),
                crate::error::shape(r.rows, r.cols),
                crate::error::shape(s.rows, s.cols)
            ),
        });
    }
    check_structure(s)?;
    nonnull("out", out, s.nnz > 0)?;
    nonnull("l", l.ptr, s.nnz > 0 && l.cols > 0)?;
    nonnull("r", r.ptr, s.nnz > 0 && l.cols > 0)?;
    check_long_rows(config, s.long_rows)?;
    let shape = RawStructure {
        rows: s.rows,
        cols: s.cols,
        long_rows: s.long_rows,
    };
    let mut p = launch::sddmm_params(dtype, &shape, l.cols, l.ld, r.ld, alpha, beta)?;
    p.row_ptr = s.row_ptr as usize as *const i32;
    p.col_idx = s.col_idx as usize as *const i32;
    p.row_swizzle = s.row_swizzle as usize as *const i32;
    p.l = l.ptr as usize as *const c_void;
    p.r = r.ptr as usize as *const c_void;
    p.out = out as usize as *mut c_void;
    // SAFETY: the caller's contract above is the launcher's.
    unsafe { launch::launch_sddmm(&p, config.index, stream) }
}
