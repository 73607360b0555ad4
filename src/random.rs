//! Seeded random matrices for benchmarks, the command line and tests.
//!
//! A small SplitMix64 generator keeps the crate free of an RNG dependency and makes every
//! matrix reproducible from its seed on every platform.

use crate::{Csr, Dense, Error, Result, Scalar};

/// A SplitMix64 pseudo-random generator: fast, seedable, statistically fine for test data.
///
/// ```
/// use rosa::random::Rng;
/// let mut a = Rng::new(7);
/// let mut b = Rng::new(7);
/// assert_eq!(a.next_u64(), b.next_u64());
/// let x = a.uniform(-1.0, 1.0);
/// assert!((-1.0..1.0).contains(&x));
/// ```
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in `[lo, hi)`.
    pub fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * self.next_f64() as f32
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        // Multiply-shift: unbiased enough for test data and free of division.
        ((self.next_u64() as u128 * n as u128) >> 64) as usize
    }
}

/// A dense matrix with entries uniform in `[-1, 1)`.
///
/// ```
/// let d = rosa::random::dense::<f32>(3, 4, 1);
/// assert_eq!((d.rows(), d.cols()), (3, 4));
/// ```
pub fn dense<T: Scalar>(rows: usize, cols: usize, seed: u64) -> Dense<T> {
    let mut rng = Rng::new(seed);
    Dense::from_fn(rows, cols, |_, _| T::from_f32(rng.uniform(-1.0, 1.0)))
}

/// `pattern`'s structure with fresh values uniform in `[-1, 1)`, seeded: a fixed sparsity
/// pattern (such as a mask read with [`crate::io::read_mtx_pattern`]) as a benchmark
/// operand. Errors: none in practice (the value count always equals `pattern`'s nnz).
///
/// ```
/// use rosa::CsrShape;
/// let p = rosa::random::csr::<f32>(20, 30, 0.2, 1).unwrap();
/// let a = rosa::random::values_on::<rosa::f16, _>(&p, 2).unwrap();
/// assert_eq!((a.row_ptr(), a.col_idx()), (p.row_ptr(), p.col_idx()));
/// assert!(a.values().iter().all(|v| v.to_f32().abs() <= 1.0));
/// ```
pub fn values_on<T: Scalar, U: Scalar>(pattern: &Csr<U>, seed: u64) -> Result<Csr<T>> {
    let mut rng = Rng::new(seed);
    let nnz = pattern.values().len();
    pattern.with_values(
        (0..nnz)
            .map(|_| T::from_f32(rng.uniform(-1.0, 1.0)))
            .collect(),
    )
}

/// A sparse matrix with about `density * rows * cols` entries, values uniform in
/// `[-1, 1)`, and the same expected length for every row.
///
/// Each row draws its length from a binomial-like spread around the mean, then distinct
/// sorted columns. `density` must lie in `[0, 1]`.
///
/// ```
/// use rosa::CsrShape;
/// let a = rosa::random::csr::<f32>(100, 200, 0.05, 3).unwrap();
/// assert!((a.density() - 0.05).abs() < 0.01);
/// ```
pub fn csr<T: Scalar>(rows: usize, cols: usize, density: f64, seed: u64) -> Result<Csr<T>> {
    check_random_shape(rows, cols, density)?;
    let mut rng = Rng::new(seed);
    let lens: Vec<usize> = (0..rows)
        .map(|_| stochastic_round(&mut rng, density * cols as f64).min(cols))
        .collect();
    from_row_lengths(rows, cols, &lens, &mut rng)
}

/// A sparse matrix with about `density * rows * cols` entries whose row lengths follow a
/// power law: row `i` gets a share of the entries proportional to `u_i^(-1 / exponent)`,
/// `u_i` uniform in (0, 1] (a Pareto tail of index `exponent`); a row whose share would
/// exceed `cols` is full and its excess goes to the others, so the expected total stays
/// `density * rows * cols`. Values are uniform in `[-1, 1)`.
///
/// Why: masks chosen by gradient magnitude concentrate on a few channels, so some rows
/// are tens of times the mean (issue 17's review: a row of 800 nonzeros at 1-2% density).
/// A smaller `exponent` is heavier-tailed; at 1.5 the coefficient of variation of the row
/// lengths is above 1, against about 0.1-0.3 for [`csr`]. `exponent` must be positive and
/// finite, `density` in `[0, 1]`.
///
/// ```
/// use rosa::CsrShape;
/// let a = rosa::random::csr_power_law::<f32>(2000, 2000, 0.01, 1.5, 7).unwrap();
/// let stats = a.row_stats();
/// assert!((a.density() - 0.01).abs() < 0.002);
/// assert!(stats.cv > 1.0 && stats.max as f64 > 10.0 * stats.mean);
/// ```
pub fn csr_power_law<T: Scalar>(
    rows: usize,
    cols: usize,
    density: f64,
    exponent: f64,
    seed: u64,
) -> Result<Csr<T>> {
    check_random_shape(rows, cols, density)?;
    if !(exponent > 0.0 && exponent.is_finite()) {
        return Err(Error::InvalidArgument(format!(
            "power-law exponent {exponent} must be positive and finite"
        )));
    }
    let mut rng = Rng::new(seed);
    // 1 - next_f64() lies in (0, 1], so every weight is finite.
    let weights: Vec<f64> = (0..rows)
        .map(|_| (1.0 - rng.next_f64()).powf(-1.0 / exponent))
        .collect();
    // Rows whose share would exceed `cols` are full; the rest share what is left. Each
    // pass fills at least one more row, and only the heaviest few ever are.
    let nnz = density * rows as f64 * cols as f64;
    let mut full = vec![false; rows];
    let (budget, free) = loop {
        let free: f64 = weights
            .iter()
            .zip(&full)
            .filter(|(_, &f)| !f)
            .map(|(w, _)| w)
            .sum();
        let filled = full.iter().filter(|&&f| f).count();
        let budget = (nnz - (filled * cols) as f64).max(0.0);
        let mut more = false;
        for (w, f) in weights.iter().zip(full.iter_mut()) {
            if !*f && budget * w / free >= cols as f64 {
                *f = true;
                more = true;
            }
        }
        if !more {
            break (budget, free);
        }
    };
    let lens: Vec<usize> = weights
        .iter()
        .zip(&full)
        .map(|(&w, &f)| {
            if f {
                return cols;
            }
            stochastic_round(&mut rng, budget * w / free).min(cols)
        })
        .collect();
    from_row_lengths(rows, cols, &lens, &mut rng)
}

/// The checks of the random CSR generators, before any per-row allocation: `usize::MAX`
/// rows must be an error, not an allocation failure.
fn check_random_shape(rows: usize, cols: usize, density: f64) -> Result<()> {
    if !(0.0..=1.0).contains(&density) {
        return Err(Error::InvalidArgument(format!(
            "density {density} is outside [0, 1]"
        )));
    }
    crate::csr::check_index("rows", rows)?;
    crate::csr::check_index("cols", cols)
}

/// `x` (>= 0) rounded up with probability equal to its fractional part, so that summed row
/// lengths keep their expected total exact even for short rows.
fn stochastic_round(rng: &mut Rng, x: f64) -> usize {
    let base = x.floor();
    base as usize + usize::from(rng.next_f64() < x - base)
}

/// A sparse matrix whose row `i` holds exactly `lens[i]` entries (at most `cols`) in
/// random distinct columns, values uniform in `[-1, 1)`: for skewed and empty rows.
///
/// ```
/// use rosa::{random, CsrShape};
/// let a = random::csr_with_row_lengths::<f32>(3, 50, &[0, 50, 2], 9).unwrap();
/// assert_eq!((a.row_len(0), a.row_len(1), a.row_len(2)), (0, 50, 2));
/// ```
pub fn csr_with_row_lengths<T: Scalar>(
    rows: usize,
    cols: usize,
    lens: &[usize],
    seed: u64,
) -> Result<Csr<T>> {
    if lens.len() != rows {
        return Err(Error::InvalidArgument(format!(
            "{} row lengths given for {rows} rows",
            lens.len()
        )));
    }
    let lens: Vec<usize> = lens.iter().map(|&l| l.min(cols)).collect();
    from_row_lengths(rows, cols, &lens, &mut Rng::new(seed))
}

fn from_row_lengths<T: Scalar>(
    rows: usize,
    cols: usize,
    lens: &[usize],
    rng: &mut Rng,
) -> Result<Csr<T>> {
    crate::csr::check_index("cols", cols)?;
    let nnz: usize = lens.iter().sum();
    crate::csr::check_index("nnz", nnz)?;
    let mut row_ptr = Vec::with_capacity(rows + 1);
    row_ptr.push(0i32);
    let mut col_idx = Vec::with_capacity(nnz);
    let mut picked = Vec::new();
    let mut seen = vec![false; cols];
    for &len in lens {
        picked.clear();
        if len * 2 > cols {
            // Dense row: a partial Fisher-Yates shuffle picks `len` distinct columns.
            let mut all: Vec<usize> = (0..cols).collect();
            for i in 0..len {
                let j = i + rng.below(cols - i);
                all.swap(i, j);
            }
            picked.extend_from_slice(&all[..len]);
        } else {
            // Sparse row: rejection sampling of distinct columns.
            while picked.len() < len {
                let c = rng.below(cols);
                if !std::mem::replace(&mut seen[c], true) {
                    picked.push(c);
                }
            }
            picked.iter().for_each(|&c| seen[c] = false);
        }
        picked.sort_unstable();
        col_idx.extend(picked.iter().map(|&c| c as i32));
        row_ptr.push(col_idx.len() as i32);
    }
    let values = (0..nnz)
        .map(|_| T::from_f32(rng.uniform(-1.0, 1.0)))
        .collect();
    Csr::from_parts(rows, cols, row_ptr, col_idx, values)
}
