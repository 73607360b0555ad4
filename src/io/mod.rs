//! Reading and writing matrices: Matrix Market for sparse, NPY for dense.
//!
//! | format | type | read | write |
//! |---|---|---|---|
//! | Matrix Market `coordinate general` (`real`, `integer`, `pattern`) | [`Csr<T>`](crate::Csr) | [`read_mtx`] | [`write_mtx`] (`real`) |
//! | NPY, 2-D, C order (`f2`, `f4`, `f8`) | [`Dense<T>`](crate::Dense) | [`read_npy`] | [`write_npy`] (`f4`, or `f2` for f16) |
//!
//! Readers treat files as untrusted: every malformed input is an [`Error`], never a
//! panic, and no buffer is sized from a declared count before the count is checked
//! against the file's length. Writers go through a temporary file in the target's
//! directory and rename it into place, so a failed write leaves no partial file.
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

pub use mtx::{read_mtx, write_mtx};
pub use npy::{read_npy, write_npy};

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::{Error, Result};

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

/// Writes through `body` into a sibling temporary file, then renames it over `path`.
///
/// A rename within one directory is atomic, so readers (and a user whose command failed
/// half-way) see either the old file or the complete new one, never a partial write.
pub(crate) fn write_atomically(
    path: &Path,
    body: impl FnOnce(&mut BufWriter<File>) -> std::io::Result<()>,
) -> Result<()> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = path
        .file_name()
        .ok_or_else(|| io_error(path, std::io::ErrorKind::InvalidInput.into()))?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let tmp = dir.join(format!(
        ".{}.{}-{}.tmp",
        name.to_string_lossy(),
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let file = File::options()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .map_err(|e| io_error(path, e))?;
    let written = (|| {
        let mut out = BufWriter::new(file);
        body(&mut out)?;
        out.flush()?;
        out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        fs::rename(&tmp, path)
    })();
    written.map_err(|e| {
        let _ = fs::remove_file(&tmp);
        io_error(path, e)
    })
}
