//! SpMM and transposed SpMM on the GPU: the CUDA twins of [`crate::cpu::spmm`] and
//! [`crate::cpu::spmm_t`], with the same argument order and semantics.

use super::config::{check_config, KernelConfig};
use super::result::{self, Spmm};
use super::{CudaScalar, DenseOperand, DenseOperandMut, Device, SparseOperand};
use crate::cpu::check_scalars;
use crate::Op;
use crate::{Error, Result};

/// `C = alpha A B + beta C` for `A` (M x K sparse), `B` (K x N), `C` (M x N); `beta == 0`
/// leaves the old `C` unread. Queued on the device's stream; the configuration is the
/// tuned one for this problem (exact key, else the nearest, see [`crate::tune`]), else
/// [`KernelConfig::heuristic`]'s.
///
/// ```no_run
/// use rosa::cuda::{self, Device, DeviceCsr, DeviceDense};
/// let dev = Device::new(0)?;
/// let a = rosa::random::csr::<rosa::bf16>(256, 128, 0.05, 1)?;
/// let b = rosa::random::dense::<rosa::bf16>(128, 64, 2);
/// let (da, db) = (DeviceCsr::from_host(&dev, a.as_ref())?, DeviceDense::from_host(&dev, b.as_ref())?);
/// let mut dc = DeviceDense::zeros(&dev, 256, 64)?;
/// cuda::spmm(&dev, 1.0, &da, &db, 0.0, &mut dc)?;
/// let c = dc.to_host()?;
/// # Ok::<(), rosa::Error>(())
/// ```
pub fn spmm<T: CudaScalar>(
    dev: &Device,
    alpha: f32,
    a: &impl SparseOperand<T>,
    b: &impl DenseOperand<T>,
    beta: f32,
    c: &mut impl DenseOperandMut<T>,
) -> Result<()> {
    let (config, _) = choose(dev, Op::Spmm, a, b);
    spmm_with(dev, &config, alpha, a, b, beta, c)
}

/// [`spmm`] with an explicit tile configuration (one of [`KernelConfig::all`]`(Op::Spmm)`).
///
/// ```no_run
/// use rosa::cuda::{self, Device, DeviceCsr, DeviceDense, KernelConfig, Op};
/// let dev = Device::new(0)?;
/// let a = DeviceCsr::from_host(&dev, rosa::random::csr::<f32>(64, 64, 0.1, 1)?.as_ref())?;
/// let b = DeviceDense::from_host(&dev, rosa::random::dense::<f32>(64, 32, 2).as_ref())?;
/// let mut c = DeviceDense::zeros(&dev, 64, 32)?;
/// for config in KernelConfig::all(Op::Spmm) {
///     cuda::spmm_with(&dev, &config, 1.0, &a, &b, 0.0, &mut c)?;
/// }
/// # Ok::<(), rosa::Error>(())
/// ```
pub fn spmm_with<T: CudaScalar>(
    dev: &Device,
    config: &KernelConfig,
    alpha: f32,
    a: &impl SparseOperand<T>,
    b: &impl DenseOperand<T>,
    beta: f32,
    c: &mut impl DenseOperandMut<T>,
) -> Result<()> {
    launch(dev, config, alpha, a, false, b, beta, c)
}

/// `C = alpha A^T B + beta C` for `A` (M x K sparse), `B` (M x N), `C` (K x N), through the
/// transpose plan uploaded with `A`: nothing is transposed per call. The configuration is
/// chosen as for [`spmm`].
///
/// ```no_run
/// use rosa::cuda::{self, Device, DeviceCsr, DeviceDense};
/// let dev = Device::new(0)?;
/// let a = DeviceCsr::from_host(&dev, rosa::random::csr::<f32>(256, 128, 0.05, 1)?.as_ref())?;
/// let b = DeviceDense::from_host(&dev, rosa::random::dense::<f32>(256, 64, 2).as_ref())?;
/// let mut c = DeviceDense::zeros(&dev, 128, 64)?;
/// cuda::spmm_t(&dev, 1.0, &a, &b, 0.0, &mut c)?;
/// # Ok::<(), rosa::Error>(())
/// ```
pub fn spmm_t<T: CudaScalar>(
    dev: &Device,
    alpha: f32,
    a: &impl SparseOperand<T>,
    b: &impl DenseOperand<T>,
    beta: f32,
    c: &mut impl DenseOperandMut<T>,
) -> Result<()> {
    let (config, _) = choose(dev, Op::SpmmT, a, b);
    spmm_t_with(dev, &config, alpha, a, b, beta, c)
}

/// [`spmm_t`] with an explicit tile configuration (one of
/// [`KernelConfig::all`]`(Op::SpmmT)`).
///
/// ```no_run
/// use rosa::cuda::{self, Device, DeviceCsr, DeviceDense, KernelConfig, Op};
/// let dev = Device::new(0)?;
/// let a = DeviceCsr::from_host(&dev, rosa::random::csr::<f32>(64, 48, 0.1, 1)?.as_ref())?;
/// let b = DeviceDense::from_host(&dev, rosa::random::dense::<f32>(64, 8, 2).as_ref())?;
/// let mut c = DeviceDense::zeros(&dev, 48, 8)?;
/// cuda::spmm_t_with(&dev, &KernelConfig::get(Op::SpmmT, 0)?, 1.0, &a, &b, 0.0, &mut c)?;
/// # Ok::<(), rosa::Error>(())
/// ```
pub fn spmm_t_with<T: CudaScalar>(
    dev: &Device,
    config: &KernelConfig,
    alpha: f32,
    a: &impl SparseOperand<T>,
    b: &impl DenseOperand<T>,
    beta: f32,
    c: &mut impl DenseOperandMut<T>,
) -> Result<()> {
    launch(dev, config, alpha, a, true, b, beta, c)
}

/// [`spmm`] of bf16 (or f32) operands into an f32 `C`: the products accumulate in f32 as
/// always, and C is written from the accumulators without a round to bf16. This is the
/// sparse term of a bf16 layer, `y += S x`, added straight into f32 activations: no bf16
/// temporary, cast and add over the M x N output. The configuration is the one [`spmm`]
/// picks for the same operands (the reads, which dominate, are the same).
///
/// # Errors
/// [`Error::Unsupported`] for f16 operands (that pairing is not compiled);
/// [`Error::ShapeMismatch`] unless `A` is M x K, `B` K x N and `C` M x N;
/// [`Error::InvalidArgument`] for non-finite `alpha` or `beta`, operands on another
/// device, or a leading dimension below the width; [`Error::IndexOverflow`] for
/// sizes past the kernels' 32-bit limits; [`Error::Cuda`] when the launch fails.
///
/// ```no_run
/// use rosa::cuda::{self, Device, DeviceCsr, DeviceDense};
/// let dev = Device::new(0)?;
/// let s = rosa::random::csr::<rosa::bf16>(256, 128, 0.02, 1)?;
/// let x = rosa::random::dense::<rosa::bf16>(128, 64, 2);
/// let (ds, dx) = (DeviceCsr::from_host(&dev, s.as_ref())?, DeviceDense::from_host(&dev, x.as_ref())?);
/// let mut y = DeviceDense::filled(&dev, 256, 64, 1.0f32)?;
/// cuda::spmm_f32_out(&dev, 1.0, &ds, &dx, 1.0, &mut y)?; // y += S x, in f32
/// # Ok::<(), rosa::Error>(())
/// ```
pub fn spmm_f32_out<T: CudaScalar>(
    dev: &Device,
    alpha: f32,
    a: &impl SparseOperand<T>,
    b: &impl DenseOperand<T>,
    beta: f32,
    c: &mut impl DenseOperandMut<f32>,
) -> Result<()> {
    let (config, _) = choose(dev, Op::Spmm, a, b);
    launch(dev, &config, alpha, a, false, b, beta, c)
}

/// [`spmm_t`] into an f32 `C`, as [`spmm_f32_out`]: the input gradient's sparse term of a
/// bf16 layer, `dX += S^T dY`.
///
/// # Errors
/// As [`spmm_f32_out`], with `A^T` (K x M) in place of `A`: `B` is M x N and `C` K x N.
///
/// ```no_run
/// use rosa::cuda::{self, Device, DeviceCsr, DeviceDense};
/// let dev = Device::new(0)?;
/// let s = rosa::random::csr::<rosa::bf16>(256, 128, 0.02, 1)?;
/// let dy = rosa::random::dense::<rosa::bf16>(256, 64, 2);
/// let (ds, ddy) = (DeviceCsr::from_host(&dev, s.as_ref())?, DeviceDense::from_host(&dev, dy.as_ref())?);
/// let mut dx = DeviceDense::zeros(&dev, 128, 64)?;
/// cuda::spmm_t_f32_out(&dev, 1.0, &ds, &ddy, 0.0, &mut dx)?;
/// # Ok::<(), rosa::Error>(())
/// ```
pub fn spmm_t_f32_out<T: CudaScalar>(
    dev: &Device,
    alpha: f32,
    a: &impl SparseOperand<T>,
    b: &impl DenseOperand<T>,
    beta: f32,
    c: &mut impl DenseOperandMut<f32>,
) -> Result<()> {
    let (config, _) = choose(dev, Op::SpmmT, a, b);
    launch(dev, &config, alpha, a, true, b, beta, c)
}

fn choose<T: CudaScalar>(
    dev: &Device,
    op: Op,
    a: &impl SparseOperand<T>,
    b: &impl DenseOperand<T>,
) -> (KernelConfig, crate::tune::Source) {
    let n = b.dense_view().cols();
    dev.choose_config(a.sparse_view().mask.problem_key(op, T::DTYPE, n), n)
}

/// Checks the configuration, the scaling factors and the shapes of `C = op(A) B`, then
/// launches: one path for both products and both output types, so their checks cannot
/// drift apart.
#[allow(clippy::too_many_arguments)]
fn launch<T: CudaScalar, C: CudaScalar>(
    dev: &Device,
    config: &KernelConfig,
    alpha: f32,
    a: &impl SparseOperand<T>,
    transposed: bool,
    b: &impl DenseOperand<T>,
    beta: f32,
    c: &mut impl DenseOperandMut<C>,
) -> Result<()> {
    let op = if transposed { Op::SpmmT } else { Op::Spmm };
    check_config(config, op)?;
    check_scalars(op.name(), alpha, beta)?;
    let (a, b, c) = (a.sparse_view(), b.dense_view(), c.dense_view_mut());
    let mask = a.mask;
    // op(A) is rows x inner.
    let (rows, inner) = if transposed {
        (mask.cols(), mask.rows())
    } else {
        (mask.rows(), mask.cols())
    };
    if inner != b.rows() || c.rows() != rows || c.cols() != b.cols() {
        let a_name = if transposed { "A^T of A" } else { "A" };
        return Err(Error::ShapeMismatch {
            op: op.name(),
            detail: format!(
                "{a_name} {} x B {} -> C {}",
                mask.shape(),
                b.shape(),
                c.shape()
            ),
        });
    }
    dev.check_same(mask.stream_of(), "A")?;
    dev.check_same(a.stream(), "A's values")?;
    dev.check_same(b.stream(), "B")?;
    dev.check_same(c.stream(), "C")?;
    let s = if transposed {
        mask.transposed()
    } else {
        mask.structure()
    };
    let (n, ldb, ldc) = (c.cols(), b.ld(), c.ld());
    result::spmm(
        dev.stream(),
        config.index,
        Spmm {
            s,
            values: a.values,
            b: b.data,
            ldb,
            c: c.data,
            ldc,
            n,
            alpha,
            beta,
            long_rows: mask.long_rows(config),
        },
    )
}
