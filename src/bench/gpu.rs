//! The GPU sweep (feature `cuda`): our CUDA kernels against cuSPARSE and cuBLAS's dense
//! GEMM of the same shape, all in one process on the same operands, quoted against the
//! [roofline](super::roofline) with ceilings measured on the same GPU
//! ([`measure_ceilings`]).
//!
//! For each [`Sweep`] (one shape) and density, one random M x K sparse A serves every op,
//! as in the CPU sweep, with the same operands for the same seed. Method:
//!
//! - **Timing** ([`TIMING`]): CUDA events around batches of back-to-back calls on the
//!   device's one stream, after a warm-up pass, with cudarc's per-launch event tracking
//!   paused (it costs microseconds of host time per launch, more than a short kernel); a
//!   batch is long enough (at least [`MIN_BATCH_MS`]) that event resolution is noise;
//!   batches repeat until [`Sweep::target`] has passed (at least [`MIN_BATCHES`], at most
//!   [`Sweep::max_runs`]); the row reports the median batch's time per call. The host's
//!   time to queue each batch is taken too: a row whose queueing took about as long as
//!   the GPU's run is flagged `launch_bound` (the GPU may have waited for launches).
//! - **Cache**: calls rotate over several copies of the operands ("sets") so that between
//!   two uses of one copy at least twice the L2 has been streamed: repeated runs over one
//!   buffer would time the cache.
//! - **Configuration**: the one the default launcher chooses (the tuned cache's entry for
//!   the key, else the nearest, else the heuristic), named in the row with its source;
//!   the correctness check runs that same configuration.
//! - **Correctness**: one run of each kernel, into an output poisoned with NaN, is compared
//!   with the CPU kernels in f32 on the same values, on sampled columns of C (SpMM, both
//!   ways) or sampled rows of the mask (SDDMM), so the check costs a fraction of the op.
//! - **Sparse baseline** (the row's primary `baseline`): cuSPARSE on the same CSR arrays
//!   and dense buffers as ours ([`Sparse`]), SpMM with CSR ALG2 and ALG3 (the fastest is
//!   the primary); A^T B both through cuSPARSE's transpose operation on A and, like our
//!   plan, on a CSR of A^T materialized once; SDDMM with its default algorithm.
//!   Descriptors, workspace and preprocessing are made once per operand copy, outside the
//!   timing, and the same rotation and batching apply. A case cuSPARSE declines (the
//!   shared rule of [`Sparse`]) is listed with a note, not timed.
//! - **Dense baselines**: cuBLAS GEMM of the dense route to the same result (densified A
//!   times B, A^T B, or L R^T in full), on random dense data (zeros run faster on tensor
//!   cores), in our dtype: f32 with TF32 off and on, f16/bf16 on tensor cores with f32
//!   accumulation. Their time does not depend on density, so each is measured once per op
//!   and shape (rotating B and C like ours; the dense A is one copy, as a GEMM this size
//!   is bound by arithmetic).

use std::time::{Duration, Instant};

use super::{max_diff, roofline, Baseline, GpuSetup, Measured, Report, Row, Sweep};
use crate::cuda::{
    self, Blas, BlasScalar, Device, DeviceCsr, DeviceDense, KernelConfig, Math, Probes, Sparse,
    SpmmAlg, Transpose,
};
use crate::{cpu, random, with_dtype, Csr, CsrShape, DType, Dense, Error, Op, Result, Scalar};

/// Shortest batch of calls between two events, in milliseconds.
pub const MIN_BATCH_MS: f32 = 0.5;
/// Fewest timed batches per measurement.
pub const MIN_BATCHES: usize = 5;
/// Most copies of the operands to rotate over.
pub const MAX_SETS: usize = 16;
/// How the sweep and the tuner time, as [`GpuSetup::timing`] reports it.
pub const TIMING: &str = "CUDA events around batches (>= 0.5 ms) of back-to-back calls on one \
                          stream, cudarc event tracking paused; median batch, per call";
/// A measurement is `launch_bound` when queueing a batch took at least this share of
/// the GPU's time for it.
const LAUNCH_BOUND_SHARE: f64 = 0.9;
/// L2 size assumed when the driver does not say (H100: 50 MB).
const DEFAULT_L2: usize = 50 << 20;
/// Sampled columns (SpMM) or rows (SDDMM) of the correctness check.
const CHECK_SAMPLES: usize = 32;
/// Share of the GPU's memory the sweep may fill.
const MEMORY_SHARE: f64 = 0.8;
/// How long each ceiling probe repeats.
const PROBE_TARGET: Duration = Duration::from_millis(30);
/// Bytes each call of the L2 probe reads in all (its buffer, many times over).
const PROBE_READ_BYTES: usize = 4 << 30;
/// FMA rounds per thread of one call of the FMA probe.
const PROBE_FMA_ITERS: usize = 1 << 14;

/// The L2 size the driver reports, or [`DEFAULT_L2`] when it reports none.
pub(crate) fn l2_bytes(dev: &Device) -> Result<usize> {
    Ok(match dev.l2_cache_bytes()? {
        0 => DEFAULT_L2,
        b => b,
    })
}

/// Measures `dev`'s ceilings for the roofline, in about a second:
/// - DRAM: the driver's device-to-device copy of 1 GiB (or an eighth of the GPU's
///   memory, if less), bytes read plus written per second;
/// - L2: [`Probes::read`] over a buffer of a quarter of the L2 (Hopper's L2 is two
///   partitions, and data read by every SM may be held in both), read through L2 only,
///   many times over;
/// - FMA: [`Probes::fma`], independent f32 FMA chains on every SM.
///
/// Each is the median per call over repeated batches, as the sweep times its kernels.
/// Errors on any failed CUDA call.
///
/// ```no_run
/// let dev = rosa::cuda::Device::new(0)?;
/// let c = rosa::bench::gpu::measure_ceilings(&dev)?;
/// println!("copy {:.2} TB/s, L2 {:.2} TB/s, FMA {:.1} TFLOP/s",
///     c.dram_bytes_per_s / 1e12, c.l2_bytes_per_s / 1e12, c.fma_flops_per_s / 1e12);
/// # Ok::<(), rosa::Error>(())
/// ```
pub fn measure_ceilings(dev: &Device) -> Result<roofline::Ceilings> {
    let mut probes = Probes::new(dev)?;
    let l2 = l2_bytes(dev)?;
    let time = |call: &mut dyn FnMut(usize) -> Result<()>| -> Result<f64> {
        let t = time_interleaved(dev, PROBE_TARGET, 20, 1, &mut [call])?;
        Ok(t[0].per_call.as_secs_f64().max(1e-9))
    };

    let copy_len = (1usize << 30).min(dev.info()?.total_memory / 8) / 4;
    let dram_bytes_per_s = {
        let src = DeviceDense::<f32>::zeros(dev, 1, copy_len)?;
        let mut dst = DeviceDense::<f32>::zeros(dev, 1, copy_len)?;
        let secs = time(&mut |_| probes.copy(&src, &mut dst))?;
        2.0 * 4.0 * copy_len as f64 / secs
    };

    // Whole 16-byte vectors, at least one.
    let l2_len = (l2 / 4 / 16).max(1) * 4;
    let buf = DeviceDense::<f32>::zeros(dev, 1, l2_len)?;
    let passes = (PROBE_READ_BYTES / (4 * l2_len)).max(1);
    let secs = time(&mut |_| probes.read(&buf, passes))?;
    let l2_bytes_per_s = Probes::read_bytes(&buf, passes) / secs;

    let secs = time(&mut |_| probes.fma(PROBE_FMA_ITERS))?;
    Ok(roofline::Ceilings {
        dram_bytes_per_s,
        l2_bytes_per_s,
        fma_flops_per_s: probes.fma_flops(PROBE_FMA_ITERS) / secs,
        l2_probe_bytes: 4 * l2_len,
    })
}

/// Runs every sweep on `dev`, calling `progress` with a one-line note before each density
/// (and once with the measured ceilings and the cuSPARSE version).
///
/// While it times, cudarc's cross-stream event tracking is paused on `dev`'s context
/// (everything it times is queued on `dev`'s one stream): work that other threads queue
/// meanwhile on other streams of that same cudarc context gets no automatic ordering
/// from cudarc. Other `Device`s, even of the same GPU, are not affected.
///
/// Errors on an invalid sweep, on operands that do not fit in the GPU's memory, on any
/// failed CUDA, cuSPARSE or cuBLAS call (cuSPARSE declining a case is a note, not an
/// error), when cuSPARSE cannot be loaded, and (unless no sweep asks for the dense
/// baselines) when cuBLAS cannot be loaded.
///
/// ```no_run
/// use rosa::bench::{gpu, Sweep};
/// let dev = rosa::cuda::Device::new(0)?;
/// let sweep = Sweep { m: 1024, k: 1024, n: 256, densities: vec![0.01], ..Sweep::default() };
/// let report = gpu::run(&dev, &[sweep], |note| eprintln!("{note}"))?;
/// for row in &report.rows {
///     println!("{} {:.1} us, {:.0}% of roofline", row.op, row.ours_us, row.roofline_pct.unwrap());
/// }
/// # Ok::<(), rosa::Error>(())
/// ```
pub fn run(dev: &Device, sweeps: &[Sweep], mut progress: impl FnMut(&str)) -> Result<Report> {
    for s in sweeps {
        s.check_shape()?;
    }
    let sparse = Sparse::new(dev)?;
    let blas = if sweeps.iter().any(|s| s.dense_baseline) {
        Some((Blas::new(dev)?, Blas::with_math(dev, Math::Tf32)?))
    } else {
        None
    };
    let info = dev.info()?;
    let ceilings = measure_ceilings(dev)?;
    let setup = GpuSetup {
        ceilings,
        timing: TIMING,
        cusparse_version: sparse.version()?,
    };
    progress(&format!(
        "{info}: measured copy {:.2} TB/s, L2 {:.2} TB/s ({} MiB read over and over), f32 FMA \
         {:.1} TFLOP/s; cuSPARSE {}; timing: {TIMING}",
        ceilings.dram_bytes_per_s / 1e12,
        ceilings.l2_bytes_per_s / 1e12,
        ceilings.l2_probe_bytes >> 20,
        ceilings.fma_flops_per_s / 1e12,
        setup.cusparse_version,
    ));
    let l2 = l2_bytes(dev)?;
    let mut rows = Vec::new();
    for (si, sweep) in sweeps.iter().enumerate() {
        let gemms = match blas.as_ref().filter(|_| sweep.dense_baseline) {
            None => Vec::new(),
            Some((plain, tf32)) => match sweep.dtype {
                DType::F32 => vec![("cuBLAS f32", plain), ("cuBLAS TF32", tf32)],
                DType::F16 => vec![("cuBLAS f16", plain)],
                DType::Bf16 => vec![("cuBLAS bf16", plain)],
            },
        };
        let ctx = Ctx {
            dev,
            gemms,
            sparse: &sparse,
            sweep,
            l2,
            ceilings,
            memory: (info.total_memory as f64 * MEMORY_SHARE) as usize,
            label: format!("[{}/{}]", si + 1, sweeps.len()),
        };
        rows.extend(with_dtype!(sweep.dtype, T => ctx.run::<T>(&mut progress))?);
    }
    Ok(Report {
        version: env!("CARGO_PKG_VERSION"),
        device: Some(info.to_string()),
        gpu: Some(setup),
        threads: rayon::current_num_threads(),
        rows,
    })
}

/// How many copies of a call's operands to rotate over: enough that the other copies
/// stream at least twice the L2 between two uses of one, within `memory` bytes in all.
///
/// ```
/// use rosa::bench::gpu::rotation_sets;
/// assert_eq!(rotation_sets(10 << 20, 50 << 20, 40 << 20, 1 << 40), 11); // 1 + 100 / 10
/// assert_eq!(rotation_sets(500 << 20, 50 << 20, 600 << 20, 1 << 40), 2);
/// assert_eq!(rotation_sets(1, 50 << 20, 1, 1 << 40), 16); // capped
/// assert_eq!(rotation_sets(1 << 20, 50 << 20, 1 << 30, 3 << 30), 3); // memory-bound
/// ```
pub fn rotation_sets(
    call_bytes: usize,
    l2_bytes: usize,
    set_alloc_bytes: usize,
    memory: usize,
) -> usize {
    let want = 1 + (2 * l2_bytes).div_ceil(call_bytes.max(1));
    let fit = memory / set_alloc_bytes.max(1);
    want.min(MAX_SETS).min(fit).max(1)
}

/// Spread-out indices into `0..n`, first and last included: all of them when `n <= max`.
fn sample(n: usize, max: usize) -> Vec<usize> {
    if n <= max {
        return (0..n).collect();
    }
    let mut v: Vec<usize> = (0..max).map(|i| i * (n - 1) / (max - 1)).collect();
    v.dedup();
    v
}

/// Columns `cols` of `d`, widened to f32.
fn columns<T: Scalar>(d: &Dense<T>, cols: &[usize]) -> Dense<f32> {
    Dense::from_fn(d.rows(), cols.len(), |i, j| {
        d.as_slice()[i * d.cols() + cols[j]].to_f32()
    })
}

/// Rows `rows` of `d`, widened to f32.
fn rows_of<T: Scalar>(d: &Dense<T>, rows: &[usize]) -> Dense<f32> {
    Dense::from_fn(rows.len(), d.cols(), |i, j| {
        d.as_slice()[rows[i] * d.cols() + j].to_f32()
    })
}

/// One measurement of [`time_interleaved`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Timed {
    /// Median device time per call.
    pub per_call: Duration,
    /// Queueing a batch took the host at least [`LAUNCH_BOUND_SHARE`] of the GPU's time
    /// for it: the GPU may have waited for launches, and `per_call` is partly the host's.
    pub launch_bound: bool,
}

/// [`time_interleaved`] of one call with the sweep's limits.
fn time_calls(
    dev: &Device,
    sweep: &Sweep,
    sets: usize,
    mut call: impl FnMut(usize) -> Result<()>,
) -> Result<Timed> {
    let t = time_interleaved(dev, sweep.target, sweep.max_runs, sets, &mut [&mut call])?;
    Ok(t[0])
}

/// The one timer of the sweep, the ceilings and the autotuner: each of `calls` (which
/// only queue work on `dev`'s stream) is called on operand copy `i % sets` for its `i`-th
/// call, in batches of at least [`MIN_BATCH_MS`] between two events, the calls taking
/// turns batch by batch ("interleaved", so that a change of clock or a neighbour's load
/// lands on all of them alike), after an untimed pass and a pass that sizes the batches.
/// Rounds repeat until `target` per call has passed (at least [`MIN_BATCHES`], at most
/// `max_runs`). cudarc's per-launch event tracking is paused meanwhile (see [`run`]).
pub(crate) fn time_interleaved(
    dev: &Device,
    target: Duration,
    max_runs: usize,
    sets: usize,
    calls: &mut [&mut dyn FnMut(usize) -> Result<()>],
) -> Result<Vec<Timed>> {
    let sets = sets.max(1);
    let _paused = dev.pause_event_tracking();
    let mut batches = Vec::with_capacity(calls.len());
    for call in calls.iter_mut() {
        // The first pass pays for module loading and first-touch of the buffers; the
        // second estimates one call, to size the batches.
        (0..sets).try_for_each(&mut *call)?;
        dev.synchronize()?;
        let estimate_ms = dev.time_ms(|| (0..sets).try_for_each(&mut *call))? / sets as f32;
        let per_batch = (MIN_BATCH_MS / estimate_ms.max(1e-4)).ceil() as usize;
        batches.push(per_batch.clamp(1, 10_000).div_ceil(sets) * sets);
    }
    let start = Instant::now();
    let budget = target * calls.len() as u32;
    let (mut device, mut host) = (vec![Vec::new(); calls.len()], vec![Vec::new(); calls.len()]);
    let mut rounds = 0;
    while rounds < max_runs.max(MIN_BATCHES) && (rounds < MIN_BATCHES || start.elapsed() < budget) {
        for (c, call) in calls.iter_mut().enumerate() {
            let batch = batches[c];
            let mut queued = Duration::ZERO;
            let ms = dev.time_ms(|| {
                let t0 = Instant::now();
                let done = (0..batch).try_for_each(|i| call(i % sets));
                queued = t0.elapsed();
                done
            })?;
            device[c].push(ms as f64 * 1e-3 / batch as f64);
            host[c].push(queued.as_secs_f64() / batch as f64);
        }
        rounds += 1;
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    Ok(device
        .into_iter()
        .zip(host)
        .map(|(d, h)| {
            let (d, h) = (median(d), median(h));
            Timed {
                per_call: Duration::from_secs_f64(d),
                launch_bound: h >= LAUNCH_BOUND_SHARE * d,
            }
        })
        .collect())
}

/// One sweep's fixed inputs and limits.
struct Ctx<'a> {
    dev: &'a Device,
    /// The dense GEMM baselines of this dtype, by name (none without `dense_baseline`).
    gemms: Vec<(&'static str, &'a Blas)>,
    sparse: &'a Sparse,
    sweep: &'a Sweep,
    l2: usize,
    ceilings: roofline::Ceilings,
    memory: usize,
    label: String,
}

/// One copy of the operands of every op at one density.
struct Set<T> {
    a: DeviceCsr<T>,
    /// A^T stored as a CSR of its own, for cuSPARSE's non-transposed SpMM on it (like our
    /// transpose plan, made once): only when spmm_t is swept.
    at: Option<DeviceCsr<T>>,
    /// SDDMM's output: a second copy of the mask, so that A's values stay A's.
    mask: Option<DeviceCsr<T>>,
}

/// One copy of the dense operands (independent of density).
struct DenseSet<T> {
    /// K x N: B of SpMM, R of SDDMM.
    b_k: DeviceDense<T>,
    /// M x N: B of A^T B, L of SDDMM.
    b_m: DeviceDense<T>,
    /// M x N: C of SpMM.
    c_m: Option<DeviceDense<T>>,
    /// K x N: C of A^T B.
    c_k: Option<DeviceDense<T>>,
}

impl Ctx<'_> {
    fn run<T: BlasScalar>(&self, progress: &mut impl FnMut(&str)) -> Result<Vec<Row>> {
        let (dev, sw) = (self.dev, self.sweep);
        let (m, k, n, s) = (sw.m, sw.k, sw.n, T::DTYPE.size());
        let has = |op| sw.ops.contains(&op);
        // Same seeds as the CPU sweep: the same operands for the same --seed.
        let b_k = random::dense::<T>(k, n, sw.seed ^ 1);
        let b_m = random::dense::<T>(m, n, sw.seed ^ 2);

        let min_d = sw.densities.iter().cloned().fold(1.0, f64::min);
        let max_d = sw.densities.iter().cloned().fold(0.0, f64::max);
        let nnz_of = |d: f64| (d * m as f64 * k as f64) as usize;
        let call_bytes = sw
            .ops
            .iter()
            .map(|&op| super::op_bytes(op, m, k, n, nnz_of(min_d), s) as usize)
            .min()
            .unwrap_or(1);
        // A copy: the CSR with its plan and swizzles (twice with SDDMM's mask), B and L/R,
        // and the outputs.
        let csr_bytes = |nnz: usize| nnz * (s + 12) + 8 * (m + k + 2);
        let csr_copies = 1 + usize::from(has(Op::Sddmm)) + usize::from(has(Op::SpmmT));
        let dense_bytes = s * (m + k) * n * 2;
        let set_bytes = csr_copies * csr_bytes(nnz_of(max_d)) + dense_bytes;
        // The dense baseline's A (M x K) and SDDMM's full M x K output live beside them.
        let gemm_bytes = if !self.gemms.is_empty() {
            2 * s * m * k
        } else {
            0
        };
        if set_bytes + gemm_bytes > self.memory {
            return Err(Error::InvalidArgument(format!(
                "a {m}x{k}x{n} {} sweep at density {max_d} needs about {:.1} GiB of GPU \
                 memory, more than {:.0}% of the {:.1} GiB there",
                T::DTYPE,
                (set_bytes + gemm_bytes) as f64 / (1u64 << 30) as f64,
                MEMORY_SHARE * 100.0,
                self.memory as f64 / MEMORY_SHARE / (1u64 << 30) as f64,
            )));
        }
        let sets = rotation_sets(call_bytes, self.l2, set_bytes, self.memory - gemm_bytes);

        let mut dense: Vec<DenseSet<T>> = (0..sets)
            .map(|_| {
                Ok(DenseSet {
                    b_k: DeviceDense::from_host(dev, b_k.as_ref())?,
                    b_m: DeviceDense::from_host(dev, b_m.as_ref())?,
                    c_m: has(Op::Spmm)
                        .then(|| DeviceDense::zeros(dev, m, n))
                        .transpose()?,
                    c_k: has(Op::SpmmT)
                        .then(|| DeviceDense::zeros(dev, k, n))
                        .transpose()?,
                })
            })
            .collect::<Result<_>>()?;
        let gemm_times = self.time_gemms::<T>(&mut dense)?;

        let mut rows = Vec::new();
        // Each declined (op, baseline) is reported once per sweep, not at every density.
        let mut declined: Vec<(Op, &'static str)> = Vec::new();
        for (di, &density) in sw.densities.iter().enumerate() {
            progress(&format!(
                "{} {}: {m}x{k}, n = {n}, {}, {sets} operand copies",
                self.label,
                sw.matrix_name(density),
                T::DTYPE
            ));
            let a = sw.matrix::<T>(di)?;
            let at = has(Op::SpmmT).then(|| a.transpose()).transpose()?;
            let mut copies: Vec<Set<T>> = (0..sets)
                .map(|_| {
                    Ok(Set {
                        a: DeviceCsr::from_host(dev, a.as_ref())?,
                        at: at
                            .as_ref()
                            .map(|at| DeviceCsr::from_host(dev, at.as_ref()))
                            .transpose()?,
                        mask: has(Op::Sddmm)
                            .then(|| DeviceCsr::from_host(dev, a.as_ref()))
                            .transpose()?,
                    })
                })
                .collect::<Result<_>>()?;
            let a32 = a.cast::<f32>();
            for &op in &sw.ops {
                // What the default launcher would run, checked and timed alike.
                let (config, source) = dev.choose_config(copies[0].a.problem_key(op, n), n);
                let diff =
                    self.check::<T>(op, &config, &a32, &b_k, &b_m, &mut copies, &mut dense)?;
                if !diff.is_finite() {
                    progress(&format!(
                        "{} WARNING: {op} wrote NaN or infinity (or left the poisoned output \
                         unwritten) at density {density}",
                        self.label
                    ));
                }
                let ours = time_calls(dev, sw, sets, |i| {
                    let (set, d) = (&mut copies[i], &mut dense[i]);
                    match op {
                        Op::Spmm => {
                            let c = d.c_m.as_mut().expect("allocated when spmm is swept");
                            cuda::spmm_with(dev, &config, 1.0, &set.a, &d.b_k, 0.0, c)
                        }
                        Op::SpmmT => {
                            let c = d.c_k.as_mut().expect("allocated when spmm_t is swept");
                            cuda::spmm_t_with(dev, &config, 1.0, &set.a, &d.b_m, 0.0, c)
                        }
                        Op::Sddmm => {
                            let out = set.mask.as_mut().expect("allocated when sddmm is swept");
                            cuda::sddmm_with(dev, &config, 1.0, &d.b_m, &d.b_k, 0.0, out)
                        }
                    }
                })?;
                let measured = Measured {
                    op,
                    dtype: T::DTYPE,
                    m,
                    k,
                    n,
                    density,
                    nnz: a.nnz(),
                    pattern: super::mask::Pattern::of(sw, &a),
                    ours: ours.per_call,
                    forward: None,
                    threads: config.threads as usize,
                };
                let ours_us = ours.per_call.as_secs_f64() * 1e6;
                let sparse = self.time_cusparse(op, &mut copies, &mut dense)?;
                let baselines: Vec<Baseline> =
                    sparse
                        .into_iter()
                        .map(|(name, t)| match t {
                            Ok(t) => Baseline::timed(name, t.as_secs_f64() * 1e6, ours_us),
                            Err(why) => {
                                if !declined.contains(&(op, name)) {
                                    declined.push((op, name));
                                    progress(&format!(
                                        "{} {op} {}: {name} n/a ({why})",
                                        self.label,
                                        T::DTYPE
                                    ));
                                }
                                Baseline::skipped(name, why)
                            }
                        })
                        .chain(gemm_times[op as usize].iter().map(|&(name, t)| {
                            Baseline::timed(name, t.as_secs_f64() * 1e6, ours_us)
                        }))
                        .collect();
                let (name, theirs_us) = primary(op, &baselines);
                let theirs = Duration::from_secs_f64(theirs_us * 1e-6);
                let row = measured.row(name, T::DTYPE.name(), 0, theirs, diff);
                let floor = self
                    .ceilings
                    .floor(&roofline::work(op, m, k, n, a.nnz(), s));
                rows.push(Row {
                    roofline_pct: Some(roofline::percent(
                        floor.seconds,
                        ours.per_call.as_secs_f64(),
                    )),
                    bound: Some(floor.bound),
                    config: Some(config.name()),
                    config_source: Some(source.name()),
                    launch_bound: Some(ours.launch_bound),
                    baselines,
                    ..row
                });
            }
        }
        Ok(rows)
    }

    /// One run of `op` with `config` on copy 0 into a NaN-poisoned output, against the
    /// CPU kernel in f32 on sampled columns (SpMM) or rows (SDDMM).
    #[allow(clippy::too_many_arguments)]
    fn check<T: BlasScalar>(
        &self,
        op: Op,
        config: &KernelConfig,
        a32: &Csr<f32>,
        b_k: &Dense<T>,
        b_m: &Dense<T>,
        copies: &mut [Set<T>],
        dense: &mut [DenseSet<T>],
    ) -> Result<f64> {
        let dev = self.dev;
        let (m, k, n) = (self.sweep.m, self.sweep.k, self.sweep.n);
        let nan = T::from_f32(f32::NAN);
        let (set, d) = (&mut copies[0], &mut dense[0]);
        match op {
            Op::Spmm | Op::SpmmT => {
                let cols = sample(n, CHECK_SAMPLES);
                let (b, out_rows) = if op == Op::Spmm { (b_k, m) } else { (b_m, k) };
                let mut want = Dense::<f32>::zeros(out_rows, cols.len());
                let bs = columns(b, &cols);
                let mut c = DeviceDense::filled(dev, out_rows, n, nan)?;
                if op == Op::Spmm {
                    cuda::spmm_with(dev, config, 1.0, &set.a, &d.b_k, 0.0, &mut c)?;
                    cpu::spmm(1.0, a32.as_ref(), bs.as_ref(), 0.0, want.as_mut())?;
                } else {
                    cuda::spmm_t_with(dev, config, 1.0, &set.a, &d.b_m, 0.0, &mut c)?;
                    let plan = a32.transpose_plan();
                    cpu::spmm_t(1.0, a32.as_ref(), &plan, bs.as_ref(), 0.0, want.as_mut())?;
                }
                let got = c.to_host()?;
                let (g, w, cols) = (got.as_slice(), want.as_slice(), &cols);
                Ok(max_diff((0..out_rows).flat_map(|i| {
                    cols.iter()
                        .enumerate()
                        .map(move |(j, &col)| (g[i * n + col].to_f32(), w[i * cols.len() + j]))
                })))
            }
            Op::Sddmm => {
                let mask = set.mask.as_mut().expect("allocated when sddmm is swept");
                mask.set_values(&vec![nan; a32.nnz()])?;
                cuda::sddmm_with(dev, config, 1.0, &d.b_m, &d.b_k, 0.0, mask)?;
                let got = mask.values_to_host()?;
                // The sampled rows of the mask, as a matrix of their own.
                let rows = sample(m, CHECK_SAMPLES);
                let ptr = a32.row_ptr();
                let mut sub_ptr = vec![0i32];
                let (mut sub_cols, mut ours) = (Vec::new(), Vec::new());
                for &i in &rows {
                    let (lo, hi) = (ptr[i] as usize, ptr[i + 1] as usize);
                    sub_cols.extend_from_slice(&a32.col_idx()[lo..hi]);
                    ours.extend(got[lo..hi].iter().map(|v| v.to_f32()));
                    sub_ptr.push(sub_cols.len() as i32);
                }
                let zeros = vec![0.0f32; sub_cols.len()];
                let mut want = Csr::from_parts(rows.len(), k, sub_ptr, sub_cols, zeros)?;
                let (l, r) = (
                    rows_of(b_m, &rows),
                    rows_of(b_k, &(0..k).collect::<Vec<_>>()),
                );
                cpu::sddmm(1.0, l.as_ref(), r.as_ref(), 0.0, want.as_mut())?;
                Ok(max_diff(
                    ours.into_iter().zip(want.values().iter().copied()),
                ))
            }
        }
    }

    /// Each cuBLAS baseline's time per call for the dense route of each swept op, on
    /// random dense data.
    fn time_gemms<T: BlasScalar>(
        &self,
        dense: &mut [DenseSet<T>],
    ) -> Result<[Vec<(&'static str, Duration)>; 3]> {
        let mut times: [Vec<_>; 3] = Default::default();
        if self.gemms.is_empty() {
            return Ok(times);
        }
        let (dev, sw) = (self.dev, self.sweep);
        let (m, k) = (sw.m, sw.k);
        let a = DeviceDense::from_host(dev, random::dense::<T>(m, k, sw.seed ^ 3).as_ref())?;
        let mut full = if sw.ops.contains(&Op::Sddmm) {
            Some(DeviceDense::<T>::zeros(dev, m, k)?)
        } else {
            None
        };
        let (yes, no) = (Transpose::Yes, Transpose::No);
        for &op in &sw.ops {
            for &(name, blas) in &self.gemms {
                let t = time_calls(dev, sw, dense.len(), |i| {
                    let d = &mut dense[i];
                    match op {
                        Op::Spmm => {
                            let c = d.c_m.as_mut().expect("allocated when spmm is swept");
                            blas.gemm(1.0, &a, no, &d.b_k, no, 0.0, c)
                        }
                        Op::SpmmT => {
                            let c = d.c_k.as_mut().expect("allocated when spmm_t is swept");
                            blas.gemm(1.0, &a, yes, &d.b_m, no, 0.0, c)
                        }
                        Op::Sddmm => {
                            let f = full.as_mut().expect("allocated when sddmm is swept");
                            blas.gemm(1.0, &d.b_m, no, &d.b_k, yes, 0.0, f)
                        }
                    }
                })?;
                times[op as usize].push((name, t.per_call));
            }
        }
        Ok(times)
    }

    /// cuSPARSE's time per call for `op` on the same operand copies as ours, per
    /// algorithm; a case cuSPARSE declines is `Err(why)`. Plans (descriptors, workspace,
    /// preprocessing) are made before the timing, one per copy.
    fn time_cusparse<T: BlasScalar>(
        &self,
        op: Op,
        copies: &mut [Set<T>],
        dense: &mut [DenseSet<T>],
    ) -> Result<Vec<(&'static str, Outcome)>> {
        let (dev, sw, sets) = (self.dev, self.sweep, copies.len());
        let sparse = self.sparse;
        let (yes, no) = (Transpose::Yes, Transpose::No);
        let mut out = Vec::new();
        match op {
            Op::Spmm | Op::SpmmT => {
                // (name, algorithm, on A^T stored rather than through the transpose op)
                let variants: &[(&'static str, SpmmAlg, bool)] = if op == Op::Spmm {
                    &[
                        ("cuSPARSE CSR ALG2", SpmmAlg::Csr2, false),
                        ("cuSPARSE CSR ALG3", SpmmAlg::Csr3, false),
                    ]
                } else {
                    &[
                        ("cuSPARSE CSR ALG2", SpmmAlg::Csr2, false),
                        ("cuSPARSE CSR ALG3", SpmmAlg::Csr3, false),
                        ("cuSPARSE CSR ALG2 on A^T", SpmmAlg::Csr2, true),
                        ("cuSPARSE CSR ALG3 on A^T", SpmmAlg::Csr3, true),
                    ]
                };
                for &(name, alg, stored) in variants {
                    let plans = copies
                        .iter()
                        .zip(dense.iter_mut())
                        .map(|(set, d)| match (op, stored) {
                            (Op::Spmm, _) => {
                                let c = d.c_m.as_mut().expect("allocated when spmm is swept");
                                sparse.spmm(alg, 1.0, &set.a, no, &d.b_k, 0.0, c)
                            }
                            (_, false) => {
                                let c = d.c_k.as_mut().expect("allocated when spmm_t is swept");
                                sparse.spmm(alg, 1.0, &set.a, yes, &d.b_m, 0.0, c)
                            }
                            (_, true) => {
                                let c = d.c_k.as_mut().expect("allocated when spmm_t is swept");
                                let at = set.at.as_ref().expect("made when spmm_t is swept");
                                sparse.spmm(alg, 1.0, at, no, &d.b_m, 0.0, c)
                            }
                        })
                        .collect::<Result<Vec<_>>>();
                    out.push((name, timed_plans(dev, sw, sets, plans, |p| p.run())?));
                }
            }
            Op::Sddmm => {
                let plans = copies
                    .iter_mut()
                    .zip(dense.iter())
                    .map(|(set, d)| {
                        let mask = set.mask.as_mut().expect("allocated when sddmm is swept");
                        sparse.sddmm(1.0, &d.b_m, &d.b_k, 0.0, mask)
                    })
                    .collect::<Result<Vec<_>>>();
                out.push((
                    "cuSPARSE SDDMM",
                    timed_plans(dev, sw, sets, plans, |p| p.run())?,
                ));
            }
        }
        Ok(out)
    }
}

/// A baseline's time per call, or why it did not run.
type Outcome = std::result::Result<Duration, String>;

/// Times `run` over one plan per operand copy. A plan the library declined (by the rule
/// of [`Sparse`]: [`Error::Unsupported`]) becomes the reason; any other error, and any
/// error while timing, stops the sweep.
fn timed_plans<P>(
    dev: &Device,
    sweep: &Sweep,
    sets: usize,
    plans: Result<Vec<P>>,
    mut run: impl FnMut(&mut P) -> Result<()>,
) -> Result<Outcome> {
    match plans {
        Ok(mut plans) => Ok(Ok(
            time_calls(dev, sweep, sets, |i| run(&mut plans[i]))?.per_call
        )),
        Err(Error::Unsupported(why)) => Ok(Err(why)),
        Err(e) => Err(e),
    }
}

/// A row's primary baseline and its time in microseconds: the fastest cuSPARSE variant
/// that ran (named for the op, not the variant, so that all SpMM rows share one name and
/// their summary one line: which one won stays in `baselines`), else the first baseline
/// that ran (a dense GEMM), else `none`.
fn primary(op: Op, baselines: &[Baseline]) -> (&'static str, f64) {
    let fastest_sparse = baselines
        .iter()
        .filter(|b| b.name.starts_with("cuSPARSE"))
        .filter_map(|b| Some((b.name, b.us?)))
        .min_by(|x, y| x.1.total_cmp(&y.1));
    match (fastest_sparse, op) {
        (Some((_, us)), Op::Spmm | Op::SpmmT) => ("cuSPARSE CSR (fastest variant)", us),
        (Some(sddmm), Op::Sddmm) => sddmm,
        (None, _) => baselines
            .iter()
            .find_map(|b| Some((b.name, b.us?)))
            .unwrap_or(("none", 0.0)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_cover_both_ends_without_repeats() {
        assert_eq!(sample(5, 32), vec![0, 1, 2, 3, 4]);
        let s = sample(8192, 32);
        assert_eq!((s.len(), s[0], s[31]), (32, 0, 8191));
        assert!(s.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn the_primary_baseline_is_the_fastest_cusparse_then_dense() {
        let alg2 = Baseline::timed("cuSPARSE CSR ALG2", 30.0, 10.0);
        let alg3 = Baseline::timed("cuSPARSE CSR ALG3", 20.0, 10.0);
        let declined = Baseline::skipped("cuSPARSE CSR ALG3", "not supported".into());
        let gemm = Baseline::timed("cuBLAS f32", 5.0, 10.0);
        let all = [alg2.clone(), alg3, gemm.clone()];
        assert_eq!(
            primary(Op::SpmmT, &all),
            ("cuSPARSE CSR (fastest variant)", 20.0)
        );
        assert_eq!(
            primary(Op::Spmm, &[alg2, declined.clone(), gemm.clone()]).1,
            30.0
        );
        let sddmm = Baseline::timed("cuSPARSE SDDMM", 7.0, 10.0);
        assert_eq!(
            primary(Op::Sddmm, &[sddmm, gemm.clone()]),
            ("cuSPARSE SDDMM", 7.0)
        );
        // cuSPARSE declined everything: the dense GEMM; nothing ran: none.
        assert_eq!(
            primary(Op::Spmm, &[declined.clone(), gemm]),
            ("cuBLAS f32", 5.0)
        );
        assert_eq!(primary(Op::Spmm, &[declined]), ("none", 0.0));
    }
}
