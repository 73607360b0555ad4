//! The CPU density sweep: our kernels against Rust baselines, in one process, on the
//! same data, quoted against the byte and flop model of [`op_bytes`] and the roofline.
//!
//! Shared by `rosa bench` and the criterion benches. For each density, one random
//! M x K sparse matrix A (from [`crate::random`]) serves every op:
//!
//! | op | ours | shapes |
//! |---|---|---|
//! | `spmm` | [`cpu::spmm`] | C (M x N) = A B, B: K x N |
//! | `spmm_t` | [`cpu::spmm_t`], plan built untimed | C (K x N) = A^T B, B: M x N |
//! | `sddmm` | [`cpu::sddmm`] | out = (L R^T) at A's mask, L: M x N, R: K x N (inner dim N) |
//!
//! The baselines ([`baseline`]) run in f32: for f16 and bf16 they get f32 copies of the
//! same values, and each [`Row`] says so in `baseline_dtype`. Ours and the baselines are
//! timed in interleaved rounds ([`median_times`]) until about [`Sweep::target`] each has
//! passed (at least 3 rounds, at most [`Sweep::max_runs`]); the medians are reported.
//!
//! ```
//! use rosa::bench::{self, Sweep};
//! use rosa::Op;
//! let sweep = Sweep {
//!     m: 64, k: 48, n: 8, densities: vec![0.1], ops: vec![Op::Spmm],
//!     target: std::time::Duration::from_millis(1), dense_baseline: false,
//!     ..Sweep::default()
//! };
//! let report = bench::run(&sweep, |_| {}).unwrap();
//! assert_eq!(report.rows[0].op, "spmm");
//! assert!(report.rows.iter().all(|r| r.max_abs_diff < 1e-4));
//! ```
//!
//! With the `cuda` feature, `rosa::bench::gpu` runs the same sweeps on the CUDA kernels
//! against cuBLAS, and quotes each time against the [`roofline`] floor.

use std::time::{Duration, Instant};

use ndarray::{Array2, ArrayViewMut2};
use serde::Serialize;

use crate::{cpu, random, with_dtype, CsrShape, DType, Dense, Error, Op, Result, Scalar};

pub mod export;
#[cfg(feature = "cuda")]
pub mod gpu;
pub mod mask;
pub mod plot;

/// What to sweep. [`Sweep::default`] is the `rosa bench` default: 4096 x 4096, N = 256,
/// densities 0.1% to 3%, f32, every op.
///
/// ```
/// let s = rosa::bench::Sweep::default();
/// assert_eq!((s.m, s.k, s.n), (4096, 4096, 256));
/// ```
#[derive(Debug, Clone)]
pub struct Sweep {
    /// Rows of A.
    pub m: usize,
    /// Columns of A.
    pub k: usize,
    /// Columns of the dense operands (the inner dimension of SDDMM).
    pub n: usize,
    /// Fractions of A's entries that are stored, each in (0, 1].
    pub densities: Vec<f64>,
    /// Element type of our kernels' operands.
    pub dtype: DType,
    /// Ops to run, in this order for each density.
    pub ops: Vec<Op>,
    /// Seed of every random operand.
    pub seed: u64,
    /// Keep repeating a measurement until this much time has passed.
    pub target: Duration,
    /// Stop repeating after this many timed calls.
    pub max_runs: usize,
    /// Also time the dense GEMM route (once per op: its cost does not depend on density).
    pub dense_baseline: bool,
    /// A fixed pattern for A instead of random ones: then `m` and `k` must be its shape
    /// and `densities` its one density ([`mask::Mask::sweep`] builds such a sweep).
    pub mask: Option<mask::Mask>,
}

impl Default for Sweep {
    fn default() -> Self {
        Sweep {
            m: 4096,
            k: 4096,
            n: 256,
            densities: vec![0.001, 0.003, 0.01, 0.03],
            dtype: DType::F32,
            ops: Op::ALL.to_vec(),
            seed: 0,
            target: Duration::from_millis(300),
            max_runs: 100,
            dense_baseline: true,
            mask: None,
        }
    }
}

/// The CPU's dense route: densify A, then one GEMM (blind to A's pattern).
pub(crate) const DENSE_GEMM: &str = "ndarray dense GEMM (no sampling)";

/// Bytes the sweep may allocate before it refuses to start.
const MEMORY_CAP: u128 = 8 << 30;

impl Sweep {
    /// Checks densities and sizes, and that the operands fit in memory, before anything
    /// is allocated.
    ///
    /// ```
    /// use rosa::bench::Sweep;
    /// assert!(Sweep { densities: vec![1.5], ..Sweep::default() }.validate().is_err());
    /// assert!(Sweep { m: 1 << 40, ..Sweep::default() }.validate().is_err());
    /// ```
    pub fn validate(&self) -> Result<()> {
        self.check_shape()?;
        self.check_host_memory()
    }

    /// Densities in (0, 1], at least one density and op, positive sizes: what every
    /// backend needs before it allocates.
    pub(crate) fn check_shape(&self) -> Result<()> {
        if let Some(d) = self.densities.iter().find(|d| !(**d > 0.0 && **d <= 1.0)) {
            return Err(Error::InvalidArgument(format!(
                "density {d} is outside (0, 1]"
            )));
        }
        if self.densities.is_empty() || self.ops.is_empty() {
            return Err(Error::InvalidArgument(
                "the sweep needs at least one density and one op".into(),
            ));
        }
        if [self.m, self.k, self.n].contains(&0) {
            return Err(Error::InvalidArgument("m, k and n must be positive".into()));
        }
        if let Some(mask) = &self.mask {
            let p = mask.pattern();
            if (p.rows(), p.cols()) != (self.m, self.k) || self.densities != [p.density()] {
                return Err(Error::InvalidArgument(format!(
                    "mask {} is {}x{} at density {}, the sweep {}x{} at {:?} (build the \
                     sweep with Mask::sweep)",
                    mask.name(),
                    p.rows(),
                    p.cols(),
                    p.density(),
                    self.m,
                    self.k,
                    self.densities
                )));
            }
        }
        Ok(())
    }

    /// The sweep's sparse A at its `di`-th density: the same matrix on the CPU, on the GPU
    /// and on disk for the external baselines ([`export`]), for the same seed. On a mask,
    /// the mask's structure with random values.
    pub(crate) fn matrix<T: Scalar>(&self, di: usize) -> Result<crate::Csr<T>> {
        if let Some(mask) = &self.mask {
            return random::values_on(mask.pattern(), self.seed.wrapping_add(di as u64));
        }
        random::csr::<T>(
            self.m,
            self.k,
            self.densities[di],
            self.seed.wrapping_add(di as u64),
        )
    }

    /// `density 0.01`, or `mask NAME`: what a progress note calls the `density` point.
    pub(crate) fn matrix_name(&self, density: f64) -> String {
        match &self.mask {
            Some(m) => format!("mask {}", m.name()),
            None => format!("density {density}"),
        }
    }

    fn check_host_memory(&self) -> Result<()> {
        let (m, k, n) = (self.m as u128, self.k as u128, self.n as u128);
        let max_d = self.densities.iter().cloned().fold(0.0, f64::max);
        let nnz = (max_d * (m * k) as f64) as u128;
        // Ours and an f32 copy of every operand: A, its transpose plan, three inputs and
        // three outputs; plus the dense GEMM operands when asked for.
        let mut bytes = nnz * 24 + 8 * (m + k + 2) + 8 * 3 * (m * n + k * n);
        if self.dense_baseline {
            bytes += 4 * (2 * m * k + 2 * (m + k) * n);
        }
        if bytes > MEMORY_CAP || nnz > i32::MAX as u128 {
            return Err(Error::InvalidArgument(format!(
                "a {}x{}x{} sweep at density {max_d} needs about {:.1} GiB (limit {} GiB){}",
                self.m,
                self.k,
                self.n,
                bytes as f64 / (1u64 << 30) as f64,
                MEMORY_CAP >> 30,
                if self.dense_baseline {
                    "; use smaller sizes or skip the dense baseline"
                } else {
                    "; use smaller sizes"
                }
            )));
        }
        Ok(())
    }
}

/// One measurement: our kernel against one baseline on the same operands.
///
/// JSON field names are the Rust field names: `op`, `dtype`, `m`, `k`, `n`, `density`,
/// `nnz`, `ours_us`, `threads`, `baseline`, `baseline_dtype`, `baseline_us`,
/// `baseline_threads`, `speedup`, `gflops`, `gbps`, `max_abs_diff`, and on the GPU also
/// `roofline_pct`, `config` and `baselines` (absent from CPU rows). On the GPU the
/// primary `baseline` is cuSPARSE (the faster of its CSR algorithms for SpMM) where it
/// ran, else the first dense GEMM; `baselines` lists every one the row was timed against.
///
/// ```
/// use rosa::bench::{run, Sweep};
/// use rosa::Op;
/// let sweep = Sweep { m: 32, k: 32, n: 4, densities: vec![0.1], ops: vec![Op::Sddmm],
///     target: std::time::Duration::ZERO, dense_baseline: false, ..Sweep::default() };
/// let row = &run(&sweep, |_| {}).unwrap().rows[0];
/// assert_eq!((row.op, row.baseline_dtype), ("sddmm", "f32"));
/// let json = serde_json::to_value(row).unwrap();
/// assert!(json["speedup"].as_f64().unwrap() > 0.0);
/// ```
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// `spmm`, `spmm_t` or `sddmm`.
    pub op: &'static str,
    /// Our element type.
    pub dtype: &'static str,
    /// Rows of A.
    pub m: usize,
    /// Columns of A.
    pub k: usize,
    /// Columns of the dense operands.
    pub n: usize,
    /// Requested density (on a mask, its density).
    pub density: f64,
    /// Stored entries of A.
    pub nnz: usize,
    /// The mask A was (see [`mask`]); absent for a uniformly random A.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mask: Option<String>,
    /// A's longest row over its mean row length.
    pub row_max_over_mean: f64,
    /// Coefficient of variation of A's row lengths ([`crate::RowStats`]).
    pub row_cv: f64,
    /// Median time of our kernel, microseconds.
    pub ours_us: f64,
    /// CPU `spmm_t` only: our forward `spmm` on the same A and N, timed in the same
    /// interleaved rounds, microseconds. [`Report::transpose_ratios`] divides by this
    /// rather than by the `spmm` row's time, which was measured at another moment and
    /// drifts with the machine.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forward_us: Option<f64>,
    /// Threads our kernel ran on.
    pub threads: usize,
    /// Which baseline.
    pub baseline: &'static str,
    /// The baseline's element type (always f32).
    pub baseline_dtype: &'static str,
    /// Median time of the baseline, microseconds.
    pub baseline_us: f64,
    /// Threads the baseline ran on.
    pub baseline_threads: usize,
    /// `baseline_us / ours_us`: above 1 means ours is faster.
    pub speedup: f64,
    /// Our useful work rate, `2 nnz N / time`.
    pub gflops: f64,
    /// Our rate against the byte model's lower bound ([`op_bytes`]).
    pub gbps: f64,
    /// Largest difference between our output and the baseline's (0 for the dense route,
    /// which is not compared). On the GPU: between our output and the CPU kernels' in f32
    /// on sampled rows or columns, infinite (JSON `null`) if ours holds a NaN or infinity.
    pub max_abs_diff: f64,
    /// GPU only: the [`roofline`] floor over our measured time, in percent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub roofline_pct: Option<f64>,
    /// GPU only: the ceiling that sets the floor.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bound: Option<roofline::Bound>,
    /// GPU only: the tile configuration our kernel ran with (e.g. `sw8_br16_v1`), the one
    /// the default launcher chooses, and which the correctness check ran too.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config: Option<String>,
    /// GPU only: where `config` came from: `exact` or `nearest` (a tuned cache entry) or
    /// `heuristic`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config_source: Option<&'static str>,
    /// GPU only: true when the host took about as long to queue our calls as the GPU took
    /// to run them, so the GPU may have idled between launches and the time is partly the
    /// host's launch rate, not the kernel's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub launch_bound: Option<bool>,
    /// GPU only: every baseline timed on the same operands, in the same process.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub baselines: Vec<Baseline>,
}

/// One baseline of a GPU [`Row`]: its time and our speedup over it, or why it did not
/// run (JSON `null` time and speedup, and a `note`).
///
/// ```
/// use rosa::bench::Baseline;
/// let b = Baseline::timed("cuBLAS TF32", 30.0, 10.0);
/// assert_eq!(b.speedup, Some(3.0));
/// let na = Baseline::skipped("cuSPARSE CSR ALG3", "not supported for bf16".into());
/// let json = serde_json::to_value(&na).unwrap();
/// assert!(json["us"].is_null() && json["note"] == "not supported for bf16");
/// ```
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Baseline {
    /// What ran, e.g. `cuSPARSE CSR ALG2` or `cuBLAS TF32`.
    pub name: &'static str,
    /// Median time per call, microseconds; `None` when it did not run.
    pub us: Option<f64>,
    /// `us / ours_us`: above 1 means ours is faster.
    pub speedup: Option<f64>,
    /// Why it did not run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl Baseline {
    /// A baseline that ran in `us` microseconds, against ours in `ours_us` (see the type's
    /// example).
    pub fn timed(name: &'static str, us: f64, ours_us: f64) -> Self {
        Baseline {
            name,
            us: Some(us),
            speedup: Some(us / ours_us.max(1e-12)),
            note: None,
        }
    }

    /// A baseline that did not run, and why (see the type's example).
    pub fn skipped(name: &'static str, note: String) -> Self {
        Baseline {
            name,
            us: None,
            speedup: None,
            note: Some(note),
        }
    }
}

/// A whole sweep.
///
/// ```
/// let r = rosa::bench::Report { version: "0.1.0", device: None, gpu: None, threads: 2, rows: vec![] };
/// assert!(serde_json::to_string(&r).unwrap().contains("\"rows\":[]"));
/// ```
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The crate version that measured it.
    pub version: &'static str,
    /// The GPU that ran our kernels (`cuda:0 NVIDIA H100 ...`); absent for the CPU sweep.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// How the GPU sweep measured; absent for the CPU sweep.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gpu: Option<GpuSetup>,
    /// Rayon worker threads available to our kernels.
    pub threads: usize,
    /// One row per (density, op, baseline).
    pub rows: Vec<Row>,
}

/// What a GPU sweep's numbers rest on: the ceilings its roofline is quoted against, how
/// it timed, and the cuSPARSE it compared with.
///
/// ```
/// use rosa::bench::{roofline::Ceilings, GpuSetup};
/// let setup = GpuSetup {
///     ceilings: Ceilings { dram_bytes_per_s: 4e12, l2_bytes_per_s: 1e13, fma_flops_per_s: 6e13,
///         l2_probe_bytes: 1 << 24 },
///     timing: "CUDA events",
///     cusparse_version: 12600,
/// };
/// let json = serde_json::to_value(&setup).unwrap();
/// assert_eq!(json["ceilings"]["l2_bytes_per_s"], 1e13);
/// ```
#[derive(Debug, Clone, Serialize)]
pub struct GpuSetup {
    /// Measured at the start of the sweep, on its GPU.
    pub ceilings: roofline::Ceilings,
    /// How the times were taken.
    pub timing: &'static str,
    /// `cusparseGetVersion` (1000 major + 100 minor + patch).
    pub cusparse_version: i32,
}

/// How long each closure of [`median_times`] runs untimed before each timed call. On
/// the 2-vCPU development VM, two-thread kernels timed right after a 30 ms single-thread
/// baseline ran 1.5-2x slower than in a loop of their own, for the 5 to 20 ms the idle
/// vCPU took to come back to speed (2026-11-22): 20 ms of warm-up gave the loop's times.
pub const WARM_UP: Duration = Duration::from_millis(20);

/// Median time of `f`, warmed up and repeated as by [`median_times`].
///
/// ```
/// use std::time::Duration;
/// let t = rosa::bench::median_time(Duration::from_millis(1), 10, || { std::hint::black_box(1 + 1); });
/// assert!(t < Duration::from_millis(100));
/// ```
pub fn median_time(target: Duration, max_runs: usize, mut f: impl FnMut()) -> Duration {
    median_times(target, max_runs, &mut [&mut f])[0]
}

/// Median times of several closures timed in interleaved rounds: in each round, each
/// closure in turn is called untimed (once, and again until [`WARM_UP`] or `target`,
/// whichever is shorter, has passed), then once timed. Rounds repeat until about twice
/// `target` per closure has passed (at least 3, at most `max_runs`).
///
/// Interleaving is what makes the ratios fair on a shared or throttling machine: a burst
/// of interference or a clock change lands on every side's samples alike, where timing
/// one side to completion and then the next would charge it to whoever ran at the time.
/// The untimed calls before each timed one give every side its own operands back in
/// cache, as repeated calls would, and every thread it uses back at speed, instead of
/// timing it on what the previous closure left.
///
/// ```
/// use std::time::Duration;
/// let (mut light, mut heavy) = (0u64, 0u64);
/// let t = rosa::bench::median_times(Duration::from_millis(1), 50, &mut [
///     &mut || light = std::hint::black_box((0..10u64).sum()),
///     &mut || heavy = std::hint::black_box((0..100_000u64).map(|x| x ^ 7).sum()),
/// ]);
/// assert_eq!(t.len(), 2);
/// assert!(light > 0 && heavy > 0);
/// ```
pub fn median_times(
    target: Duration,
    max_runs: usize,
    fs: &mut [&mut dyn FnMut()],
) -> Vec<Duration> {
    let start = Instant::now();
    let mut times = vec![Vec::new(); fs.len()];
    let mut rounds = 0;
    // The untimed calls take at least as long as the timed ones: twice the budget.
    let budget = target * 2 * fs.len() as u32;
    let warm_up = WARM_UP.min(target);
    while rounds < max_runs.max(1) && (rounds < 3 || start.elapsed() < budget) {
        for (f, t) in fs.iter_mut().zip(&mut times) {
            let warm = Instant::now();
            f();
            while warm.elapsed() < warm_up {
                f();
            }
            let t0 = Instant::now();
            f();
            t.push(t0.elapsed());
        }
        rounds += 1;
    }
    times
        .into_iter()
        .map(|mut t| {
            t.sort_unstable();
            t[t.len() / 2]
        })
        .collect()
}

/// Lower bound on the bytes an SpMM moves: `nnz (s + 4) + 4 (rows + 1)
/// + s inner N + s rows N` for a `rows x inner` sparse operand; `s` is bytes per value.
///
/// ```
/// assert_eq!(rosa::bench::spmm_bytes(2, 3, 4, 5, 4), 5.0 * 8.0 + 12.0 + 48.0 + 32.0);
/// ```
pub fn spmm_bytes(rows: usize, inner: usize, n: usize, nnz: usize, s: usize) -> f64 {
    let (rows, inner, n, nnz, s) = (rows as f64, inner as f64, n as f64, nnz as f64, s as f64);
    nnz * (s + 4.0) + 4.0 * (rows + 1.0) + s * inner * n + s * rows * n
}

/// Lower bound on the bytes an SDDMM moves: `s (M k + N k) + nnz (4 + s)`
/// for an M x N mask and inner dimension k.
///
/// ```
/// assert_eq!(rosa::bench::sddmm_bytes(2, 3, 4, 5, 2), 2.0 * 20.0 + 30.0);
/// ```
pub fn sddmm_bytes(m: usize, n: usize, k: usize, nnz: usize, s: usize) -> f64 {
    let (m, n, k, nnz, s) = (m as f64, n as f64, k as f64, nnz as f64, s as f64);
    s * (m * k + n * k) + nnz * (4.0 + s)
}

/// The byte bound of one op on an M x K sparse A with `nnz` entries and dense
/// width `n` (SDDMM's inner dimension), `s` bytes per value: SpMM reads A, B (K x N) and
/// writes C (M x N); transposed SpMM reads B (M x N) and writes C (K x N); SDDMM reads
/// L (M x N) and R (K x N) and writes the nonzeros.
///
/// ```
/// use rosa::{bench, Op};
/// assert_eq!(bench::op_bytes(Op::SpmmT, 2, 3, 4, 5, 4), bench::spmm_bytes(3, 2, 4, 5, 4));
/// assert_eq!(bench::op_bytes(Op::Sddmm, 2, 3, 4, 5, 2), bench::sddmm_bytes(2, 3, 4, 5, 2));
/// ```
pub fn op_bytes(op: Op, m: usize, k: usize, n: usize, nnz: usize, s: usize) -> f64 {
    match op {
        Op::Spmm => spmm_bytes(m, k, n, nnz, s),
        Op::SpmmT => spmm_bytes(k, m, n, nnz, s),
        Op::Sddmm => sddmm_bytes(m, k, n, nnz, s),
    }
}

/// Useful floating-point operations of every op: one multiply and one add per nonzero per
/// column of the dense width, `2 nnz n`.
///
/// ```
/// assert_eq!(rosa::bench::op_flops(10, 8), 160.0);
/// ```
pub fn op_flops(nnz: usize, n: usize) -> f64 {
    2.0 * nnz as f64 * n as f64
}

/// Bytes of dense rows an op gathers once per nonzero: B rows (SpMM; A^T B walks A^T
/// and gathers rows of its B), R rows (SDDMM), `nnz n s` for dense width `n` (SDDMM's
/// inner dimension) and `s` bytes per value. Random columns defeat any reuse within a
/// row, so these come from L2 (or DRAM when the operand does not fit), not registers.
///
/// ```
/// assert_eq!(rosa::bench::gathered_bytes(10, 8, 2), 160.0);
/// ```
pub fn gathered_bytes(nnz: usize, n: usize, s: usize) -> f64 {
    nnz as f64 * n as f64 * s as f64
}

/// The performance floor of the three-floor model (DRAM, L2, FMA), against ceilings measured on the machine
/// of the run ([`roofline::Ceilings`], from `rosa::bench::gpu::measure_ceilings` with the
/// `cuda` feature): no kernel beats the largest of its DRAM bytes ([`op_bytes`]) over the
/// device-to-device copy bandwidth, its gathered bytes ([`gathered_bytes`]) over the L2
/// bandwidth, and its flops ([`op_flops`]) over the CUDA-core FMA rate, which is what our
/// kernels use for every dtype (they widen to f32 and call `fmaf`; no tensor cores). So
/// `floor / measured` is the fraction of the achievable that a kernel reaches. There are
/// no built-in numbers: without measured ceilings (the CPU bench) there is no roofline.
///
/// ```
/// use rosa::bench::roofline::{Bound, Ceilings};
/// use rosa::bench::roofline;
/// use rosa::Op;
/// let c = Ceilings { dram_bytes_per_s: 4.0e12, l2_bytes_per_s: 1.0e13,
///     fma_flops_per_s: 6.0e13, l2_probe_bytes: 16 << 20 };
/// // bf16 SpMM, 4096 x 4096 at 1%, N = 2048: 687 MB gathered at 10 TB/s (69 us) beats
/// // 35 MB of DRAM traffic at 4 TB/s (8.6 us) and 687 MFLOP at 60 TFLOP/s (11 us).
/// let work = roofline::work(Op::Spmm, 4096, 4096, 2048, 167_772, 2);
/// let floor = c.floor(&work);
/// assert_eq!(floor.bound, Bound::L2);
/// assert!((floor.seconds - work.l2_bytes / 1.0e13).abs() < 1e-15);
/// assert!((roofline::percent(floor.seconds, 2.0 * floor.seconds) - 50.0).abs() < 1e-9);
/// ```
pub mod roofline {
    use serde::Serialize;

    use crate::Op;

    /// What one GPU does at best, measured on it (never datasheet figures).
    #[derive(Debug, Clone, Copy, PartialEq, Serialize)]
    pub struct Ceilings {
        /// Device-to-device copy: bytes read plus bytes written, per second.
        pub dram_bytes_per_s: f64,
        /// Reads of a buffer resident in L2, bytes per second.
        pub l2_bytes_per_s: f64,
        /// f32 FMAs on the CUDA cores, flop/s (two flops per FMA).
        pub fma_flops_per_s: f64,
        /// Size of the buffer the L2 probe read over and over, bytes.
        pub l2_probe_bytes: usize,
    }

    /// One op's work in the units of the three ceilings (see [`work`]).
    #[derive(Debug, Clone, Copy, PartialEq)]
    pub struct Work {
        /// The DRAM byte bound, [`super::op_bytes`].
        pub dram_bytes: f64,
        /// Dense rows gathered per nonzero, [`super::gathered_bytes`].
        pub l2_bytes: f64,
        /// [`super::op_flops`].
        pub flops: f64,
    }

    /// The work of `op` on an M x K sparse A with `nnz` entries, dense width `n` (SDDMM's
    /// inner dimension), `s` bytes per value (see the module's example).
    pub fn work(op: Op, m: usize, k: usize, n: usize, nnz: usize, s: usize) -> Work {
        Work {
            dram_bytes: super::op_bytes(op, m, k, n, nnz, s),
            l2_bytes: super::gathered_bytes(nnz, n, s),
            flops: super::op_flops(nnz, n),
        }
    }

    /// The ceiling a floor comes from: `dram`, `l2` or `fma` in JSON.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
    #[serde(rename_all = "lowercase")]
    pub enum Bound {
        /// DRAM bytes over the copy bandwidth.
        Dram,
        /// Gathered bytes over the L2 bandwidth.
        L2,
        /// Flops over the FMA rate.
        Fma,
    }

    impl Bound {
        /// `dram`, `l2` or `fma`, as in JSON.
        pub fn name(self) -> &'static str {
            match self {
                Bound::Dram => "dram",
                Bound::L2 => "l2",
                Bound::Fma => "fma",
            }
        }
    }

    /// The least time some work can take, and which ceiling sets it.
    #[derive(Debug, Clone, Copy, PartialEq)]
    pub struct Floor {
        /// Seconds.
        pub seconds: f64,
        /// The binding ceiling.
        pub bound: Bound,
    }

    impl Ceilings {
        /// `max(dram bytes / copy bandwidth, gathered bytes / L2 bandwidth, flops / FMA
        /// rate)` and which term it is (see the module's example).
        pub fn floor(&self, w: &Work) -> Floor {
            [
                (w.dram_bytes / self.dram_bytes_per_s, Bound::Dram),
                (w.l2_bytes / self.l2_bytes_per_s, Bound::L2),
                (w.flops / self.fma_flops_per_s, Bound::Fma),
            ]
            .into_iter()
            .map(|(seconds, bound)| Floor { seconds, bound })
            .fold(
                Floor {
                    seconds: 0.0,
                    bound: Bound::Dram,
                },
                |best, f| if f.seconds > best.seconds { f } else { best },
            )
        }
    }

    /// `100 floor / measured` (0 when nothing was measured).
    pub fn percent(floor_s: f64, measured_s: f64) -> f64 {
        if measured_s > 0.0 {
            100.0 * floor_s / measured_s
        } else {
            0.0
        }
    }
}

/// The RoSA benchmark grid: (M, K) pairs of LLaMA-7B projections.
pub const GRID_SHAPES: [(usize, usize); 3] = [(4096, 4096), (11008, 4096), (4096, 11008)];
/// The grid's token counts N.
pub const GRID_N: [usize; 3] = [512, 2048, 8192];
/// The grid's densities: 0.1% to 5%.
pub const GRID_DENSITIES: [f64; 6] = [0.001, 0.003, 0.006, 0.012, 0.024, 0.05];

/// One sweep per grid shape (M, K) x N, each over the grid densities, with `base`'s dtype,
/// ops, seed and timing.
///
/// ```
/// let grid = rosa::bench::grid(&rosa::bench::Sweep::default());
/// assert_eq!(grid.len(), 9);
/// assert!(grid.iter().all(|s| s.densities.len() == 6));
/// assert_eq!((grid[8].m, grid[8].k, grid[8].n), (4096, 11008, 8192));
/// ```
pub fn grid(base: &Sweep) -> Vec<Sweep> {
    GRID_SHAPES
        .iter()
        .flat_map(|&(m, k)| GRID_N.iter().map(move |&n| (m, k, n)))
        .map(|(m, k, n)| Sweep {
            m,
            k,
            n,
            densities: GRID_DENSITIES.to_vec(),
            ..base.clone()
        })
        .collect()
}

/// One point of [`predict`]: an op's roofline floor on a sweep's matrix, with nothing run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Prediction {
    /// `spmm`, `spmm_t` or `sddmm`.
    pub op: &'static str,
    /// Our element type.
    pub dtype: &'static str,
    /// Rows of A.
    pub m: usize,
    /// Columns of A.
    pub k: usize,
    /// Columns of the dense operands.
    pub n: usize,
    /// Density of A.
    pub density: f64,
    /// Stored entries of A: `density m k` rounded (a random A's expected count), or the
    /// mask's.
    pub nnz: usize,
    /// The mask A is, if any (the floors depend on its shape and nnz only, not on where
    /// its nonzeros lie).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mask: Option<String>,
    /// The floor, microseconds: the largest of the three below.
    pub us: f64,
    /// Which ceiling sets it.
    pub bound: roofline::Bound,
    /// DRAM bytes over the copy bandwidth, microseconds.
    pub dram_us: f64,
    /// Gathered bytes over the L2 bandwidth, microseconds.
    pub l2_us: f64,
    /// Flops over the FMA rate, microseconds.
    pub fma_us: f64,
}

/// The roofline floor of every (density, op) of `sweep` at `ceilings`, without running
/// anything: what a GPU run should come near, to compare with its measured times once
/// there is one. Errors: `sweep`'s shape checks ([`Sweep::validate`], memory aside).
///
/// ```
/// use rosa::bench::{predict, roofline::{Bound, Ceilings}, Sweep};
/// let c = Ceilings { dram_bytes_per_s: 4.0e12, l2_bytes_per_s: 1.0e13,
///     fma_flops_per_s: 6.0e13, l2_probe_bytes: 0 };
/// let sweep = Sweep { n: 2048, densities: vec![0.01], dtype: "bf16".parse().unwrap(),
///     ops: vec![rosa::Op::Spmm], ..Sweep::default() };
/// let p = &predict(&sweep, &c).unwrap()[0];
/// assert_eq!((p.nnz, p.bound), (167_772, Bound::L2)); // as roofline's example: 69 us
/// assert!((p.us - 68.7).abs() < 0.1 && p.us == p.l2_us && p.dram_us < p.us);
/// ```
pub fn predict(sweep: &Sweep, ceilings: &roofline::Ceilings) -> Result<Vec<Prediction>> {
    sweep.check_shape()?;
    let (m, k, n, s) = (sweep.m, sweep.k, sweep.n, sweep.dtype.size());
    let mut out = Vec::new();
    for &density in &sweep.densities {
        let nnz = match &sweep.mask {
            Some(mask) => mask.pattern().nnz(),
            None => (density * m as f64 * k as f64).round() as usize,
        };
        for &op in &sweep.ops {
            let work = roofline::work(op, m, k, n, nnz, s);
            let floor = ceilings.floor(&work);
            out.push(Prediction {
                op: op.name(),
                dtype: sweep.dtype.name(),
                m,
                k,
                n,
                density,
                nnz,
                mask: sweep.mask.as_ref().map(|m| m.name().to_string()),
                us: floor.seconds * 1e6,
                bound: floor.bound,
                dram_us: work.dram_bytes / ceilings.dram_bytes_per_s * 1e6,
                l2_us: work.l2_bytes / ceilings.l2_bytes_per_s * 1e6,
                fma_us: work.flops / ceilings.fma_flops_per_s * 1e6,
            });
        }
    }
    Ok(out)
}

/// Medians of one (op, dtype) over a report's rows: the one-line verdict of a sweep.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OpSummary {
    /// The op.
    pub op: &'static str,
    /// Our element type.
    pub dtype: &'static str,
    /// Rows summarized.
    pub rows: usize,
    /// Median [`Row::roofline_pct`] over the rows that have one.
    pub median_roofline_pct: Option<f64>,
    /// Median speedup over the rows whose baseline ran.
    pub median_speedup: Option<f64>,
    /// The baseline of the first such row.
    pub baseline: &'static str,
    /// Geometric mean of the same speedups (the issue's targets are geomeans).
    pub geomean_speedup: Option<f64>,
    /// GPU rows: median and geometric-mean speedup over each entry of
    /// [`Row::baselines`], by name, in order of first appearance.
    pub by_baseline: Vec<BaselineSummary>,
}

/// Our speedup over one named baseline, across the rows where it ran (GPU reports; see
/// [`Report::summary`]).
///
/// ```
/// let b = rosa::bench::BaselineSummary { name: "cuBLAS TF32", rows: 6,
///     median_speedup: Some(2.0), geomean_speedup: Some(1.8) };
/// assert!(serde_json::to_string(&b).unwrap().contains("\"geomean_speedup\":1.8"));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BaselineSummary {
    /// The baseline's name.
    pub name: &'static str,
    /// Rows where it ran.
    pub rows: usize,
    /// Median speedup.
    pub median_speedup: Option<f64>,
    /// Geometric-mean speedup.
    pub geomean_speedup: Option<f64>,
}

/// Geometric mean of the finite positive values.
fn geomean(v: &[f64]) -> Option<f64> {
    let logs: Vec<f64> = v
        .iter()
        .filter(|x| x.is_finite() && **x > 0.0)
        .map(|x| x.ln())
        .collect();
    (!logs.is_empty()).then(|| (logs.iter().sum::<f64>() / logs.len() as f64).exp())
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    v.retain(|x| x.is_finite());
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let h = v.len() / 2;
    Some(if v.len() % 2 == 1 {
        v[h]
    } else {
        (v[h - 1] + v[h]) / 2.0
    })
}

impl Report {
    /// One [`OpSummary`] per (op, dtype), in order of first appearance.
    ///
    /// ```
    /// use rosa::bench::{run, Sweep};
    /// let sweep = Sweep { m: 32, k: 32, n: 4, densities: vec![0.1, 0.2],
    ///     target: std::time::Duration::ZERO, dense_baseline: false, ..Sweep::default() };
    /// let s = run(&sweep, |_| {}).unwrap().summary();
    /// assert_eq!(s.len(), 3);
    /// assert_eq!((s[0].op, s[0].rows), ("spmm", 4)); // 2 densities x 2 baselines
    /// assert!(s[0].median_roofline_pct.is_none() && s[0].median_speedup.unwrap() > 0.0);
    /// assert!(s[0].geomean_speedup.unwrap() > 0.0 && s[0].by_baseline.is_empty());
    /// ```
    pub fn summary(&self) -> Vec<OpSummary> {
        let mut keys: Vec<(&'static str, &'static str)> = Vec::new();
        for r in &self.rows {
            if !keys.contains(&(r.op, r.dtype)) {
                keys.push((r.op, r.dtype));
            }
        }
        keys.into_iter()
            .map(|(op, dtype)| {
                let rows: Vec<&Row> = self
                    .rows
                    .iter()
                    .filter(|r| r.op == op && r.dtype == dtype)
                    .collect();
                let timed: Vec<&&Row> = rows.iter().filter(|r| r.baseline_us > 0.0).collect();
                let speedups: Vec<f64> = timed.iter().map(|r| r.speedup).collect();
                let mut names: Vec<&'static str> = Vec::new();
                for b in rows.iter().flat_map(|r| &r.baselines) {
                    if !names.contains(&b.name) {
                        names.push(b.name);
                    }
                }
                let by_baseline = names
                    .into_iter()
                    .map(|name| {
                        let x: Vec<f64> = rows
                            .iter()
                            .flat_map(|r| &r.baselines)
                            .filter(|b| b.name == name)
                            .filter_map(|b| b.speedup)
                            .collect();
                        BaselineSummary {
                            name,
                            rows: x.len(),
                            geomean_speedup: geomean(&x),
                            median_speedup: median(x),
                        }
                    })
                    .collect();
                OpSummary {
                    op,
                    dtype,
                    rows: rows.len(),
                    median_roofline_pct: median(
                        rows.iter().filter_map(|r| r.roofline_pct).collect(),
                    ),
                    geomean_speedup: geomean(&speedups),
                    median_speedup: median(speedups),
                    baseline: timed.first().map_or("none", |r| r.baseline),
                    by_baseline,
                }
            })
            .collect()
    }
}

/// Transposed SpMM's time over forward SpMM's on the same A and N, per dtype: the targets
/// are at most 1.3 on the CPU and 1.15 on the GPU. Made by [`Report::transpose_ratios`],
/// whose example shows one.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TransposeRatio {
    /// Our element type.
    pub dtype: &'static str,
    /// (shape, density) points with both ops.
    pub pairs: usize,
    /// Median of `spmm_t` time / `spmm` time.
    pub median: f64,
    /// The largest ratio.
    pub max: f64,
}

impl Report {
    /// One [`TransposeRatio`] per dtype with `spmm_t` rows, each point's time over its
    /// forward time: the row's own [`Row::forward_us`] where it has one (the CPU bench),
    /// else the `spmm` row of the same shape and density (several rows of one point, one
    /// per baseline, count once).
    ///
    /// ```
    /// use rosa::bench::{run, Sweep};
    /// use rosa::Op;
    /// // The CPU sweep times the forward product with the transposed one: no `spmm` needed.
    /// let sweep = Sweep { m: 32, k: 32, n: 4, densities: vec![0.1], ops: vec![Op::SpmmT],
    ///     target: std::time::Duration::ZERO, dense_baseline: false, ..Sweep::default() };
    /// let report = run(&sweep, |_| {}).unwrap();
    /// let r = report.transpose_ratios();
    /// assert_eq!((r.len(), r[0].pairs), (1, 1));
    /// let row = &report.rows[0];
    /// assert_eq!(r[0].median, row.ours_us / row.forward_us.unwrap());
    /// ```
    pub fn transpose_ratios(&self) -> Vec<TransposeRatio> {
        // A mask and its uniform twin share a shape and density: the mask tells them apart.
        let key = |r: &Row| (r.dtype, r.m, r.k, r.n, r.density.to_bits(), r.mask.clone());
        let mut out: Vec<(&'static str, Vec<f64>)> = Vec::new();
        let mut seen = Vec::new();
        for t in self.rows.iter().filter(|r| r.op == Op::SpmmT.name()) {
            if seen.contains(&key(t)) {
                continue;
            }
            let forward = t.forward_us.or_else(|| {
                self.rows
                    .iter()
                    .find(|r| r.op == Op::Spmm.name() && key(r) == key(t))
                    .map(|f| f.ours_us)
            });
            let Some(forward) = forward else {
                continue;
            };
            seen.push(key(t));
            let ratio = t.ours_us / forward.max(1e-12);
            match out.iter_mut().find(|(d, _)| *d == t.dtype) {
                Some((_, v)) => v.push(ratio),
                None => out.push((t.dtype, vec![ratio])),
            }
        }
        out.into_iter()
            .filter_map(|(dtype, v)| {
                let (pairs, max) = (v.len(), v.iter().cloned().fold(0.0, f64::max));
                Some(TransposeRatio {
                    dtype,
                    pairs,
                    median: median(v)?,
                    max,
                })
            })
            .collect()
    }
}

/// Runs a sweep, calling `progress` with a one-line note before each density.
///
/// Errors only on an invalid [`Sweep`] (see [`Sweep::validate`]).
///
/// ```
/// use rosa::bench::{run, Sweep};
/// let sweep = Sweep { m: 16, k: 24, n: 2, densities: vec![0.2, 0.5], dtype: "f16".parse().unwrap(),
///     target: std::time::Duration::ZERO, dense_baseline: false, ..Sweep::default() };
/// let mut notes = Vec::new();
/// let report = run(&sweep, |note| notes.push(note.to_string())).unwrap();
/// assert_eq!(notes.len(), 2);
/// assert_eq!(report.rows.len(), 2 * 5); // 2 densities x (2 + 2 + 1) baselines
/// assert!(report.rows.iter().all(|r| r.dtype == "f16"));
/// ```
pub fn run(sweep: &Sweep, mut progress: impl FnMut(&str)) -> Result<Report> {
    sweep.validate()?;
    let rows = with_dtype!(sweep.dtype, T => run_typed::<T>(sweep, &mut progress))?;
    Ok(Report {
        version: env!("CARGO_PKG_VERSION"),
        device: None,
        gpu: None,
        threads: rayon::current_num_threads(),
        rows,
    })
}

fn to_f32<T: Scalar>(d: &Dense<T>) -> Array2<f32> {
    let v = d.as_slice().iter().map(|x| x.to_f32()).collect();
    Array2::from_shape_vec((d.rows(), d.cols()), v).expect("a Dense buffer matches its shape")
}

fn max_abs_diff<T: Scalar>(ours: &[T], theirs: &[f32]) -> f64 {
    max_diff(ours.iter().map(|x| x.to_f32()).zip(theirs.iter().copied()))
}

/// The largest `|ours - want|`, infinite where ours is not finite or a difference is NaN:
/// `f64::max` alone would skip a NaN and report a broken result as exact.
pub(crate) fn max_diff(pairs: impl Iterator<Item = (f32, f32)>) -> f64 {
    pairs.fold(0.0f64, |acc, (ours, want)| {
        let d = (ours as f64 - want as f64).abs();
        if ours.is_finite() && !d.is_nan() {
            acc.max(d)
        } else {
            f64::INFINITY
        }
    })
}

/// Our side of one (op, density) measurement, shared by its rows and by both backends.
pub(crate) struct Measured {
    pub op: Op,
    pub dtype: DType,
    pub m: usize,
    pub k: usize,
    pub n: usize,
    pub density: f64,
    pub nnz: usize,
    pub pattern: mask::Pattern,
    pub ours: Duration,
    /// See [`Row::forward_us`].
    pub forward: Option<Duration>,
    pub threads: usize,
}

/// Dense GEMM timings, once per op, since a dense product's cost ignores the density.
#[derive(Default)]
struct DenseTimes([Option<Duration>; 3]);

/// A baseline that writes a dense output into the view it is given.
type DenseBaseline<'a> = (
    &'static str,
    usize,
    Box<dyn Fn(ArrayViewMut2<'_, f32>) -> Result<()> + 'a>,
);

fn run_typed<T: Scalar>(sweep: &Sweep, progress: &mut dyn FnMut(&str)) -> Result<Vec<Row>> {
    let (m, k, n) = (sweep.m, sweep.k, sweep.n);
    let time = |f: &mut dyn FnMut()| median_time(sweep.target, sweep.max_runs, f);
    let time_all = |fs: &mut [&mut dyn FnMut()]| median_times(sweep.target, sweep.max_runs, fs);
    let threads = rayon::current_num_threads();
    // B of A B is K x N; B of A^T B is M x N; SDDMM reuses them as R (K x N), L (M x N).
    let b_spmm = random::dense::<T>(k, n, sweep.seed ^ 1);
    let b_t = random::dense::<T>(m, n, sweep.seed ^ 2);
    let (b_spmm32, b_t32) = (to_f32(&b_spmm), to_f32(&b_t));
    let mut dense_times = DenseTimes::default();
    let mut rows = Vec::new();

    for (di, &density) in sweep.densities.iter().enumerate() {
        progress(&format!(
            "[{}/{}] {}: {m}x{k}, n = {n}, {}",
            di + 1,
            sweep.densities.len(),
            sweep.matrix_name(density),
            T::DTYPE
        ));
        let a = sweep.matrix::<T>(di)?;
        let a32 = baseline::to_sprs_f32(&a);
        for &op in &sweep.ops {
            // A kernel error cannot leave the timed closure, so it is kept until here.
            let mut status = Ok(());
            let (ours, forward, mut baselines) = match op {
                Op::Spmm | Op::SpmmT => {
                    let transposed = op == Op::SpmmT;
                    let (b, b32, out_rows) = if transposed {
                        (&b_t, &b_t32, k)
                    } else {
                        (&b_spmm, &b_spmm32, m)
                    };
                    let mut c = Dense::<T>::zeros(out_rows, n);
                    let plan = transposed.then(|| a.transpose_plan());
                    // Like our plan, the materialized transpose is built outside the timing.
                    let at32 = transposed.then(|| a32.transpose_view().to_csr());
                    let rows_of = at32.as_ref().map_or(a32.view(), |t| t.view());
                    let candidates: [DenseBaseline; 2] = [
                        if transposed {
                            (
                                "sprs (transpose view)",
                                1,
                                Box::new(|c| baseline::sprs_spmm_t(a32.view(), b32.view(), c)),
                            )
                        } else {
                            (
                                "sprs",
                                1,
                                Box::new(|c| baseline::sprs_spmm(a32.view(), b32.view(), c)),
                            )
                        },
                        (
                            if transposed {
                                "sprs+rayon (A^T built once)"
                            } else {
                                "sprs+rayon"
                            },
                            threads,
                            Box::new(|c| baseline::sprs_spmm_par(rows_of, b32.view(), c)),
                        ),
                    ];
                    let mut outs: Vec<_> = candidates
                        .iter()
                        .map(|_| (Array2::<f32>::zeros((out_rows, n)), Ok(())))
                        .collect();
                    let mut ours = || {
                        status = match &plan {
                            Some(plan) => {
                                cpu::spmm_t(1.0, a.as_ref(), plan, b.as_ref(), 0.0, c.as_mut())
                            }
                            None => cpu::spmm(1.0, a.as_ref(), b.as_ref(), 0.0, c.as_mut()),
                        }
                    };
                    let mut theirs: Vec<_> = candidates
                        .iter()
                        .zip(&mut outs)
                        .map(|((_, _, run), (c32, ran))| move || *ran = run(c32.view_mut()))
                        .collect();
                    // The transposed product's own forward product, in the same rounds.
                    let mut c_forward = transposed.then(|| Dense::<T>::zeros(m, n));
                    let mut forward_status = Ok(());
                    let mut forward = || {
                        if let Some(c) = &mut c_forward {
                            forward_status =
                                cpu::spmm(1.0, a.as_ref(), b_spmm.as_ref(), 0.0, c.as_mut())
                        }
                    };
                    let mut fs: Vec<&mut dyn FnMut()> = vec![&mut ours];
                    if transposed {
                        fs.push(&mut forward);
                    }
                    fs.extend(theirs.iter_mut().map(|f| f as &mut dyn FnMut()));
                    let times = time_all(&mut fs);
                    drop(theirs);
                    status?;
                    forward_status?;
                    let (forward, theirs) = match transposed {
                        true => (Some(times[1]), &times[2..]),
                        false => (None, &times[1..]),
                    };
                    let mut baselines = Vec::new();
                    for ((name, bthreads, _), ((c32, ran), &t)) in
                        candidates.iter().zip(outs.into_iter().zip(theirs))
                    {
                        ran?;
                        let diff = max_abs_diff(c.as_slice(), c32.as_slice().unwrap_or(&[]));
                        baselines.push((*name, *bthreads, t, diff));
                    }
                    (times[0], forward, baselines)
                }
                Op::Sddmm => {
                    let (l, r, l32, r32) = (&b_t, &b_spmm, &b_t32, &b_spmm32);
                    let mut out = a.clone();
                    let mut out32 = vec![0.0f32; a.nnz()];
                    let mut ran = Ok(());
                    let times = time_all(&mut [
                        &mut || status = cpu::sddmm(1.0, l.as_ref(), r.as_ref(), 0.0, out.as_mut()),
                        &mut || {
                            ran = baseline::ndarray_sddmm(
                                a32.view(),
                                l32.view(),
                                r32.view(),
                                &mut out32,
                            )
                        },
                    ]);
                    status?;
                    ran?;
                    let (ours, t) = (times[0], times[1]);
                    let diff = max_abs_diff(out.values(), &out32);
                    (
                        ours,
                        None,
                        vec![("ndarray dot per nonzero+rayon", threads, t, diff)],
                    )
                }
            };
            if sweep.dense_baseline {
                let slot = &mut dense_times.0[op as usize];
                let t = *slot.get_or_insert_with(|| time_dense(op, m, k, n, &time));
                baselines.push((DENSE_GEMM, 1, t, 0.0));
            }
            let measured = Measured {
                op,
                dtype: T::DTYPE,
                m,
                k,
                n,
                density,
                nnz: a.nnz(),
                pattern: mask::Pattern::of(sweep, &a),
                ours,
                forward,
                threads,
            };
            rows.extend(
                baselines.into_iter().map(|(name, bthreads, bt, diff)| {
                    measured.row(name, "f32", bthreads, bt, diff)
                }),
            );
        }
    }
    Ok(rows)
}

/// The dense route to the same result: densify the sparse operand and multiply.
fn time_dense(
    op: Op,
    m: usize,
    k: usize,
    n: usize,
    time: &dyn Fn(&mut dyn FnMut()) -> Duration,
) -> Duration {
    let fill = |r, c, seed| to_f32(&random::dense::<f32>(r, c, seed));
    match op {
        Op::Spmm | Op::SpmmT => {
            let (rows, inner) = if op == Op::Spmm { (m, k) } else { (k, m) };
            let (a, b) = (fill(rows, inner, 11), fill(inner, n, 12));
            let mut c = Array2::<f32>::zeros((rows, n));
            time(&mut || baseline::dense_gemm(a.view(), b.view(), c.view_mut()))
        }
        Op::Sddmm => {
            let (l, r) = (fill(m, n, 13), fill(k, n, 14));
            let mut full = Array2::<f32>::zeros((m, k));
            time(&mut || baseline::dense_gemm(l.view(), r.t(), full.view_mut()))
        }
    }
}

impl Measured {
    /// The row against one baseline; `theirs` is zero when no baseline ran.
    pub(crate) fn row(
        &self,
        baseline: &'static str,
        baseline_dtype: &'static str,
        baseline_threads: usize,
        theirs: Duration,
        max_abs_diff: f64,
    ) -> Row {
        let (m, k, n, nnz) = (self.m, self.k, self.n, self.nnz);
        let secs = self.ours.as_secs_f64().max(1e-12);
        let bytes = op_bytes(self.op, m, k, n, nnz, self.dtype.size());
        Row {
            op: self.op.name(),
            dtype: self.dtype.name(),
            m,
            k,
            n,
            density: self.density,
            nnz,
            mask: self.pattern.mask.clone(),
            row_max_over_mean: self.pattern.stats.max as f64 / self.pattern.stats.mean.max(1e-12),
            row_cv: self.pattern.stats.cv,
            ours_us: secs * 1e6,
            forward_us: self.forward.map(|t| t.as_secs_f64() * 1e6),
            threads: self.threads,
            baseline,
            baseline_dtype,
            baseline_us: theirs.as_secs_f64() * 1e6,
            baseline_threads,
            speedup: theirs.as_secs_f64() / secs,
            gflops: op_flops(nnz, n) / secs / 1e9,
            gbps: bytes / secs / 1e9,
            max_abs_diff,
            roofline_pct: None,
            bound: None,
            config: None,
            config_source: None,
            launch_bound: None,
            baselines: Vec::new(),
        }
    }
}

/// The Rust baselines, public so criterion benches time exactly what `rosa bench` does.
///
/// All run in f32 on `sprs` matrices with i32 indices (the index width our CSR uses) and
/// `ndarray` dense matrices. sprs's sparse x dense product is single-threaded (its
/// `multi_thread` feature only parallelizes sparse x sparse), so the `_par` variant
/// splits the rows over rayon, which is how one would use it at full machine width.
///
/// faer is not among them: it adds about 3.5 minutes to a clean release build on the
/// project's 2-core machines (gemm, pulp and friends), and in an out-of-tree trial its
/// `sparse_dense_matmul` (faer 0.24, column-major dense operands, f32) was 2 to 7 times
/// slower than our `cpu::spmm` and slower than sprs on the default sweep, so it would be
/// neither cheap nor the best baseline.
///
/// ```
/// use rosa::bench::baseline;
/// let a = rosa::random::csr::<f32>(50, 40, 0.1, 1).unwrap();
/// let b = ndarray::Array2::<f32>::ones((40, 3));
/// let (mut c1, mut c2) = (ndarray::Array2::zeros((50, 3)), ndarray::Array2::zeros((50, 3)));
/// let s = baseline::to_sprs_f32(&a);
/// baseline::sprs_spmm(s.view(), b.view(), c1.view_mut());
/// baseline::sprs_spmm_par(s.view(), b.view(), c2.view_mut());
/// assert_eq!(c1, c2);
/// ```
pub mod baseline {
    use ndarray::{ArrayView2, ArrayViewMut2, Axis};
    use rayon::prelude::*;
    use sprs::prod::{csc_mulacc_dense_rowmaj, csr_mulacc_dense_rowmaj};
    use sprs::{CsMatI, CsMatViewI};

    use crate::{Csr, CsrShape, Error, Result, Scalar};

    /// A sprs CSR matrix of f32 with i32 indices.
    ///
    /// ```
    /// let s: rosa::bench::baseline::SprsCsr = sprs::CsMatI::eye(3);
    /// assert_eq!(s.nnz(), 3);
    /// ```
    pub type SprsCsr = CsMatI<f32, i32>;

    /// Copies our CSR matrix into sprs, widening the values to f32.
    ///
    /// ```
    /// let a = rosa::Csr::from_triplets(2, 2, &[(1, 0, rosa::f16::from_f32(2.0))]).unwrap();
    /// let s = rosa::bench::baseline::to_sprs_f32(&a);
    /// assert_eq!(s.get(1, 0), Some(&2.0));
    /// ```
    pub fn to_sprs_f32<T: Scalar>(a: &Csr<T>) -> SprsCsr {
        CsMatI::new(
            (a.rows(), a.cols()),
            a.row_ptr().to_vec(),
            a.col_idx().to_vec(),
            a.values().iter().map(|v| v.to_f32()).collect(),
        )
    }

    fn check(op: &'static str, ok: bool) -> Result<()> {
        if ok {
            Ok(())
        } else {
            Err(Error::ShapeMismatch {
                op,
                detail: "the baseline's operand shapes do not fit".into(),
            })
        }
    }

    /// `c = a b` with sprs's CSR x dense kernel, on one thread.
    ///
    /// A shape mismatch is an [`Error::ShapeMismatch`].
    ///
    /// ```
    /// use ndarray::{array, Array2};
    /// let a = rosa::Csr::from_triplets(2, 2, &[(0, 1, 3.0f32)]).unwrap();
    /// let mut c = Array2::zeros((2, 1));
    /// rosa::bench::baseline::sprs_spmm(rosa::bench::baseline::to_sprs_f32(&a).view(), array![[1.0], [2.0]].view(), c.view_mut()).unwrap();
    /// assert_eq!(c, array![[6.0], [0.0]]);
    /// ```
    pub fn sprs_spmm(
        a: CsMatViewI<'_, f32, i32>,
        b: ArrayView2<'_, f32>,
        mut c: ArrayViewMut2<'_, f32>,
    ) -> Result<()> {
        check(
            "sprs_spmm",
            a.cols() == b.nrows() && c.dim() == (a.rows(), b.ncols()),
        )?;
        c.fill(0.0);
        csr_mulacc_dense_rowmaj(a, b, c);
        Ok(())
    }

    /// `c = a b` with sprs's CSR x dense kernel on blocks of rows spread over rayon.
    ///
    /// A shape mismatch is an [`Error::ShapeMismatch`].
    ///
    /// ```
    /// use ndarray::{array, Array2};
    /// let a = rosa::Csr::from_triplets(3, 2, &[(0, 1, 3.0f32), (2, 0, 1.0)]).unwrap();
    /// let mut c = Array2::zeros((3, 1));
    /// rosa::bench::baseline::sprs_spmm_par(rosa::bench::baseline::to_sprs_f32(&a).view(), array![[1.0], [2.0]].view(), c.view_mut()).unwrap();
    /// assert_eq!(c, array![[6.0], [0.0], [1.0]]);
    /// ```
    pub fn sprs_spmm_par(
        a: CsMatViewI<'_, f32, i32>,
        b: ArrayView2<'_, f32>,
        mut c: ArrayViewMut2<'_, f32>,
    ) -> Result<()> {
        check(
            "sprs_spmm_par",
            a.cols() == b.nrows() && c.dim() == (a.rows(), b.ncols()),
        )?;
        // Several blocks per thread so that uneven rows still balance.
        let block = a.rows().div_ceil(rayon::current_num_threads() * 8).max(1);
        c.axis_chunks_iter_mut(Axis(0), block)
            .enumerate()
            .collect::<Vec<_>>()
            .into_par_iter()
            .for_each(|(i, mut out)| {
                let start = i * block;
                out.fill(0.0);
                csr_mulacc_dense_rowmaj(a.slice_outer_rbr(start..start + out.nrows()), b, out);
            });
        Ok(())
    }

    /// `c = a^T b` with sprs's CSC x dense kernel on `a`'s transpose view (no copy), on
    /// one thread.
    ///
    /// A shape mismatch is an [`Error::ShapeMismatch`].
    ///
    /// ```
    /// use ndarray::{array, Array2};
    /// let a = rosa::Csr::from_triplets(2, 3, &[(0, 2, 3.0f32)]).unwrap();
    /// let mut c = Array2::zeros((3, 1));
    /// rosa::bench::baseline::sprs_spmm_t(rosa::bench::baseline::to_sprs_f32(&a).view(), array![[1.0], [2.0]].view(), c.view_mut()).unwrap();
    /// assert_eq!(c, array![[0.0], [0.0], [3.0]]);
    /// ```
    pub fn sprs_spmm_t(
        a: CsMatViewI<'_, f32, i32>,
        b: ArrayView2<'_, f32>,
        mut c: ArrayViewMut2<'_, f32>,
    ) -> Result<()> {
        check(
            "sprs_spmm_t",
            a.rows() == b.nrows() && c.dim() == (a.cols(), b.ncols()),
        )?;
        c.fill(0.0);
        csc_mulacc_dense_rowmaj(a.transpose_view(), b, c);
        Ok(())
    }

    /// `out[p] = dot(l[i, :], r[j, :])` for each stored p = (i, j) of `mask`, with
    /// ndarray's dot product, rows spread over rayon.
    ///
    /// A shape mismatch is an [`Error::ShapeMismatch`].
    ///
    /// ```
    /// use ndarray::array;
    /// let mask = rosa::Csr::from_triplets(1, 2, &[(0, 1, 0.0f32)]).unwrap();
    /// let mut out = vec![0.0; 1];
    /// rosa::bench::baseline::ndarray_sddmm(rosa::bench::baseline::to_sprs_f32(&mask).view(),
    ///     array![[1.0, 2.0]].view(), array![[0.0, 0.0], [3.0, 4.0]].view(), &mut out).unwrap();
    /// assert_eq!(out, [11.0]);
    /// ```
    pub fn ndarray_sddmm(
        mask: CsMatViewI<'_, f32, i32>,
        l: ArrayView2<'_, f32>,
        r: ArrayView2<'_, f32>,
        out: &mut [f32],
    ) -> Result<()> {
        check(
            "ndarray_sddmm",
            mask.rows() == l.nrows()
                && mask.cols() == r.nrows()
                && l.ncols() == r.ncols()
                && out.len() == mask.nnz(),
        )?;
        let indptr = mask.indptr();
        let ptr = indptr.raw_storage();
        let cols = mask.indices();
        let block = mask
            .rows()
            .div_ceil(rayon::current_num_threads() * 8)
            .max(1);
        let mut blocks = Vec::new();
        let mut rest = out;
        for start in (0..mask.rows()).step_by(block) {
            let end = (start + block).min(mask.rows());
            let (head, tail) = rest.split_at_mut((ptr[end] - ptr[start]) as usize);
            blocks.push((start..end, head));
            rest = tail;
        }
        blocks.into_par_iter().for_each(|(range, out)| {
            let base = ptr[range.start] as usize;
            for i in range {
                let li = l.row(i);
                for p in ptr[i] as usize..ptr[i + 1] as usize {
                    out[p - base] = li.dot(&r.row(cols[p] as usize));
                }
            }
        });
        Ok(())
    }

    /// `c = a b` dense, with ndarray's GEMM (matrixmultiply, one thread): the route that
    /// ignores sparsity, for the crossover.
    ///
    /// ```
    /// use ndarray::{array, Array2};
    /// let mut c = Array2::zeros((1, 1));
    /// rosa::bench::baseline::dense_gemm(array![[1.0f32, 2.0]].view(), array![[3.0], [4.0]].view(), c.view_mut());
    /// assert_eq!(c[[0, 0]], 11.0);
    /// ```
    pub fn dense_gemm(
        a: ArrayView2<'_, f32>,
        b: ArrayView2<'_, f32>,
        mut c: ArrayViewMut2<'_, f32>,
    ) {
        ndarray::linalg::general_mat_mul(1.0, &a, &b, 0.0, &mut c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The byte-model formulas on a grid shape, worked by hand.
    #[test]
    fn bytes_and_floor_of_a_grid_shape() {
        let (m, k, n, nnz) = (4096, 4096, 512, 167_772); // 1% of 4096 x 4096
                                                         // SpMM bf16: nnz (2 + 4) + 4 (M + 1) + 2 K N + 2 M N.
        let spmm = op_bytes(Op::Spmm, m, k, n, nnz, 2);
        assert_eq!(
            spmm,
            6.0 * 167_772.0 + 4.0 * 4097.0 + 2.0 * 2.0 * 4096.0 * 512.0
        );
        // Square A: the transposed SpMM moves as much; SDDMM skips row_ptr.
        assert_eq!(op_bytes(Op::SpmmT, m, k, n, nnz, 2), spmm);
        assert_eq!(op_bytes(Op::Sddmm, m, k, n, nnz, 2), spmm - 4.0 * 4097.0);
        // Every op gathers one dense row of n values per nonzero.
        for op in Op::ALL {
            let w = roofline::work(op, m, k, n, nnz, 2);
            assert_eq!(w.l2_bytes, 167_772.0 * 512.0 * 2.0);
            assert_eq!(w.flops, 2.0 * 167_772.0 * 512.0);
        }
    }

    /// Each term can bind: the floor is the largest, and names its ceiling.
    #[test]
    fn the_floor_is_the_largest_term_and_says_which() {
        let c = roofline::Ceilings {
            dram_bytes_per_s: 4.0e12,
            l2_bytes_per_s: 1.2e13,
            fma_flops_per_s: 6.0e13,
            l2_probe_bytes: 1 << 24,
        };
        let at = |dram: f64, l2: f64, flops: f64| {
            c.floor(&roofline::Work {
                dram_bytes: dram,
                l2_bytes: l2,
                flops,
            })
        };
        let f = at(4.0e9, 1.2e9, 6.0e9);
        assert_eq!((f.bound, f.seconds), (roofline::Bound::Dram, 1e-3));
        let f = at(4.0e6, 1.2e10, 6.0e9);
        assert_eq!((f.bound, f.seconds), (roofline::Bound::L2, 1e-3));
        let f = at(4.0e6, 1.2e6, 6.0e11);
        assert_eq!((f.bound, f.seconds), (roofline::Bound::Fma, 1e-2));
        // The sparsest square grid point in bf16 is DRAM-bound, a dense one L2-bound.
        let point = |d: f64| {
            let nnz = (d * 4096.0 * 4096.0) as usize;
            c.floor(&roofline::work(Op::Spmm, 4096, 4096, 512, nnz, 2))
                .bound
        };
        assert_eq!(point(0.001), roofline::Bound::Dram);
        assert_eq!(point(0.05), roofline::Bound::L2);
        assert_eq!(roofline::Bound::L2.name(), "l2");
    }

    #[test]
    fn roofline_percent_is_floor_over_measured() {
        assert_eq!(roofline::percent(1.0, 4.0), 25.0);
        assert_eq!(roofline::percent(1.0, 0.0), 0.0);
    }

    #[test]
    fn max_diff_reports_what_is_not_finite() {
        assert_eq!(max_diff([(1.0, 0.5), (2.0, 2.0)].into_iter()), 0.5);
        assert!(max_diff([(f32::NAN, 0.0), (1.0, 0.5)].into_iter()).is_infinite());
        assert!(max_diff([(1.0, f32::NAN)].into_iter()).is_infinite());
    }

    /// A spmm_t row's own forward time wins over the spmm row's; without one, the
    /// spmm row of the same point serves.
    #[test]
    fn transpose_ratio_takes_the_forward_time_of_the_same_rounds() {
        let measured = |op, time: f64, forward: Option<f64>| {
            let us = |t: f64| Duration::from_secs_f64(t * 1e-6);
            Measured {
                op,
                dtype: DType::F32,
                m: 8,
                k: 8,
                n: 8,
                density: 0.5,
                nnz: 32,
                pattern: mask::Pattern {
                    mask: None,
                    stats: crate::RowStats {
                        min: 4,
                        max: 4,
                        mean: 4.0,
                        cv: 0.0,
                    },
                },
                ours: us(time),
                forward: forward.map(us),
                threads: 1,
            }
            .row("x", "f32", 1, us(1.0), 0.0)
        };
        let report = |rows| Report {
            version: "0",
            device: None,
            gpu: None,
            threads: 1,
            rows,
        };
        let spmm = measured(Op::Spmm, 100.0, None);
        let ratios =
            report(vec![spmm.clone(), measured(Op::SpmmT, 150.0, Some(120.0))]).transpose_ratios();
        assert!((ratios[0].median - 1.25).abs() < 1e-9);
        let ratios = report(vec![spmm, measured(Op::SpmmT, 150.0, None)]).transpose_ratios();
        assert!((ratios[0].median - 1.5).abs() < 1e-9);
        assert!(report(vec![measured(Op::SpmmT, 150.0, None)])
            .transpose_ratios()
            .is_empty());
    }

    #[test]
    fn medians_skip_what_is_not_finite() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(vec![4.0, 1.0, f64::INFINITY, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(vec![f64::NAN]), None);
    }
}
