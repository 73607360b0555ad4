//! The probes that measure a GPU's ceilings for the roofline (`csrc/ceilings.cu`): an L2
//! read loop and a CUDA-core FMA loop, plus the driver's device-to-device copy. They only
//! queue work; [`crate::bench::gpu::measure_ceilings`] times them.

use cudarc::driver::CudaSlice;

use super::result::{ceilings as probe, driver};
use super::{Device, DeviceDense};
use crate::Result;

/// Blocks per SM of both probes: enough resident warps to keep every load and FMA pipe
/// busy (8 warps per block).
const BLOCKS_PER_SM: usize = 4;

/// The ceiling probes on one device, with the one-float sink their kernels write to.
///
/// ```no_run
/// use rosa::cuda::{Device, DeviceDense, Probes};
/// let dev = Device::new(0)?;
/// let mut probes = Probes::new(&dev)?;
/// let buf = DeviceDense::<f32>::zeros(&dev, 1, 4 << 20)?; // 16 MiB of zeros
/// let ms = dev.time_ms(|| probes.read(&buf, 8))?;
/// println!("{:.0} GB/s", Probes::read_bytes(&buf, 8) / (ms as f64 * 1e-3) / 1e9);
/// # Ok::<(), rosa::Error>(())
/// ```
pub struct Probes {
    dev: Device,
    sink: CudaSlice<f32>,
    blocks: usize,
}

impl Probes {
    /// Allocates the sink and sizes the grid for `dev`'s SM count.
    pub fn new(dev: &Device) -> Result<Self> {
        let sms = usize::try_from(dev.info()?.multiprocessors).unwrap_or(1);
        Ok(Probes {
            sink: super::mem::zeros(dev.stream(), 1)?,
            dev: dev.clone(),
            blocks: BLOCKS_PER_SM * sms.max(1),
        })
    }

    /// Queues `passes` reads of all of `buf` through L2 (not L1); `buf` should hold
    /// zeros (see `rosa_probe_read`). Reads [`Probes::read_bytes`] bytes.
    pub fn read(&mut self, buf: &DeviceDense<f32>, passes: usize) -> Result<()> {
        self.dev.check_same(buf.data.stream(), "the probe buffer")?;
        probe::probe_read(
            self.dev.stream(),
            &buf.data,
            passes,
            self.blocks,
            &mut self.sink,
        )
    }

    /// Bytes that [`Probes::read`] reads: whole 16-byte vectors of `buf`, `passes` times.
    ///
    /// ```
    /// // 10 f32 are two whole vectors (32 bytes) and a partial one, which is not read.
    /// assert_eq!(rosa::cuda::Probes::read_bytes_of(10, 3), 96.0);
    /// ```
    pub fn read_bytes(buf: &DeviceDense<f32>, passes: usize) -> f64 {
        Self::read_bytes_of(buf.rows() * buf.cols(), passes)
    }

    /// [`Probes::read_bytes`] for a buffer of `len` f32 (see its example).
    pub fn read_bytes_of(len: usize, passes: usize) -> f64 {
        (len / 4 * 16) as f64 * passes as f64
    }

    /// Queues the FMA loop: [`Probes::fma_flops`] flops.
    pub fn fma(&mut self, iters: usize) -> Result<()> {
        probe::probe_fma(self.dev.stream(), self.blocks, iters, &mut self.sink)
    }

    /// Flops of one [`Probes::fma`] call: two per FMA.
    pub fn fma_flops(&self, iters: usize) -> f64 {
        2.0 * (probe::FMA_CHAINS * probe::THREADS * self.blocks) as f64 * iters as f64
    }

    /// Queues a device-to-device copy of all of `src` into `dst` (the driver's
    /// `cuMemcpyDtoDAsync`, the DRAM probe): it reads and writes `2 * 4 * len` bytes.
    /// `dst` must be at least as long as `src`.
    pub fn copy(&self, src: &DeviceDense<f32>, dst: &mut DeviceDense<f32>) -> Result<()> {
        self.dev.check_same(src.data.stream(), "the copy source")?;
        self.dev
            .check_same(dst.data.stream(), "the copy destination")?;
        let n = src.data.len();
        if dst.data.len() < n {
            return Err(crate::Error::InvalidArgument(format!(
                "copy probe: destination of {} f32 is shorter than the source's {n}",
                dst.data.len()
            )));
        }
        let mut view = dst.data.slice_mut(..n);
        self.dev
            .stream()
            .memcpy_dtod(&src.data, &mut view)
            .map_err(driver("cuMemcpyDtoDAsync"))
    }
}
