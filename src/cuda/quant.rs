//! NF4 weights on the GPU (QRoSA): an [`Nf4Matrix`] uploaded once, and [`dequantize`],
//! the CUDA twin of [`Nf4Matrix::dequantize_into`], which writes a tile of rows of W into
//! a reused workspace before the dense GEMM (`csrc/nf4.cu`).

use std::ops::Range;

use cudarc::driver::CudaSlice;

use super::mem;
use super::result::quant::{self as checked, Nf4};
use super::{CudaScalar, DenseOperandMut, Device};
use crate::quant::{dynamic_code, BlockSize, Nf4Matrix, Scales, NF4};
use crate::{Error, Result};

/// An [`Nf4Matrix`] in device memory: its packed codes and its scales as stored (f32, or
/// double-quantized in 8 bits), about 4.13 to 4.5 bits per weight, plus the two code
/// tables (64 bytes of NF4 values, and 1 KiB of the 8-bit code when double-quantized).
///
/// ```no_run
/// use rosa::cuda::{Device, DeviceNf4};
/// use rosa::quant::{Nf4Config, Nf4Matrix};
/// let dev = Device::new(0)?;
/// let w = rosa::random::dense::<f32>(256, 128, 1);
/// let q = Nf4Matrix::quantize(w.as_ref(), Nf4Config::qlora())?;
/// let dw = DeviceNf4::from_host(&dev, &q)?;
/// assert_eq!((dw.rows(), dw.cols()), (256, 128));
/// # Ok::<(), rosa::Error>(())
/// ```
#[derive(Debug)]
pub struct DeviceNf4 {
    rows: usize,
    cols: usize,
    block_size: BlockSize,
    codes: CudaSlice<u8>,
    nf4: CudaSlice<f32>,
    scales: DeviceScales,
}

#[derive(Debug)]
enum DeviceScales {
    F32(CudaSlice<f32>),
    Double {
        block_size: BlockSize,
        codes: CudaSlice<u8>,
        absmax: CudaSlice<f32>,
        dynamic_code: CudaSlice<f32>,
        offset: f32,
    },
}

impl DeviceNf4 {
    /// Copies `w`'s codes, scales and code tables to the device (ordered on the device's
    /// stream). The code tables are rosa's own ([`NF4`], [`dynamic_code`]), so the kernel
    /// reads codes exactly as [`Nf4Matrix::dequantize_into`] does.
    ///
    /// Errors: [`Error::Cuda`] if a buffer cannot be allocated or copied.
    pub fn from_host(dev: &Device, w: &Nf4Matrix) -> Result<Self> {
        let stream = dev.stream();
        let scales = match w.scales() {
            Scales::F32(v) => DeviceScales::F32(mem::upload(stream, v)?),
            Scales::Double(d) => DeviceScales::Double {
                block_size: d.block_size(),
                codes: mem::upload(stream, d.codes())?,
                absmax: mem::upload(stream, d.absmax())?,
                dynamic_code: mem::upload(stream, dynamic_code())?,
                offset: d.offset(),
            },
        };
        Ok(DeviceNf4 {
            rows: w.rows(),
            cols: w.cols(),
            block_size: w.block_size(),
            codes: mem::upload(stream, w.codes())?,
            nf4: mem::upload(stream, &NF4)?,
            scales,
        })
    }

    /// Rows of W.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Columns of W.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Elements per scale.
    pub fn block_size(&self) -> BlockSize {
        self.block_size
    }

    /// Whether the scales are double-quantized.
    pub fn double_quantized(&self) -> bool {
        matches!(self.scales, DeviceScales::Double { .. })
    }

    fn buffers(&self) -> Nf4<'_> {
        let (absmax, double) = match &self.scales {
            DeviceScales::F32(v) => (v, None),
            DeviceScales::Double {
                block_size,
                codes,
                absmax,
                dynamic_code,
                offset,
            } => (
                absmax,
                Some(checked::DoubleQuant {
                    block_size: block_size.get(),
                    codes,
                    dynamic_code,
                    offset: *offset,
                }),
            ),
        };
        Nf4 {
            rows: self.rows,
            cols: self.cols,
            block_size: self.block_size.get(),
            codes: &self.codes,
            nf4: &self.nf4,
            absmax,
            double,
        }
    }
}

/// Dequantizes rows `rows` of `w` into `out`, a `rows.len() x w.cols()` matrix of f32,
/// f16 or bf16: a [`DeviceDense`](super::DeviceDense), or a
/// [`DenseViewMut`](super::DenseViewMut) of any row stride `ld >= cols` (a tile of a
/// larger workspace; the padding between rows is never touched). Element `(i, j)` is
/// `T::from_f32(NF4[q] * scale)` for element `(rows.start + i, j)` of W: the same bits as
/// [`Nf4Matrix::dequantize_into`] on the CPU, as the emulated kernel is tested to give
/// (`tests/emu_quant.rs`; not yet run on a GPU). `out` is only written, never read, so it
/// may hold anything before; the launch is queued on the device's stream.
///
/// Errors: [`Error::ShapeMismatch`] if `rows` reaches past the last row of W or `out` is
/// not `rows.len() x w.cols()`; [`Error::InvalidArgument`] if `w` or `out` lives on
/// another device; [`Error::Cuda`] if the launch fails.
///
/// ```no_run
/// use rosa::cuda::{self, Device, DeviceDense, DeviceNf4};
/// use rosa::quant::{Nf4Config, Nf4Matrix};
/// let dev = Device::new(0)?;
/// let w = rosa::random::dense::<f32>(4096, 4096, 1);
/// let q = Nf4Matrix::quantize(w.as_ref(), Nf4Config::qlora())?;
/// let dw = DeviceNf4::from_host(&dev, &q)?;
/// let mut tile = DeviceDense::<rosa::bf16>::zeros(&dev, 512, 4096)?; // reused workspace
/// for t in 0..8 {
///     cuda::dequantize(&dev, &dw, t * 512..(t + 1) * 512, &mut tile)?;
///     // ... the GEMM reads `tile` here ...
/// }
/// # Ok::<(), rosa::Error>(())
/// ```
pub fn dequantize<T: CudaScalar>(
    dev: &Device,
    w: &DeviceNf4,
    rows: Range<usize>,
    out: &mut impl DenseOperandMut<T>,
) -> Result<()> {
    let out = out.dense_view_mut();
    if rows.start > rows.end || rows.end > w.rows {
        return Err(Error::ShapeMismatch {
            op: "cuda::dequantize",
            detail: format!("rows {rows:?} of a matrix with {} rows", w.rows),
        });
    }
    if (out.rows(), out.cols()) != (rows.len(), w.cols) {
        return Err(Error::ShapeMismatch {
            op: "cuda::dequantize",
            detail: format!(
                "rows {rows:?} of {} columns go into a {} x {} output, got {}",
                w.cols,
                rows.len(),
                w.cols,
                out.shape()
            ),
        });
    }
    dev.check_same(w.codes.stream(), "W")?;
    dev.check_same(out.stream(), "out")?;
    let ld = out.ld();
    checked::nf4_dequant(dev.stream(), &w.buffers(), rows, out.data, ld)
}
