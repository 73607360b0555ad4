//! Writing an output file without clobbering what should not be replaced.
//!
//! Hand-written rather than through `tempfile` or `atomic-write-file`: those replace
//! whatever is at the path by rename, which turns a symbolic link, `/dev/null` or a FIFO
//! into a regular file; what to do with each kind of path is the point here.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::io_error;
use crate::Result;

/// Symbolic links followed before giving up, as Linux's `MAXSYMLINKS`.
const MAX_LINKS: usize = 40;

/// Where the bytes for `path` go.
#[derive(Debug)]
enum Target {
    /// A regular file, or nothing yet: written beside it and renamed over it.
    Replace(PathBuf),
    /// A character device or FIFO: opened and written in place.
    Stream(PathBuf),
}

/// Writes `path` through `body`, never replacing what should not be replaced:
///
/// - nothing there, or a regular file: the data goes to a temporary file in the same
///   folder, which is then renamed over `path` (atomic: readers, and a user whose command
///   failed half-way, see the old file or the complete new one, never a partial one);
///   a replaced file keeps its permission bits;
/// - a symbolic link: the same, at the link's final target (in the target's folder), so
///   the link stays a link;
/// - a character device (`/dev/null`, a terminal) or a FIFO: opened for writing and
///   streamed into (not atomic: there is nothing to rename over);
/// - a directory, with or without a trailing `/`: "is a directory"; a block device or a
///   socket: refused.
pub(crate) fn write_atomically(
    path: &Path,
    body: impl FnOnce(&mut BufWriter<File>) -> std::io::Result<()>,
) -> Result<()> {
    match resolve(path)? {
        Target::Stream(device) => {
            let file = File::options()
                .write(true)
                .open(&device)
                .map_err(|e| io_error(path, e))?;
            let mut out = BufWriter::new(file);
            body(&mut out)
                .and_then(|()| out.flush())
                .map_err(|e| io_error(path, e))
        }
        Target::Replace(file) => replace(path, &file, body),
    }
}

/// Follows symbolic links from `path` to what a write should land on.
fn resolve(path: &Path) -> Result<Target> {
    let refuse = |what: &str| Err(io_error(path, std::io::Error::other(what.to_string())));
    let mut at = path.to_path_buf();
    for _ in 0..MAX_LINKS {
        let meta = match fs::symlink_metadata(&at) {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                // `out/` names a directory that is not there: never create a file "out".
                if at.as_os_str().as_encoded_bytes().ends_with(b"/") {
                    return Err(io_error(path, e));
                }
                return Ok(Target::Replace(at));
            }
            Err(e) => return Err(io_error(path, e)),
        };
        let kind = meta.file_type();
        if kind.is_symlink() {
            let link = fs::read_link(&at).map_err(|e| io_error(path, e))?;
            at = match at.parent() {
                Some(dir) => dir.join(link),
                None => link,
            };
        } else if kind.is_dir() {
            return Err(io_error(
                path,
                std::io::Error::from(std::io::ErrorKind::IsADirectory),
            ));
        } else if kind.is_file() {
            return Ok(Target::Replace(at));
        } else if kind.is_char_device() || kind.is_fifo() {
            return Ok(Target::Stream(at));
        } else if kind.is_block_device() {
            return refuse("is a block device; rosa writes files, character devices and FIFOs");
        } else {
            return refuse("is a socket or another special file; rosa writes files, character devices and FIFOs");
        }
    }
    refuse("too many levels of symbolic links")
}

/// Writes `file` (which `path` is, or links to) by a temporary file renamed over it.
fn replace(
    path: &Path,
    file: &Path,
    body: impl FnOnce(&mut BufWriter<File>) -> std::io::Result<()>,
) -> Result<()> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = file
        .file_name()
        .ok_or_else(|| io_error(path, std::io::ErrorKind::InvalidInput.into()))?;
    let dir = match file.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let tmp = dir.join(format!(
        ".{}.{}-{}.tmp",
        name.to_string_lossy(),
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let out = File::options()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .map_err(|e| io_error(path, e))?;
    let written = (|| {
        if let Ok(old) = fs::metadata(file) {
            out.set_permissions(old.permissions())?;
        }
        let mut out = BufWriter::new(out);
        body(&mut out)?;
        out.flush()?;
        out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        fs::rename(&tmp, file)
    })();
    written.map_err(|e| {
        let _ = fs::remove_file(&tmp);
        io_error(path, e)
    })
}
