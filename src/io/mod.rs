//! Reading and writing matrices: Matrix Market for sparse (and dense), NPY for dense.
//!
//! | format | type | read | write |
//! |---|---|---|---|
//! | Matrix Market `coordinate` (`real`, `integer`, `pattern`; `general`, `symmetric`, `skew-symmetric`) | [`Csr<T>`](crate::Csr) | [`read_mtx`] | [`write_mtx`] (`real general`) |
//! | Matrix Market `array` (`real`, `integer`; `general`, `symmetric`, `skew-symmetric`) | [`Csr<T>`](crate::Csr) (its nonzeros), [`Dense<T>`](crate::Dense) | [`read_mtx`], [`read_mtx_dense`] | |
//! | NPY, 2-D, C or Fortran order (`f2`, `f4`, `f8`, `i1`-`i8`, `u1`-`u8`, `b1`) | [`Dense<T>`](crate::Dense) | [`read_npy`] | [`write_npy`] (`f4`, or `f2` for f16) |
//!
//! [`read_dense`] takes either dense kind, telling them apart by their first bytes.
//!
//! Readers treat files as untrusted: every malformed input is an [`Error`], never a
//! panic; no buffer is sized from a declared count before the file's data confirms it;
//! every buffer sized from input is allocated fallibly ([`Error::Alloc`]); every piece
//! of input an error message quotes is cut to 80 characters. Values are rounded to the
//! compute dtype once, from f64 (after summing duplicates, in f64); a finite value the
//! dtype cannot hold, or an integer it would change, is [`Error::Unrepresentable`].
//!
//! Writers replace a regular file atomically (a temporary file in the same folder,
//! renamed into place, so a failed write leaves the old file or none), write through a
//! symbolic link to its target the same way, stream into a character device or FIFO,
//! and refuse a directory or anything else.
//!
//! ```
//! use rosa::{io, Csr, Dense};
//! let dir = std::env::temp_dir();
//! let a = Csr::from_triplets(2, 2, &[(0, 1, 2.5f32)]).unwrap();
//! let path = dir.join(format!("rosa-io-mod-{}.mtx", std::process::id()));
//! io::write_mtx(&path, &a).unwrap();
//! assert_eq!(io::read_mtx::<f32>(&path).unwrap(), a);
//! # std::fs::remove_file(&path).unwrap();
//! ```

mod mtx;
mod npy;
mod output;

pub use mtx::{read_mtx, read_mtx_dense, read_mtx_pattern, write_mtx};
pub use npy::{read_npy, write_npy};
pub(crate) use output::write_atomically;

use std::path::Path;

use crate::error::short;
use crate::{Dense, Error, Result, Scalar};

/// Reads a dense operand: an NPY file ([`read_npy`]) or a Matrix Market `array` file
/// ([`read_mtx_dense`]), told apart by the file's first bytes, not its name.
///
/// ```
/// use rosa::io;
/// let path = std::env::temp_dir().join(format!("rosa-read-dense-{}", std::process::id()));
/// // Column-major, as Matrix Market stores dense matrices: [[1, 2], [3, 4]].
/// std::fs::write(&path, "%%MatrixMarket matrix array real general\n2 2\n1\n3\n2\n4\n").unwrap();
/// assert_eq!(io::read_dense::<f32>(&path).unwrap().as_slice(), &[1.0, 2.0, 3.0, 4.0]);
/// # std::fs::remove_file(&path).unwrap();
/// ```
pub fn read_dense<T: Scalar>(path: impl AsRef<Path>) -> Result<Dense<T>> {
    let path = path.as_ref();
    let bytes = read_file(path)?;
    if bytes.starts_with(npy::MAGIC) {
        npy::parse(path, &bytes)
    } else if mtx::is_matrix_market(&bytes) {
        mtx::parse_dense(path, &bytes)
    } else {
        Err(format_error(
            path,
            format!(
                "neither an NPY file (starting \\x93NUMPY) nor a Matrix Market file (starting %%MatrixMarket): it starts {}",
                quote(&bytes[..bytes.len().min(16)])
            ),
        ))
    }
}

/// The whole file: its length is the one size the readers trust.
fn read_file(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::OutOfMemory {
            Error::Alloc {
                what: format!("{}: the file's contents", path.display()),
                bytes: std::fs::metadata(path).map_or(0, |m| m.len() as u128),
            }
        } else {
            io_error(path, e)
        }
    })
}

fn io_error(path: &Path, source: std::io::Error) -> Error {
    Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn format_error(path: &Path, reason: impl Into<String>) -> Error {
    Error::Format {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

fn unsupported(path: &Path, what: impl std::fmt::Display) -> Error {
    Error::Unsupported(format!("{}: {what}", path.display()))
}

/// Names the file in an allocation failure (the builders below the readers do not know it).
fn in_file(path: &Path) -> impl Fn(Error) -> Error + '_ {
    move |e| match e {
        Error::Alloc { what, bytes } => Error::Alloc {
            what: format!("{}: {what}", path.display()),
            bytes,
        },
        other => other,
    }
}

/// A piece of input for an error message, in quotes: see [`excerpt`].
fn quote(bytes: &[u8]) -> String {
    let (text, cut) = excerpt(bytes);
    format!("'{text}'{cut}")
}

/// Printable ASCII as is, anything else escaped (`\xff`), and at most 80 characters of
/// it however long the input, with what was cut (`... (5000000 bytes)`) said apart.
fn excerpt(bytes: &[u8]) -> (String, String) {
    const MAX: usize = 80;
    let mut text = String::new();
    for &b in bytes.iter().take(MAX) {
        match b {
            b' '..=b'~' => text.push(b as char),
            b'\t' => text.push_str("\\t"),
            _ => text += &format!("\\x{b:02x}"),
        }
    }
    let cut = match bytes.len() {
        n if n > MAX => format!("... ({n} bytes)"),
        _ => String::new(),
    };
    (text, cut)
}

/// A number from a file on its way to the compute dtype: a float is rounded, an integer
/// must come through unchanged.
#[derive(Debug, Clone, Copy)]
enum Number {
    Float(f64),
    Int(i128),
}

impl Number {
    /// Rounds to `T` once, or gives what it would have become when `T` cannot hold it:
    /// ±inf for a finite value past `T`'s range, another integer for an integer.
    fn narrow<T: Scalar>(self) -> std::result::Result<T, f64> {
        match self {
            Number::Float(x) => {
                let t = T::from_f64(x);
                if x.is_finite() && !t.to_f32().is_finite() {
                    Err(t.to_f32() as f64)
                } else {
                    Ok(t)
                }
            }
            Number::Int(i) => {
                let t = T::from_f64(i as f64);
                let back = t.to_f32();
                // `as i128` saturates, and no f32 integer near i128::MAX comes from an
                // i64 or u64, so equality means exact.
                if back.is_finite() && back as i128 == i {
                    Ok(t)
                } else {
                    Err(back as f64)
                }
            }
        }
    }

    fn show(self) -> String {
        match self {
            Number::Float(x) => short(x),
            Number::Int(i) => i.to_string(),
        }
    }
}

/// [`Number::narrow`], with the error naming the file and where in it the value was.
fn narrow<T: Scalar>(path: &Path, n: Number, at: impl FnOnce() -> String) -> Result<T> {
    n.narrow().map_err(|rounded| Error::Unrepresentable {
        path: path.to_path_buf(),
        at: at(),
        value: n.show(),
        dtype: T::DTYPE,
        rounded,
    })
}
