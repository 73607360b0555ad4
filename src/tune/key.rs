//! Problem keys: which tuned choice applies to a launch.
//!
//! The best tile depends on the shape, the density and how unevenly the nonzeros spread
//! over the rows, so a key buckets all of them. Buckets are coarse (octaves of size,
//! half-octaves of density) so that one tuning run covers the shapes a model meets.

use serde::{Deserialize, Serialize};

use crate::{DType, Op, RowStats};

/// A bucketed description of one sparse product, the unit the tuner stores.
///
/// For SpMM and transposed SpMM, `m x k` is the sparse operand and `n` the dense width;
/// for SDDMM, `m x k` is the mask and `n` the inner dimension of the dense factors.
///
/// ```
/// use rosa::tune::ProblemKey;
/// use rosa::{DType, Op};
/// let a = ProblemKey::new(Op::Spmm, DType::F32, 4096, 4096, 512, 0.01, 0.1);
/// let b = ProblemKey::new(Op::Spmm, DType::F32, 4000, 4200, 500, 0.011, 0.12);
/// assert_eq!(a, b); // the same buckets
/// let c = ProblemKey::new(Op::Spmm, DType::F32, 4096, 4096, 8192, 0.01, 0.1);
/// assert_eq!(a.distance(&c), Some(4));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ProblemKey {
    pub op: Op,
    pub dtype: DType,
    /// round(log2(m)), 0 for an empty dimension.
    pub m: u8,
    /// round(log2(k)).
    pub k: u8,
    /// round(log2(n)).
    pub n: u8,
    /// round(-2 log2(density)): half-octaves below 1 (0 is dense, 20 is about 0.1%).
    pub density: u8,
    /// Row-length spread: 0 for cv < 0.25, 1 below 0.5, 2 below 1, 3 below 2, 4 beyond.
    pub spread: u8,
}

fn log2_bucket(x: usize) -> u8 {
    if x == 0 {
        0
    } else {
        (x as f64).log2().round().clamp(0.0, 63.0) as u8
    }
}

fn density_bucket(d: f64) -> u8 {
    if d > 0.0 {
        (-2.0 * d.min(1.0).log2()).round().clamp(0.0, 80.0) as u8
    } else {
        80
    }
}

fn spread_bucket(cv: f64) -> u8 {
    [0.25, 0.5, 1.0, 2.0]
        .iter()
        .position(|&edge| cv < edge)
        .unwrap_or(4) as u8
}

impl ProblemKey {
    /// The key of a problem; `density` is nnz / (m k) and `cv` the coefficient of
    /// variation of the row lengths (see [`RowStats`]).
    pub fn new(op: Op, dtype: DType, m: usize, k: usize, n: usize, density: f64, cv: f64) -> Self {
        ProblemKey {
            op,
            dtype,
            m: log2_bucket(m),
            k: log2_bucket(k),
            n: log2_bucket(n),
            density: density_bucket(density),
            spread: spread_bucket(cv),
        }
    }

    /// The key of a product with a sparse operand described by its row statistics.
    ///
    /// ```
    /// use rosa::tune::ProblemKey;
    /// use rosa::{random, CsrShape, DType, Op};
    /// let a = random::csr::<f32>(256, 512, 0.02, 1).unwrap();
    /// let key = ProblemKey::for_matrix(Op::Spmm, DType::F32, &a, 64);
    /// assert_eq!((key.m, key.k, key.n), (8, 9, 6));
    /// ```
    pub fn for_matrix(op: Op, dtype: DType, a: &impl crate::CsrShape, n: usize) -> Self {
        let stats: RowStats = a.row_stats();
        Self::new(op, dtype, a.rows(), a.cols(), n, a.density(), stats.cv)
    }

    /// How far apart two keys are (sum of bucket differences, density and spread
    /// counting double since they move the best tile most), or `None` across ops or
    /// dtypes, where no tuned choice carries over.
    pub fn distance(&self, other: &ProblemKey) -> Option<u32> {
        if self.op != other.op || self.dtype != other.dtype {
            return None;
        }
        let d = |a: u8, b: u8| u32::from(a.abs_diff(b));
        Some(
            d(self.m, other.m)
                + d(self.k, other.k)
                + d(self.n, other.n)
                + 2 * d(self.density, other.density)
                + 2 * d(self.spread, other.spread),
        )
    }
}
