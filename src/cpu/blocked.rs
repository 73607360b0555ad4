//! The AVX2 + FMA kernel of SpMM: sums kept in registers, rows of B prefetched.
//!
//! The portable kernel ([`super::spmm`]'s sweeps) keeps a row's partial sums in memory
//! between groups of four nonzeros. Here 64 columns of a row's sums live in eight `ymm`
//! registers while every nonzero of the row streams past, so a nonzero costs one load of
//! B per eight columns and nothing else, and the output is written once (straight from
//! the registers when it is f32). What remains
//! is waiting on memory, so the rows of B a few nonzeros ahead (in the matrix, so across
//! short rows) are prefetched: their order is the column indices', which no hardware
//! prefetcher can guess.
//!
//! Tried and dropped, each no faster on a 2-vCPU EPYC VM (2026-11-22): walking B in column
//! tiles meant to stay in L2 (all rows of a task per tile), in place (2-3x slower: the
//! rows of a tile are a power of two apart and crowd a few cache sets) or copied into
//! contiguous panels first (1.5-3x slower); even/odd accumulator pairs for eight
//! vectors (they spill); and non-temporal stores of the output when beta = 0, which only
//! paid while other work was evicting it from L3 anyway, and cost up to 2x at 0.1%
//! density on a quiet machine, where the output stays in L3 for its reader. Later the
//! same day: peeling the first columns so that every load of B is 32-byte aligned (a
//! row of B 16 bytes past a line costs 10-15% at 0.1% density, but as much with the
//! peel: what costs is the extra line each row spans, not the split loads), and AVX-512
//! with a whole 256-wide row in sixteen `zmm` registers (no faster at 0.1%, 8% at 1%:
//! not worth a second kernel).

use std::arch::x86_64::*;
use std::ops::Range;

use super::scale_into;
use super::spmm::{Rhs, SparseRows};
use crate::Scalar;

/// How many nonzeros ahead the rows of B are prefetched: enough to hide an L2 or L3 trip
/// at a few cycles per nonzero, few enough that the lines are still in L1 when used.
const PREFETCH_AHEAD: usize = 8;

/// Expands to `$call::<V, TRAIL, _>(..)` with the const generics taken from the runtime
/// values (V from 0 to 8), so that one pass over the nonzeros is compiled per shape.
macro_rules! by_shape {
    ($v:expr, $trail:expr, $call:ident($($arg:expr),*)) => {
        match $trail {
            false => by_shape!(@v false, $v, $call($($arg),*)),
            true => by_shape!(@v true, $v, $call($($arg),*)),
        }
    };
    (@v $t:expr, $v:expr, $call:ident($($arg:expr),*)) => {
        match $v {
            0 => $call::<0, $t, _>($($arg),*),
            1 => $call::<1, $t, _>($($arg),*),
            2 => $call::<2, $t, _>($($arg),*),
            3 => $call::<3, $t, _>($($arg),*),
            4 => $call::<4, $t, _>($($arg),*),
            5 => $call::<5, $t, _>($($arg),*),
            6 => $call::<6, $t, _>($($arg),*),
            7 => $call::<7, $t, _>($($arg),*),
            _ => $call::<8, $t, _>($($arg),*),
        }
    };
}

/// `out[r] = alpha * (A B)[i] + beta * out[r]` for the rows `i` of `rows` that `skip`
/// leaves, the r-th of them in `out`'s r-th row, with B, its width `n`, alpha and beta
/// from `rhs`. Returns `false`, computing nothing, when B is narrower than one vector
/// (8 columns: the portable sweeps serve those), when a column index would read outside
/// B or when the ranges do not fit (the caller's safe path then reports it).
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
    if n < 8 {
        return false;
    }
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
    // (A fold over u32, which compiles to vector maxima, where `Iterator::max` did not:
    // it took 4% of the transposed product's time at 3% density.)
    let max_col = idx.iter().fold(0, |m: u32, &c| m.max(c as u32)) as usize;
    if !idx.is_empty() && (max_col + 1).saturating_mul(n) > b.len() {
        return false;
    }
    for (r, i) in rows.enumerate() {
        if skip(i) {
            continue;
        }
        let range = a.row_ptr[i] as usize..a.row_ptr[i + 1] as usize;
        let row = Row {
            b,
            n,
            alpha,
            beta,
            cols: &a.col_idx[range.clone()],
            vals: &a.values[range.clone()],
            ahead: a
                .col_idx
                .get(range.start + PREFETCH_AHEAD..nz.end)
                .unwrap_or(&[]),
        };
        let out = &mut out[r * n..][..n];
        // The row in groups of up to eight vectors of B, 64 columns of sums in registers
        // per pass over its nonzeros. Columns past the last whole vector come from one
        // more vector, ending at column n, in the last group: no scalar loop, and no
        // column written twice (beta applies once).
        let mut at = 0;
        loop {
            let v = ((n - at) / 8).min(8);
            let trail = at + 8 * v < n && at + 8 * v + 8 > n;
            // SAFETY: every column index of these rows is <= max_col, so each row of B
            // read, `col * n .. + n`, is inside b; the group stays inside the row's n
            // columns; this function has AVX2 and FMA for the inlined group.
            unsafe {
                // The common shape, the middle of a wide row, by a direct branch rather
                // than through the shape table.
                if v == 8 && !trail {
                    group::<8, false, T>(&row, at, out);
                } else {
                    by_shape!(v, trail, group(&row, at, out));
                }
            }
            at += 8 * v;
            if trail || at == n {
                break;
            }
        }
    }
    true
}

/// One output row's work: B (`n` columns, row-major), the scaling, the row's nonzeros,
/// and the column indices from `PREFETCH_AHEAD` nonzeros past its first to the end of
/// the task (into the next rows), whose rows of B to prefetch.
struct Row<'a> {
    b: &'a [f32],
    n: usize,
    alpha: f32,
    beta: f32,
    cols: &'a [i32],
    vals: &'a [f32],
    ahead: &'a [i32],
}

/// `out[c] = alpha * sum_p vals[p] * B[cols[p], c] + beta * out[c]` for the columns c
/// of V vectors from `at`, and with TRAIL for those from there to `n`, through the
/// vector that ends at column `n`.
///
/// Not a `#[target_feature]` function, so that it can be `#[inline(always)]`: inlined
/// into [`product`], it is compiled with AVX2 and FMA. A separate function (which a
/// compiler may choose for a `#[target_feature]` callee) would return its sums through
/// memory, and the speed of the kernel would depend on that choice.
///
/// # Safety
/// Inlined into a function with AVX2 and FMA, on a CPU with both; `cols[p] * n + n <=
/// b.len()` for every p; `out.len() == n >= 8`; `at + 8 V <= n`; with TRAIL,
/// `n - (at + 8 V) < 8`.
#[inline(always)]
unsafe fn group<const V: usize, const TRAIL: bool, T: Scalar>(
    row: &Row<'_>,
    at: usize,
    out: &mut [T],
) {
    let (n, alpha, beta) = (row.n, row.alpha, row.beta);
    let end = at + 8 * V;
    // SAFETY: the caller's contract.
    let (acc, trail) = unsafe { block::<V, TRAIL>(row, at) };
    let whole = &mut out[at..end];
    if let Some(whole) = T::as_f32_slice_mut(whole) {
        // SAFETY (all): AVX by the contract; `whole` holds 8 V values.
        let (va, vb) = unsafe { (_mm256_set1_ps(alpha), _mm256_set1_ps(beta)) };
        for (q, &acc) in acc.iter().enumerate() {
            unsafe {
                let dst = whole.as_mut_ptr().add(8 * q);
                let mut sum = _mm256_mul_ps(va, acc);
                // With beta = 0 the output is never read: it may hold NaN.
                if beta != 0.0 {
                    sum = _mm256_fmadd_ps(vb, _mm256_loadu_ps(dst), sum);
                }
                _mm256_storeu_ps(dst, sum);
            }
        }
    } else {
        let mut sums = [0.0f32; 64];
        for (q, &acc) in acc.iter().enumerate() {
            // SAFETY: AVX by the contract; sums holds 64 >= 8 V values.
            unsafe { _mm256_storeu_ps(sums.as_mut_ptr().add(8 * q), acc) };
        }
        scale_into(whole, &sums[..8 * V], alpha, beta);
    }
    if TRAIL {
        let mut sums = [0.0f32; 8];
        // SAFETY: AVX by the contract; sums holds 8 values.
        unsafe { _mm256_storeu_ps(sums.as_mut_ptr(), trail) };
        // The trail vector ends at column n: its columns before `end` are written.
        scale_into(&mut out[end..], &sums[8 - (n - end)..], alpha, beta);
    }
}

/// `sum_p vals[p] * b[cols[p] * n + c]` for the columns c of V vectors from `at`, as V
/// vectors, and with TRAIL the vector of columns `n - 8..n`. Up to four vectors wide,
/// even and odd nonzeros go to two sets of accumulators, so that a narrow block still
/// has enough independent FMA chains to cover their latency; wider blocks keep one set
/// (two would not fit in the sixteen `ymm` registers).
///
/// # Safety
/// As [`group`].
#[inline(always)]
unsafe fn block<const V: usize, const TRAIL: bool>(
    row: &Row<'_>,
    at: usize,
) -> ([__m256; V], __m256) {
    let Row {
        b,
        n,
        cols,
        vals,
        ahead,
        ..
    } = *row;
    let nnz = cols.len().min(vals.len());
    // Each row of B from `at` on.
    let base = b.as_ptr().wrapping_add(at);
    // The lines this group reads of each row of B, whatever the row's offset in its
    // first line: a constant bound, so that the loop unrolls.
    let lines = (32 * (V + TRAIL as usize) + 126) / 64;
    // One bounds check per prefetch: `ahead` runs from this row's PREFETCH_AHEAD-th
    // nonzero on, across the next rows (measured 15% faster at 0.1% density than
    // looking the index up in the row or the next one).
    let prefetch = |p: usize| {
        if let Some(&c) = ahead.get(p) {
            let line = base.wrapping_add(c as usize * n) as *const i8;
            for l in 0..lines {
                // SAFETY: a prefetch is a hint that never faults, whatever the address;
                // SSE by the contract.
                unsafe { _mm_prefetch::<_MM_HINT_T0>(line.wrapping_add(64 * l)) };
            }
        }
    };
    // SAFETY: p < nnz <= both lengths; the row is in b by the contract; AVX.
    let load = |p: usize| unsafe {
        (
            _mm256_set1_ps(*vals.get_unchecked(p)),
            base.add(*cols.get_unchecked(p) as usize * n),
        )
    };
    let split = V <= 4;
    // SAFETY (all intrinsics below): AVX and FMA by the contract; the loads read 8 V
    // values from `at`, and the trail's 8 from `n - 8`, of rows of B inside b.
    let zero = unsafe { _mm256_setzero_ps() };
    let (mut even, mut odd, mut trail) = ([zero; V], [zero; V], zero);
    let add_trail = |s: *const f32, v: __m256, trail: &mut __m256| unsafe {
        if TRAIL {
            *trail = _mm256_fmadd_ps(v, _mm256_loadu_ps(s.add(n - 8 - at)), *trail);
        }
    };
    let mut p = 0;
    while p + 2 <= nnz {
        prefetch(p);
        prefetch(p + 1);
        let ((v0, s0), (v1, s1)) = (load(p), load(p + 1));
        for q in 0..V {
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
        add_trail(s0, v0, &mut trail);
        add_trail(s1, v1, &mut trail);
        p += 2;
    }
    if p < nnz {
        prefetch(p);
        let (v0, s0) = load(p);
        for (q, e) in even.iter_mut().enumerate() {
            *e = unsafe { _mm256_fmadd_ps(v0, _mm256_loadu_ps(s0.add(8 * q)), *e) };
        }
        add_trail(s0, v0, &mut trail);
    }
    if split {
        for (e, o) in even.iter_mut().zip(odd) {
            *e = unsafe { _mm256_add_ps(*e, o) };
        }
    }
    (even, trail)
}
