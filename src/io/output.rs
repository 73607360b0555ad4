//! Writing an output file without clobbering what should not be replaced.
//!
//! Hand-written rather than through `tempfile`: its `persist` renames over the path,
//! which turns a symbolic link, `/dev/null` or a FIFO into a regular file, and what to
//! do with each kind of path is the point here.

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

/// What a write to `path` should land on, following symbolic links.
fn resolve(path: &Path) -> Result<Target> {
    let not_found = |e: &std::io::Error| e.kind() == std::io::ErrorKind::NotFound;
    match fs::symlink_metadata(path) {
        Ok(meta) if !meta.file_type().is_symlink() => classify(path, &meta),
        Ok(_) => match fs::metadata(path) {
            // A link to a regular file: replace the file, in its own folder.
            Ok(meta) if meta.is_file() => fs::canonicalize(path)
                .map(Target::Replace)
                .map_err(|e| io_error(path, e)),
            // Anything else is opened through the link itself, which also follows the
            // kernel's own links (`/dev/stdout` to a pipe is `/proc/self/fd/1`, whose
            // target `pipe:[...]` is no path).
            Ok(meta) => classify(path, &meta),
            Err(e) if not_found(&e) => dangling(path),
            Err(e) => Err(io_error(path, e)),
        },
        // `out/` names a directory that is not there: never create a file "out".
        Err(e) if not_found(&e) && path.as_os_str().as_encoded_bytes().ends_with(b"/") => {
            Err(io_error(path, e))
        }
        Err(e) if not_found(&e) => Ok(Target::Replace(path.to_path_buf())),
        Err(e) => Err(io_error(path, e)),
    }
}

/// Where to write `path`, which is `meta` (links followed).
fn classify(path: &Path, meta: &fs::Metadata) -> Result<Target> {
    let kind = meta.file_type();
    let refuse = |what: &str| Err(io_error(path, std::io::Error::other(what.to_string())));
    if kind.is_dir() {
        Err(io_error(
            path,
            std::io::Error::from(std::io::ErrorKind::IsADirectory),
        ))
    } else if kind.is_file() {
        Ok(Target::Replace(path.to_path_buf()))
    } else if kind.is_char_device() || kind.is_fifo() {
        Ok(Target::Stream(path.to_path_buf()))
    } else if kind.is_block_device() {
        refuse("is a block device; rosa writes files, character devices and FIFOs")
    } else {
        refuse(
            "is a socket or another special file; rosa writes files, character devices and FIFOs",
        )
    }
}

/// A link whose final target does not exist yet: that target is created, as the
/// shell's `>` does.
fn dangling(path: &Path) -> Result<Target> {
    let mut at = path.to_path_buf();
    for _ in 0..MAX_LINKS {
        match fs::read_link(&at) {
            Ok(link) => {
                at = match at.parent() {
                    Some(dir) => dir.join(link),
                    None => link,
                }
            }
            // Not a link: the missing target itself.
            Err(_) if fs::symlink_metadata(&at).is_err() => return Ok(Target::Replace(at)),
            Err(e) => return Err(io_error(path, e)),
        }
    }
    Err(io_error(
        path,
        std::io::Error::other("too many levels of symbolic links"),
    ))
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
