//! Uploads and downloads that also work for empty arrays.
//!
//! The driver refuses zero-byte allocations, and empty matrices (no rows, no nonzeros,
//! N = 0) are legal inputs: an empty array is stored as one padding element that no kernel
//! ever indexes, and downloads cut back to the logical length.

use cudarc::driver::{CudaSlice, CudaStream, DeviceRepr, ValidAsZeroBits};

use super::result::driver;
use crate::Result;

pub(crate) fn upload<T: DeviceRepr + Default + Copy>(
    stream: &std::sync::Arc<CudaStream>,
    host: &[T],
) -> Result<CudaSlice<T>> {
    let pad = [T::default()];
    let src = if host.is_empty() { &pad[..] } else { host };
    stream.clone_htod(src).map_err(driver("cuMemcpyHtoDAsync"))
}

pub(crate) fn zeros<T: DeviceRepr + ValidAsZeroBits>(
    stream: &std::sync::Arc<CudaStream>,
    len: usize,
) -> Result<CudaSlice<T>> {
    stream
        .alloc_zeros(len.max(1))
        .map_err(driver("cuMemAllocAsync"))
}

/// The first `len` elements of `dev`; waits for the work queued before it.
pub(crate) fn download<T: DeviceRepr + Default + Clone>(
    dev: &CudaSlice<T>,
    len: usize,
) -> Result<Vec<T>> {
    let mut v = dev
        .stream()
        .clone_dtoh(dev)
        .map_err(driver("cuMemcpyDtoHAsync"))?;
    v.truncate(len);
    Ok(v)
}
