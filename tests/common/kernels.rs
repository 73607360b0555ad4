//! One kernel case and its check against the dense f64 reference, shared by the kernel
//! test binaries.

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

pub fn case() -> impl Strategy<Value = Case> {
    (0usize..24, 0usize..24, 0usize..12, 0usize..6, any::<u64>())
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

impl Case {
    fn sparse<T: Scalar>(&self, rows: usize, cols: usize) -> Csr<T> {
        let lens = row_lengths(rows, cols, self.mean_len, self.long_row);
        random::csr_with_row_lengths(rows, cols, &lens, self.seed).unwrap()
    }

    /// The output's starting value: NaN poison when it must not be read, else random.
    fn output<T: Scalar>(&self, rows: usize, cols: usize) -> Dense<T> {
        if self.beta == 0.0 {
            Dense::filled(rows, cols, T::from_f32(f32::NAN))
        } else {
            random::dense(rows, cols, self.seed ^ 0xC0)
        }
    }

    fn c0<T: Scalar>(&self, c: &Dense<T>) -> Option<Vec<f64>> {
        (self.beta != 0.0).then(|| to64(c))
    }
}

pub fn check_spmm<T: Scalar>(c: &Case) {
    let a = c.sparse::<T>(c.m, c.k);
    let b = random::dense::<T>(c.k, c.n, c.seed ^ 0xB);
    let mut out = c.output::<T>(c.m, c.n);
    let c0 = c.c0(&out);
    cpu::spmm(c.alpha, a.as_ref(), b.as_ref(), c.beta, out.as_mut()).unwrap();
    let want = gemm_ref(
        c.alpha as f64,
        &dense64(&a),
        &to64(&b),
        c.beta as f64,
        c0.as_deref(),
        c.m,
        c.k,
        c.n,
    );
    assert_close("spmm", out.as_slice(), &want);
}

pub fn check_spmm_t<T: Scalar>(c: &Case) {
    let a = c.sparse::<T>(c.m, c.k);
    let plan = a.transpose_plan();
    let b = random::dense::<T>(c.m, c.n, c.seed ^ 0xB);
    let mut out = c.output::<T>(c.k, c.n);
    let c0 = c.c0(&out);
    cpu::spmm_t(c.alpha, a.as_ref(), &plan, b.as_ref(), c.beta, out.as_mut()).unwrap();
    let at = transpose(&dense64(&a), c.m, c.k);
    let want = gemm_ref(
        c.alpha as f64,
        &at,
        &to64(&b),
        c.beta as f64,
        c0.as_deref(),
        c.k,
        c.m,
        c.n,
    );
    assert_close("spmm_t", out.as_slice(), &want);
}

pub fn check_sddmm<T: Scalar>(c: &Case) {
    // Mask M x N, L: M x k, R: N x k; here (m, k, n) name (M, N, k).
    let (rows, cols, inner) = (c.m, c.k, c.n);
    let mut mask = c.sparse::<T>(rows, cols);
    let l = random::dense::<T>(rows, inner, c.seed ^ 0x1);
    let r = random::dense::<T>(cols, inner, c.seed ^ 0x2);
    let start: Vec<T> = if c.beta == 0.0 {
        vec![T::from_f32(f32::NAN); mask.nnz()]
    } else {
        mask.values().to_vec()
    };
    mask.values_mut().copy_from_slice(&start);
    cpu::sddmm(c.alpha, l.as_ref(), r.as_ref(), c.beta, mask.as_mut()).unwrap();
    // (L R^T) at the mask: a GEMM of L (rows x inner) with R^T (inner x cols).
    let full = gemm_ref(
        c.alpha as f64,
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
            if c.beta != 0.0 {
                let old = start[want.len()].to_f32() as f64 * c.beta as f64;
                e.value += old;
                e.scale += old.abs();
            }
            want.push(e);
        }
    }
    assert_close("sddmm", mask.values(), &want);
}
