//! The AVX2 + FMA kernel of SpMM: sums kept in registers, rows of B prefetched.
//!
//! The portable kernel ([`super::spmm`]'s sweeps) keeps a row's partial sums in memory
//! between groups of four nonzeros. Here 64 columns of a row's sums live in eight `ymm`
//! registers while every nonzero of the row streams past, so a nonzero costs one load of
//! B per eight columns and nothing else, and the output is written once. What remains
//! is waiting on memory, so the rows of B a few nonzeros ahead (in the matrix, so across
//! short rows) are prefetched: their order is the column indices', which no hardware
//! prefetcher can guess.
//!
//! Tried and dropped, both slower on a 2-vCPU EPYC VM (2026-11-22): walking B in column
//! tiles meant to stay in L2 (all rows of a task per tile), in place (2-3x slower: the
//! rows of a tile are a power of two apart and crowd a few cache sets) or copied into
//! contiguous panels first (1.5-3x slower); even/odd accumulator pairs for eight
//! vectors (they spill); and non-temporal stores of the output when beta = 0, which only
//! paid while other work was evicting it from L3 anyway, and cost up to 2x at 0.1%
//! density on a quiet machine, where the output stays in L3 for its reader.

use std::arch::x86_64::*;
use std::ops::Range;

use super::scale_into;
use super::spmm::{Rhs, SparseRows};
use crate::Scalar;

/// How many nonzeros ahead the rows of B are prefetched: enough to hide an L2 or L3 trip
/// at a few cycles per nonzero, few enough that the lines are still in L1 when used.
const PREFETCH_AHEAD: usize = 8;

/// `out[r] = alpha * (A B)[i] + beta * out[r]` for the rows `i` of `rows` that `skip`
/// leaves, the r-th of them in `out`'s r-th row, with B, its width `n`, alpha and beta
/// from `rhs`. Returns `false`, computing nothing, when a column index would read
/// outside B or the ranges do not fit (the caller's safe path then reports it).
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn product<T: Scalar>(
    a: &SparseRows<'_>,
    rows: Range<usize>,
    skip: impl Fn(usize) -> bool,
    rhs: &Rhs<'_>,
    out: &mut [T],
) -> bool {
    let Rhs { b, n, alpha, beta } = *rhs;
    if rows.end >= a.row_ptr.len() || out.len() < rows.len() * n {
        return false;
    }
    // Rows that stay inside the task's nonzeros, so that the bounds check below covers
    // every index any row reads (a validated structure always passes).
    let ptr = &a.row_ptr[rows.start..=rows.end];
    if ptr.windows(2).any(|w| w[0] > w[1]) || ptr[0] < 0 {
        return false;
    }
    let nz = a.row_ptr[rows.start] as usize..a.row_ptr[rows.end] as usize;
    let (Some(idx), Some(_)) = (a.col_idx.get(nz.clone()), a.values.get(nz.clone())) else {
        return false;
    };
    // One pass over the indices makes every load below in bounds: as u32, a negative
    // index is huge and fails the check too.
    let max_col = idx.iter().map(|&c| c as u32 as usize).max().unwrap_or(0);
    if !idx.is_empty() && (max_col + 1).saturating_mul(n) > b.len() {
        return false;
    }
    let mut sums = [0.0f32; 64];
    for (r, i) in rows.enumerate() {
        if skip(i) {
            continue;
        }
        let range = a.row_ptr[i] as usize..a.row_ptr[i + 1] as usize;
        let next = &a.col_idx[range.end..(range.end + PREFETCH_AHEAD).min(nz.end)];
        let (c, v) = (&a.col_idx[range.clone()], &a.values[range]);
        let mut j0 = 0;
        while j0 < n {
            let w = (n - j0).min(64);
            // SAFETY: every column index of these rows is <= max_col, so each row of B
            // read, `c[p] * n + j0 .. + w`, is inside b; AVX2 and FMA by contract.
            unsafe { tile_row(c, next, v, b, n, j0, &mut sums[..w]) };
            scale_into(&mut out[r * n + j0..][..w], &sums[..w], alpha, beta);
            j0 += w;
        }
    }
    true
}

/// `sums = sum_p vals[p] * b[cols[p] * n + at ..][..sums.len()]`, `sums.len() <= 64`.
///
/// # Safety
/// AVX2 + FMA; `cols[p] * n + at + sums.len() <= b.len()` for every p.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn tile_row(
    cols: &[i32],
    next: &[i32],
    vals: &[f32],
    b: &[f32],
    n: usize,
    at: usize,
    sums: &mut [f32],
) {
    let mut done = 0;
    // SAFETY (all three): the column ranges stay within `at .. at + sums.len()`.
    unsafe {
        while sums.len() - done >= 64 {
            block::<8>(cols, next, vals, b, n, at + done, &mut sums[done..]);
            done += 64;
        }
        while sums.len() - done >= 32 {
            block::<4>(cols, next, vals, b, n, at + done, &mut sums[done..]);
            done += 32;
        }
        while sums.len() - done >= 8 {
            block::<1>(cols, next, vals, b, n, at + done, &mut sums[done..]);
            done += 8;
        }
    }
    let rest = &mut sums[done..];
    rest.fill(0.0);
    for (&c, &v) in cols.iter().zip(vals) {
        let src = &b[c as usize * n + at + done..][..rest.len()];
        for (s, &x) in rest.iter_mut().zip(src) {
            *s = v.mul_add(x, *s);
        }
    }
}

/// `sums[..8 V] = sum_p vals[p] * b[cols[p] * n + at ..][..8 V]`. Up to four vectors
/// wide, even and odd nonzeros go to two sets of accumulators, so that a narrow block
/// still has enough independent FMA chains to cover their latency; eight vectors keep
/// one set (two would not fit in the sixteen `ymm` registers).
///
/// # Safety
/// AVX2 + FMA; `cols[p] * n + at + 8 V <= b.len()` for every p; `sums.len() >= 8 V`.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn block<const V: usize>(
    cols: &[i32],
    next: &[i32],
    vals: &[f32],
    b: &[f32],
    n: usize,
    at: usize,
    sums: &mut [f32],
) {
    debug_assert!(sums.len() >= 8 * V);
    let nnz = cols.len().min(vals.len());
    let base = b.as_ptr().wrapping_add(at);
    let prefetch = |p: usize| {
        let q = p + PREFETCH_AHEAD;
        let ahead = if q < nnz {
            cols.get(q)
        } else {
            next.get(q - nnz)
        };
        if let Some(&c) = ahead {
            let line = base.wrapping_add(c as usize * n) as *const i8;
            for l in 0..V.div_ceil(2) {
                // SAFETY: a prefetch is a hint that never faults, whatever the address.
                _mm_prefetch::<_MM_HINT_T0>(line.wrapping_add(64 * l));
            }
        }
    };
    // SAFETY: p < nnz <= both lengths; the loads are in b by the contract.
    let load = |p: usize| unsafe {
        (
            _mm256_set1_ps(*vals.get_unchecked(p)),
            base.add(*cols.get_unchecked(p) as usize * n),
        )
    };
    let split = V <= 4;
    let mut even = [_mm256_setzero_ps(); V];
    let mut odd = [_mm256_setzero_ps(); V];
    let mut p = 0;
    while p + 2 <= nnz {
        prefetch(p);
        prefetch(p + 1);
        let ((v0, s0), (v1, s1)) = (load(p), load(p + 1));
        for q in 0..V {
            // SAFETY: 8 V values from s0 and s1 are in b by the contract.
            unsafe {
                even[q] = _mm256_fmadd_ps(v0, _mm256_loadu_ps(s0.add(8 * q)), even[q]);
                let acc = if split { odd[q] } else { even[q] };
                let x = _mm256_fmadd_ps(v1, _mm256_loadu_ps(s1.add(8 * q)), acc);
                if split {
                    odd[q] = x;
                } else {
                    even[q] = x;
                }
            }
        }
        p += 2;
    }
    if p < nnz {
        prefetch(p);
        let (v0, s0) = load(p);
        for (q, e) in even.iter_mut().enumerate() {
            // SAFETY: as above.
            *e = unsafe { _mm256_fmadd_ps(v0, _mm256_loadu_ps(s0.add(8 * q)), *e) };
        }
    }
    for q in 0..V {
        let sum = if split {
            _mm256_add_ps(even[q], odd[q])
        } else {
            even[q]
        };
        // SAFETY: sums holds 8 V values.
        unsafe { _mm256_storeu_ps(sums.as_mut_ptr().add(8 * q), sum) };
    }
}
