//! Borrowed operands: device memory owned by someone else (a framework's tensors, a
//! caller's cudarc buffers), described by shape and leading dimension, and the traits that
//! let every launcher take them or rosa's own [`DeviceDense`] / [`DeviceCsr`] alike.

use cudarc::driver::{CudaStream, CudaView, CudaViewMut, DeviceSlice};

use super::{CudaScalar, DeviceCsr, DeviceDense, DeviceMask};
use crate::{Error, Result};

/// Checks that a buffer of `len` elements holds a row-major `rows x cols` matrix of row
/// stride `ld`: `ld >= cols`, and `(rows - 1) * ld + cols` elements (the last row needs
/// only `cols`, so a view may end right after it).
fn check_layout(len: usize, rows: usize, cols: usize, ld: usize) -> Result<()> {
    if ld < cols {
        return Err(Error::InvalidArgument(format!(
            "dense view: leading dimension {ld} is below its {cols} columns"
        )));
    }
    let need = if rows == 0 || cols == 0 {
        Some(0)
    } else {
        (rows - 1).checked_mul(ld).and_then(|x| x.checked_add(cols))
    };
    match need {
        Some(need) if len >= need => Ok(()),
        Some(need) => Err(Error::InvalidArgument(format!(
            "dense view: a {rows} x {cols} matrix with leading dimension {ld} spans {need} \
             elements, the buffer has {len}"
        ))),
        None => Err(Error::InvalidArgument(format!(
            "dense view: {rows} rows of stride {ld} overflow the address space"
        ))),
    }
}

/// The shape accessors the two dense views share.
macro_rules! strided_accessors {
    ($($view:ident),*) => {$(
        impl<T> $view<'_, T> {
            /// Rows.
            pub fn rows(&self) -> usize {
                self.rows
            }

            /// Columns.
            pub fn cols(&self) -> usize {
                self.cols
            }

            /// Row stride in elements.
            pub fn ld(&self) -> usize {
                self.ld
            }

            pub(crate) fn stream(&self) -> &CudaStream {
                DeviceSlice::stream(&self.data)
            }

            pub(crate) fn shape(&self) -> String {
                crate::error::shape(self.rows, self.cols)
            }
        }
    )*};
}
strided_accessors!(DenseView, DenseViewMut);

/// A row-major `rows x cols` matrix in borrowed device memory, row `i` starting at element
/// `i * ld` of the view (`ld >= cols`; padding between rows is never read).
///
/// ```no_run
/// use rosa::cuda::{Device, DenseView};
/// let dev = Device::new(0)?;
/// let buf = dev.stream().alloc_zeros::<f32>(4 * 10).unwrap();
/// // The left 4 x 8 block of a 4 x 10 matrix.
/// let b = DenseView::new(buf.as_view(), 4, 8, 10)?;
/// assert_eq!((b.rows(), b.cols(), b.ld()), (4, 8, 10));
/// # Ok::<(), rosa::Error>(())
/// ```
#[derive(Debug)]
pub struct DenseView<'a, T> {
    pub(crate) data: CudaView<'a, T>,
    rows: usize,
    cols: usize,
    ld: usize,
}

impl<'a, T> DenseView<'a, T> {
    /// Describes `data` as a `rows x cols` matrix of row stride `ld`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when `ld < cols` or `data` holds fewer than
    /// `(rows - 1) * ld + cols` elements.
    pub fn new(data: CudaView<'a, T>, rows: usize, cols: usize, ld: usize) -> Result<Self> {
        check_layout(data.len(), rows, cols, ld)?;
        Ok(DenseView {
            data,
            rows,
            cols,
            ld,
        })
    }
}

/// A writable row-major `rows x cols` matrix in borrowed device memory, as
/// [`DenseView`].
///
/// ```no_run
/// use rosa::cuda::{Device, DenseViewMut};
/// let dev = Device::new(0)?;
/// let mut buf = dev.stream().alloc_zeros::<f32>(64).unwrap();
/// let c = DenseViewMut::new(buf.as_view_mut(), 8, 8, 8)?;
/// assert_eq!(c.ld(), 8);
/// # Ok::<(), rosa::Error>(())
/// ```
#[derive(Debug)]
pub struct DenseViewMut<'a, T> {
    pub(crate) data: CudaViewMut<'a, T>,
    rows: usize,
    cols: usize,
    ld: usize,
}

impl<'a, T> DenseViewMut<'a, T> {
    /// Describes `data` as a writable `rows x cols` matrix of row stride `ld`.
    ///
    /// # Errors
    /// As [`DenseView::new`].
    pub fn new(data: CudaViewMut<'a, T>, rows: usize, cols: usize, ld: usize) -> Result<Self> {
        check_layout(data.len(), rows, cols, ld)?;
        Ok(DenseViewMut {
            data,
            rows,
            cols,
            ld,
        })
    }
}

// cudarc's views are not Clone, and its `slice` panics on an empty range: a split at the
// end never does, and gives the whole view.
fn reborrow<'b, T>(v: &CudaView<'b, T>) -> CudaView<'b, T> {
    v.split_at(v.len()).0
}

fn reborrow_mut<'b, T>(v: &'b mut CudaViewMut<'_, T>) -> CudaViewMut<'b, T> {
    let len = v.len();
    v.split_at_mut(len).0
}

fn check_values(mask: &DeviceMask, len: usize) -> Result<()> {
    if len >= mask.nnz() {
        Ok(())
    } else {
        Err(Error::ValuesLength {
            got: len,
            nnz: mask.nnz(),
        })
    }
}

/// A sparse matrix whose structure is a [`DeviceMask`] and whose values (`nnz` of them, in
/// the mask's `row_ptr` / `col_idx` order) are borrowed device memory.
///
/// ```no_run
/// use rosa::cuda::{Device, DeviceMask, SparseView};
/// let dev = Device::new(0)?;
/// let s = rosa::random::csr::<f32>(64, 32, 0.1, 1)?;
/// let mask = DeviceMask::from_host(&dev, &s)?;
/// let values = dev.stream().clone_htod(s.values()).unwrap();
/// let a = SparseView::new(&mask, values.as_view())?;
/// # Ok::<(), rosa::Error>(())
/// ```
#[derive(Debug)]
pub struct SparseView<'a, T> {
    pub(crate) mask: &'a DeviceMask,
    pub(crate) values: CudaView<'a, T>,
}

impl<'a, T> SparseView<'a, T> {
    /// Pairs a mask with its values.
    ///
    /// # Errors
    /// [`Error::ValuesLength`] when `values` holds fewer than `mask.nnz()` elements.
    pub fn new(mask: &'a DeviceMask, values: CudaView<'a, T>) -> Result<Self> {
        check_values(mask, values.len())?;
        Ok(SparseView { mask, values })
    }

    /// The structure.
    pub fn mask(&self) -> &DeviceMask {
        self.mask
    }

    pub(crate) fn stream(&self) -> &CudaStream {
        DeviceSlice::stream(&self.values)
    }
}

/// [`SparseView`] with writable values: the output of SDDMM.
///
/// ```no_run
/// use rosa::cuda::{Device, DeviceMask, SparseViewMut};
/// let dev = Device::new(0)?;
/// let mask = DeviceMask::from_host(&dev, &rosa::random::csr::<f32>(64, 32, 0.1, 1)?)?;
/// let mut grad = dev.stream().alloc_zeros::<f32>(mask.nnz().max(1)).unwrap();
/// let out = SparseViewMut::new(&mask, grad.as_view_mut())?;
/// # Ok::<(), rosa::Error>(())
/// ```
#[derive(Debug)]
pub struct SparseViewMut<'a, T> {
    pub(crate) mask: &'a DeviceMask,
    pub(crate) values: CudaViewMut<'a, T>,
}

impl<'a, T> SparseViewMut<'a, T> {
    /// Pairs a mask with writable values.
    ///
    /// # Errors
    /// As [`SparseView::new`].
    pub fn new(mask: &'a DeviceMask, values: CudaViewMut<'a, T>) -> Result<Self> {
        check_values(mask, values.len())?;
        Ok(SparseViewMut { mask, values })
    }

    /// The structure.
    pub fn mask(&self) -> &DeviceMask {
        self.mask
    }

    pub(crate) fn stream(&self) -> &CudaStream {
        DeviceSlice::stream(&self.values)
    }
}

/// A dense operand a launcher reads: [`DeviceDense`] or a [`DenseView`].
pub trait DenseOperand<T> {
    /// The operand as a borrowed view.
    fn dense_view(&self) -> DenseView<'_, T>;
}

/// A dense operand a launcher writes: [`DeviceDense`] or a [`DenseViewMut`].
pub trait DenseOperandMut<T> {
    /// The operand as a borrowed writable view.
    fn dense_view_mut(&mut self) -> DenseViewMut<'_, T>;
}

/// A sparse operand a launcher reads: [`DeviceCsr`] or a [`SparseView`].
pub trait SparseOperand<T> {
    /// The operand as a borrowed view.
    fn sparse_view(&self) -> SparseView<'_, T>;
}

/// A sparse operand a launcher writes the values of: [`DeviceCsr`] or a
/// [`SparseViewMut`].
pub trait SparseOperandMut<T> {
    /// The operand as a borrowed writable view.
    fn sparse_view_mut(&mut self) -> SparseViewMut<'_, T>;
}

impl<T> DenseOperand<T> for DenseView<'_, T> {
    fn dense_view(&self) -> DenseView<'_, T> {
        DenseView {
            data: reborrow(&self.data),
            rows: self.rows,
            cols: self.cols,
            ld: self.ld,
        }
    }
}

impl<T> DenseOperandMut<T> for DenseViewMut<'_, T> {
    fn dense_view_mut(&mut self) -> DenseViewMut<'_, T> {
        DenseViewMut {
            data: reborrow_mut(&mut self.data),
            rows: self.rows,
            cols: self.cols,
            ld: self.ld,
        }
    }
}

impl<T: CudaScalar> DenseOperand<T> for DeviceDense<T> {
    fn dense_view(&self) -> DenseView<'_, T> {
        DenseView {
            data: self.data.as_view(),
            rows: self.rows(),
            cols: self.cols(),
            ld: self.cols(),
        }
    }
}

impl<T: CudaScalar> DenseOperandMut<T> for DeviceDense<T> {
    fn dense_view_mut(&mut self) -> DenseViewMut<'_, T> {
        let (rows, cols) = (self.rows(), self.cols());
        DenseViewMut {
            data: self.data.as_view_mut(),
            rows,
            cols,
            ld: cols,
        }
    }
}

impl<T> SparseOperand<T> for SparseView<'_, T> {
    fn sparse_view(&self) -> SparseView<'_, T> {
        SparseView {
            mask: self.mask,
            values: reborrow(&self.values),
        }
    }
}

impl<T> SparseOperandMut<T> for SparseViewMut<'_, T> {
    fn sparse_view_mut(&mut self) -> SparseViewMut<'_, T> {
        SparseViewMut {
            mask: self.mask,
            values: reborrow_mut(&mut self.values),
        }
    }
}

impl<T: CudaScalar> SparseOperand<T> for DeviceCsr<T> {
    fn sparse_view(&self) -> SparseView<'_, T> {
        SparseView {
            mask: self.mask(),
            values: self.values.as_view(),
        }
    }
}

impl<T: CudaScalar> SparseOperandMut<T> for DeviceCsr<T> {
    fn sparse_view_mut(&mut self) -> SparseViewMut<'_, T> {
        let (mask, values) = self.split_mut();
        SparseViewMut {
            mask,
            values: values.as_view_mut(),
        }
    }
}
