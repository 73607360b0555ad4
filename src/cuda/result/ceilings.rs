//! The checked layer over the ceiling probes of `csrc/ceilings.cu`: part of [`super`], so
//! still the only place with `unsafe` on the CUDA path. Kept apart from the kernel
//! launchers, which the probes share nothing with but the status convention.

use cudarc::driver::{CudaSlice, CudaStream, DevicePtr, DevicePtrMut};

use super::{check, i32_of, i64_of, need, runtime_stream, sys};
use crate::Result;

/// Threads per block of both probes (`ROSA_PROBE_THREADS`).
pub(crate) const THREADS: usize = sys::ROSA_PROBE_THREADS as usize;
/// Independent FMA chains per thread of the FMA probe (`ROSA_PROBE_FMA_CHAINS`).
pub(crate) const FMA_CHAINS: usize = sys::ROSA_PROBE_FMA_CHAINS as usize;

/// Launches `rosa_probe_read`: `passes` reads of all of `buf` (whose length must be a
/// multiple of 4 f32, one 16-byte vector) on `blocks` blocks.
pub(crate) fn probe_read(
    stream: &CudaStream,
    buf: &CudaSlice<f32>,
    passes: usize,
    blocks: usize,
    sink: &mut CudaSlice<f32>,
) -> Result<()> {
    need("probe sink", sink.len(), 1)?;
    let bytes = i64_of(buf.len() / 4 * 16);
    let (passes, blocks) = (i32_of("passes", passes)?, i32_of("blocks", blocks)?);
    let (bp, _g1) = buf.device_ptr(stream);
    let (sp, _g2) = sink.device_ptr_mut(stream);
    let s = runtime_stream(stream)?;
    // SAFETY: `bytes` covers only whole vectors inside `buf` (rounded down to 16 bytes),
    // cudarc's allocations are 256-byte aligned, and `sink` holds one f32; both are live
    // device memory of the stream's context. The C side refuses any other argument.
    check("rosa_probe_read", unsafe {
        sys::rosa_probe_read(
            bp as usize as *const std::ffi::c_void,
            bytes,
            passes,
            blocks,
            sp as usize as *mut f32,
            s,
        )
    })
}

/// Launches `rosa_probe_fma`: `iters` rounds of [`FMA_CHAINS`] FMAs per thread on
/// `blocks` blocks of [`THREADS`].
pub(crate) fn probe_fma(
    stream: &CudaStream,
    blocks: usize,
    iters: usize,
    sink: &mut CudaSlice<f32>,
) -> Result<()> {
    need("probe sink", sink.len(), 1)?;
    let (blocks, iters) = (i32_of("blocks", blocks)?, i32_of("iters", iters)?);
    let (sp, _g1) = sink.device_ptr_mut(stream);
    let s = runtime_stream(stream)?;
    // SAFETY: `sink` holds one f32 of live device memory of the stream's context; the
    // kernel touches nothing else.
    check("rosa_probe_fma", unsafe {
        sys::rosa_probe_fma(blocks, iters, sp as usize as *mut f32, s)
    })
}
