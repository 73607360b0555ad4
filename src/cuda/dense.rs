//! Row-major dense matrices in device memory.

use cudarc::driver::CudaSlice;

use super::mem;
use super::{CudaScalar, Device};
use crate::{Dense, Error, MatRef, Result};

/// A packed row-major `rows x cols` matrix on a GPU.
///
/// ```no_run
/// use rosa::cuda::{Device, DeviceDense};
/// let dev = Device::new(0)?;
/// let host = rosa::random::dense::<f32>(4, 3, 7);
/// let m = DeviceDense::from_host(&dev, host.as_ref())?;
/// assert_eq!(m.to_host()?, host);
/// # Ok::<(), rosa::Error>(())
/// ```
#[derive(Debug)]
pub struct DeviceDense<T> {
    rows: usize,
    cols: usize,
    pub(crate) data: CudaSlice<T>,
}

fn len_of(rows: usize, cols: usize) -> Result<usize> {
    rows.checked_mul(cols).ok_or(Error::IndexOverflow {
        what: "rows * cols",
        value: usize::MAX,
    })
}

impl<T> DeviceDense<T> {
    /// A `rows x cols` matrix over the first `rows * cols` elements of `data`, which may
    /// be longer (a reused workspace); the caller guarantees the length.
    pub(crate) fn from_parts(data: CudaSlice<T>, rows: usize, cols: usize) -> Self {
        DeviceDense { rows, cols, data }
    }

    /// The buffer back, for reuse.
    pub(crate) fn into_data(self) -> CudaSlice<T> {
        self.data
    }
}

impl<T: CudaScalar> DeviceDense<T> {
    /// Copies a host matrix to the device (ordered on the device's stream).
    pub fn from_host(dev: &Device, m: MatRef<'_, T>) -> Result<Self> {
        let data = mem::upload(dev.stream(), m.as_slice())?;
        Ok(DeviceDense {
            rows: m.rows(),
            cols: m.cols(),
            data,
        })
    }

    /// A zero matrix.
    pub fn zeros(dev: &Device, rows: usize, cols: usize) -> Result<Self> {
        let data = mem::zeros(dev.stream(), len_of(rows, cols)?)?;
        Ok(DeviceDense { rows, cols, data })
    }

    /// A matrix with every element `value` (tests poison outputs with NaN this way).
    pub fn filled(dev: &Device, rows: usize, cols: usize, value: T) -> Result<Self> {
        Self::from_host(dev, Dense::filled(rows, cols, value).as_ref())
    }

    /// Copies the matrix back; waits for the work queued before it.
    pub fn to_host(&self) -> Result<Dense<T>> {
        let v = mem::download(&self.data, self.rows * self.cols)?;
        Dense::from_vec(self.rows, self.cols, v)
    }

    /// Rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Columns.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// The underlying cudarc buffer, for interop: `rows * cols` elements, or one unused
    /// padding element when the matrix is empty.
    pub fn as_slice(&self) -> &CudaSlice<T> {
        &self.data
    }

    pub(crate) fn shape(&self) -> String {
        crate::error::shape(self.rows, self.cols)
    }
}
