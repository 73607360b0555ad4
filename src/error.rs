//! The one error type of the crate.

use std::path::PathBuf;

/// Everything that can go wrong in `rosa`, as a value the caller can match on.
///
/// Library code never panics on user input: malformed matrices, mismatched shapes and
/// unreadable files all come back as one of these.
///
/// ```
/// use rosa::{Csr, Error};
/// let err = Csr::<f32>::from_parts(2, 2, vec![0, 1], vec![0], vec![1.0]).unwrap_err();
/// assert!(matches!(err, Error::RowPtrLength { got: 2, expected: 3 }));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `row_ptr` must hold `rows + 1` offsets.
    #[error("row_ptr has {got} entries, expected rows + 1 = {expected}")]
    RowPtrLength { got: usize, expected: usize },
    /// `row_ptr[0]` must be 0.
    #[error("row_ptr[0] is {got}, expected 0")]
    RowPtrStart { got: i32 },
    /// `row_ptr` must never decrease.
    #[error("row_ptr decreases at row {row}: row_ptr[{row}] = {start} > row_ptr[{next}] = {end}", next = row + 1)]
    RowPtrDecreasing { row: usize, start: i32, end: i32 },
    /// `row_ptr[rows]` must equal the number of stored column indices.
    #[error("row_ptr ends at {got}, but col_idx holds {nnz} entries")]
    RowPtrEnd { got: i32, nnz: usize },
    /// A column index outside `0..cols`.
    #[error("column {col} at index {index} (row {row}) is out of range for {cols} columns")]
    ColumnOutOfRange {
        row: usize,
        index: usize,
        col: i32,
        cols: usize,
    },
    /// Columns within a row must be strictly increasing.
    #[error("row {row} is not sorted: column {col} at index {index} follows column {prev}")]
    ColumnsUnsorted {
        row: usize,
        index: usize,
        prev: i32,
        col: i32,
    },
    /// A column may appear once per row.
    #[error("column {col} is repeated in row {row} at index {index}")]
    ColumnRepeated { row: usize, index: usize, col: i32 },
    /// `values` must have one entry per stored column index.
    #[error("values has {got} entries, but col_idx holds {nnz}")]
    ValuesLength { got: usize, nnz: usize },
    /// A dimension or count that does not fit the i32 indices of the CSR layout.
    #[error("{what} = {value} does not fit a 32-bit index (max {max})", max = i32::MAX)]
    IndexOverflow { what: &'static str, value: usize },
    /// A triplet whose row or column lies outside the matrix.
    #[error("triplet {index} at ({row}, {col}) lies outside a {rows} x {cols} matrix")]
    TripletOutOfRange {
        index: usize,
        row: usize,
        col: usize,
        rows: usize,
        cols: usize,
    },
    /// Triplet lists of different lengths.
    #[error("triplet lists differ in length: {rows} rows, {cols} columns, {values} values")]
    TripletLengths {
        rows: usize,
        cols: usize,
        values: usize,
    },
    /// A dense buffer whose length is not `rows * cols`.
    #[error("dense buffer has {len} elements, but a {rows} x {cols} matrix needs {needed}", needed = *rows as u128 * *cols as u128)]
    DenseLength {
        rows: usize,
        cols: usize,
        len: usize,
    },
    /// Two operands whose shapes do not fit together.
    #[error("shape mismatch in {op}: {detail}")]
    ShapeMismatch { op: &'static str, detail: String },
    /// A transpose plan used with a matrix it was not built from.
    #[error("the transpose plan was built for a different sparsity structure ({plan}), not this one ({matrix})")]
    PlanMismatch { plan: String, matrix: String },
    /// A value that is not allowed where it appears (NaN scaling factors, bad densities).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A file that could not be opened, read or written.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A file whose contents do not follow its format.
    #[error("{}: {reason}", path.display())]
    Format { path: PathBuf, reason: String },
    /// Something the crate was built without, or a format feature it does not read.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// A CUDA driver, runtime or kernel-launch call that failed, with its status code.
    #[error("{call} failed with CUDA status {code}: {message}")]
    Cuda {
        call: &'static str,
        code: i32,
        message: String,
    },
    /// No usable GPU: no driver library, no device, or an ordinal past the last device.
    #[error("no CUDA device: {0}")]
    NoDevice(String),
    /// A buffer sized from input that the allocator refused (the process is not aborted).
    #[error("{what}: cannot allocate {bytes} bytes ({})", human_bytes(*bytes))]
    Alloc { what: String, bytes: u128 },
    /// A NaN or an infinity where only finite numbers are allowed: an element of a
    /// matrix handed to quantization ([`crate::quant::Nf4Matrix::quantize`]), whose
    /// block scale it would poison.
    #[error("{what}: element ({row}, {col}) is {value}; only finite values are accepted")]
    NonFinite {
        what: &'static str,
        row: usize,
        col: usize,
        value: f32,
    },
    /// A finite number in a file that the compute dtype cannot hold: beyond its finite
    /// range (it would round to ±inf), or an integer it would round to another value.
    #[error("{}: {at}: {value} {}", path.display(), unrepresentable(*dtype, *rounded))]
    Unrepresentable {
        path: PathBuf,
        /// Where in the file: a line, or an element's index.
        at: String,
        /// The value as read (or as summed from duplicates).
        value: String,
        dtype: crate::DType,
        /// What it would have become in `dtype`.
        rounded: f64,
    },
}

fn unrepresentable(dtype: crate::DType, rounded: f64) -> String {
    if rounded.is_infinite() {
        format!(
            "is outside the finite range of {dtype} (largest magnitude {}): it would become {}",
            short(dtype.max_finite()),
            short(rounded)
        )
    } else {
        format!(
            "is an integer {dtype} cannot hold exactly: it would become {}",
            short(rounded)
        )
    }
}

/// A number as people write it: shortest round-trip digits (as an f32 where it is one),
/// in scientific notation outside `1e-4..1e16`.
pub(crate) fn short(x: f64) -> String {
    let plain = x == 0.0 || !x.is_finite() || (1e-4..1e16).contains(&x.abs());
    match (x as f32 as f64 == x, plain) {
        (true, true) => format!("{}", x as f32),
        (true, false) => format!("{:e}", x as f32),
        (false, true) => format!("{x}"),
        (false, false) => format!("{x:e}"),
    }
}

/// `bytes` with a binary unit, for people.
fn human_bytes(bytes: u128) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut x = bytes as f64;
    let mut unit = 0;
    while x >= 1024.0 && unit + 1 < UNITS.len() {
        x /= 1024.0;
        unit += 1;
    }
    format!("{x:.1} {}", UNITS[unit])
}

/// An empty vector with room for `len` elements, or [`Error::Alloc`] naming `what`
/// (called only on failure) when the allocator refuses: for every buffer whose size
/// comes from input, which must never abort the process.
pub(crate) fn try_vec<T>(len: usize, what: impl FnOnce() -> String) -> Result<Vec<T>> {
    let mut v = Vec::new();
    v.try_reserve_exact(len).map_err(|_| Error::Alloc {
        what: what(),
        bytes: len as u128 * std::mem::size_of::<T>() as u128,
    })?;
    Ok(v)
}

/// `Result` with [`Error`] as the error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Shape of a dense or sparse operand, for error messages.
pub(crate) fn shape(rows: usize, cols: usize) -> String {
    format!("{rows} x {cols}")
}
