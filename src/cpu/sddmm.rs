//! SDDMM: `out[p] = alpha * dot(L[i, :], R[j, :]) + beta * out[p]` for each nonzero
//! p = (i, j) of a mask.

use rayon::prelude::*;

use super::check_scalars;
use super::convert::widen;
use super::simd::{dispatch, MulAdd};
use crate::{CsrMut, CsrShape, Error, MatRef, Result, Scalar};

/// Nonzeros per task: each is a k-long dot product, so this is ample work to schedule.
const MIN_TASK: usize = 1024;

/// Sampled dense-dense product: for every stored entry p = (i, j) of `out`,
/// `out[p] = alpha * sum_k L[i, k] R[j, k] + beta * out[p]`.
///
/// L is M x k and R is N x k, both row-major, and `out` is an M x N mask whose structure
/// is kept and whose values are written. With RoSA's feature-major activations
/// (`L = dY`, `R = X`) this is the sparse adapter's gradient `dS`.
///
/// ```
/// use rosa::{cpu, Csr, Dense};
/// let l = Dense::from_vec(2, 2, vec![1.0f32, 2.0, 3.0, 4.0]).unwrap();
/// let r = Dense::from_vec(1, 2, vec![10.0f32, 1.0]).unwrap();
/// let mut mask = Csr::from_parts(2, 1, vec![0, 0, 1], vec![0], vec![0.0f32]).unwrap();
/// cpu::sddmm(1.0, l.as_ref(), r.as_ref(), 0.0, mask.as_mut()).unwrap();
/// assert_eq!(mask.values(), &[34.0]); // row 1 of L . row 0 of R
/// ```
pub fn sddmm<T: Scalar>(
    alpha: f32,
    l: MatRef<'_, T>,
    r: MatRef<'_, T>,
    beta: f32,
    out: CsrMut<'_, T>,
) -> Result<()> {
    check_sddmm(alpha, &l, &r, beta, &out)?;
    let k = l.cols();
    let (lw, rw) = (widen(l.as_slice()), widen(r.as_slice()));
    let (row_ptr, col_idx, values) = out.split();
    let rows = Rows { row_ptr, col_idx };
    let task = (values.len() / (rayon::current_num_threads() * 8)).max(MIN_TASK);
    values
        .par_chunks_mut(task)
        .enumerate()
        .for_each(|(t, chunk)| sample_chunk(&rows, t * task, chunk, &lw, &rw, k, alpha, beta));
    Ok(())
}

/// The argument checks of [`sddmm`]: shared with the backends that run it elsewhere
/// (`rosa::cuda::CudaBackend`), so that both refuse the same calls with the same errors.
pub(crate) fn check_sddmm<T: Scalar>(
    alpha: f32,
    l: &MatRef<'_, T>,
    r: &MatRef<'_, T>,
    beta: f32,
    out: &CsrMut<'_, T>,
) -> Result<()> {
    check_scalars("sddmm", alpha, beta)?;
    if l.rows() != out.rows() || r.rows() != out.cols() || l.cols() != r.cols() {
        return Err(Error::ShapeMismatch {
            op: "sddmm",
            detail: format!(
                "L is {}, R is {}, the mask is {} x {} (need L: M x k, R: N x k, mask: M x N)",
                l.shape(),
                r.shape(),
                out.rows(),
                out.cols()
            ),
        });
    }
    Ok(())
}

/// The mask's index arrays.
struct Rows<'a> {
    row_ptr: &'a [i32],
    col_idx: &'a [i32],
}

dispatch! {
    /// Fills `chunk`, the values of entries `start..start + chunk.len()`.
    #[allow(clippy::too_many_arguments)]
    fn sample_chunk<T: Scalar>(
        rows: &Rows<'_>,
        start: usize,
        chunk: &mut [T],
        lw: &[f32],
        rw: &[f32],
        k: usize,
        alpha: f32,
        beta: f32,
    ) => sample_chunk_with
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn sample_chunk_with<M: MulAdd, T: Scalar>(
    rows: &Rows<'_>,
    start: usize,
    chunk: &mut [T],
    lw: &[f32],
    rw: &[f32],
    k: usize,
    alpha: f32,
    beta: f32,
) {
    let (row_ptr, col_idx) = (rows.row_ptr, rows.col_idx);
    // The row holding entry `start`: the last row whose offset is <= start.
    let mut row = row_ptr.partition_point(|&o| o as usize <= start) - 1;
    for (p, o) in (start..).zip(chunk.iter_mut()) {
        while row_ptr[row + 1] as usize <= p {
            row += 1;
        }
        let j = col_idx[p] as usize;
        let d = dot::<M>(&lw[row * k..][..k], &rw[j * k..][..k]);
        *o = if beta == 0.0 {
            T::from_f32(alpha * d)
        } else {
            T::from_f32(alpha * d + beta * o.to_f32())
        };
    }
}

/// Dot product with eight independent partial sums, so the compiler can keep them in
/// one vector register instead of a serial chain of additions.
#[inline(always)]
fn dot<M: MulAdd>(x: &[f32], y: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (xc, yc) = (x.chunks_exact(8), y.chunks_exact(8));
    let tail: f32 = xc
        .remainder()
        .iter()
        .zip(yc.remainder())
        .map(|(a, b)| a * b)
        .sum();
    for (a8, b8) in xc.zip(yc) {
        for ((s, &a), &b) in acc.iter_mut().zip(a8).zip(b8) {
            *s = M::mul_add(a, b, *s);
        }
    }
    acc.iter().sum::<f32>() + tail
}
