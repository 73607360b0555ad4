//! The checked layer over the NF4 dequantization kernel of `csrc/nf4.cu`: part of
//! [`super`], so still the only place with `unsafe` on the CUDA path. Every buffer the
//! kernel indexes is re-checked against the matrix's shape here, because the C side sees
//! only pointers.

use std::ops::Range;

use cudarc::driver::{CudaSlice, CudaStream, CudaViewMut, DevicePtr, DevicePtrMut};

use super::{check, dtype_code, i64_of, need, ptr, ptr_mut, runtime_stream, span, sys};
use crate::cuda::launch::check_ld;
use crate::{Error, Result};

/// An NF4 matrix's device buffers (see `rosa_nf4_params`).
pub(crate) struct Nf4<'a> {
    pub rows: usize,
    pub cols: usize,
    /// Elements per scale.
    pub block_size: usize,
    /// `ceil(rows * cols / 2)` packed codes.
    pub codes: &'a CudaSlice<u8>,
    /// The 16 NF4 code values.
    pub nf4: &'a CudaSlice<f32>,
    /// One f32 scale per block, or the nested absmax of double quantization.
    pub absmax: &'a CudaSlice<f32>,
    pub double: Option<DoubleQuant<'a>>,
}

/// The double-quantized scales' other parts.
pub(crate) struct DoubleQuant<'a> {
    /// Scales per nested absmax.
    pub block_size: usize,
    /// One 8-bit code per scale.
    pub codes: &'a CudaSlice<u8>,
    /// The 256 values of the 8-bit code.
    pub dynamic_code: &'a CudaSlice<f32>,
    pub offset: f32,
}

fn block_size_of(what: &'static str, size: usize) -> Result<i32> {
    i32::try_from(size).map_err(|_| Error::IndexOverflow { what, value: size })
}

/// Launches `rosa_nf4_dequant`: rows `rows` of `w` into `out`, a row-major
/// `rows.len() x w.cols` matrix of row stride `ld`.
pub(crate) fn nf4_dequant<T: crate::Scalar>(
    stream: &CudaStream,
    w: &Nf4<'_>,
    rows: Range<usize>,
    mut out: CudaViewMut<'_, T>,
    ld: usize,
) -> Result<()> {
    if rows.start > rows.end || rows.end > w.rows {
        return Err(Error::ShapeMismatch {
            op: "cuda::dequantize",
            detail: format!("rows {rows:?} of a matrix with {} rows", w.rows),
        });
    }
    check_ld("nf4 dequant out", ld, w.cols)?;
    let n = w.rows.checked_mul(w.cols).ok_or(Error::IndexOverflow {
        what: "rows * cols",
        value: usize::MAX,
    })?;
    let blocks = n.div_ceil(w.block_size.max(1));
    need("nf4 codes", w.codes.len(), n.div_ceil(2))?;
    need("nf4 code values", w.nf4.len(), 16)?;
    need("nf4 out", out.len(), span(rows.len(), w.cols, ld))?;
    let mut params = sys::rosa_nf4_params {
        rows: i64_of(w.rows),
        cols: i64_of(w.cols),
        row0: i64_of(rows.start),
        row_count: i64_of(rows.len()),
        block_size: block_size_of("block size", w.block_size)?,
        dq_block_size: 0,
        codes: std::ptr::null(),
        nf4: std::ptr::null(),
        absmax: std::ptr::null(),
        scale_codes: std::ptr::null(),
        dynamic_code: std::ptr::null(),
        offset: 0.0,
        out: std::ptr::null_mut(),
        ld: i64_of(ld),
    };
    let (codes, _g1) = w.codes.device_ptr(stream);
    let (nf4, _g2) = w.nf4.device_ptr(stream);
    let (absmax, _g3) = w.absmax.device_ptr(stream);
    let (out_ptr, _g4) = out.device_ptr_mut(stream);
    let double = match &w.double {
        None => {
            need("nf4 scales", w.absmax.len(), blocks)?;
            None
        }
        Some(d) => {
            need("nf4 scale codes", d.codes.len(), blocks)?;
            need(
                "nf4 nested absmax",
                w.absmax.len(),
                blocks.div_ceil(d.block_size.max(1)),
            )?;
            need("nf4 dynamic code", d.dynamic_code.len(), 256)?;
            params.dq_block_size = block_size_of("nested block size", d.block_size)?;
            params.offset = d.offset;
            Some((
                d.codes.device_ptr(stream),
                d.dynamic_code.device_ptr(stream),
            ))
        }
    };
    params.codes = ptr(codes);
    params.nf4 = ptr(nf4);
    params.absmax = ptr(absmax);
    if let Some(((scale_codes, _), (dynamic_code, _))) = &double {
        params.scale_codes = ptr(*scale_codes);
        params.dynamic_code = ptr(*dynamic_code);
    }
    params.out = ptr_mut(out_ptr);
    let s = runtime_stream(stream)?;
    // SAFETY: every pointer comes from a live device buffer of the stream's context whose
    // length was checked above against what the kernel indexes (ceil(n / 2) codes, 16 code
    // values, one scale or scale code per block, one nested absmax per nested block, 256
    // dynamic code values, the output's span at its stride); the kernel reads only
    // elements of rows `rows` < w.rows (checked). `params` outlives the call, which copies
    // it into the launch; the guards keep cudarc's stream ordering of the buffers. Block
    // sizes the C side does not accept are refused there, before any launch.
    check("rosa_nf4_dequant", unsafe {
        sys::rosa_nf4_dequant(&params, dtype_code(T::DTYPE), s)
    })
}
