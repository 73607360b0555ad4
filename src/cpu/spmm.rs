//! SpMM `C = alpha A B + beta C` and transposed SpMM `C = alpha A^T B + beta C`.
//!
//! Both run the same row kernel: the transposed product walks the transpose plan's
//! structure over A's values gathered through the plan's permutation.

use std::ops::Range;

use rayon::prelude::*;

use super::convert::widen;
use super::partition::RowPlan;
use super::simd::{dispatch, MulAdd};
use super::{check_scalars, scale_into};
use crate::{CsrRef, CsrShape, Error, MatMut, MatRef, Result, Scalar, TransposePlan};

/// `C = alpha * A B + beta * C` with A sparse (M x K), B dense (K x N), C dense (M x N).
///
/// Accumulates in f32 for every dtype; with `beta == 0`, C is written without being read.
///
/// ```
/// use rosa::{cpu, Csr, Dense};
/// let a = Csr::from_parts(2, 2, vec![0, 1, 2], vec![1, 0], vec![2.0f32, 3.0]).unwrap();
/// let b = Dense::from_vec(2, 1, vec![10.0f32, 20.0]).unwrap();
/// let mut c = Dense::filled(2, 1, 1.0);
/// cpu::spmm(1.0, a.as_ref(), b.as_ref(), 0.5, c.as_mut()).unwrap();
/// assert_eq!(c.as_slice(), &[40.5, 30.5]);
/// ```
pub fn spmm<T: Scalar>(
    alpha: f32,
    a: CsrRef<'_, T>,
    b: MatRef<'_, T>,
    beta: f32,
    c: MatMut<'_, T>,
) -> Result<()> {
    check_spmm(alpha, &a, &b, beta, &c)?;
    let values = widen(a.values());
    let rows = SparseRows {
        row_ptr: a.row_ptr(),
        col_idx: a.col_idx(),
        values: &values,
    };
    rows.product(&widen(b.as_slice()), b.cols(), alpha, beta, c.into_slice());
    Ok(())
}

/// `C = alpha * A^T B + beta * C` with A sparse (M x K), B dense (M x N), C dense (K x N),
/// through a [`TransposePlan`] built once from A.
///
/// The plan must come from A's structure ([`Error::PlanMismatch`] otherwise); A's values
/// may have changed since, which is what a training step needs.
///
/// ```
/// use rosa::{cpu, Csr, CsrShape, Dense};
/// let a = Csr::from_parts(2, 3, vec![0, 2, 3], vec![0, 2, 1], vec![1.0f32, 2.0, 3.0]).unwrap();
/// let plan = a.transpose_plan();
/// let b = Dense::from_vec(2, 1, vec![1.0f32, 10.0]).unwrap();
/// let mut c = Dense::zeros(3, 1);
/// cpu::spmm_t(1.0, a.as_ref(), &plan, b.as_ref(), 0.0, c.as_mut()).unwrap();
/// assert_eq!(c.as_slice(), &[1.0, 30.0, 2.0]);
/// ```
pub fn spmm_t<T: Scalar>(
    alpha: f32,
    a: CsrRef<'_, T>,
    plan: &TransposePlan,
    b: MatRef<'_, T>,
    beta: f32,
    c: MatMut<'_, T>,
) -> Result<()> {
    check_spmm_t(alpha, &a, plan, &b, beta, &c)?;
    // One O(nnz) gather puts A's current values in A^T's order, so the O(nnz * N)
    // product reads them sequentially like the forward kernel. Its buffer is kept by the
    // calling thread: a fresh one per call costs a page fault per 4 KiB on first touch,
    // which measured more than the gather itself. (Taken out, not borrowed, so a nested
    // call on the same thread gets its own.) What the gather costs is its random loads,
    // wherever it runs: measured against each task gathering its own rows just before
    // computing them, and against loading the values through the permutation inside the
    // kernel, it was as fast as the first and faster than the second (spmm_t / spmm, one
    // thread, 1% density: 1.02-1.17x, 1.12-1.15x and 1.25-1.27x; 2-vCPU EPYC VM, 2026-11-23).
    let values = a.values();
    let mut gathered = GATHERED.take();
    gathered.clear();
    gathered.par_extend(plan.perm().par_iter().map(|&p| values[p as usize].to_f32()));
    let rows = SparseRows {
        row_ptr: plan.row_ptr(),
        col_idx: plan.col_idx(),
        values: &gathered,
    };
    rows.product(&widen(b.as_slice()), b.cols(), alpha, beta, c.into_slice());
    GATHERED.set(gathered);
    Ok(())
}

/// The argument checks of [`spmm`]: shared with the backends that run it elsewhere
/// (`rosa::cuda::CudaBackend`), so that both refuse the same calls with the same errors.
pub(crate) fn check_spmm<T: Scalar>(
    alpha: f32,
    a: &CsrRef<'_, T>,
    b: &MatRef<'_, T>,
    beta: f32,
    c: &MatMut<'_, T>,
) -> Result<()> {
    check_scalars("spmm", alpha, beta)?;
    check_shapes(false, a, b, c)
}

/// The argument checks of [`spmm_t`], plan included, shared like [`check_spmm`].
pub(crate) fn check_spmm_t<T: Scalar>(
    alpha: f32,
    a: &CsrRef<'_, T>,
    plan: &TransposePlan,
    b: &MatRef<'_, T>,
    beta: f32,
    c: &MatMut<'_, T>,
) -> Result<()> {
    check_scalars("spmm_t", alpha, beta)?;
    plan.check(a.structure_id())?;
    check_shapes(true, a, b, c)
}

/// Errors unless `C = op(A) B` fits, op(A) being A^T when `transposed`.
fn check_shapes<T: Scalar>(
    transposed: bool,
    a: &CsrRef<'_, T>,
    b: &MatRef<'_, T>,
    c: &MatMut<'_, T>,
) -> Result<()> {
    let (op, rows, inner, need) = if transposed {
        ("spmm_t", a.cols(), a.rows(), "A: M x K, B: M x N, C: K x N")
    } else {
        ("spmm", a.rows(), a.cols(), "A: M x K, B: K x N, C: M x N")
    };
    if inner != b.rows() || c.rows() != rows || c.cols() != b.cols() {
        return Err(Error::ShapeMismatch {
            op,
            detail: format!(
                "A is {} x {}, B is {}, C is {} (need {need})",
                a.rows(),
                a.cols(),
                b.shape(),
                c.shape()
            ),
        });
    }
    Ok(())
}

thread_local! {
    /// `spmm_t`'s buffer of A's values in A^T's order, reused across calls.
    static GATHERED: std::cell::Cell<Vec<f32>> = const { std::cell::Cell::new(Vec::new()) };
}

/// A validated CSR structure with its values widened to f32.
pub(super) struct SparseRows<'a> {
    pub row_ptr: &'a [i32],
    pub col_idx: &'a [i32],
    pub values: &'a [f32],
}

/// The dense side of one product, B (row-major, `n` columns), and the output's scaling.
pub(super) struct Rhs<'a> {
    pub b: &'a [f32],
    pub n: usize,
    pub alpha: f32,
    pub beta: f32,
}

impl SparseRows<'_> {
    /// `out = alpha * self * b + beta * out`; `b` is (cols x n) row-major, `out` (rows x n).
    fn product<T: Scalar>(&self, b: &[f32], n: usize, alpha: f32, beta: f32, out: &mut [T]) {
        if n == 0 {
            return;
        }
        let rhs = Rhs { b, n, alpha, beta };
        let plan = RowPlan::new(self.row_ptr, n);
        let mut tasks = Vec::with_capacity(plan.chunks.len());
        let mut rest = &mut *out;
        for chunk in &plan.chunks {
            let (head, tail) = rest.split_at_mut(chunk.len() * n);
            tasks.push((chunk.clone(), head));
            rest = tail;
        }
        tasks.into_par_iter().for_each(|(rows, out_rows)| {
            light_rows(self, &plan, rows, out_rows, &rhs);
        });
        for &i in &plan.heavy {
            let range = self.range(i);
            let pieces: Vec<Range<usize>> = (range.start..range.end)
                .step_by(plan.piece)
                .map(|s| s..(s + plan.piece).min(range.end))
                .collect();
            let acc = pieces
                .into_par_iter()
                .map(|piece| {
                    let mut acc = vec![0.0f32; n];
                    heavy_piece(self, piece, b, &mut acc);
                    acc
                })
                .reduce(
                    || vec![0.0f32; n],
                    |mut x, y| {
                        x.iter_mut().zip(&y).for_each(|(a, b)| *a += b);
                        x
                    },
                );
            scale_into(&mut out[i * n..(i + 1) * n], &acc, alpha, beta);
        }
    }

    fn range(&self, i: usize) -> Range<usize> {
        self.row_ptr[i] as usize..self.row_ptr[i + 1] as usize
    }
}

dispatch! {
    /// Computes the rows in `rows` that are not heavy into `out_rows`.
    fn light_rows<T: Scalar>(
        a: &SparseRows<'_>,
        plan: &RowPlan,
        rows: Range<usize>,
        out_rows: &mut [T],
        rhs: &Rhs<'_>,
    ) => light_rows_with
}

#[inline(always)]
fn light_rows_with<M: MulAdd, T: Scalar>(
    a: &SparseRows<'_>,
    plan: &RowPlan,
    rows: Range<usize>,
    out_rows: &mut [T],
    rhs: &Rhs<'_>,
) {
    #[cfg(target_arch = "x86_64")]
    if M::AVX2_FMA {
        let skip = |i| plan.is_heavy(i);
        // SAFETY: only the AVX2 + FMA build has `AVX2_FMA`, and it runs only on a CPU
        // with both (see `simd::Fused`).
        if unsafe { super::blocked::product(a, rows.clone(), skip, rhs, out_rows) } {
            return;
        }
    }
    let mut scratch = Scratch::new(rhs.n);
    for (i, out_row) in rows.zip(out_rows.chunks_exact_mut(rhs.n)) {
        if !plan.is_heavy(i) {
            row::<M, T>(a, a.range(i), rhs, &mut scratch, out_row);
        }
    }
}

dispatch! {
    /// `acc = sum over p in range of value(p) * b[col(p), :]`: one piece of a heavy row.
    fn heavy_piece(a: &SparseRows<'_>, range: Range<usize>, b: &[f32], acc: &mut [f32]) => heavy_piece_with
}

#[inline(always)]
fn heavy_piece_with<M: MulAdd>(
    a: &SparseRows<'_>,
    range: Range<usize>,
    b: &[f32],
    acc: &mut [f32],
) {
    let n = acc.len();
    let rhs = Rhs {
        b,
        n,
        alpha: 1.0,
        beta: 0.0,
    };
    #[cfg(target_arch = "x86_64")]
    if M::AVX2_FMA {
        // The piece as a matrix of one row.
        let piece = SparseRows {
            row_ptr: &[0, range.len() as i32],
            col_idx: &a.col_idx[range.clone()],
            values: &a.values[range.clone()],
        };
        // SAFETY: as in `light_rows_with`.
        if unsafe { super::blocked::product(&piece, 0..1, |_| false, &rhs, acc) } {
            return;
        }
    }
    let mut scratch = Scratch::new(n);
    row::<M, f32>(a, range, &rhs, &mut scratch, acc);
}

/// Per-task buffers of one output row's width.
struct Scratch {
    /// Partial sums between sweeps.
    acc: Vec<f32>,
    /// A row of zeros that pads a sweep short of four nonzeros: 0 * 0 adds nothing,
    /// where padding with a real row of B would turn an infinity into NaN.
    zeros: Vec<f32>,
}

impl Scratch {
    fn new(n: usize) -> Self {
        Scratch {
            acc: vec![0.0; n],
            zeros: vec![0.0; n],
        }
    }
}

/// One output row, `out = alpha * sum_p value(p) b[col(p), :] + beta * out`, in sweeps of
/// four nonzeros: the first sweep starts the sums, the last one writes the output, so a
/// row of at most four nonzeros reads its rows of B and writes its output in one pass.
/// `scratch` and `out` are `rhs.n` wide.
#[inline(always)]
fn row<M: MulAdd, T: Scalar>(
    a: &SparseRows<'_>,
    range: Range<usize>,
    rhs: &Rhs<'_>,
    scratch: &mut Scratch,
    out: &mut [T],
) {
    let (n, alpha, beta) = (rhs.n, rhs.alpha, rhs.beta);
    let (cols, vals) = (&a.col_idx[range.clone()], &a.values[range]);
    let sweeps = cols.len().div_ceil(4).max(1);
    for s in 0..sweeps {
        let mut v = [0.0f32; 4];
        let mut x: [&[f32]; 4] = [&scratch.zeros; 4];
        for (q, (&c, &val)) in cols.iter().zip(vals).skip(4 * s).take(4).enumerate() {
            v[q] = val;
            x[q] = &rhs.b[c as usize * n..][..n];
        }
        let sweep = Sweep { v, x, alpha, beta };
        let acc = &mut scratch.acc;
        match (s == 0, s + 1 == sweeps) {
            (true, true) => sweep.run::<M, T, true, true>(acc, out),
            (true, false) => sweep.run::<M, T, true, false>(acc, out),
            (false, true) => sweep.run::<M, T, false, true>(acc, out),
            (false, false) => sweep.run::<M, T, false, false>(acc, out),
        }
    }
}

/// Four nonzeros' values and rows of B, applied in one pass over the output row.
struct Sweep<'a> {
    v: [f32; 4],
    x: [&'a [f32]; 4],
    alpha: f32,
    beta: f32,
}

impl Sweep<'_> {
    /// FIRST: the sums start at zero instead of `acc`; LAST: the sums go to `out` (scaled,
    /// `out` read only when beta != 0) instead of back to `acc`.
    #[inline(always)]
    fn run<M: MulAdd, T: Scalar, const FIRST: bool, const LAST: bool>(
        &self,
        acc: &mut [f32],
        out: &mut [T],
    ) {
        let [v0, v1, v2, v3] = self.v;
        let [x0, x1, x2, x3] = self.x;
        let (alpha, beta) = (self.alpha, self.beta);
        let rows = x0.iter().zip(x1).zip(x2.iter().zip(x3));
        for ((a, o), ((&x0, &x1), (&x2, &x3))) in acc.iter_mut().zip(out.iter_mut()).zip(rows) {
            let start = if FIRST { 0.0 } else { *a };
            let sum = M::mul_add(
                v3,
                x3,
                M::mul_add(v2, x2, M::mul_add(v1, x1, M::mul_add(v0, x0, start))),
            );
            if LAST {
                *o = T::from_f32(if beta == 0.0 {
                    alpha * sum
                } else {
                    M::mul_add(beta, o.to_f32(), alpha * sum)
                });
            } else {
                *a = sum;
            }
        }
    }
}
