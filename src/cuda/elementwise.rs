//! The elementwise work of a training step on the GPU (`csrc/elementwise.cu`): scale-add,
//! dtype casts, bias add and bias gradient, squared norms, and the CSR-add that merges a
//! sparse adapter into a dense weight. Each checks shapes and devices, then queues one
//! launch on the device's stream.

use cudarc::driver::CudaSlice;

use super::result;
use super::{CudaScalar, Device, DeviceCsr, DeviceDense};
use crate::{Error, Result};

fn same_shape<A: CudaScalar, B: CudaScalar>(
    op: &'static str,
    x: &DeviceDense<A>,
    y: &DeviceDense<B>,
) -> Result<()> {
    if (x.rows(), x.cols()) == (y.rows(), y.cols()) {
        Ok(())
    } else {
        Err(Error::ShapeMismatch {
            op,
            detail: format!("{} and {}", x.shape(), y.shape()),
        })
    }
}

fn column_of<T: CudaScalar>(
    op: &'static str,
    v: &DeviceDense<T>,
    rows: usize,
    what: &str,
) -> Result<()> {
    if v.rows() == rows && v.cols() == 1 {
        Ok(())
    } else {
        Err(Error::ShapeMismatch {
            op,
            detail: format!("{what} is {}, expected {rows} x 1", v.shape()),
        })
    }
}

/// `Y = alpha X + beta Y`, elementwise; `beta == 0` leaves the old `Y` unread.
///
/// ```no_run
/// use rosa::cuda::{self, Device, DeviceDense};
/// let dev = Device::new(0)?;
/// let x = DeviceDense::from_host(&dev, rosa::Dense::filled(2, 3, 1.0f32).as_ref())?;
/// let mut y = DeviceDense::filled(&dev, 2, 3, 4.0f32)?;
/// cuda::axpby(&dev, 2.0, &x, 0.5, &mut y)?;
/// assert_eq!(y.to_host()?.as_slice(), &[4.0; 6]);
/// # Ok::<(), rosa::Error>(())
/// ```
pub fn axpby(
    dev: &Device,
    alpha: f32,
    x: &DeviceDense<f32>,
    beta: f32,
    y: &mut DeviceDense<f32>,
) -> Result<()> {
    same_shape("axpby", x, y)?;
    dev.check_same(x.data.stream(), "X")?;
    dev.check_same(y.data.stream(), "Y")?;
    let n = x.rows() * x.cols();
    result::axpby(dev.stream(), n, alpha, &x.data, beta, &mut y.data)
}

/// `dst = src` converted elementwise between element types (rounded to nearest even when
/// narrowing, as [`crate::Scalar::from_f32`]).
///
/// ```no_run
/// use rosa::cuda::{self, Device, DeviceDense};
/// let dev = Device::new(0)?;
/// let x = DeviceDense::from_host(&dev, rosa::random::dense::<f32>(4, 4, 1).as_ref())?;
/// let mut narrow = DeviceDense::<rosa::bf16>::zeros(&dev, 4, 4)?;
/// cuda::cast(&dev, &x, &mut narrow)?;
/// # Ok::<(), rosa::Error>(())
/// ```
pub fn cast<S: CudaScalar, D: CudaScalar>(
    dev: &Device,
    src: &DeviceDense<S>,
    dst: &mut DeviceDense<D>,
) -> Result<()> {
    same_shape("cast", src, dst)?;
    dev.check_same(src.data.stream(), "src")?;
    dev.check_same(dst.data.stream(), "dst")?;
    let n = src.rows() * src.cols();
    result::cast(dev.stream(), n, &src.data, &mut dst.data)
}

/// `Y[i, j] += bias[i]`: one bias per output feature, broadcast over the tokens of a
/// feature-major `Y` (features x tokens). `bias` is a `Y.rows() x 1` column.
///
/// ```no_run
/// use rosa::cuda::{self, Device, DeviceDense};
/// let dev = Device::new(0)?;
/// let bias = DeviceDense::from_host(&dev, rosa::Dense::from_vec(2, 1, vec![1.0f32, 2.0])?.as_ref())?;
/// let mut y = DeviceDense::<f32>::zeros(&dev, 2, 3)?;
/// cuda::bias_add(&dev, &bias, &mut y)?;
/// assert_eq!(y.to_host()?.as_slice(), &[1.0, 1.0, 1.0, 2.0, 2.0, 2.0]);
/// # Ok::<(), rosa::Error>(())
/// ```
pub fn bias_add(dev: &Device, bias: &DeviceDense<f32>, y: &mut DeviceDense<f32>) -> Result<()> {
    column_of("bias_add", bias, y.rows(), "bias")?;
    dev.check_same(bias.data.stream(), "bias")?;
    dev.check_same(y.data.stream(), "Y")?;
    result::bias_add(dev.stream(), y.rows(), y.cols(), &bias.data, &mut y.data)
}

/// `out[i] = sum_j X[i, j]`: the bias gradient of a feature-major `dY`. `out` is a
/// `X.rows() x 1` column, fully overwritten.
///
/// ```no_run
/// use rosa::cuda::{self, Device, DeviceDense};
/// let dev = Device::new(0)?;
/// let dy = DeviceDense::filled(&dev, 3, 5, 1.0f32)?;
/// let mut g = DeviceDense::<f32>::zeros(&dev, 3, 1)?;
/// cuda::row_sum(&dev, &dy, &mut g)?;
/// assert_eq!(g.to_host()?.as_slice(), &[5.0; 3]);
/// # Ok::<(), rosa::Error>(())
/// ```
pub fn row_sum(dev: &Device, x: &DeviceDense<f32>, out: &mut DeviceDense<f32>) -> Result<()> {
    column_of("row_sum", out, x.rows(), "out")?;
    dev.check_same(x.data.stream(), "X")?;
    dev.check_same(out.data.stream(), "out")?;
    result::row_sum(dev.stream(), x.rows(), x.cols(), &x.data, &mut out.data)
}

/// The sum of squares of every element of `xs`, accumulated in f64 on the device (one
/// download of the total, so this waits for the queued work): the squared global
/// gradient norm that clipping needs.
///
/// ```no_run
/// use rosa::cuda::{self, Device, DeviceDense};
/// let dev = Device::new(0)?;
/// let a = DeviceDense::filled(&dev, 2, 2, 1.0f32)?;
/// let b = DeviceDense::filled(&dev, 1, 3, 2.0f32)?;
/// assert_eq!(cuda::sum_squares(&dev, &[&a, &b])?, 16.0);
/// # Ok::<(), rosa::Error>(())
/// ```
pub fn sum_squares(dev: &Device, xs: &[&DeviceDense<f32>]) -> Result<f64> {
    sum_squares_of(dev, xs.iter().map(|x| (&x.data, x.rows() * x.cols(), "X")))
}

/// [`sum_squares`] over the first `len` elements of each buffer (`what` names it in
/// errors): one f64 accumulator on the device, one read-back.
pub(crate) fn sum_squares_of<'a>(
    dev: &Device,
    parts: impl IntoIterator<Item = (&'a CudaSlice<f32>, usize, &'static str)>,
) -> Result<f64> {
    let mut acc = super::mem::zeros::<f64>(dev.stream(), 1)?;
    for (x, len, what) in parts {
        dev.check_same(x.stream(), what)?;
        result::sum_squares(dev.stream(), len, x, &mut acc)?;
    }
    // The accumulator holds exactly one value.
    Ok(super::mem::download(&acc, 1)?
        .first()
        .copied()
        .unwrap_or(0.0))
}

/// `W += alpha S` for a sparse `S` (f32 values) and a dense `W` of the same shape, in W's
/// type (f32, f16 or bf16; each touched entry computed in f32 and rounded once): folds a
/// sparse adapter into the weight (`alpha = 1`) or takes it back out (`alpha = -1`).
///
/// # Errors
/// [`Error::ShapeMismatch`] when the shapes differ, [`Error::InvalidArgument`] for a
/// non-finite `alpha` or operands of another device, [`Error::Cuda`] for a failed launch.
///
/// ```no_run
/// use rosa::cuda::{self, Device, DeviceCsr, DeviceDense};
/// let dev = Device::new(0)?;
/// let s = rosa::Csr::from_triplets(2, 3, &[(0, 2, 5.0f32), (1, 0, 1.0)])?;
/// let ds = DeviceCsr::from_host(&dev, s.as_ref())?;
/// let mut w = DeviceDense::<f32>::zeros(&dev, 2, 3)?;
/// cuda::csr_add(&dev, 2.0, &ds, &mut w)?;
/// assert_eq!(w.to_host()?.as_slice(), &[0.0, 0.0, 10.0, 2.0, 0.0, 0.0]);
/// # Ok::<(), rosa::Error>(())
/// ```
pub fn csr_add<T: CudaScalar>(
    dev: &Device,
    alpha: f32,
    s: &DeviceCsr<f32>,
    w: &mut DeviceDense<T>,
) -> Result<()> {
    check_csr_add(dev, "csr_add", alpha, s, w)?;
    result::csr_add::<T>(
        dev.stream(),
        s.structure(),
        &s.values,
        alpha,
        None,
        &mut w.data,
    )
}

/// `out = base + alpha S` at the stored entries of `S`, leaving every other entry of `out`
/// as it is: with `out` a copy of `base` made once, this keeps a merged `W + S` up to date
/// after each optimizer step by rewriting only the mask's entries, each rounded once from
/// the frozen `base`, so repeated updates never accumulate rounding (which an in-place
/// subtract-then-add would, by half an ulp of `T` per step).
///
/// # Errors
/// As [`csr_add`], and [`Error::ShapeMismatch`] when `base` and `out` differ in shape.
///
/// ```no_run
/// use rosa::cuda::{self, Device, DeviceCsr, DeviceDense};
/// let dev = Device::new(0)?;
/// let s = rosa::Csr::from_triplets(1, 2, &[(0, 1, 0.5f32)])?;
/// let ds = DeviceCsr::from_host(&dev, s.as_ref())?;
/// let w = DeviceDense::filled(&dev, 1, 2, 1.0f32)?;
/// let mut merged = DeviceDense::filled(&dev, 1, 2, 1.0f32)?;
/// cuda::csr_add_from(&dev, &w, 1.0, &ds, &mut merged)?;
/// assert_eq!(merged.to_host()?.as_slice(), &[1.0, 1.5]);
/// # Ok::<(), rosa::Error>(())
/// ```
pub fn csr_add_from<T: CudaScalar>(
    dev: &Device,
    base: &DeviceDense<T>,
    alpha: f32,
    s: &DeviceCsr<f32>,
    out: &mut DeviceDense<T>,
) -> Result<()> {
    same_shape("csr_add_from", base, out)?;
    dev.check_same(base.data.stream(), "base")?;
    check_csr_add(dev, "csr_add_from", alpha, s, out)?;
    result::csr_add(
        dev.stream(),
        s.structure(),
        &s.values,
        alpha,
        Some(&base.data),
        &mut out.data,
    )
}

fn check_csr_add<T: CudaScalar>(
    dev: &Device,
    op: &'static str,
    alpha: f32,
    s: &DeviceCsr<f32>,
    w: &DeviceDense<T>,
) -> Result<()> {
    if (s.rows(), s.cols()) != (w.rows(), w.cols()) {
        return Err(Error::ShapeMismatch {
            op,
            detail: format!("S {} into W {}", s.shape(), w.shape()),
        });
    }
    if !alpha.is_finite() {
        return Err(Error::InvalidArgument(format!(
            "{op}: alpha must be finite, got {alpha}"
        )));
    }
    dev.check_same(s.stream_of(), "S")?;
    dev.check_same(w.data.stream(), "W")
}
