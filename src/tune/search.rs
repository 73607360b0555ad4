//! The search: every compiled configuration of an op timed on a problem, the fastest kept
//! as a [`TuneEntry`] together with the heuristic default's time.
//!
//! Every configuration handles every shape (the kernel tests run each on odd widths and
//! empty rows), so all of an op's table is a candidate. The timing is the GPU bench's
//! (`rosa::bench::gpu`, feature `cuda`): CUDA events around batches of calls after a
//! warm-up pass, the median batch, calls rotating over copies of the operands that
//! together stream at least twice the L2, so that a configuration is timed on memory
//! rather than on the cache.
//!
//! Picking the fastest of several noisy medians favours whichever one was lucky, so the
//! winner's time is biased low. Before an entry records a speedup, the winner and the
//! heuristic's configuration are timed again, in interleaved batches in the same rounds,
//! and those two times are what the entry holds; if the winner is not faster there, the
//! entry keeps the heuristic's configuration (a speedup of 1).

use std::time::Duration;

use super::{ProblemKey, TuneEntry};
use crate::bench::mask::Mask;
use crate::bench::{GRID_DENSITIES, GRID_N, GRID_SHAPES};
use crate::{CsrShape, DType, Error, Op, Result};

/// One problem to tune: `op` on a random `m x k` CSR of the given density and row-length
/// spread (or on a given mask's pattern, [`RowSkew::Mask`]), with dense dimension `n` (the
/// width of B and C, or SDDMM's inner dimension), in `dtype`.
///
/// ```
/// use rosa::tune::{Problem, ProblemKey, RowSkew};
/// use rosa::{DType, Op};
/// let p = Problem { op: Op::SpmmT, dtype: DType::Bf16, m: 4096, k: 11008, n: 2048, density: 0.012, skew: RowSkew::Uniform };
/// let key = ProblemKey::new(p.op, p.dtype, p.m, p.k, p.n, p.density, 0.0);
/// assert_eq!((key.m, key.k, key.n), (12, 13, 11));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    pub op: Op,
    pub dtype: DType,
    pub m: usize,
    pub k: usize,
    pub n: usize,
    pub density: f64,
    pub skew: RowSkew,
}

/// How a problem's mask spreads its nonzeros over the rows.
#[derive(Debug, Clone, PartialEq)]
pub enum RowSkew {
    /// Every row the same expected length ([`crate::random::csr`]).
    Uniform,
    /// Power-law row lengths of this exponent ([`crate::random::csr_power_law`]): the
    /// few very long rows of masks chosen by gradient magnitude.
    PowerLaw(f64),
    /// Exactly this mask's pattern (a model's own, such as the RoSA masks of
    /// `data/minilm-rosa-masks/`), with fresh random values; the problem's `m`, `k` and
    /// `density` must be the mask's ([`mask_problems`] builds such problems).
    Mask(Mask),
}

/// The exponent of the grid's skewed masks: on the grid's shapes and densities, a
/// coefficient of variation of the row lengths of about 1.7-5 (the spread buckets 3 and 4
/// of [`super::ProblemKey`]) and a longest row 20-300 times the mean, as in the masks of
/// issue 17's review.
pub const GRID_POWER_LAW: f64 = 1.5;

impl Problem {
    /// Whether the problem can be tuned: positive sizes, a density in (0, 1], and on a
    /// mask ([`RowSkew::Mask`]) the mask's own shape and density.
    ///
    /// ```
    /// use rosa::bench::mask::Mask;
    /// use rosa::tune::{Problem, RowSkew};
    /// use rosa::{CsrShape, DType, Op};
    /// let pattern = rosa::random::csr::<f32>(30, 20, 0.1, 1).unwrap();
    /// let density = pattern.density();
    /// let p = Problem { op: Op::Spmm, dtype: DType::F32, m: 30, k: 20, n: 8, density,
    ///     skew: RowSkew::Mask(Mask::new("m", pattern)) };
    /// assert!(p.validate().is_ok());
    /// assert!(Problem { k: 21, ..p.clone() }.validate().is_err());
    /// assert!(Problem { density: 0.0, skew: RowSkew::Uniform, ..p }.validate().is_err());
    /// ```
    pub fn validate(&self) -> Result<()> {
        if self.m == 0 || self.k == 0 || self.n == 0 || !(self.density > 0.0 && self.density <= 1.0)
        {
            return Err(Error::InvalidArgument(format!(
                "cannot tune a {}x{}x{} problem at density {}: sizes must be positive \
                 and the density in (0, 1]",
                self.m, self.k, self.n, self.density
            )));
        }
        if let RowSkew::Mask(mask) = &self.skew {
            let a = mask.pattern();
            if (a.rows(), a.cols(), a.density()) != (self.m, self.k, self.density) {
                return Err(Error::InvalidArgument(format!(
                    "mask {} is {}x{} at density {}, the problem {}x{} at {} (build mask \
                     problems with rosa::tune::mask_problems)",
                    mask.name(),
                    a.rows(),
                    a.cols(),
                    a.density(),
                    self.m,
                    self.k,
                    self.density
                )));
            }
        }
        Ok(())
    }

    /// The problem's sparse operand from `seed`: a random `m x k` CSR at `density` with
    /// the problem's row spread, or the mask's pattern with random values (uniform in
    /// `[-1, 1)`, [`crate::random::values_on`]). Errors as [`crate::random::csr`] and
    /// [`crate::random::csr_power_law`] do, and as [`Problem::validate`] on a mask.
    ///
    /// ```
    /// use rosa::tune::{Problem, RowSkew};
    /// use rosa::{CsrShape, DType, Op};
    /// let p = Problem { op: Op::Spmm, dtype: DType::F32, m: 1000, k: 1000, n: 64, density: 0.02, skew: RowSkew::PowerLaw(1.5) };
    /// let a = p.mask::<f32>(1).unwrap();
    /// assert!(a.row_stats().cv > 1.0);
    /// ```
    pub fn mask<T: crate::Scalar>(&self, seed: u64) -> crate::Result<crate::Csr<T>> {
        match self.skew {
            RowSkew::Uniform => crate::random::csr(self.m, self.k, self.density, seed),
            RowSkew::PowerLaw(e) => {
                crate::random::csr_power_law(self.m, self.k, self.density, e, seed)
            }
            RowSkew::Mask(ref mask) => {
                self.validate()?;
                crate::random::values_on(mask.pattern(), seed)
            }
        }
    }

    /// The key the problem's entry is stored under: [`ProblemKey::for_matrix`] on its
    /// operand. On a mask that is the mask's own key, the one a launch on it looks up
    /// (`DeviceCsr::problem_key` and `DeviceMask::problem_key` compute the same from the
    /// same rows); a random mask's row spread is only known once drawn, so for
    /// [`RowSkew::Uniform`] and [`RowSkew::PowerLaw`] this is `None`.
    ///
    /// ```
    /// use rosa::bench::mask::Mask;
    /// use rosa::tune::{Problem, ProblemKey, RowSkew};
    /// use rosa::{CsrShape, DType, Op};
    /// let pattern = rosa::random::csr_power_law::<f32>(300, 200, 0.05, 1.5, 1).unwrap();
    /// let want = ProblemKey::for_matrix(Op::Sddmm, DType::Bf16, &pattern, 64);
    /// let p = Problem { op: Op::Sddmm, dtype: DType::Bf16, m: 300, k: 200, n: 64,
    ///     density: pattern.density(), skew: RowSkew::Mask(Mask::new("m", pattern)) };
    /// assert_eq!(p.key(), Some(want));
    /// assert_eq!(Problem { skew: RowSkew::Uniform, ..p }.key(), None);
    /// ```
    pub fn key(&self) -> Option<ProblemKey> {
        match &self.skew {
            RowSkew::Mask(mask) => Some(ProblemKey::for_matrix(
                self.op,
                self.dtype,
                mask.pattern(),
                self.n,
            )),
            RowSkew::Uniform | RowSkew::PowerLaw(_) => None,
        }
    }
}

/// How thorough a search is.
///
/// ```
/// use rosa::tune::{grid, Effort};
/// use rosa::{DType, Op};
/// let quick = grid(&Op::ALL, &[DType::F32], Effort::Quick).len();
/// assert!(quick < grid(&Op::ALL, &[DType::F32], Effort::Full).len());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effort {
    /// Part of the grid, shorter measurements: minutes become seconds (the GPU runner's).
    Quick,
    /// The whole grid.
    Full,
}

impl Effort {
    /// How long one configuration's measurement keeps repeating, and at most how many
    /// timed batches it takes (the GPU bench's minimum of five batches still holds).
    /// Short on purpose: five configurations per problem over the grid must fit in about
    /// a minute, and a batch already averages over many calls.
    ///
    /// ```
    /// use rosa::tune::Effort;
    /// assert!(Effort::Quick.limits().0 < Effort::Full.limits().0);
    /// ```
    pub fn limits(self) -> (Duration, usize) {
        match self {
            Effort::Quick => (Duration::from_millis(3), 8),
            Effort::Full => (Duration::from_millis(10), 20),
        }
    }

    /// The dense widths N tuned at: all of [`crate::bench::GRID_N`], or its smallest for
    /// [`Effort::Quick`].
    ///
    /// ```
    /// use rosa::tune::Effort;
    /// assert_eq!(Effort::Quick.widths(), &[512]);
    /// assert_eq!(Effort::Full.widths(), &rosa::bench::GRID_N);
    /// ```
    pub fn widths(self) -> &'static [usize] {
        match self {
            Effort::Quick => &GRID_N[..1],
            Effort::Full => &GRID_N,
        }
    }
}

/// The problems `rosa tune` measures: the benchmark grid ([`crate::bench::GRID_SHAPES`],
/// [`crate::bench::GRID_N`], [`crate::bench::GRID_DENSITIES`]) for each op and dtype,
/// each point twice: on a mask with uniform row lengths and on a power-law one
/// ([`GRID_POWER_LAW`]), whose keys fall in other spread buckets. [`Effort::Quick`] keeps
/// the square shape, the smallest width, every other density and the power-law mask at
/// the middle one of those: enough buckets for the nearest-key lookup to reach the rest,
/// in about the time the GPU runner gives it. Problems sharing a shape and dtype come
/// together, so that the search (`tune`, feature `cuda`) generates and uploads their
/// operands once.
///
/// ```
/// use rosa::tune::{grid, Effort, RowSkew};
/// use rosa::{DType, Op};
/// assert_eq!(grid(&Op::ALL, &[DType::F32, DType::Bf16], Effort::Full).len(), 648);
/// let quick = grid(&[Op::Spmm, Op::Spmm], &[DType::F32], Effort::Quick);
/// assert_eq!(quick.len(), 4); // repeated ops count once
/// assert_eq!(quick.iter().filter(|p| p.skew == RowSkew::Uniform).count(), 3);
/// ```
pub fn grid(ops: &[Op], dtypes: &[DType], effort: Effort) -> Vec<Problem> {
    let (shapes, widths, densities): (&[(usize, usize)], &[usize], Vec<f64>) = match effort {
        Effort::Full => (&GRID_SHAPES, effort.widths(), GRID_DENSITIES.to_vec()),
        Effort::Quick => (
            &GRID_SHAPES[..1],
            effort.widths(),
            GRID_DENSITIES.iter().copied().step_by(2).collect(),
        ),
    };
    let skewed = |i: usize| effort == Effort::Full || i == densities.len() / 2;
    let ops = distinct(ops);
    let mut problems = Vec::new();
    for dtype in distinct(dtypes) {
        for &(m, k) in shapes {
            for &n in widths {
                for (i, &density) in densities.iter().enumerate() {
                    let skews = [RowSkew::Uniform, RowSkew::PowerLaw(GRID_POWER_LAW)];
                    for skew in &skews[..1 + usize::from(skewed(i))] {
                        problems.extend(ops.iter().map(|&op| Problem {
                            op,
                            dtype,
                            m,
                            k,
                            n,
                            density,
                            skew: skew.clone(),
                        }));
                    }
                }
            }
        }
    }
    problems
}

/// The problems `rosa tune --mask` measures: each mask's pattern ([`RowSkew::Mask`]) for
/// each op and dtype at [`Effort::widths`] (the widths the grid uses), so that the
/// winners land under the keys these masks' own launches look up ([`Problem::key`]: the
/// mask's shape, density and row-length spread buckets, not a random mask's).
///
/// Masks sharing a shape come together (the search uploads the dense operands once per
/// shape). A problem whose key an earlier one already has is left out: the cache keeps
/// one choice per key, so the first mask of a bucket speaks for the others (the MiniLM
/// masks' `attention.output.dense`, `self.key` and `self.query` share every key).
///
/// ```
/// use rosa::bench::mask::Mask;
/// use rosa::tune::{mask_problems, Effort, RowSkew};
/// use rosa::{DType, Op};
/// let a = Mask::new("a", rosa::random::csr_power_law::<f32>(300, 200, 0.05, 1.5, 1).unwrap());
/// let b = Mask::new("b", rosa::random::csr::<f32>(300, 200, 0.05, 2).unwrap());
/// let problems = mask_problems(&[a.clone(), b, a], &Op::ALL, &[DType::F32], Effort::Quick);
/// assert_eq!(problems.len(), 6); // 2 distinct keys (the repeat of `a` adds none) x 3 ops
/// assert!(problems.iter().all(|p| matches!(p.skew, RowSkew::Mask(_)) && p.n == 512));
/// ```
pub fn mask_problems(masks: &[Mask], ops: &[Op], dtypes: &[DType], effort: Effort) -> Vec<Problem> {
    let shape = |m: &Mask| (m.pattern().rows(), m.pattern().cols());
    let mut order: Vec<&Mask> = masks.iter().collect();
    order.sort_by_key(|m| shape(m)); // stable: masks of one shape keep their order
    let ops = distinct(ops);
    let mut problems: Vec<Problem> = Vec::new();
    let mut seen: Vec<ProblemKey> = Vec::new();
    for dtype in distinct(dtypes) {
        for &n in effort.widths() {
            for mask in &order {
                let (a, cv) = (mask.pattern(), mask.pattern().row_stats().cv);
                for &op in &ops {
                    let key = ProblemKey::new(op, dtype, a.rows(), a.cols(), n, a.density(), cv);
                    if seen.contains(&key) {
                        continue;
                    }
                    seen.push(key);
                    let p = Problem {
                        op,
                        dtype,
                        m: a.rows(),
                        k: a.cols(),
                        n,
                        density: a.density(),
                        skew: RowSkew::Mask((*mask).clone()),
                    };
                    problems.push(p);
                }
            }
        }
    }
    problems
}

/// `items` without repeats, in first-seen order.
fn distinct<T: PartialEq + Copy>(items: &[T]) -> Vec<T> {
    let mut out: Vec<T> = Vec::new();
    for &x in items {
        if !out.contains(&x) {
            out.push(x);
        }
    }
    out
}

/// Where a search stands: handed to the progress callback after each problem, so that the
/// caller draws what it likes and the library prints nothing.
///
/// ```
/// use rosa::tune::Progress;
/// fn percent(p: &Progress<'_>) -> usize {
///     100 * p.done / p.total.max(1)
/// }
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Progress<'a> {
    /// Problems finished, this one included.
    pub done: usize,
    /// Problems in the search.
    pub total: usize,
    /// The problem just finished.
    pub problem: &'a Problem,
    /// Its result.
    pub entry: &'a TuneEntry,
}

#[cfg(feature = "cuda")]
pub use gpu::{tune, tune_matrix};

#[cfg(feature = "cuda")]
mod gpu {
    use std::time::Duration;

    use super::{Effort, Problem, Progress, RowSkew, TuneEntry};
    use crate::bench::gpu::{l2_bytes, rotation_sets, time_interleaved};
    use crate::bench::op_bytes;
    use crate::cuda::{self, CudaScalar, Device, DeviceCsr, DeviceDense, KernelConfig};
    use crate::tune::ProblemKey;
    use crate::{random, with_dtype, Csr, CsrShape, Error, MatRef, Op, Result};

    /// Share of the GPU's memory the operand copies may fill.
    const MEMORY_SHARE: f64 = 0.8;
    /// Seed of the random operands: a fixed one, so that two runs time the same data.
    const SEED: u64 = 0x7u64 << 32;

    /// Tunes every problem on `dev`, in order, calling `progress` after each; the entries
    /// come back in the problems' order (merge them into a cache with
    /// [`crate::tune::TuneCache::merge_into_file`]).
    ///
    /// Errors on a problem that [`Problem::validate`] refuses (a zero size, a density
    /// outside (0, 1], a mask of another shape or density), on operands that do not fit
    /// in the GPU's memory, and on any failed CUDA call. While it times,
    /// cudarc's event tracking is paused on `dev`'s context, as in
    /// [`crate::bench::gpu::run`].
    ///
    /// ```no_run
    /// use rosa::tune::{grid, tune, Effort};
    /// use rosa::{DType, Op};
    /// let dev = rosa::cuda::Device::new(0)?;
    /// let problems = grid(&[Op::Spmm], &[DType::Bf16], Effort::Quick);
    /// let entries = tune(&dev, &problems, Effort::Quick, |p| eprintln!("{}/{}", p.done, p.total))?;
    /// for e in &entries {
    ///     println!("{:?}: {} is {:.2}x the heuristic", e.key, e.config_name, e.heuristic_us / e.tuned_us);
    /// }
    /// # Ok::<(), rosa::Error>(())
    /// ```
    pub fn tune(
        dev: &Device,
        problems: &[Problem],
        effort: Effort,
        mut progress: impl FnMut(Progress<'_>),
    ) -> Result<Vec<TuneEntry>> {
        for p in problems {
            p.validate()?;
        }
        let mut entries = Vec::with_capacity(problems.len());
        let mut start = 0;
        while start < problems.len() {
            let first = &problems[start];
            let same =
                |p: &Problem| (p.dtype, p.m, p.k, p.n) == (first.dtype, first.m, first.k, first.n);
            let len = problems[start..].iter().take_while(|p| same(p)).count();
            let group = &problems[start..start + len];
            with_dtype!(first.dtype, T => tune_group::<T>(dev, group, effort, &mut |i, e| {
                entries.push(e);
                let entry = entries.last().expect("just pushed");
                progress(Progress { done: start + i + 1, total: problems.len(), problem: &group[i], entry });
            }))?;
            start += len;
        }
        Ok(entries)
    }

    /// Tunes `op` on a concrete matrix `a` with dense dimension `n` (random dense
    /// operands): for a model's own masks, whose row lengths the grid's random ones may not
    /// resemble.
    ///
    /// ```no_run
    /// use rosa::tune::{tune_matrix, Effort};
    /// let dev = rosa::cuda::Device::new(0)?;
    /// let mask = rosa::random::csr::<rosa::bf16>(4096, 4096, 0.01, 1)?;
    /// let entry = tune_matrix(&dev, rosa::Op::Sddmm, &mask, 512, Effort::Quick)?;
    /// println!("{} at {:.1} us", entry.config_name, entry.tuned_us);
    /// # Ok::<(), rosa::Error>(())
    /// ```
    pub fn tune_matrix<T: CudaScalar>(
        dev: &Device,
        op: Op,
        a: &Csr<T>,
        n: usize,
        effort: Effort,
    ) -> Result<TuneEntry> {
        if a.rows() == 0 || a.cols() == 0 || a.nnz() == 0 || n == 0 {
            return Err(Error::InvalidArgument(format!(
                "cannot tune a {}x{} matrix with {} entries at n = {n}: nothing to time",
                a.rows(),
                a.cols(),
                a.nnz()
            )));
        }
        let mut bench = Bench::<T>::new(
            dev,
            a.rows(),
            a.cols(),
            n,
            &[op],
            (a.nnz(), a.nnz()),
            effort,
        )?;
        bench.load(a)?;
        bench.tune(op, a)
    }

    /// Tunes problems that share a dtype and shape: one set of dense operands for all,
    /// one random CSR per density for all ops at it.
    fn tune_group<T: CudaScalar>(
        dev: &Device,
        group: &[Problem],
        effort: Effort,
        done: &mut impl FnMut(usize, TuneEntry),
    ) -> Result<()> {
        let (m, k, n) = (group[0].m, group[0].k, group[0].n);
        let nnz_of = |d: f64| (d * m as f64 * k as f64).round() as usize;
        let nnz = group.iter().map(|p| nnz_of(p.density));
        let range = (nnz.clone().min().unwrap_or(0), nnz.max().unwrap_or(0));
        let ops: Vec<Op> = group.iter().map(|p| p.op).collect();
        let mut bench = Bench::<T>::new(dev, m, k, n, &ops, range, effort)?;
        let mut current: Option<(f64, &RowSkew, Csr<T>)> = None;
        for (i, p) in group.iter().enumerate() {
            if current
                .as_ref()
                .is_none_or(|(d, s, _)| (*d, *s) != (p.density, &p.skew))
            {
                let a = p.mask::<T>(SEED ^ p.density.to_bits())?;
                bench.load(&a)?;
                current = Some((p.density, &p.skew, a));
            }
            let (_, _, a) = current.as_ref().expect("loaded above");
            done(i, bench.tune(p.op, a)?);
        }
        Ok(())
    }

    /// One copy of the dense operands; every op reads and writes its own pair.
    struct DenseSet<T> {
        /// K x N: B of SpMM, R of SDDMM.
        b_k: DeviceDense<T>,
        /// M x N: B of A^T B, L of SDDMM.
        b_m: DeviceDense<T>,
        /// M x N: C of SpMM.
        c_m: DeviceDense<T>,
        /// K x N: C of A^T B.
        c_k: DeviceDense<T>,
    }

    /// The rotating operand copies of one shape, and the current matrix in each copy.
    struct Bench<'a, T> {
        dev: &'a Device,
        n: usize,
        effort: Effort,
        dense: Vec<DenseSet<T>>,
        /// One copy of the current matrix per dense copy (SDDMM writes into its values;
        /// the products' speed does not depend on them).
        a: Vec<DeviceCsr<T>>,
    }

    impl<'a, T: CudaScalar> Bench<'a, T> {
        /// Allocates as many copies as [`rotation_sets`] asks for the smallest call among
        /// `ops` at `nnz.0` entries, sized for `nnz.1`.
        fn new(
            dev: &'a Device,
            m: usize,
            k: usize,
            n: usize,
            ops: &[Op],
            nnz: (usize, usize),
            effort: Effort,
        ) -> Result<Self> {
            let s = T::DTYPE.size();
            let call_bytes = ops
                .iter()
                .map(|&op| op_bytes(op, m, k, n, nnz.0, s) as usize)
                .min()
                .unwrap_or(1);
            // A copy: the CSR with its plan and swizzles, four dense operands.
            let set_bytes = nnz.1 * (s + 12) + 8 * (m + k + 2) + 2 * s * (m + k) * n;
            let memory = (dev.info()?.total_memory as f64 * MEMORY_SHARE) as usize;
            if set_bytes > memory {
                return Err(Error::InvalidArgument(format!(
                    "tuning {m}x{k}x{n} in {} needs about {:.1} GiB of GPU memory, more than \
                     {:.0}% of what is there",
                    T::DTYPE,
                    set_bytes as f64 / (1u64 << 30) as f64,
                    MEMORY_SHARE * 100.0
                )));
            }
            let l2 = l2_bytes(dev)?;
            let sets = rotation_sets(call_bytes, l2, set_bytes, memory);
            // One random buffer serves both inputs (as its first k or m rows).
            let host = random::dense::<T>(m.max(k), n, SEED);
            let rows = |r: usize| MatRef::new(&host.as_slice()[..r * n], r, n);
            let dense = (0..sets)
                .map(|_| {
                    Ok(DenseSet {
                        b_k: DeviceDense::from_host(dev, rows(k)?)?,
                        b_m: DeviceDense::from_host(dev, rows(m)?)?,
                        c_m: DeviceDense::zeros(dev, m, n)?,
                        c_k: DeviceDense::zeros(dev, k, n)?,
                    })
                })
                .collect::<Result<_>>()?;
            Ok(Bench {
                dev,
                n,
                effort,
                dense,
                a: Vec::new(),
            })
        }

        /// Uploads `a` into every copy (the old copies are freed first).
        fn load(&mut self, a: &Csr<T>) -> Result<()> {
            self.a.clear();
            for _ in 0..self.dense.len() {
                self.a.push(DeviceCsr::from_host(self.dev, a.as_ref())?);
            }
            Ok(())
        }

        /// One call of `op` with `config` on copy `i`.
        fn call(&mut self, op: Op, config: &KernelConfig, i: usize) -> Result<()> {
            let (dev, d, a) = (self.dev, &mut self.dense[i], &mut self.a[i]);
            match op {
                Op::Spmm => cuda::spmm_with(dev, config, 1.0, a, &d.b_k, 0.0, &mut d.c_m),
                Op::SpmmT => cuda::spmm_t_with(dev, config, 1.0, a, &d.b_m, 0.0, &mut d.c_k),
                Op::Sddmm => cuda::sddmm_with(dev, config, 1.0, &d.b_m, &d.b_k, 0.0, a),
            }
        }

        /// Times every configuration of `op` on the loaded matrix (`a` is its host copy,
        /// for the key), then the winner against the heuristic again, interleaved.
        fn tune(&mut self, op: Op, a: &Csr<T>) -> Result<TuneEntry> {
            let (target, max_runs) = self.effort.limits();
            let (dev, sets) = (self.dev, self.dense.len());
            let heuristic = KernelConfig::heuristic(op, T::DTYPE, self.n);
            let mut times = Vec::new();
            for config in KernelConfig::all(op) {
                let mut call = |i| self.call(op, &config, i);
                let t = time_interleaved(dev, target, max_runs, sets, &mut [&mut call])?;
                times.push((config, t[0].per_call));
            }
            let (best, _) = times
                .iter()
                .copied()
                .min_by(|x, y| x.1.cmp(&y.1))
                .ok_or_else(|| Error::Unsupported(format!("{op} has no compiled configuration")))?;
            if !times.iter().any(|(c, _)| c.index == heuristic.index) {
                return Err(Error::Unsupported(format!(
                    "the heuristic's {heuristic} is not in the table"
                )));
            }
            // The re-timing: twice the search's time per configuration, the two sharing
            // every round.
            let (tuned, base) = if best.index == heuristic.index {
                let t = time_interleaved(
                    dev,
                    2 * target,
                    2 * max_runs,
                    sets,
                    &mut [&mut |i| self.call(op, &heuristic, i)],
                )?;
                (t[0].per_call, t[0].per_call)
            } else {
                // Two closures over `self` at once: take turns through a RefCell.
                let this = std::cell::RefCell::new(&mut *self);
                let t = time_interleaved(
                    dev,
                    2 * target,
                    2 * max_runs,
                    sets,
                    &mut [&mut |i| this.borrow_mut().call(op, &best, i), &mut |i| {
                        this.borrow_mut().call(op, &heuristic, i)
                    }],
                )?;
                (t[0].per_call, t[1].per_call)
            };
            // A cache holds positive times only; a call below the events' resolution
            // still took some time.
            let us = |t: Duration| (t.as_secs_f64() * 1e6).max(1e-3);
            let (config, tuned_us) = if tuned < base {
                (best, us(tuned))
            } else {
                (heuristic, us(base))
            };
            Ok(TuneEntry {
                key: ProblemKey::for_matrix(op, T::DTYPE, a, self.n),
                config: config.index,
                config_name: config.name(),
                tuned_us,
                heuristic_us: us(base),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tune::ProblemKey;

    #[test]
    fn grid_problems_have_distinct_keys_and_come_grouped_by_shape() {
        for effort in [Effort::Quick, Effort::Full] {
            let problems = grid(&Op::ALL, &[DType::F32, DType::Bf16], effort);
            let mut keys: Vec<ProblemKey> = problems
                .iter()
                .map(|p| {
                    // Any CV of the skewed masks (1.7-5 on the grid, see
                    // `power_law_masks_keep_their_density_and_skew` in tests/csr.rs)
                    // lies in another spread bucket than the uniform ones' (< 0.5).
                    let cv = match p.skew {
                        RowSkew::Uniform => 0.0,
                        RowSkew::PowerLaw(_) => 1.7,
                        RowSkew::Mask(_) => unreachable!("the grid has no given masks"),
                    };
                    ProblemKey::new(p.op, p.dtype, p.m, p.k, p.n, p.density, cv)
                })
                .collect();
            keys.sort();
            keys.dedup();
            assert_eq!(
                keys.len(),
                problems.len(),
                "{effort:?}: two problems share a key"
            );
            // Each (dtype, shape) group is contiguous, so its operands are made once.
            let group = |p: &Problem| (p.dtype, p.m, p.k, p.n);
            let mut seen = Vec::new();
            for w in problems.windows(2) {
                if group(&w[0]) != group(&w[1]) {
                    seen.push(group(&w[0]));
                    assert!(
                        !seen.contains(&group(&w[1])),
                        "{effort:?}: a group is split"
                    );
                }
            }
        }
        // 3 ops x (3 uniform densities + 1 power-law).
        assert_eq!(grid(&Op::ALL, &[DType::F32], Effort::Quick).len(), 12);
        assert!(grid(&[], &[DType::F32], Effort::Full).is_empty());
    }
}
