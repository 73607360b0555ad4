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

/// How many rows, taken in `row_swizzle` order, are long for a GPU tile that splits long
/// rows (`split > 0`, see `rosa::cuda::KernelConfig::split`): longer than `split` times the
/// mean row length and than `min_len` (a sub-warp's width: a shorter row has nothing to
/// share). It is the `long_rows` launch parameter. The order is the longest-first
/// [`crate::CsrShape::row_swizzle`] (or [`crate::TransposePlan::row_swizzle`]), so the long
/// rows are a prefix of it; O(log rows). `split == 0` gives 0.
///
/// Any count from 0 to the rows is a correct launch (only the work split changes), so
/// arrays that are not a structure and its swizzle give some such count, never a panic.
///
/// ```
/// use rosa::CsrShape;
/// let mut lens = vec![2; 60];
/// (lens[7], lens[30]) = (400, 300); // mean 13.6: two rows above 4 x 13.6
/// let a = rosa::random::csr_with_row_lengths::<f32>(60, 512, &lens, 1)?;
/// assert_eq!(rosa::csr::long_rows(a.row_ptr(), &a.row_swizzle(), 4, 8), 2);
/// assert_eq!(rosa::csr::long_rows(a.row_ptr(), &a.row_swizzle(), 0, 8), 0);
/// # Ok::<(), rosa::Error>(())
/// ```
pub fn long_rows(row_ptr: &[i32], row_swizzle: &[i32], split: u32, min_len: usize) -> usize {
    let rows = row_ptr.len().saturating_sub(1);
    if split == 0 || rows == 0 {
        return 0;
    }
    let len = |r: i32| -> u128 {
        let r = usize::try_from(r).unwrap_or(usize::MAX);
        match (
            row_ptr.get(r),
            r.checked_add(1).and_then(|e| row_ptr.get(e)),
        ) {
            (Some(&a), Some(&b)) => u128::try_from(i64::from(b) - i64::from(a)).unwrap_or(0),
            _ => 0,
        }
    };
    let nnz = u128::try_from(row_ptr[rows]).unwrap_or(0);
    // len > split * nnz / rows without rounding: len * rows > split * nnz.
    let long = |&r: &i32| {
        let l = len(r);
        l > min_len as u128 && l * rows as u128 > u128::from(split) * nnz
    };
    row_swizzle.partition_point(long).min(rows)
}
