//! Matrix Market `coordinate` files.
//!
//! A small strict reader of our own rather than `sprs::io`: sprs sizes its buffers from
//! the declared entry count before reading any entry (a one-line file can ask for
//! terabytes), accepts symmetric files by mirroring them, panics on indices beyond the
//! declared shape, reads a `pattern` file only into its own pattern type, and reports
//! every problem as the same "Bad matrix market file" without a line number.

use std::io::Write;
use std::path::Path;

use super::{format_error, unsupported, write_atomically};
use crate::{Csr, CsrShape, Result, Scalar};

/// The value field of a Matrix Market file that we read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Real,
    Integer,
    Pattern,
}

/// Reads a Matrix Market `coordinate general` file (`real`, `integer` or `pattern`) into
/// a CSR matrix of `T`.
///
/// Values are parsed as f64 and rounded to `T` through f32; `pattern` entries are 1.
/// **Duplicate entries are summed** (as SciPy and the Matrix Market convention do) and
/// explicit zeros are kept as stored entries, since a file may describe a mask.
///
/// Rejected with [`Error::Unsupported`](crate::Error::Unsupported): `array` files,
/// `complex` values, `symmetric`, `skew-symmetric` and `hermitian` storage. Rejected with
/// [`Error::Format`](crate::Error::Format), naming the file and line: a missing or
/// malformed banner or size line, a dimension beyond the i32 indices of the CSR layout,
/// more declared entries than fit the shape, an index outside `1..=rows` / `1..=cols`, an
/// entry with the wrong number of fields or an unparsable number, and fewer or more
/// entries than declared.
///
/// ```
/// let path = std::env::temp_dir().join(format!("rosa-read-mtx-{}.mtx", std::process::id()));
/// std::fs::write(&path, "%%MatrixMarket matrix coordinate pattern general\n2 3 2\n1 3\n2 1\n").unwrap();
/// let a = rosa::io::read_mtx::<f32>(&path).unwrap();
/// assert_eq!(a.to_dense().as_slice(), &[0.0, 0.0, 1.0, 1.0, 0.0, 0.0]);
///
/// std::fs::write(&path, "%%MatrixMarket matrix coordinate real symmetric\n1 1 1\n1 1 2\n").unwrap();
/// assert!(matches!(rosa::io::read_mtx::<f32>(&path), Err(rosa::Error::Unsupported(_))));
/// # std::fs::remove_file(&path).unwrap();
/// ```
pub fn read_mtx<T: Scalar>(path: impl AsRef<Path>) -> Result<Csr<T>> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| super::io_error(path, e))?;
    let text = std::str::from_utf8(&bytes)
        .map_err(|e| format_error(path, format!("not a text file ({e})")))?;
    parse(path, text)
}

fn parse<T: Scalar>(path: &Path, text: &str) -> Result<Csr<T>> {
    let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l));
    let banner = lines.next().map(|(_, l)| l).unwrap_or("");
    let field = parse_banner(path, banner)?;

    let (size_line, size) = lines
        .by_ref()
        .find(|(_, l)| !(l.trim().is_empty() || l.starts_with('%')))
        .ok_or_else(|| format_error(path, "missing the size line 'rows cols entries'"))?;
    let (rows, cols, entries) = parse_size(path, size_line, size)?;

    // Each entry line takes at least 4 bytes ("1 1\n"), so the file's length bounds how
    // many entries it can hold whatever it declares.
    let mut triplets = Vec::with_capacity(entries.min(text.len() / 4));
    for (n, line) in lines {
        if line.trim().is_empty() {
            continue;
        }
        if triplets.len() == entries {
            return Err(format_error(
                path,
                format!("line {n}: more entries than the {entries} declared"),
            ));
        }
        triplets.push(parse_entry::<T>(path, n, line, field, rows, cols)?);
    }
    if triplets.len() < entries {
        return Err(format_error(
            path,
            format!(
                "truncated: {entries} entries declared, {} found",
                triplets.len()
            ),
        ));
    }
    Csr::from_triplets(rows, cols, &triplets).map_err(|e| format_error(path, e.to_string()))
}

fn parse_banner(path: &Path, banner: &str) -> Result<Field> {
    let lower = banner.to_ascii_lowercase();
    let words: Vec<&str> = lower.split_whitespace().collect();
    let [magic, "matrix", format, field, symmetry] = words[..] else {
        return Err(format_error(
            path,
            format!(
                "line 1: expected a banner '%%MatrixMarket matrix coordinate <field> general', found '{}'",
                truncate(banner)
            ),
        ));
    };
    if magic != "%%matrixmarket" {
        return Err(format_error(
            path,
            format!("line 1: not a Matrix Market banner: '{}'", truncate(banner)),
        ));
    }
    match format {
        "coordinate" => {}
        "array" => {
            return Err(unsupported(
                path,
                "Matrix Market 'array' (dense) files are not read; use 'coordinate'",
            ))
        }
        other => {
            return Err(format_error(
                path,
                format!("line 1: unknown format '{other}'"),
            ))
        }
    }
    let field = match field {
        "real" | "double" => Field::Real,
        "integer" => Field::Integer,
        "pattern" => Field::Pattern,
        "complex" => return Err(unsupported(path, "complex Matrix Market values")),
        other => {
            return Err(format_error(
                path,
                format!("line 1: unknown field '{other}'"),
            ))
        }
    };
    match symmetry {
        "general" => Ok(field),
        "symmetric" | "skew-symmetric" | "hermitian" => Err(unsupported(
            path,
            format!("'{symmetry}' Matrix Market storage; expand it to 'general' first"),
        )),
        other => Err(format_error(
            path,
            format!("line 1: unknown symmetry '{other}'"),
        )),
    }
}

fn parse_size(path: &Path, n: usize, line: &str) -> Result<(usize, usize, usize)> {
    let bad = || {
        format_error(
            path,
            format!(
                "line {n}: expected 'rows cols entries', found '{}'",
                truncate(line)
            ),
        )
    };
    let nums: Vec<usize> = line
        .split_whitespace()
        .map(|w| w.parse::<usize>().map_err(|_| bad()))
        .collect::<Result<_>>()?;
    let [rows, cols, entries] = nums[..] else {
        return Err(bad());
    };
    let max = i32::MAX as usize;
    if rows > max || cols > max || entries > max {
        return Err(format_error(
            path,
            format!("line {n}: {rows} x {cols} with {entries} entries exceeds the 32-bit indices of the CSR layout (max {max})"),
        ));
    }
    if entries as u128 > rows as u128 * cols as u128 {
        return Err(format_error(
            path,
            format!("line {n}: {entries} entries cannot fit a {rows} x {cols} matrix"),
        ));
    }
    Ok((rows, cols, entries))
}

fn parse_entry<T: Scalar>(
    path: &Path,
    n: usize,
    line: &str,
    field: Field,
    rows: usize,
    cols: usize,
) -> Result<(usize, usize, T)> {
    let bad = |what: &str| {
        format_error(
            path,
            format!("line {n}: {what} in entry '{}'", truncate(line)),
        )
    };
    let words: Vec<&str> = line.split_whitespace().collect();
    let (i, j, value) = match (field, &words[..]) {
        (Field::Pattern, [i, j]) => (i, j, 1.0),
        (Field::Real, [i, j, v]) => (i, j, v.parse::<f64>().map_err(|_| bad("bad real value"))?),
        (Field::Integer, [i, j, v]) => (
            i,
            j,
            v.parse::<i64>().map_err(|_| bad("bad integer value"))? as f64,
        ),
        (Field::Pattern, _) => return Err(bad("expected 'row col'")),
        _ => return Err(bad("expected 'row col value'")),
    };
    let index = |w: &str, bound: usize, what: &str| match w.parse::<usize>() {
        Ok(x) if (1..=bound).contains(&x) => Ok(x - 1),
        _ => Err(bad(&format!("{what} index '{w}' outside 1..={bound}"))),
    };
    Ok((
        index(i, rows, "row")?,
        index(j, cols, "column")?,
        T::from_f32(value as f32),
    ))
}

/// Error messages quote the offending line, but never a whole megabyte of garbage.
fn truncate(line: &str) -> String {
    const MAX: usize = 80;
    match line.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}...", &line[..cut]),
        None => line.to_string(),
    }
}

/// Writes a CSR matrix as a Matrix Market `coordinate real general` file, atomically
/// (a temporary file renamed into place; nothing is left at `path` on error).
///
/// Values are written through f32 in the shortest form that reads back to the same f32,
/// so f32, f16 and bf16 matrices all round-trip exactly through [`read_mtx`].
///
/// ```
/// use rosa::{bf16, Csr};
/// let path = std::env::temp_dir().join(format!("rosa-write-mtx-{}.mtx", std::process::id()));
/// let a = Csr::from_triplets(2, 2, &[(1, 0, bf16::from_f32(0.1))]).unwrap();
/// rosa::io::write_mtx(&path, &a).unwrap();
/// assert!(std::fs::read_to_string(&path).unwrap().starts_with("%%MatrixMarket matrix coordinate real general"));
/// assert_eq!(rosa::io::read_mtx::<bf16>(&path).unwrap(), a);
/// # std::fs::remove_file(&path).unwrap();
/// ```
pub fn write_mtx<T: Scalar>(path: impl AsRef<Path>, a: &Csr<T>) -> Result<()> {
    write_atomically(path.as_ref(), |out| {
        writeln!(out, "%%MatrixMarket matrix coordinate real general")?;
        writeln!(
            out,
            "% written by rosa {} from {} values",
            env!("CARGO_PKG_VERSION"),
            T::DTYPE
        )?;
        writeln!(out, "{} {} {}", a.rows(), a.cols(), a.nnz())?;
        for i in 0..a.rows() {
            let (cols, values) = a.row(i);
            for (&j, v) in cols.iter().zip(values) {
                writeln!(out, "{} {} {}", i + 1, j + 1, v.to_f32())?;
            }
        }
        Ok(())
    })
}
