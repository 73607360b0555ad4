//! Kernel problems and their dense f64 expectations, shared by the CPU and GPU kernel
//! tests: each builds a problem from a [`Case`], runs its backend, and compares.

use super::*;
use proptest::prelude::*;
use rosa::{cpu, random, Csr, CsrShape, Dense, Scalar};

/// A random problem: shapes (0 allowed), row lengths with empty rows and optionally one
/// row as long as the matrix is wide, scaling factors, and the seed of every operand.
#[derive(Debug, Clone)]
pub struct Case {
    pub m: usize,
    pub k: usize,
    pub n: usize,
    pub mean_len: usize,
    pub long_row: Option<usize>,
    pub alpha: f32,
    pub beta: f32,
    pub seed: u64,
}

/// Cases with `m < max_m`, `k < max_k`, `n < max_n` and mean row length `< max_len`.
pub fn case_up_to(
    max_m: usize,
    max_k: usize,
    max_n: usize,
    max_len: usize,
) -> impl Strategy<Value = Case> {
    (0..max_m, 0..max_k, 0..max_n, 0..max_len, any::<u64>())
        .prop_flat_map(|(m, k, n, mean_len, seed)| {
            (
                Just((m, k, n, mean_len, seed)),
                proptest::option::of(0..m.max(1)),
                -2.0f32..2.0,
                prop_oneof![Just(0.0f32), -1.5f32..1.5],
            )
        })
        .prop_map(|((m, k, n, mean_len, seed), long, alpha, beta)| Case {
            m,
            k,
            n,
            mean_len,
            long_row: long.filter(|&r| r < m),
            alpha,
            beta,
            seed,
        })
}

/// The CPU tests' cases: small, so many run.
pub fn case() -> impl Strategy<Value = Case> {
    case_up_to(24, 24, 12, 6)
}

/// An SpMM or transposed-SpMM problem: `out = alpha op(A) B + beta c0` should be `want`.
pub struct SpmmProblem<T> {
    pub a: Csr<T>,
    pub b: Dense<T>,
    /// The output before the call: NaN poison when beta = 0 (it must not be read).
    pub c0: Dense<T>,
    pub want: Vec<Expected>,
}

/// An SDDMM problem: the mask's values (NaN poison when beta = 0) should become `want`.
pub struct SddmmProblem<T> {
    pub mask: Csr<T>,
    pub l: Dense<T>,
    pub r: Dense<T>,
    pub want: Vec<Expected>,
}

impl Case {
    pub fn sparse<T: Scalar>(&self, rows: usize, cols: usize) -> Csr<T> {
        let lens = row_lengths(rows, cols, self.mean_len, self.long_row);
        random::csr_with_row_lengths(rows, cols, &lens, self.seed).unwrap()
    }

    fn output<T: Scalar>(&self, rows: usize, cols: usize) -> Dense<T> {
        if self.beta == 0.0 {
            Dense::filled(rows, cols, T::from_f32(f32::NAN))
        } else {
            random::dense(rows, cols, self.seed ^ 0xC0)
        }
    }

    /// `C = A B` with A (m x k), B (k x n); with `transposed`, `C = A^T B` with B (m x n).
    pub fn spmm<T: Scalar>(&self, transposed: bool) -> SpmmProblem<T> {
        let a = self.sparse::<T>(self.m, self.k);
        let (inner, rows) = if transposed {
            (self.m, self.k)
        } else {
            (self.k, self.m)
        };
        let b = random::dense::<T>(inner, self.n, self.seed ^ 0xB);
        let c0 = self.output::<T>(rows, self.n);
        let a64 = dense64(&a);
        let op_a = if transposed {
            transpose(&a64, self.m, self.k)
        } else {
            a64
        };
        let start = (self.beta != 0.0).then(|| to64(&c0));
        let want = gemm_ref(
            self.alpha as f64,
            &op_a,
            &to64(&b),
            self.beta as f64,
            start.as_deref(),
            rows,
            inner,
            self.n,
        );
        SpmmProblem { a, b, c0, want }
    }

    /// A mask (m x k) with L (m x n) and R (k x n): the dot products are n long.
    pub fn sddmm<T: Scalar>(&self) -> SddmmProblem<T> {
        let (rows, cols, inner) = (self.m, self.k, self.n);
        let mut mask = self.sparse::<T>(rows, cols);
        if self.beta == 0.0 {
            mask.values_mut().fill(T::from_f32(f32::NAN));
        }
        let l = random::dense::<T>(rows, inner, self.seed ^ 0x1);
        let r = random::dense::<T>(cols, inner, self.seed ^ 0x2);
        // (L R^T) at the mask: a GEMM of L (rows x inner) with R^T (inner x cols).
        let full = gemm_ref(
            self.alpha as f64,
            &to64(&l),
            &transpose(&to64(&r), cols, inner),
            0.0,
            None,
            rows,
            inner,
            cols,
        );
        let mut want = Vec::with_capacity(mask.nnz());
        for i in 0..rows {
            for &j in mask.row(i).0 {
                let mut e = full[i * cols + j as usize];
                if self.beta != 0.0 {
                    let old = mask.values()[want.len()].to_f32() as f64 * self.beta as f64;
                    e.value += old;
                    e.scale += old.abs();
                }
                want.push(e);
            }
        }
        SddmmProblem { mask, l, r, want }
    }
}

/// Runs the CPU SpMM (or transposed SpMM) on a problem and returns its output.
pub fn cpu_spmm<T: Scalar>(c: &Case, p: &SpmmProblem<T>, transposed: bool) -> Dense<T> {
    let mut out = p.c0.clone();
    if transposed {
        let plan = p.a.transpose_plan();
        cpu::spmm_t(
            c.alpha,
            p.a.as_ref(),
            &plan,
            p.b.as_ref(),
            c.beta,
            out.as_mut(),
        )
    } else {
        cpu::spmm(c.alpha, p.a.as_ref(), p.b.as_ref(), c.beta, out.as_mut())
    }
    .unwrap();
    out
}

/// Runs the CPU SDDMM on a problem and returns the mask with its new values.
pub fn cpu_sddmm<T: Scalar>(c: &Case, p: &SddmmProblem<T>) -> Csr<T> {
    let mut out = p.mask.clone();
    cpu::sddmm(c.alpha, p.l.as_ref(), p.r.as_ref(), c.beta, out.as_mut()).unwrap();
    out
}

pub fn check_spmm<T: Scalar>(c: &Case) {
    let p = c.spmm::<T>(false);
    assert_close("spmm", cpu_spmm(c, &p, false).as_slice(), &p.want);
}

pub fn check_spmm_t<T: Scalar>(c: &Case) {
    let p = c.spmm::<T>(true);
    assert_close("spmm_t", cpu_spmm(c, &p, true).as_slice(), &p.want);
}

pub fn check_sddmm<T: Scalar>(c: &Case) {
    let p = c.sddmm::<T>();
    assert_close("sddmm", cpu_sddmm(c, &p).values(), &p.want);
}
