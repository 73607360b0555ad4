//! SDDMM on the GPU: the CUDA twin of [`crate::cpu::sddmm`].

use super::config::KernelConfig;
use super::result::{self, Sddmm};
use super::{CudaScalar, DenseOperand, Device, SparseOperandMut};
use crate::cpu::check_scalars;
use crate::Op;
use crate::{Error, Result};

/// `out[p] = alpha * (L R^T)[i, j] + beta * out[p]` for every stored entry `p = (i, j)` of
/// `out`, with `L` (M x k) and `R` (N x k) and `out` M x N; `beta == 0` leaves the old
/// values unread. The configuration is the tuned one for this problem (exact key, else the
/// nearest, see [`crate::tune`]), else [`KernelConfig::heuristic`]'s.
///
/// ```no_run
/// use rosa::cuda::{self, Device, DeviceCsr, DeviceDense};
/// let dev = Device::new(0)?;
/// let mask = rosa::random::csr::<f32>(128, 96, 0.05, 1)?;
/// let l = DeviceDense::from_host(&dev, rosa::random::dense::<f32>(128, 512, 2).as_ref())?;
/// let r = DeviceDense::from_host(&dev, rosa::random::dense::<f32>(96, 512, 3).as_ref())?;
/// let mut grad = DeviceCsr::from_host(&dev, mask.as_ref())?;
/// cuda::sddmm(&dev, 1.0, &l, &r, 0.0, &mut grad)?;
/// let values = grad.values_to_host()?;
/// # Ok::<(), rosa::Error>(())
/// ```
pub fn sddmm<T: CudaScalar>(
    dev: &Device,
    alpha: f32,
    l: &impl DenseOperand<T>,
    r: &impl DenseOperand<T>,
    beta: f32,
    out: &mut impl SparseOperandMut<T>,
) -> Result<()> {
    let k = l.dense_view().cols();
    let key = out
        .sparse_view_mut()
        .mask
        .problem_key(Op::Sddmm, T::DTYPE, k);
    let (config, _) = dev.choose_config(key, k);
    sddmm_with(dev, &config, alpha, l, r, beta, out)
}

/// [`sddmm`] with an explicit tile configuration (one of
/// [`KernelConfig::all`]`(Op::Sddmm)`).
///
/// ```no_run
/// use rosa::cuda::{self, Device, DeviceCsr, DeviceDense, KernelConfig, Op};
/// let dev = Device::new(0)?;
/// let mut out = DeviceCsr::from_host(&dev, rosa::random::csr::<f32>(32, 16, 0.2, 1)?.as_ref())?;
/// let l = DeviceDense::from_host(&dev, rosa::random::dense::<f32>(32, 8, 2).as_ref())?;
/// let r = DeviceDense::from_host(&dev, rosa::random::dense::<f32>(16, 8, 3).as_ref())?;
/// for config in KernelConfig::all(Op::Sddmm) {
///     cuda::sddmm_with(&dev, &config, 1.0, &l, &r, 0.0, &mut out)?;
/// }
/// # Ok::<(), rosa::Error>(())
/// ```
pub fn sddmm_with<T: CudaScalar>(
    dev: &Device,
    config: &KernelConfig,
    alpha: f32,
    l: &impl DenseOperand<T>,
    r: &impl DenseOperand<T>,
    beta: f32,
    out: &mut impl SparseOperandMut<T>,
) -> Result<()> {
    super::config::check_config(config, Op::Sddmm)?;
    check_scalars("sddmm", alpha, beta)?;
    let (l, r, out) = (l.dense_view(), r.dense_view(), out.sparse_view_mut());
    let mask = out.mask;
    if l.rows() != mask.rows() || r.rows() != mask.cols() || l.cols() != r.cols() {
        return Err(Error::ShapeMismatch {
            op: "sddmm",
            detail: format!(
                "L {} x R^T of R {} sampled at a {} mask",
                l.shape(),
                r.shape(),
                mask.shape()
            ),
        });
    }
    dev.check_same(l.stream(), "L")?;
    dev.check_same(r.stream(), "R")?;
    dev.check_same(mask.stream_of(), "out")?;
    dev.check_same(out.stream(), "out's values")?;
    let (k, ldl, ldr) = (l.cols(), l.ld(), r.ld());
    result::sddmm(
        dev.stream(),
        config.index,
        Sddmm {
            s: mask.structure(),
            l: l.data,
            ldl,
            r: r.data,
            ldr,
            out: out.values,
            k,
            alpha,
            beta,
            long_rows: mask.long_rows(config),
        },
    )
}
