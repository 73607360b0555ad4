//! Row-length statistics and the longest-first row order.

/// How the nonzeros spread over the rows: the numbers a kernel or tuner picks tiles by.
///
/// ```
/// use rosa::{Csr, CsrShape};
/// let a = Csr::from_parts(3, 4, vec![0, 4, 4, 6], vec![0, 1, 2, 3, 0, 1], vec![1.0f32; 6]).unwrap();
/// let s = a.row_stats();
/// assert_eq!((s.min, s.max, s.mean), (0, 4, 2.0));
/// assert!(s.cv > 0.8 && s.cv < 0.9); // sqrt(8/3) / 2
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RowStats {
    /// Shortest row.
    pub min: usize,
    /// Longest row.
    pub max: usize,
    /// Mean row length.
    pub mean: f64,
    /// Coefficient of variation (population standard deviation over mean; 0 when the
    /// mean is 0).
    pub cv: f64,
}

pub(crate) fn row_stats(row_ptr: &[i32]) -> RowStats {
    let rows = row_ptr.len() - 1;
    if rows == 0 {
        return RowStats {
            min: 0,
            max: 0,
            mean: 0.0,
            cv: 0.0,
        };
    }
    let lens = row_ptr.windows(2).map(|w| (w[1] - w[0]) as usize);
    let (mut min, mut max, mut sum, mut sum_sq) = (usize::MAX, 0, 0.0f64, 0.0f64);
    for len in lens {
        min = min.min(len);
        max = max.max(len);
        sum += len as f64;
        sum_sq += (len as f64) * (len as f64);
    }
    let mean = sum / rows as f64;
    let var = (sum_sq / rows as f64 - mean * mean).max(0.0);
    let cv = if mean > 0.0 { var.sqrt() / mean } else { 0.0 };
    RowStats { min, max, mean, cv }
}

pub(crate) fn row_swizzle(row_ptr: &[i32]) -> Vec<i32> {
    let mut order: Vec<i32> = (0..row_ptr.len() as i32 - 1).collect();
    // Stable, so rows of equal length keep their index order.
    order.sort_by_key(|&r| std::cmp::Reverse(row_ptr[r as usize + 1] - row_ptr[r as usize]));
    order
}
