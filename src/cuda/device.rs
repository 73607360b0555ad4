//! A GPU and the stream every launch of this crate is ordered on.

use std::sync::{Arc, Mutex, OnceLock};

use cudarc::driver::sys::{CUdevice_attribute, CUevent_flags};
use cudarc::driver::{CudaContext, CudaSlice, CudaStream};

use super::config::KernelConfig;
use super::result::{driver, driver_present, driver_version};
use crate::tune::{DeviceFingerprint, ProblemKey, Source, TuneTable};
use crate::{Error, Result};

/// The compute capability the compiled kernels need at least (sm_80 machine code; newer
/// GPUs run it or JIT the compute_90 PTX).
const MIN_CAPABILITY: (i32, i32) = (8, 0);

/// One GPU: its (primary) context and a stream that all of this crate's copies and
/// launches on it are ordered on.
///
/// Creating one is the probe for a usable GPU: without a driver, without a device, or with
/// a device older than sm_80 it is an `Err`, never a panic.
///
/// ```no_run
/// let dev = rosa::cuda::Device::new(0)?;
/// println!("{}", dev.info()?);
/// # Ok::<(), rosa::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Device {
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    /// Tuned configurations, loaded on the first default launch (not at open: a device
    /// used only with explicit configurations never reads a cache).
    tuning: Arc<OnceLock<Arc<TuneTable>>>,
    /// The bf16 workspace that 4-bit weights are dequantized into before their GEMM,
    /// grown to the largest one and shared by every layer on this device handle (and its
    /// clones), so no layer keeps a dense copy. Launches that use it are all ordered on
    /// `stream`, so one product's GEMM has read it before the next dequantization writes.
    scratch: Arc<Mutex<Option<CudaSlice<crate::bf16>>>>,
}

/// What a [`Device`] is, for logs and for the tuner's fingerprint.
///
/// ```no_run
/// let info = rosa::cuda::Device::new(0)?.info()?;
/// assert!(info.capability >= (8, 0));
/// println!("{info}"); // cuda:0 NVIDIA H100 80GB HBM3 (sm_90, 132 SMs, 79.1 GiB)
/// # Ok::<(), rosa::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    /// CUDA device ordinal.
    pub ordinal: usize,
    /// Marketing name, e.g. `NVIDIA H100 80GB HBM3`.
    pub name: String,
    /// Compute capability (major, minor).
    pub capability: (i32, i32),
    /// Streaming multiprocessors.
    pub multiprocessors: i32,
    /// Global memory in bytes.
    pub total_memory: usize,
}

impl std::fmt::Display for DeviceInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "cuda:{} {} (sm_{}{}, {} SMs, {:.1} GiB)",
            self.ordinal,
            self.name,
            self.capability.0,
            self.capability.1,
            self.multiprocessors,
            self.total_memory as f64 / (1u64 << 30) as f64
        )
    }
}

/// Number of CUDA devices; an `Err` ([`Error::NoDevice`]) when there is no driver.
///
/// ```no_run
/// match rosa::cuda::device_count() {
///     Ok(n) => println!("{n} GPUs"),
///     Err(e) => println!("CPU only: {e}"),
/// }
/// ```
pub fn device_count() -> Result<usize> {
    if !driver_present() {
        return Err(Error::NoDevice(
            "the CUDA driver library (libcuda.so) is not installed or not on the loader path"
                .into(),
        ));
    }
    match CudaContext::device_count() {
        Ok(n) => Ok(usize::try_from(n).unwrap_or(0)),
        Err(e) => Err(Error::NoDevice(format!(
            "the CUDA driver found no usable device ({})",
            driver("cuInit")(e)
        ))),
    }
}

fn check_capability(ctx: &CudaContext) -> Result<()> {
    let cap = ctx
        .compute_capability()
        .map_err(driver("cuDeviceGetAttribute"))?;
    if cap < MIN_CAPABILITY {
        return Err(Error::NoDevice(format!(
            "device {} is sm_{}{}; the kernels are built for sm_80 and newer",
            ctx.ordinal(),
            cap.0,
            cap.1
        )));
    }
    Ok(())
}

impl Device {
    /// Opens GPU `ordinal` and creates a stream on it.
    ///
    /// ```no_run
    /// use rosa::cuda::Device;
    /// match Device::new(0) {
    ///     Ok(dev) => println!("using {}", dev.info()?.name),
    ///     Err(e) => println!("falling back to the CPU: {e}"),
    /// }
    /// # Ok::<(), rosa::Error>(())
    /// ```
    pub fn new(ordinal: usize) -> Result<Self> {
        let count = device_count()?;
        if ordinal >= count {
            return Err(Error::NoDevice(format!(
                "device {ordinal} requested, {count} present"
            )));
        }
        let ctx = CudaContext::new(ordinal).map_err(driver("cuDevicePrimaryCtxRetain"))?;
        // Checked before the stream is made: an old GPU gets no stream of ours.
        check_capability(&ctx)?;
        Self::from_stream(ctx.new_stream().map_err(driver("cuStreamCreate"))?)
    }

    /// A device that launches on the caller's cudarc `stream` (and its context): rosa's
    /// work is then ordered with the caller's on that one stream, and no second context or
    /// stream is created. Buffers the caller made on other streams of the same context
    /// can be passed to the launchers too (cudarc orders them by its events).
    ///
    /// A stack that holds a raw `CUcontext` / `CUstream` instead can wrap them with
    /// cudarc's `CudaContext::from_raw_context` and `CudaContext::wrap_borrowed_stream`,
    /// or use [`super::raw`].
    ///
    /// # Errors
    /// [`Error::NoDevice`] when the context's GPU is older than sm_80, [`Error::Cuda`]
    /// when the driver cannot be asked.
    ///
    /// ```no_run
    /// use rosa::cuda::Device;
    /// let ctx = cudarc::driver::CudaContext::new(0).unwrap(); // the caller's
    /// let stream = ctx.new_stream().unwrap();
    /// let dev = Device::from_stream(stream.clone())?;
    /// assert!(std::sync::Arc::ptr_eq(dev.stream(), &stream));
    /// # Ok::<(), rosa::Error>(())
    /// ```
    pub fn from_stream(stream: Arc<CudaStream>) -> Result<Self> {
        let ctx = stream.context().clone();
        check_capability(&ctx)?;
        Ok(Device {
            ctx,
            stream,
            tuning: Arc::default(),
            scratch: Arc::default(),
        })
    }

    /// Runs `f` on the device's shared bf16 workspace shaped `rows x cols` (grown, and its
    /// old contents dropped, when it is smaller), holding the workspace's lock meanwhile;
    /// the buffer goes back to the device whatever `f` returns.
    pub(crate) fn with_scratch<R>(
        &self,
        rows: usize,
        cols: usize,
        f: impl FnOnce(&mut super::DeviceDense<crate::bf16>) -> Result<R>,
    ) -> Result<R> {
        let mut slot = self.scratch.lock().map_err(|_| {
            Error::InvalidArgument("the device's workspace lock is poisoned".into())
        })?;
        let len = rows.checked_mul(cols).ok_or(Error::IndexOverflow {
            what: "workspace rows * cols",
            value: usize::MAX,
        })?;
        let data = match slot.take() {
            Some(d) if d.len() >= len => d,
            _ => super::mem::zeros(&self.stream, len)?,
        };
        let mut ws = super::DeviceDense::from_parts(data, rows, cols);
        let out = f(&mut ws);
        *slot = Some(ws.into_data());
        out
    }

    /// The CUDA ordinal.
    pub fn ordinal(&self) -> usize {
        self.ctx.ordinal()
    }

    /// The stream this crate's work on the device is ordered on, for interop with cudarc.
    pub fn stream(&self) -> &Arc<CudaStream> {
        &self.stream
    }

    /// The device's context, for interop with cudarc.
    pub fn context(&self) -> &Arc<CudaContext> {
        &self.ctx
    }

    /// Name, capability, SM count and memory.
    pub fn info(&self) -> Result<DeviceInfo> {
        Ok(DeviceInfo {
            ordinal: self.ordinal(),
            name: self.ctx.name().map_err(driver("cuDeviceGetName"))?,
            capability: self
                .ctx
                .compute_capability()
                .map_err(driver("cuDeviceGetAttribute"))?,
            multiprocessors: self
                .ctx
                .attribute(CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)
                .map_err(driver("cuDeviceGetAttribute"))?,
            total_memory: self.ctx.total_mem().map_err(driver("cuDeviceTotalMem"))?,
        })
    }

    /// What a tuning cache must have been measured on to serve this device.
    ///
    /// ```no_run
    /// let fp = rosa::cuda::Device::new(0)?.fingerprint()?;
    /// println!("{} (driver {})", fp.file_stem(), fp.driver_version);
    /// # Ok::<(), rosa::Error>(())
    /// ```
    pub fn fingerprint(&self) -> Result<DeviceFingerprint> {
        let info = self.info()?;
        let u = |x: i32| u32::try_from(x).unwrap_or(0);
        Ok(DeviceFingerprint {
            name: info.name,
            compute_capability: (u(info.capability.0), u(info.capability.1)),
            sm_count: u(info.multiprocessors),
            memory_bytes: info.total_memory as u64,
            driver_version: driver_version()?,
        })
    }

    /// The configuration the default launchers use for `key` (`dense_dim`, the width of B
    /// or SDDMM's inner dimension, is what the heuristic sizes the tile by), and where it
    /// came from: the tuned one for the exact key, else the nearest, else the heuristic.
    /// The caches are read on the first call for this device in the process (see
    /// [`crate::tune::load_caches`]); later calls cost a hash lookup.
    ///
    /// ```no_run
    /// use rosa::cuda::{Device, DeviceCsr, Op};
    /// let dev = Device::new(0)?;
    /// let a = DeviceCsr::from_host(&dev, rosa::random::csr::<f32>(4096, 4096, 0.01, 1)?.as_ref())?;
    /// let (config, source) = dev.choose_config(a.problem_key(Op::Spmm, 512), 512);
    /// println!("spmm at N = 512 runs {config} ({source:?})");
    /// # Ok::<(), rosa::Error>(())
    /// ```
    pub fn choose_config(&self, key: ProblemKey, dense_dim: usize) -> (KernelConfig, Source) {
        let heuristic = || KernelConfig::heuristic(key.op, key.dtype, dense_dim);
        let table = self.tuning.get_or_init(|| crate::tune::table_for(self));
        let (index, source) = table.choose(&key, || heuristic().index);
        // Cache entries were checked against this build's table when loaded.
        match KernelConfig::get(key.op, index) {
            Ok(config) => (config, source),
            Err(_) => (heuristic(), Source::Heuristic),
        }
    }

    /// Bytes of L2 cache: what a benchmark's rotating inputs must exceed so that it times
    /// memory, not the cache.
    pub fn l2_cache_bytes(&self) -> Result<usize> {
        let b = self
            .ctx
            .attribute(CUdevice_attribute::CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE)
            .map_err(driver("cuDeviceGetAttribute"))?;
        Ok(usize::try_from(b).unwrap_or(0))
    }

    /// Waits for all work queued on [`Device::stream`], surfacing any asynchronous kernel
    /// error.
    pub fn synchronize(&self) -> Result<()> {
        self.stream
            .synchronize()
            .map_err(driver("cuStreamSynchronize"))
    }

    /// Runs `work` (which should only queue work on this device's stream) between two
    /// timing events and returns the elapsed device time in milliseconds. Waits for the
    /// stop event, so warm-up and repetition are the caller's.
    ///
    /// ```no_run
    /// use rosa::cuda::{self, Device, DeviceCsr, DeviceDense};
    /// let dev = Device::new(0)?;
    /// let a = DeviceCsr::from_host(&dev, rosa::random::csr::<f32>(1024, 1024, 0.01, 1)?.as_ref())?;
    /// let b = DeviceDense::from_host(&dev, rosa::random::dense::<f32>(1024, 256, 2).as_ref())?;
    /// let mut c = DeviceDense::zeros(&dev, 1024, 256)?;
    /// let ms = dev.time_ms(|| cuda::spmm(&dev, 1.0, &a, &b, 0.0, &mut c))?;
    /// println!("{ms:.3} ms");
    /// # Ok::<(), rosa::Error>(())
    /// ```
    pub fn time_ms(&self, work: impl FnOnce() -> Result<()>) -> Result<f32> {
        let flags = Some(CUevent_flags::CU_EVENT_DEFAULT);
        let start = self
            .stream
            .record_event(flags)
            .map_err(driver("cuEventRecord"))?;
        work()?;
        let stop = self
            .stream
            .record_event(flags)
            .map_err(driver("cuEventRecord"))?;
        stop.synchronize().map_err(driver("cuEventSynchronize"))?;
        start
            .elapsed_ms(&stop)
            .map_err(driver("cuEventElapsedTime"))
    }

    /// The most bytes in use at once, since the last reset, in the device's default
    /// memory pool, where every buffer of this crate comes from (cuBLAS's own workspace
    /// does not); with `reset`, a new high-water mark starts from the current use. `None`
    /// where the device lacks stream-ordered allocation. Benchmarks report peak memory
    /// with it.
    ///
    /// ```no_run
    /// let dev = rosa::cuda::Device::new(0)?;
    /// dev.pool_high_water(true)?;
    /// let buf = rosa::cuda::DeviceDense::<f32>::zeros(&dev, 1024, 1024)?;
    /// assert!(dev.pool_high_water(false)?.is_none_or(|b| b >= 4 << 20));
    /// # Ok::<(), rosa::Error>(())
    /// ```
    pub fn pool_high_water(&self, reset: bool) -> Result<Option<u64>> {
        super::result::pool_used_high(&self.ctx, reset)
    }

    /// Pauses cudarc's cross-stream event tracking on this device's context until the
    /// guard drops, for timing: in multi-stream mode (which this device's own stream
    /// puts the context in) cudarc records an event per buffer per launch, microseconds
    /// of host time that would be charged to short kernels.
    ///
    /// Sound while everything that touches the context's buffers meanwhile is queued on
    /// this device's one stream, where the stream's order is all the ordering there is:
    /// the callers (the bench's and the tuner's timer) only queue work on it, and say in
    /// their docs that other streams of the same cudarc context lose cudarc's automatic
    /// ordering while they time. Other `Device`s, even on the same GPU, have their own
    /// `CudaContext` and are not affected.
    pub(crate) fn pause_event_tracking(&self) -> TrackingPaused<'_> {
        let was = self.ctx.is_event_tracking();
        // SAFETY: see above; the guard restores the previous setting. Buffers allocated
        // while paused have no events and are never tracked; the timed regions allocate
        // none (their operands and plans are made before).
        unsafe { self.ctx.disable_event_tracking() };
        TrackingPaused {
            ctx: &self.ctx,
            was,
        }
    }

    pub(crate) fn check_same(&self, stream: &CudaStream, what: &'static str) -> Result<()> {
        if stream.context().cu_ctx() == self.ctx.cu_ctx() {
            Ok(())
        } else {
            Err(Error::InvalidArgument(format!(
                "{what} lives on another device than cuda:{}",
                self.ordinal()
            )))
        }
    }
}

/// Restores cudarc's event tracking when dropped (see [`Device::pause_event_tracking`]).
pub(crate) struct TrackingPaused<'a> {
    ctx: &'a CudaContext,
    was: bool,
}

impl Drop for TrackingPaused<'_> {
    fn drop(&mut self) {
        if self.was {
            // SAFETY: turns tracking back on as it was; buffers made while it was off stay
            // untracked, which is sound for their one-stream use (see the pause).
            unsafe { self.ctx.enable_event_tracking() };
        }
    }
}
