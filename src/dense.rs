//! Row-major dense matrices: an owned [`Dense`] and the borrowed views the kernels take.

use crate::error::shape;
use crate::{Error, Result, Scalar};

fn check_len(rows: usize, cols: usize, len: usize) -> Result<()> {
    match rows.checked_mul(cols) {
        Some(n) if n == len => Ok(()),
        _ => Err(Error::DenseLength { rows, cols, len }),
    }
}

/// An owned row-major dense matrix.
///
/// ```
/// use rosa::Dense;
/// let m = Dense::from_vec(2, 3, vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap();
/// assert_eq!(m.get(1, 2), Some(6.0));
/// assert!(Dense::from_vec(2, 2, vec![1.0f32]).is_err());
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Dense<T> {
    rows: usize,
    cols: usize,
    data: Vec<T>,
}

impl<T: Scalar> Dense<T> {
    /// A matrix of zeros.
    pub fn zeros(rows: usize, cols: usize) -> Self {
        Self::filled(rows, cols, T::default())
    }

    /// A matrix of zeros, or [`Error::Alloc`] naming `what` if the memory cannot be had:
    /// for outputs whose shape comes from input, which must not abort the process.
    ///
    /// ```
    /// use rosa::{Dense, Error};
    /// assert_eq!(Dense::<f32>::try_zeros(2, 3, "C").unwrap(), Dense::zeros(2, 3));
    /// let err = Dense::<f32>::try_zeros(1 << 40, 1 << 40, "C").unwrap_err();
    /// assert!(matches!(err, Error::Alloc { .. }));
    /// ```
    pub fn try_zeros(rows: usize, cols: usize, what: &str) -> Result<Self> {
        let describe = || format!("{what} ({rows} x {cols} {})", T::DTYPE);
        let len = rows.checked_mul(cols).ok_or_else(|| Error::Alloc {
            what: describe(),
            bytes: rows as u128 * cols as u128 * T::DTYPE.size() as u128,
        })?;
        let mut data = crate::error::try_vec(len, describe)?;
        data.resize(len, T::default());
        Ok(Dense { rows, cols, data })
    }

    /// A matrix with every element set to `value`.
    pub fn filled(rows: usize, cols: usize, value: T) -> Self {
        Dense {
            rows,
            cols,
            data: vec![value; rows * cols],
        }
    }

    /// Wraps a row-major buffer; its length must be `rows * cols`.
    pub fn from_vec(rows: usize, cols: usize, data: Vec<T>) -> Result<Self> {
        check_len(rows, cols, data.len())?;
        Ok(Dense { rows, cols, data })
    }

    /// Builds a matrix from a function of (row, column).
    pub fn from_fn(rows: usize, cols: usize, mut f: impl FnMut(usize, usize) -> T) -> Self {
        let mut data = Vec::with_capacity(rows * cols);
        for i in 0..rows {
            for j in 0..cols {
                data.push(f(i, j));
            }
        }
        Dense { rows, cols, data }
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of columns.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// The element at (row, col), or `None` outside the matrix.
    pub fn get(&self, row: usize, col: usize) -> Option<T> {
        (row < self.rows && col < self.cols).then(|| self.data[row * self.cols + col])
    }

    /// The row-major elements.
    pub fn as_slice(&self) -> &[T] {
        &self.data
    }

    /// The row-major elements, mutably.
    pub fn as_mut_slice(&mut self) -> &mut [T] {
        &mut self.data
    }

    /// Gives back the row-major buffer.
    pub fn into_vec(self) -> Vec<T> {
        self.data
    }

    /// A borrowed view.
    pub fn as_ref(&self) -> MatRef<'_, T> {
        MatRef {
            rows: self.rows,
            cols: self.cols,
            data: &self.data,
        }
    }

    /// A mutable borrowed view.
    pub fn as_mut(&mut self) -> MatMut<'_, T> {
        MatMut {
            rows: self.rows,
            cols: self.cols,
            data: &mut self.data,
        }
    }
}

/// A borrowed row-major dense matrix whose length was checked against its shape.
///
/// ```
/// use rosa::MatRef;
/// let data = [1.0f32, 2.0, 3.0, 4.0];
/// let m = MatRef::new(&data, 2, 2).unwrap();
/// assert_eq!(m.row(1), &[3.0, 4.0]);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct MatRef<'a, T> {
    rows: usize,
    cols: usize,
    data: &'a [T],
}

impl<'a, T: Scalar> MatRef<'a, T> {
    /// Views `data` as a `rows x cols` matrix; its length must be `rows * cols`.
    pub fn new(data: &'a [T], rows: usize, cols: usize) -> Result<Self> {
        check_len(rows, cols, data.len())?;
        Ok(MatRef { rows, cols, data })
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of columns.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// The row-major elements.
    pub fn as_slice(&self) -> &'a [T] {
        self.data
    }

    /// Row `i`. Panics if `i >= rows`, like slice indexing.
    pub fn row(&self, i: usize) -> &'a [T] {
        &self.data[i * self.cols..(i + 1) * self.cols]
    }

    /// Copies the view into an owned matrix.
    pub fn to_owned(&self) -> Dense<T> {
        Dense {
            rows: self.rows,
            cols: self.cols,
            data: self.data.to_vec(),
        }
    }

    pub(crate) fn shape(&self) -> String {
        shape(self.rows, self.cols)
    }
}

/// A mutable borrowed row-major dense matrix whose length was checked against its shape.
///
/// ```
/// use rosa::MatMut;
/// let mut data = [0.0f32; 6];
/// let m = MatMut::new(&mut data, 3, 2).unwrap();
/// assert_eq!((m.rows(), m.cols()), (3, 2));
/// ```
#[derive(Debug)]
pub struct MatMut<'a, T> {
    rows: usize,
    cols: usize,
    data: &'a mut [T],
}

impl<'a, T: Scalar> MatMut<'a, T> {
    /// Views `data` as a mutable `rows x cols` matrix; its length must be `rows * cols`.
    pub fn new(data: &'a mut [T], rows: usize, cols: usize) -> Result<Self> {
        check_len(rows, cols, data.len())?;
        Ok(MatMut { rows, cols, data })
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of columns.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// The row-major elements, mutably.
    pub fn as_mut_slice(&mut self) -> &mut [T] {
        self.data
    }

    /// A read-only view of the same elements, e.g. to copy the old output somewhere.
    ///
    /// ```
    /// use rosa::MatMut;
    /// let mut data = [1.0f32, 2.0];
    /// let m = MatMut::new(&mut data, 1, 2).unwrap();
    /// assert_eq!(m.as_ref().as_slice(), &[1.0, 2.0]);
    /// ```
    pub fn as_ref(&self) -> MatRef<'_, T> {
        MatRef {
            rows: self.rows,
            cols: self.cols,
            data: self.data,
        }
    }

    pub(crate) fn into_slice(self) -> &'a mut [T] {
        self.data
    }

    pub(crate) fn shape(&self) -> String {
        shape(self.rows, self.cols)
    }
}
