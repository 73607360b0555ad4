//! The CPU density sweep: our kernels against Rust baselines, in one process, on the
//! same data, quoted against the DESIGN.md performance model.
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
//! same values, and each [`Row`] says so in `baseline_dtype`. Timing is a warm-up call,
//! then repeated calls until [`Sweep::target`] has passed (at least 3, at most
//! [`Sweep::max_runs`]); the median is reported.
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

use std::time::{Duration, Instant};

use ndarray::{Array2, ArrayViewMut2};
use serde::Serialize;

use crate::{cpu, random, with_dtype, CsrShape, DType, Dense, Error, Op, Result, Scalar};

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
        }
    }
}

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
/// `baseline_threads`, `speedup`, `gflops`, `gbps`, `max_abs_diff`.
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
    /// Requested density.
    pub density: f64,
    /// Stored entries of A.
    pub nnz: usize,
    /// Median time of our kernel, microseconds.
    pub ours_us: f64,
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
    /// Our rate against the DESIGN.md byte model's lower bound.
    pub gbps: f64,
    /// Largest difference between our output and the baseline's (0 for the dense route,
    /// which is not compared).
    pub max_abs_diff: f64,
}

/// A whole sweep.
///
/// ```
/// let r = rosa::bench::Report { version: "0.1.0", threads: 2, rows: vec![] };
/// assert!(serde_json::to_string(&r).unwrap().contains("\"rows\":[]"));
/// ```
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The crate version that measured it.
    pub version: &'static str,
    /// Rayon worker threads available to our kernels.
    pub threads: usize,
    /// One row per (density, op, baseline).
    pub rows: Vec<Row>,
}

/// Median time of `f` after one warm-up call, repeated until `target` has passed (at
/// least 3 calls, at most `max_runs`).
///
/// ```
/// use std::time::Duration;
/// let t = rosa::bench::median_time(Duration::from_millis(1), 10, || { std::hint::black_box(1 + 1); });
/// assert!(t < Duration::from_millis(100));
/// ```
pub fn median_time(target: Duration, max_runs: usize, mut f: impl FnMut()) -> Duration {
    f();
    let start = Instant::now();
    let mut times = Vec::new();
    while times.len() < max_runs.max(1) && (times.len() < 3 || start.elapsed() < target) {
        let t = Instant::now();
        f();
        times.push(t.elapsed());
    }
    times.sort_unstable();
    times[times.len() / 2]
}

/// Lower bound on the bytes an SpMM moves (DESIGN.md): `nnz (s + 4) + 4 (rows + 1)
/// + s inner N + s rows N` for a `rows x inner` sparse operand; `s` is bytes per value.
///
/// ```
/// assert_eq!(rosa::bench::spmm_bytes(2, 3, 4, 5, 4), 5.0 * 8.0 + 12.0 + 48.0 + 32.0);
/// ```
pub fn spmm_bytes(rows: usize, inner: usize, n: usize, nnz: usize, s: usize) -> f64 {
    let (rows, inner, n, nnz, s) = (rows as f64, inner as f64, n as f64, nnz as f64, s as f64);
    nnz * (s + 4.0) + 4.0 * (rows + 1.0) + s * inner * n + s * rows * n
}

/// Lower bound on the bytes an SDDMM moves (DESIGN.md): `s (M k + N k) + nnz (4 + s)`
/// for an M x N mask and inner dimension k.
///
/// ```
/// assert_eq!(rosa::bench::sddmm_bytes(2, 3, 4, 5, 2), 2.0 * 20.0 + 30.0);
/// ```
pub fn sddmm_bytes(m: usize, n: usize, k: usize, nnz: usize, s: usize) -> f64 {
    let (m, n, k, nnz, s) = (m as f64, n as f64, k as f64, nnz as f64, s as f64);
    s * (m * k + n * k) + nnz * (4.0 + s)
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
        threads: rayon::current_num_threads(),
        rows,
    })
}

fn to_f32<T: Scalar>(d: &Dense<T>) -> Array2<f32> {
    let v = d.as_slice().iter().map(|x| x.to_f32()).collect();
    Array2::from_shape_vec((d.rows(), d.cols()), v).expect("a Dense buffer matches its shape")
}

fn max_abs_diff<T: Scalar>(ours: &[T], theirs: &[f32]) -> f64 {
    ours.iter()
        .zip(theirs)
        .map(|(a, &b)| (a.to_f32() as f64 - b as f64).abs())
        .fold(0.0, f64::max)
}

/// Our side of one (op, density) measurement, shared by its rows.
struct Measured {
    op: Op,
    density: f64,
    nnz: usize,
    ours: Duration,
    threads: usize,
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
    let threads = rayon::current_num_threads();
    // B of A B is K x N; B of A^T B is M x N; SDDMM reuses them as R (K x N), L (M x N).
    let b_spmm = random::dense::<T>(k, n, sweep.seed ^ 1);
    let b_t = random::dense::<T>(m, n, sweep.seed ^ 2);
    let (b_spmm32, b_t32) = (to_f32(&b_spmm), to_f32(&b_t));
    let mut dense_times = DenseTimes::default();
    let mut rows = Vec::new();

    for (di, &density) in sweep.densities.iter().enumerate() {
        progress(&format!(
            "[{}/{}] density {density}: {m}x{k}, n = {n}, {}",
            di + 1,
            sweep.densities.len(),
            T::DTYPE
        ));
        let a = random::csr::<T>(m, k, density, sweep.seed.wrapping_add(di as u64))?;
        let a32 = baseline::to_sprs_f32(&a);
        for &op in &sweep.ops {
            // A kernel error cannot leave the timed closure, so it is kept until here.
            let mut status = Ok(());
            let (ours, mut baselines) = match op {
                Op::Spmm | Op::SpmmT => {
                    let transposed = op == Op::SpmmT;
                    let (b, b32, out_rows) = if transposed {
                        (&b_t, &b_t32, k)
                    } else {
                        (&b_spmm, &b_spmm32, m)
                    };
                    let mut c = Dense::<T>::zeros(out_rows, n);
                    let ours = if transposed {
                        let plan = a.transpose_plan();
                        time(&mut || {
                            status =
                                cpu::spmm_t(1.0, a.as_ref(), &plan, b.as_ref(), 0.0, c.as_mut())
                        })
                    } else {
                        time(&mut || {
                            status = cpu::spmm(1.0, a.as_ref(), b.as_ref(), 0.0, c.as_mut())
                        })
                    };
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
                    let mut c32 = Array2::<f32>::zeros((out_rows, n));
                    let mut baselines = Vec::new();
                    for (name, bthreads, run) in candidates {
                        let mut ran = Ok(());
                        let t = time(&mut || ran = run(c32.view_mut()));
                        ran?;
                        let diff = max_abs_diff(c.as_slice(), c32.as_slice().unwrap_or(&[]));
                        baselines.push((name, bthreads, t, diff));
                    }
                    (ours, baselines)
                }
                Op::Sddmm => {
                    let (l, r, l32, r32) = (&b_t, &b_spmm, &b_t32, &b_spmm32);
                    let mut out = a.clone();
                    let ours = time(&mut || {
                        status = cpu::sddmm(1.0, l.as_ref(), r.as_ref(), 0.0, out.as_mut())
                    });
                    let mut out32 = vec![0.0f32; a.nnz()];
                    let mut ran = Ok(());
                    let t = time(&mut || {
                        ran =
                            baseline::ndarray_sddmm(a32.view(), l32.view(), r32.view(), &mut out32)
                    });
                    ran?;
                    let diff = max_abs_diff(out.values(), &out32);
                    (
                        ours,
                        vec![("ndarray dot per nonzero+rayon", threads, t, diff)],
                    )
                }
            };
            status?;
            if sweep.dense_baseline {
                let slot = &mut dense_times.0[op as usize];
                let t = *slot.get_or_insert_with(|| time_dense(op, m, k, n, &time));
                baselines.push(("ndarray dense GEMM (no sampling)", 1, t, 0.0));
            }
            let measured = Measured {
                op,
                density,
                nnz: a.nnz(),
                ours,
                threads,
            };
            rows.extend(baselines.into_iter().map(|(name, bthreads, bt, diff)| {
                measured.row::<T>(sweep, name, bthreads, bt, diff)
            }));
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
    fn row<T: Scalar>(
        &self,
        sweep: &Sweep,
        baseline: &'static str,
        baseline_threads: usize,
        theirs: Duration,
        max_abs_diff: f64,
    ) -> Row {
        let (m, k, n, s, nnz) = (sweep.m, sweep.k, sweep.n, T::DTYPE.size(), self.nnz);
        let secs = self.ours.as_secs_f64().max(1e-12);
        let bytes = match self.op {
            Op::Spmm => spmm_bytes(m, k, n, nnz, s),
            Op::SpmmT => spmm_bytes(k, m, n, nnz, s),
            Op::Sddmm => sddmm_bytes(m, k, n, nnz, s),
        };
        Row {
            op: self.op.name(),
            dtype: T::DTYPE.name(),
            m,
            k,
            n,
            density: self.density,
            nnz,
            ours_us: secs * 1e6,
            threads: self.threads,
            baseline,
            baseline_dtype: "f32",
            baseline_us: theirs.as_secs_f64() * 1e6,
            baseline_threads,
            speedup: theirs.as_secs_f64() / secs,
            gflops: 2.0 * nnz as f64 * n as f64 / secs / 1e9,
            gbps: bytes / secs / 1e9,
            max_abs_diff,
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
