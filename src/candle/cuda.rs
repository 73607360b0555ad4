//! The ops' CUDA forwards (feature `candle-cuda`): rosa's kernels on candle's own stream,
//! over candle's own buffers.
//!
//! Each candle [`CudaDevice`] has one stream; a rosa [`Device`] made from it
//! ([`Device::from_stream`]) launches there, so the products are ordered with candle's
//! other work and no second stream or context appears. The mask's structure (row_ptr,
//! col_idx, swizzle, transpose plan) is uploaded once per candle device and kept in the
//! [`SparseMask`], with that `Device` (which holds the tuned-configuration table, read on
//! its first launch, not per call).
//!
//! Operands are borrowed from candle's storage as views where the layout is one rosa's
//! kernels read (unit column stride, row stride at least the width, any start offset);
//! any other layout (a transposed view, a broadcast) is first copied row-major with
//! candle's own strided copy, on the same stream.

use std::sync::Arc;

use candle_core::backend::BackendStorage;
use candle_core::cuda_backend::{CudaDType, DeviceId};
use candle_core::{CudaDevice, CudaStorage, DType, Layout, Result, Shape};
use cudarc::driver::CudaView;

use super::nf4::Nf4Base;
use super::op::Kind;
use super::storage::{dtype_error, rank_error, Elem};
use super::SparseMask;
use crate::cuda::{
    self, CudaScalar, DenseView, DenseViewMut, Device, DeviceMask, DeviceNf4, SparseView,
    SparseViewMut,
};
use crate::Error;

/// The element types the CUDA forwards run on: candle's f32, f16 and bf16, which rosa's
/// kernels also take.
trait CudaElem: Elem + CudaScalar + CudaDType {}
impl<T: Elem + CudaScalar + CudaDType> CudaElem for T {}

/// A mask's structure on one candle device, with the rosa device on that device's stream.
#[derive(Debug)]
pub(super) struct OnDevice {
    id: DeviceId,
    dev: Device,
    mask: DeviceMask,
}

/// The forward of the op of `kind` on candle's CUDA storage: `C = S X`, `C = S^T X` (from
/// S's values and X) or SDDMM (from L and R), with the CPU forward's checks and errors.
pub(super) fn forward(
    op: &'static str,
    mask: &SparseMask,
    kind: Kind,
    s1: &CudaStorage,
    l1: &Layout,
    s2: &CudaStorage,
    l2: &Layout,
) -> Result<(CudaStorage, Shape)> {
    match (s1.dtype(), s2.dtype()) {
        (DType::F32, DType::F32) => run::<f32>(op, mask, kind, s1, l1, s2, l2),
        (DType::F16, DType::F16) => run::<crate::f16>(op, mask, kind, s1, l1, s2, l2),
        (DType::BF16, DType::BF16) => run::<crate::bf16>(op, mask, kind, s1, l1, s2, l2),
        (a, b) => Err(dtype_error(op, a, b)),
    }
}

fn run<T: CudaElem>(
    op: &'static str,
    mask: &SparseMask,
    kind: Kind,
    s1: &CudaStorage,
    l1: &Layout,
    s2: &CudaStorage,
    l2: &Layout,
) -> Result<(CudaStorage, Shape)> {
    let cdev = &s1.device;
    let gpu = mask.on_device(cdev)?;
    // Copies of operands whose layout the kernels cannot read, alive until the launch.
    let (mut copy1, mut copy2) = (None, None);
    // Outputs are never empty buffers (the driver refuses a zero-byte allocation): an
    // empty result keeps one unused element.
    let alloc = |len: usize| cdev.alloc_zeros::<T>(len.max(1));
    match kind {
        Kind::Spmm | Kind::SpmmT => {
            let values = vector(op, s1, l1, &mut copy1)?;
            let x = matrix(op, s2, l2, &mut copy2)?;
            // In the CPU forward's order: both ranks, then the values' length.
            if l1.shape().elem_count() != mask.nnz() {
                return Err(Error::ValuesLength {
                    got: l1.shape().elem_count(),
                    nnz: mask.nnz(),
                }
                .into());
            }
            let m = if kind == Kind::SpmmT {
                mask.cols()
            } else {
                mask.rows()
            };
            let n = x.cols();
            let len = m.checked_mul(n).ok_or(Error::IndexOverflow {
                what: "output elements",
                value: usize::MAX,
            })?;
            let mut c = alloc(len)?;
            {
                let a = SparseView::new(&gpu.mask, values)?;
                let mut cv = DenseViewMut::new(c.as_view_mut(), m, n, n)?;
                if kind == Kind::SpmmT {
                    cuda::spmm_t(&gpu.dev, 1.0, &a, &x, 0.0, &mut cv)?;
                } else {
                    cuda::spmm(&gpu.dev, 1.0, &a, &x, 0.0, &mut cv)?;
                }
            }
            Ok((
                CudaStorage::wrap_cuda_slice(c, cdev.clone()),
                Shape::from((m, n)),
            ))
        }
        Kind::Sddmm => {
            let l = matrix(op, s1, l1, &mut copy1)?;
            let r = matrix(op, s2, l2, &mut copy2)?;
            let mut out = alloc(mask.nnz())?;
            {
                let mut ov = SparseViewMut::new(&gpu.mask, out.as_view_mut())?;
                cuda::sddmm(&gpu.dev, 1.0, &l, &r, 0.0, &mut ov)?;
            }
            Ok((
                CudaStorage::wrap_cuda_slice(out, cdev.clone()),
                Shape::from(mask.nnz()),
            ))
        }
    }
}

/// A rank-2 operand as a row-major view: borrowed when its layout has unit column stride
/// and a row stride at least its width, else a row-major copy kept in `copy`.
fn matrix<'a, T: CudaElem>(
    op: &'static str,
    s: &'a CudaStorage,
    layout: &Layout,
    copy: &'a mut Option<CudaStorage>,
) -> Result<DenseView<'a, T>> {
    let &[rows, cols] = layout.dims() else {
        return Err(rank_error(op, 2, layout));
    };
    let &[row_stride, col_stride] = layout.stride() else {
        return Err(rank_error(op, 2, layout));
    };
    // Strides of a dimension of size 0 or 1 are never followed, so any value reads alike.
    let ld = if rows <= 1 || cols == 0 {
        Some(cols)
    } else {
        (row_stride >= cols).then_some(row_stride)
    };
    match ld {
        Some(ld) if cols <= 1 || col_stride == 1 => {
            Ok(DenseView::new(from(s, layout)?, rows, cols, ld)?)
        }
        _ => Ok(DenseView::new(
            contiguous(s, layout, copy)?,
            rows,
            cols,
            cols,
        )?),
    }
}

/// A rank-1 operand's elements in order: borrowed when contiguous, else copied.
fn vector<'a, T: CudaElem>(
    op: &'static str,
    s: &'a CudaStorage,
    layout: &Layout,
    copy: &'a mut Option<CudaStorage>,
) -> Result<CudaView<'a, T>> {
    let &[len] = layout.dims() else {
        return Err(rank_error(op, 1, layout));
    };
    let view = if len <= 1 || layout.stride() == [1] {
        from(s, layout)?
    } else {
        contiguous(s, layout, copy)?
    };
    // Exactly the tensor's elements: the launchers take a values view of at least `nnz`.
    Ok(view.split_at(len.min(view.len())).0)
}

/// The storage's elements from the layout's start offset on.
fn from<'a, T: CudaElem>(s: &'a CudaStorage, layout: &Layout) -> Result<CudaView<'a, T>> {
    let slice = s.as_cuda_slice::<T>()?;
    let start = if layout.shape().elem_count() == 0 {
        0
    } else {
        layout.start_offset()
    };
    slice
        .try_split_at(start)
        .map(|(_, rest)| rest)
        .ok_or_else(|| candle_core::Error::msg("rosa: a layout past the end of its storage"))
}

/// The layout's elements copied row-major into `copy` by candle's strided copy (on the
/// storage's stream), as a view.
fn contiguous<'a, T: CudaElem>(
    s: &CudaStorage,
    layout: &Layout,
    copy: &'a mut Option<CudaStorage>,
) -> Result<CudaView<'a, T>> {
    let len = layout.shape().elem_count();
    let buf = s.device.alloc_zeros::<T>(len.max(1))?;
    let mut dst = CudaStorage::wrap_cuda_slice(buf, s.device.clone());
    if len > 0 {
        s.copy_strided_src(&mut dst, 0, layout)?;
    }
    Ok(copy.insert(dst).as_cuda_slice::<T>()?.as_view())
}

impl SparseMask {
    /// This mask's structure on candle device `dev`, uploaded on its first use there, with
    /// a rosa [`Device`] on that device's stream.
    fn on_device(&self, dev: &CudaDevice) -> Result<Arc<OnDevice>> {
        let mut cache = self
            .device_cache()
            .lock()
            .map_err(|_| candle_core::Error::msg("rosa: a mask's device cache was poisoned"))?;
        if let Some(hit) = cache.iter().find(|g| g.id == dev.id()) {
            return Ok(hit.clone());
        }
        let rosa_dev = Device::from_stream(dev.cuda_stream())?;
        let mask = DeviceMask::from_host(&rosa_dev, self)?;
        let entry = Arc::new(OnDevice {
            id: dev.id(),
            dev: rosa_dev,
            mask,
        });
        cache.push(entry.clone());
        Ok(entry)
    }
}

/// An NF4 W on one candle device, with the rosa device on that device's stream.
#[derive(Debug)]
pub(super) struct Nf4OnDevice {
    id: DeviceId,
    dev: Device,
    w: DeviceNf4,
}

/// `Y = X W^T` (`transposed == false`) or `Y = X W` for the 4-bit W of `base`, X and Y f32
/// on candle's CUDA storage, with the CPU forward's checks: W is dequantized by rosa's NF4
/// kernel into a buffer from candle's pool (on candle's stream), candle's GEMM reads it,
/// and it is freed when the call returns, so layers take turns with one W's worth of
/// memory instead of keeping their own.
pub(super) fn nf4_product(
    op: &'static str,
    base: &Nf4Base,
    transposed: bool,
    s: &CudaStorage,
    l: &Layout,
) -> Result<(CudaStorage, Shape)> {
    let q = base
        .matrix()
        .ok_or_else(|| candle_core::Error::msg("rosa: an NF4 product without an NF4 weight"))?;
    if s.dtype() != DType::F32 {
        return Err(candle_core::Error::UnsupportedDTypeForOp(s.dtype(), op));
    }
    let &[rows, inner] = l.dims() else {
        return Err(rank_error(op, 2, l));
    };
    let (w_rows, w_cols) = (q.rows(), q.cols());
    let (want, cols) = if transposed {
        (w_rows, w_cols)
    } else {
        (w_cols, w_rows)
    };
    if inner != want {
        return Err(candle_core::Error::ShapeMismatchBinaryOp {
            lhs: l.shape().clone(),
            rhs: Shape::from((w_rows, w_cols)),
            op,
        });
    }
    let cdev = &s.device;
    if rows == 0 || cols == 0 || inner == 0 {
        // Nothing to multiply: the product is zeros (cuBLAS is not asked for a k = 0 GEMM).
        let y = cdev.alloc_zeros::<f32>((rows * cols).max(1))?;
        return Ok((
            CudaStorage::wrap_cuda_slice(y, cdev.clone()),
            Shape::from((rows, cols)),
        ));
    }
    let on = base.on_device(cdev, q)?;
    let mut w = cdev.alloc_zeros::<f32>(w_rows * w_cols)?;
    {
        let mut wv = DenseViewMut::new(w.as_view_mut(), w_rows, w_cols, w_cols)?;
        cuda::dequantize(&on.dev, &on.w, 0..w_rows, &mut wv)?;
    }
    let w = CudaStorage::wrap_cuda_slice(w, cdev.clone());
    // The GEMM's right operand, k x n: W itself, or W^T as a transposed layout of W.
    let w_layout = if transposed {
        Layout::contiguous((w_rows, w_cols))
    } else {
        Layout::new(Shape::from((w_cols, w_rows)), vec![1, w_cols], 0)
    };
    let y = s.matmul(&w, (1, rows, cols, inner), l, &w_layout)?;
    Ok((y, Shape::from((rows, cols))))
}

impl Nf4Base {
    /// This W on candle device `dev`, uploaded on its first use there, with a rosa
    /// [`Device`] on that device's stream.
    fn on_device(&self, dev: &CudaDevice, q: &crate::quant::Nf4Matrix) -> Result<Arc<Nf4OnDevice>> {
        let mut cache = self.devices.lock().map_err(|_| {
            candle_core::Error::msg("rosa: an NF4 weight's device cache was poisoned")
        })?;
        if let Some(hit) = cache.iter().find(|g| g.id == dev.id()) {
            return Ok(hit.clone());
        }
        let rosa_dev = Device::from_stream(dev.cuda_stream())?;
        let w = DeviceNf4::from_host(&rosa_dev, q)?;
        let entry = Arc::new(Nf4OnDevice {
            id: dev.id(),
            dev: rosa_dev,
            w,
        });
        cache.push(entry.clone());
        Ok(entry)
    }
}
