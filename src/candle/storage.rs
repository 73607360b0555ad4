//! candle's CPU storage seen as the row-major matrices and vectors rosa's kernels take.
//!
//! A custom op receives a storage and a [`Layout`] (shape, strides, offset): contiguous
//! operands are borrowed as they are, strided ones (a transposed view, say) are gathered
//! once into a row-major copy, which the kernels' own f32 widening of f16/bf16 operands
//! would have cost anyway.

use std::borrow::Cow;

use candle_core::{CpuStorage, DType, Device, Layout, Result, Tensor, WithDType};

use crate::{Error, Scalar};

/// The element types the ops run on: rosa's kernel types that candle also stores.
pub(crate) trait Elem: Scalar + WithDType {}
impl<T: Scalar + WithDType> Elem for T {}

/// Matches two storages of the same float type (f32, f16 or bf16) and runs `$body` with
/// both as slices of it; any other pair is candle's dtype error naming `$op`.
macro_rules! same_float {
    ($op:expr, $s1:expr, $s2:expr, |$a:ident, $b:ident| $body:expr) => {
        match ($s1, $s2) {
            (candle_core::CpuStorage::F32($a), candle_core::CpuStorage::F32($b)) => $body,
            (candle_core::CpuStorage::F16($a), candle_core::CpuStorage::F16($b)) => $body,
            (candle_core::CpuStorage::BF16($a), candle_core::CpuStorage::BF16($b)) => $body,
            (a, b) => {
                use candle_core::backend::BackendStorage;
                Err($crate::candle::storage::dtype_error(
                    $op,
                    a.dtype(),
                    b.dtype(),
                ))
            }
        }
    };
}
pub(crate) use same_float;

/// The error for operands that are not one shared f32, f16 or bf16 type.
pub(crate) fn dtype_error(op: &'static str, a: DType, b: DType) -> candle_core::Error {
    if a == b {
        candle_core::Error::UnsupportedDTypeForOp(a, op)
    } else {
        candle_core::Error::DTypeMismatchBinaryOp { lhs: a, rhs: b, op }
    }
}

/// A rank-2 operand as `(rows, cols, row-major elements)`.
pub(crate) fn matrix<'a, T: Elem>(
    op: &'static str,
    data: &'a [T],
    layout: &Layout,
) -> Result<(usize, usize, Cow<'a, [T]>)> {
    let &[rows, cols] = layout.dims() else {
        return Err(rank_error(op, 2, layout));
    };
    let stride = layout.stride();
    Ok((
        rows,
        cols,
        gather(data, layout, rows * cols, |p| {
            layout.start_offset() + (p / cols.max(1)) * stride[0] + (p % cols.max(1)) * stride[1]
        })?,
    ))
}

/// A rank-1 operand's elements in order.
pub(crate) fn vector<'a, T: Elem>(
    op: &'static str,
    data: &'a [T],
    layout: &Layout,
) -> Result<Cow<'a, [T]>> {
    let &[len] = layout.dims() else {
        return Err(rank_error(op, 1, layout));
    };
    let stride = layout.stride()[0];
    gather(data, layout, len, |p| layout.start_offset() + p * stride)
}

/// Borrows the elements when they are contiguous; otherwise copies element `p` (in
/// row-major order) from `data[offset(p)]`.
fn gather<'a, T: Elem>(
    data: &'a [T],
    layout: &Layout,
    len: usize,
    offset: impl Fn(usize) -> usize,
) -> Result<Cow<'a, [T]>> {
    if let Some((start, end)) = layout.contiguous_offsets() {
        return data
            .get(start..end)
            .map(Cow::Borrowed)
            .ok_or_else(|| candle_core::Error::msg("rosa: a layout past the end of its storage"));
    }
    let mut out = alloc::<T>(len)?;
    for p in 0..len {
        let v = data.get(offset(p)).ok_or_else(|| {
            candle_core::Error::msg("rosa: a strided layout past the end of its storage")
        })?;
        out.push(*v);
    }
    Ok(Cow::Owned(out))
}

pub(crate) fn rank_error(op: &'static str, expected: usize, layout: &Layout) -> candle_core::Error {
    candle_core::Error::UnexpectedNumberOfDims {
        expected,
        got: layout.dims().len(),
        shape: layout.shape().clone(),
    }
    .context(op)
}

/// An empty vector with room for `len` elements, or an error (never an abort) when the
/// allocation fails: output sizes come from the inputs' shapes.
pub(crate) fn alloc<T>(len: usize) -> Result<Vec<T>> {
    let mut v = Vec::new();
    v.try_reserve_exact(len).map_err(|_| {
        candle_core::Error::from(Error::InvalidArgument(format!(
            "cannot allocate {len} elements of {} bytes",
            std::mem::size_of::<T>()
        )))
    })?;
    Ok(v)
}

/// An output buffer of `rows * cols` elements, filled with NaN: every kernel call writes
/// all of it (`beta = 0`), so a missed element shows instead of passing as a zero.
pub(crate) fn output<T: Elem>(rows: usize, cols: usize) -> Result<Vec<T>> {
    let len = rows.checked_mul(cols).ok_or(Error::IndexOverflow {
        what: "output elements",
        value: usize::MAX,
    })?;
    let mut v = alloc(len)?;
    v.resize(len, T::from_f32(f32::NAN));
    Ok(v)
}

/// The finished output as candle storage.
pub(crate) fn storage<T: Elem>(v: Vec<T>) -> CpuStorage {
    T::to_cpu_storage_owned(v)
}

/// A 2-D tensor (any float dtype, any device) as an f32 [`Dense`](crate::Dense) on the host.
pub(crate) fn dense_from_tensor(t: &Tensor) -> Result<crate::Dense<f32>> {
    let &[rows, cols] = t.dims() else {
        return Err(candle_core::Error::UnexpectedNumberOfDims {
            expected: 2,
            got: t.rank(),
            shape: t.shape().clone(),
        });
    };
    let v = t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
    Ok(crate::Dense::from_vec(rows, cols, v)?)
}

/// An f32 [`Dense`](crate::Dense) as a 2-D f32 tensor on `device`.
pub(crate) fn tensor_from_dense(d: &crate::Dense<f32>, device: &Device) -> Result<Tensor> {
    Tensor::from_slice(d.as_slice(), (d.rows(), d.cols()), device)
}
