//! Dense float64 references and the tolerance rule shared by the kernel tests.
#![allow(dead_code)] // each test binary uses its own subset

use rosa::{Csr, Dense, Scalar};

#[cfg(feature = "candle")]
pub mod candle;
#[cfg(feature = "cuda")]
pub mod gpu;
pub mod kernels;
pub mod npy;
pub mod scratch;
pub mod xorshift;

/// A dense f64 copy of a sparse matrix.
pub fn dense64<T: Scalar>(a: &Csr<T>) -> Vec<f64> {
    a.to_dense()
        .as_slice()
        .iter()
        .map(|v| v.to_f32() as f64)
        .collect()
}

pub fn to64<T: Scalar>(d: &Dense<T>) -> Vec<f64> {
    d.as_slice().iter().map(|v| v.to_f32() as f64).collect()
}

/// One expected element: the exact value and the magnitude its rounding error scales with.
#[derive(Clone, Copy, Debug)]
pub struct Expected {
    pub value: f64,
    /// |alpha| * sum |terms| + |beta * c0|: f32 summation of n terms in any order errs by
    /// at most n * eps32 of this, and the final rounding to T by eps_T of it.
    pub scale: f64,
    /// Number of f32 additions behind the value.
    pub terms: usize,
}

/// How far a `T` result computed with f32 accumulation may lie from `w`.
pub fn tolerance<T: Scalar>(w: &Expected) -> f64 {
    (T::epsilon() as f64 + (w.terms as f64 + 4.0) * f32::EPSILON as f64) * w.scale
        + subnormal_step::<T>()
}

/// Checks every element; NaN (an unwritten poisoned element) always fails.
pub fn assert_close<T: Scalar>(what: &str, got: &[T], want: &[Expected]) {
    assert_eq!(got.len(), want.len(), "{what}: output length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let g = g.to_f32() as f64;
        let tol = tolerance::<T>(w);
        let err = (g - w.value).abs();
        assert!(
            err <= tol,
            "{what} ({}): element {i} is {g}, expected {} (error {err:e} > tolerance {tol:e})",
            T::DTYPE,
            w.value
        );
    }
}

/// The spacing of the type's subnormals: the absolute error of rounding a tiny result.
fn subnormal_step<T: Scalar>() -> f64 {
    match T::DTYPE {
        rosa::DType::F16 => (2.0f64).powi(-24),
        rosa::DType::Bf16 => (2.0f64).powi(-133),
        rosa::DType::F32 => (2.0f64).powi(-149),
    }
}

/// alpha * A B + beta * C0, with A given dense (m x k), B (k x n), C0 (m x n).
#[allow(clippy::too_many_arguments)]
pub fn gemm_ref(
    alpha: f64,
    a: &[f64],
    b: &[f64],
    beta: f64,
    c0: Option<&[f64]>,
    m: usize,
    k: usize,
    n: usize,
) -> Vec<Expected> {
    let mut out = Vec::with_capacity(m * n);
    for i in 0..m {
        for j in 0..n {
            let (mut v, mut s, mut t) = (0.0, 0.0, 0);
            for p in 0..k {
                let x = a[i * k + p] * b[p * n + j];
                if a[i * k + p] != 0.0 {
                    t += 1;
                }
                v += x;
                s += x.abs();
            }
            let c = c0.map_or(0.0, |c| c[i * n + j]);
            out.push(Expected {
                value: alpha * v + beta * c,
                scale: alpha.abs() * s + (beta * c).abs(),
                terms: t,
            });
        }
    }
    out
}

/// What fills the gaps of a [`strided`] buffer (exact in every dtype).
pub const PAD: f32 = -7.25;

/// `rows x cols` of `m` laid out at stride `ld` after `offset` elements of padding, every
/// gap (between rows, and before the first) filled with `PAD`.
pub fn strided<T: Scalar>(m: &Dense<T>, ld: usize, offset: usize) -> Vec<T> {
    let mut v = vec![T::from_f32(PAD); offset + m.rows() * ld];
    for i in 0..m.rows() {
        v[offset + i * ld..][..m.cols()].copy_from_slice(&m.as_slice()[i * m.cols()..][..m.cols()]);
    }
    v
}

/// The `rows x cols` matrix inside a [`strided`] buffer, after checking that every padding
/// element is still `PAD`, bit for bit.
pub fn unstrided<T: Scalar>(v: &[T], rows: usize, cols: usize, ld: usize, offset: usize) -> Vec<T> {
    let pad = T::from_f32(PAD).to_f32().to_bits();
    let mut out = Vec::with_capacity(rows * cols);
    for (p, x) in v.iter().enumerate() {
        let inside = p >= offset && (p - offset) % ld < cols && (p - offset) / ld < rows;
        if inside {
            out.push(*x);
        } else {
            assert_eq!(x.to_f32().to_bits(), pad, "padding element {p} was written");
        }
    }
    out
}

/// The transpose of an m x n row-major matrix.
pub fn transpose(a: &[f64], m: usize, n: usize) -> Vec<f64> {
    let mut t = vec![0.0; a.len()];
    for i in 0..m {
        for j in 0..n {
            t[j * m + i] = a[i * n + j];
        }
    }
    t
}

/// Rows of `a` made of a few typical shapes: the test matrices' row lengths.
pub fn row_lengths(rows: usize, cols: usize, mean: usize, long_row: Option<usize>) -> Vec<usize> {
    (0..rows)
        .map(|i| match long_row {
            Some(r) if r == i => cols,
            _ if i % 5 == 3 => 0, // empty rows scattered through
            _ => (mean + i % 3).min(cols),
        })
        .collect()
}
