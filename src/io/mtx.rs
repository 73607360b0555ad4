//! Matrix Market files: `coordinate` and `array`, in every real storage kind.
//!
//! A small strict reader of our own rather than `sprs::io`: sprs sizes its buffers from
//! the declared entry count before reading any entry (a one-line file can ask for
//! terabytes), panics on indices beyond the declared shape, reads no `array` file, reads
//! a `pattern` file only into its own pattern type, rounds each entry to the element
//! type before summing duplicates, and reports every problem as the same "Bad matrix
//! market file" without a line number.
//!
//! The format (NIST, "The Matrix Market Exchange Formats: Initial Design", 1996): a
//! banner `%%MatrixMarket matrix <format> <field> <symmetry>`, comment lines starting
//! with `%`, a size line, then one entry per line: `row col [value]` (1-based) for
//! `coordinate`, one value per line in column-major order for `array`. `symmetric` and
//! `skew-symmetric` files store one triangle (`array`: the lower one, column by column);
//! the reader mirrors it, negated for skew-symmetric, whose diagonal is zero.

use std::io::Write;
use std::path::Path;

use super::Number;
use super::{format_error, in_file, narrow, quote, read_file, unsupported, write_atomically};
use crate::csr::Entry;
use crate::error::try_vec;
use crate::{Csr, CsrShape, Dense, Result, Scalar};

const BANNER: &str = "%%MatrixMarket";
/// What a UTF-8 editor may put before the banner.
const UTF8_BOM: &[u8] = b"\xef\xbb\xbf";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Coordinate,
    Array,
}

/// The value field of a Matrix Market file that we read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Real,
    Integer,
    Pattern,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Symmetry {
    General,
    Symmetric,
    Skew,
}

/// The banner and size line of a file, and where its data starts.
struct Header<'a> {
    format: Format,
    field: Field,
    symmetry: Symmetry,
    rows: usize,
    cols: usize,
    /// Entries (`coordinate`) or values (`array`) the size line promises.
    declared: usize,
    /// The lines after the size line.
    data: Lines<'a>,
    /// Whether the values will be kept (and so must fit the dtype).
    values: Values,
}

/// Reads a Matrix Market file into a CSR matrix of `T`.
///
/// - `coordinate` files with `real`, `integer` or `pattern` values (`pattern` entries are
///   1), stored `general`, `symmetric` or `skew-symmetric`. A symmetric file's entries
///   are mirrored across the diagonal (an entry above it too, as SciPy does); a
///   skew-symmetric file's mirror is negated and a diagonal entry in one is an error.
///   **Duplicate entries are summed** in f64 and the sum rounded once to `T` (as SciPy
///   and the Matrix Market convention do), however many there are; explicit zeros are
///   kept as stored entries, since a file may describe a mask.
/// - `array` files (`real` or `integer`; `general`, `symmetric` or `skew-symmetric`):
///   the nonzeros of the dense matrix.
///
/// Values are parsed as f64 (integers exactly) and rounded to `T` once. A finite value
/// past `T`'s range, or an integer `T` would round to another integer, is
/// [`Error::Unrepresentable`](crate::Error::Unrepresentable) naming the line.
///
/// Comment lines (starting `%`) may hold any bytes; the banner, size line and entries
/// must be ASCII. A UTF-8 byte-order mark before the banner is skipped.
///
/// Rejected with [`Error::Unsupported`](crate::Error::Unsupported): `complex` values,
/// `hermitian` storage, objects other than `matrix`. Rejected with
/// [`Error::Format`](crate::Error::Format), naming the file and line: a missing or
/// malformed banner or size line, a dimension beyond the i32 indices of the CSR layout,
/// a non-square symmetric matrix, an index outside `1..=rows` / `1..=cols`, an entry
/// with the wrong number of fields or an unparsable number, and fewer or more entries
/// than declared. A declared shape costs `4 (rows + 1)` bytes of `row_ptr` whatever the
/// file holds; when that (or anything else) cannot be allocated the error is
/// [`Error::Alloc`](crate::Error::Alloc).
///
/// ```
/// let path = std::env::temp_dir().join(format!("rosa-read-mtx-{}.mtx", std::process::id()));
/// std::fs::write(&path, "%%MatrixMarket matrix coordinate pattern general\n2 3 2\n1 3\n2 1\n").unwrap();
/// let a = rosa::io::read_mtx::<f32>(&path).unwrap();
/// assert_eq!(a.to_dense().as_slice(), &[0.0, 0.0, 1.0, 1.0, 0.0, 0.0]);
///
/// // The lower triangle of a symmetric matrix, mirrored.
/// std::fs::write(&path, "%%MatrixMarket matrix coordinate real symmetric\n2 2 2\n1 1 2\n2 1 -1\n").unwrap();
/// let s = rosa::io::read_mtx::<f32>(&path).unwrap();
/// assert_eq!(s.to_dense().as_slice(), &[2.0, -1.0, -1.0, 0.0]);
///
/// std::fs::write(&path, "%%MatrixMarket matrix coordinate complex hermitian\n1 1 1\n1 1 2 0\n").unwrap();
/// assert!(matches!(rosa::io::read_mtx::<f32>(&path), Err(rosa::Error::Unsupported(_))));
/// # std::fs::remove_file(&path).unwrap();
/// ```
pub fn read_mtx<T: Scalar>(path: impl AsRef<Path>) -> Result<Csr<T>> {
    read_sparse(path.as_ref(), Values::Keep)
}

/// Reads where a Matrix Market file stores entries, as [`read_mtx`] does, with every
/// value zero: for a mask, whose values do not matter, so that none is refused for not
/// fitting `T`.
///
/// ```
/// use rosa::CsrShape;
/// let path = std::env::temp_dir().join(format!("rosa-read-mask-{}.mtx", std::process::id()));
/// std::fs::write(&path, "%%MatrixMarket matrix coordinate real general\n2 2 2\n1 2 1e6\n2 1 -3\n").unwrap();
/// let mask = rosa::io::read_mtx_pattern::<rosa::f16>(&path).unwrap();
/// assert_eq!(mask.col_idx(), &[1, 0]);
/// assert!(mask.values().iter().all(|v| v.to_f32() == 0.0));
/// assert!(rosa::io::read_mtx::<rosa::f16>(&path).is_err()); // 1e6 is past f16's range
/// # std::fs::remove_file(&path).unwrap();
/// ```
pub fn read_mtx_pattern<T: Scalar>(path: impl AsRef<Path>) -> Result<Csr<T>> {
    read_sparse(path.as_ref(), Values::Zero)
}

/// What a sparse read does with the values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Values {
    Keep,
    Zero,
}

fn read_sparse<T: Scalar>(path: &Path, values: Values) -> Result<Csr<T>> {
    let bytes = read_file(path)?;
    let header = parse_header(path, &bytes, values)?;
    let rows = header.rows;
    let cols = header.cols;
    let integer = header.field == Field::Integer;
    let mut entries = match header.format {
        Format::Coordinate => coordinate_entries::<T>(path, &header)?,
        Format::Array => array_entries::<T>(path, &header)?,
    };
    Csr::from_entries(rows, cols, &mut entries, |sum, first, count| {
        let n = match (values, integer) {
            (Values::Zero, _) => return Ok(T::default()),
            (Values::Keep, true) => Number::Int(sum as i128),
            (Values::Keep, false) => Number::Float(sum),
        };
        narrow(path, n, || {
            let summed = match count {
                1 => String::new(),
                _ => format!(", the sum of {count} entries there"),
            };
            format!(
                "line {} (row {}, column {}{summed})",
                first.origin,
                first.row + 1,
                first.col + 1
            )
        })
    })
    .map_err(in_file(path))
}

/// Reads a Matrix Market `array` file (`real` or `integer`; `general`, `symmetric` or
/// `skew-symmetric`) into a row-major dense matrix of `T`.
///
/// Values are stored column by column (for symmetric kinds, the lower triangle's
/// columns) and rounded to `T` once, with the same range and integer checks as
/// [`read_mtx`]. A `coordinate` file is refused with
/// [`Error::Unsupported`](crate::Error::Unsupported): its declared shape is not
/// confirmed by its data, so densifying it could ask for any amount of memory.
///
/// ```
/// let path = std::env::temp_dir().join(format!("rosa-read-mtx-dense-{}.mtx", std::process::id()));
/// // scipy.io.mmwrite of [[1, 2], [3, 4.5], [0, 6]]
/// std::fs::write(&path, "%%MatrixMarket matrix array real general\n%\n3 2\n1\n3\n0\n2\n4.5\n6\n").unwrap();
/// let d = rosa::io::read_mtx_dense::<f32>(&path).unwrap();
/// assert_eq!((d.rows(), d.cols()), (3, 2));
/// assert_eq!(d.as_slice(), &[1.0, 2.0, 3.0, 4.5, 0.0, 6.0]);
/// # std::fs::remove_file(&path).unwrap();
/// ```
pub fn read_mtx_dense<T: Scalar>(path: impl AsRef<Path>) -> Result<Dense<T>> {
    let path = path.as_ref();
    parse_dense(path, &read_file(path)?)
}

pub(super) fn parse_dense<T: Scalar>(path: &Path, bytes: &[u8]) -> Result<Dense<T>> {
    let header = parse_header(path, bytes, Values::Keep)?;
    if header.format == Format::Coordinate {
        return Err(unsupported(
            path,
            "a coordinate (sparse) Matrix Market file where a dense operand is read; give an NPY file or a Matrix Market 'array' file",
        ));
    }
    let (rows, cols) = (header.rows, header.cols);
    count_data(path, &header)?;
    // The data holds the promised values, so the matrix they describe may be allocated.
    let len = rows * cols;
    let mut out = try_vec(len, || {
        format!("{}: a {rows} x {cols} {} matrix", path.display(), T::DTYPE)
    })?;
    out.resize(len, T::default());
    for_each_array_value::<T>(path, &header, |i, j, n, line| {
        let at = || format!("line {line} (row {}, column {})", i + 1, j + 1);
        out[i * cols + j] = narrow(path, n, at)?;
        if i != j {
            out[j * cols + i] = match (header.symmetry, n) {
                (Symmetry::General, _) => return Ok(()),
                (Symmetry::Symmetric, _) => narrow(path, n, at)?,
                (Symmetry::Skew, Number::Float(x)) => narrow(path, Number::Float(-x), at)?,
                (Symmetry::Skew, Number::Int(x)) => narrow(path, Number::Int(-x), at)?,
            };
        }
        Ok(())
    })?;
    Dense::from_vec(rows, cols, out)
}

/// Whether `bytes` start like a Matrix Market file (after a byte-order mark).
pub(super) fn is_matrix_market(bytes: &[u8]) -> bool {
    let text = bytes.strip_prefix(UTF8_BOM).unwrap_or(bytes);
    text.len() >= BANNER.len() && text[..BANNER.len()].eq_ignore_ascii_case(BANNER.as_bytes())
}

/// The lines of a file, numbered from 1, without their `\n` or `\r\n`.
#[derive(Clone)]
struct Lines<'a> {
    rest: &'a [u8],
    n: usize,
}

impl<'a> Iterator for Lines<'a> {
    type Item = (usize, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let (line, rest) = match self.rest.iter().position(|&b| b == b'\n') {
            Some(end) => (&self.rest[..end], &self.rest[end + 1..]),
            None => (self.rest, &[][..]),
        };
        self.rest = rest;
        self.n += 1;
        Some((self.n, line.strip_suffix(b"\r").unwrap_or(line)))
    }
}

impl<'a> Lines<'a> {
    /// The next line that is neither blank nor a comment, as ASCII text.
    fn next_data(&mut self, path: &Path) -> Result<Option<(usize, &'a str)>> {
        for (n, line) in self.by_ref() {
            if line.first() == Some(&b'%') || line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            return ascii(path, n, line).map(|text| Some((n, text)));
        }
        Ok(None)
    }
}

/// `line` as text, or an error naming its first byte outside ASCII: comments may hold
/// any bytes, but nothing a value is read from.
fn ascii<'a>(path: &Path, n: usize, line: &'a [u8]) -> Result<&'a str> {
    match std::str::from_utf8(line) {
        Ok(text) if text.is_ascii() => Ok(text),
        _ => {
            let at = line.iter().position(|b| !b.is_ascii()).unwrap_or(0);
            Err(format_error(
                path,
                format!(
                    "line {n}: byte 0x{:02x} at column {} is not ASCII (only comment lines, starting with %, may hold other bytes): {}",
                    line[at],
                    at + 1,
                    quote(line)
                ),
            ))
        }
    }
}

fn parse_header<'a>(path: &Path, bytes: &'a [u8], values: Values) -> Result<Header<'a>> {
    let text = match bytes.strip_prefix(UTF8_BOM) {
        Some(rest) => rest,
        None if bytes.starts_with(b"\xff\xfe") || bytes.starts_with(b"\xfe\xff") => {
            return Err(format_error(
                path,
                "the file is UTF-16 (it starts with a UTF-16 byte-order mark); Matrix Market files are ASCII",
            ))
        }
        None => bytes,
    };
    let mut lines = Lines { rest: text, n: 0 };
    let (_, banner) = lines.next().unwrap_or((1, b""));
    let banner = ascii(path, 1, banner)?;
    let (format, field, symmetry) = parse_banner(path, banner)?;
    let (n, size) = lines
        .next_data(path)?
        .ok_or_else(|| format_error(path, "missing the size line 'rows cols entries'"))?;
    let (rows, cols, declared) = parse_size(path, n, size, format, symmetry)?;
    Ok(Header {
        format,
        field,
        symmetry,
        rows,
        cols,
        declared,
        data: lines,
        values,
    })
}

fn parse_banner(path: &Path, banner: &str) -> Result<(Format, Field, Symmetry)> {
    let lower = banner.to_ascii_lowercase();
    let words: Vec<&str> = lower.split_whitespace().collect();
    if words.first() != Some(&"%%matrixmarket") {
        return Err(format_error(
            path,
            format!(
                "line 1: not a Matrix Market banner (expected '%%MatrixMarket matrix coordinate real general' or similar): {}",
                quote(banner.as_bytes())
            ),
        ));
    }
    let [_, object, format, field, symmetry] = words[..] else {
        return Err(format_error(
            path,
            format!(
                "line 1: expected a banner '%%MatrixMarket matrix <format> <field> <symmetry>', found {}",
                quote(banner.as_bytes())
            ),
        ));
    };
    let unknown = |what: &str, word: &str| {
        format_error(
            path,
            format!("line 1: unknown {what} {}", quote(word.as_bytes())),
        )
    };
    if object != "matrix" {
        return Err(unsupported(
            path,
            format!(
                "Matrix Market object {}; only 'matrix' is read",
                quote(object.as_bytes())
            ),
        ));
    }
    let format = match format {
        "coordinate" => Format::Coordinate,
        "array" => Format::Array,
        other => return Err(unknown("format", other)),
    };
    // Symmetry first: 'complex hermitian' is refused for being hermitian.
    let symmetry = match symmetry {
        "general" => Symmetry::General,
        "symmetric" => Symmetry::Symmetric,
        "skew-symmetric" => Symmetry::Skew,
        "hermitian" => {
            return Err(unsupported(
                path,
                "hermitian Matrix Market storage (complex values); rosa reads general, symmetric and skew-symmetric",
            ))
        }
        other => return Err(unknown("symmetry", other)),
    };
    let field = match field {
        "real" | "double" => Field::Real,
        "integer" => Field::Integer,
        "pattern" => Field::Pattern,
        "complex" => {
            return Err(unsupported(
                path,
                "complex Matrix Market values; rosa reads real, integer and pattern files",
            ))
        }
        other => return Err(unknown("field", other)),
    };
    match (format, field, symmetry) {
        (Format::Array, Field::Pattern, _) => Err(format_error(
            path,
            "line 1: an 'array' file cannot be 'pattern' (it lists every value)",
        )),
        (_, Field::Pattern, Symmetry::Skew) => Err(format_error(
            path,
            "line 1: a 'pattern' file cannot be 'skew-symmetric' (its mirrored entries would be -1)",
        )),
        kind => Ok(kind),
    }
}

fn parse_size(
    path: &Path,
    n: usize,
    line: &str,
    format: Format,
    symmetry: Symmetry,
) -> Result<(usize, usize, usize)> {
    let expected = match format {
        Format::Coordinate => "'rows cols entries'",
        Format::Array => "'rows cols'",
    };
    let bad = || {
        format_error(
            path,
            format!(
                "line {n}: expected {expected}, found {}",
                quote(line.as_bytes())
            ),
        )
    };
    let nums: Vec<usize> = line
        .split_whitespace()
        .map(|w| w.parse::<usize>().map_err(|_| bad()))
        .collect::<Result<_>>()?;
    let (rows, cols, entries) = match (format, &nums[..]) {
        (Format::Coordinate, &[rows, cols, entries]) => (rows, cols, Some(entries)),
        (Format::Array, &[rows, cols]) => (rows, cols, None),
        _ => return Err(bad()),
    };
    let max = i32::MAX as usize;
    if rows > max || cols > max {
        return Err(format_error(
            path,
            format!("line {n}: {rows} x {cols} exceeds the 32-bit indices of the CSR layout (max {max})"),
        ));
    }
    if symmetry != Symmetry::General && rows != cols {
        return Err(format_error(
            path,
            format!("line {n}: a symmetric or skew-symmetric matrix must be square, not {rows} x {cols}"),
        ));
    }
    // An array file lists the stored triangle's values: a promise like any count,
    // checked against the data before anything is sized from it.
    let values = match symmetry {
        Symmetry::General => rows as u128 * cols as u128,
        Symmetry::Symmetric => rows as u128 * (rows as u128 + 1) / 2,
        Symmetry::Skew => rows as u128 * (rows as u128).saturating_sub(1) / 2,
    };
    let declared = match entries {
        Some(entries) => entries,
        None => usize::try_from(values).map_err(|_| {
            format_error(
                path,
                format!("line {n}: a {rows} x {cols} array has more values than this machine can address"),
            )
        })?,
    };
    Ok((rows, cols, declared))
}

/// Checks that the data lines are exactly as many as declared, before any buffer is
/// sized from the declaration.
fn count_data(path: &Path, header: &Header<'_>) -> Result<()> {
    let what = match header.format {
        Format::Coordinate => "entries",
        Format::Array => "values",
    };
    let mut lines = header.data.clone();
    let mut found = 0usize;
    while let Some((n, _)) = lines.next_data(path)? {
        if found == header.declared {
            return Err(format_error(
                path,
                format!(
                    "line {n}: more {what} than the {} declared",
                    header.declared
                ),
            ));
        }
        found += 1;
    }
    if found < header.declared {
        return Err(format_error(
            path,
            format!(
                "truncated: {} {what} declared, {found} found",
                header.declared
            ),
        ));
    }
    Ok(())
}

/// Appends `e` to `entries`, growing it fallibly.
fn push(path: &Path, entries: &mut Vec<Entry>, e: Entry) -> Result<()> {
    if entries.len() == entries.capacity() {
        let more = entries.capacity().max(64);
        entries.try_reserve(more).map_err(|_| crate::Error::Alloc {
            what: format!("{}: {} entries", path.display(), entries.len() + more),
            bytes: ((entries.len() + more) * std::mem::size_of::<Entry>()) as u128,
        })?;
    }
    entries.push(e);
    Ok(())
}

/// Pushes the entry at `(i, j)` and, for symmetric kinds, its mirror.
fn push_mirrored(
    path: &Path,
    entries: &mut Vec<Entry>,
    symmetry: Symmetry,
    (i, j): (usize, usize),
    value: f64,
    line: usize,
) -> Result<()> {
    let entry = |row: usize, col: usize, value| Entry {
        row: row as u32,
        col: col as u32,
        value,
        origin: line,
    };
    push(path, entries, entry(i, j, value))?;
    match symmetry {
        _ if i == j => Ok(()),
        Symmetry::General => Ok(()),
        Symmetry::Symmetric => push(path, entries, entry(j, i, value)),
        Symmetry::Skew => push(path, entries, entry(j, i, -value)),
    }
}

fn coordinate_entries<T: Scalar>(path: &Path, header: &Header<'_>) -> Result<Vec<Entry>> {
    count_data(path, header)?;
    let (rows, cols) = (header.rows, header.cols);
    // The file holds the declared entries: room for them (mirrors grow it further).
    let mut entries = try_vec(header.declared, || {
        format!("{}: {} entries", path.display(), header.declared)
    })?;
    let mut lines = header.data.clone();
    while let Some((n, line)) = lines.next_data(path)? {
        let bad = |what: &str| {
            format_error(
                path,
                format!("line {n}: {what} in entry {}", quote(line.as_bytes())),
            )
        };
        let words: Vec<&str> = line.split_ascii_whitespace().collect();
        // The position first, then the value: an entry outside the matrix is refused as
        // such whatever its value, so every dtype (and the value-free mask read) refuses
        // the same files for the same reason.
        let (i, j, word) = match (header.field, &words[..]) {
            (Field::Pattern, [i, j]) => (i, j, None),
            (Field::Real | Field::Integer, [i, j, v]) => (i, j, Some(*v)),
            (Field::Pattern, _) => return Err(bad("expected 'row col'")),
            _ => return Err(bad("expected 'row col value'")),
        };
        let index = |w: &str, bound: usize, what: &str| match w.parse::<usize>() {
            Ok(x) if (1..=bound).contains(&x) => Ok(x - 1),
            _ => Err(bad(&format!("{what} index '{w}' outside 1..={bound}"))),
        };
        let (i, j) = (index(i, rows, "row")?, index(j, cols, "column")?);
        let value = match (header.field, word) {
            (Field::Integer, Some(v)) => integer::<T>(path, n, v, header.values)
                .map_err(|e| e.unwrap_or_else(|| bad("bad integer value")))?
                as f64,
            (_, Some(v)) => v.parse::<f64>().map_err(|_| bad("bad real value"))?,
            (_, None) => 1.0,
        };
        if header.symmetry == Symmetry::Skew && i == j {
            return Err(bad(
                "a diagonal entry (skew-symmetric files store none: their diagonal is zero)",
            ));
        }
        push_mirrored(path, &mut entries, header.symmetry, (i, j), value, n)?;
    }
    Ok(entries)
}

/// An integer value that f64 holds exactly (so that duplicates sum exactly), or the
/// error for one past 2^53, which `T` cannot hold either (unless the values are not
/// kept); `Err(None)` when it does not parse.
fn integer<T: Scalar>(
    path: &Path,
    n: usize,
    word: &str,
    values: Values,
) -> std::result::Result<i128, Option<crate::Error>> {
    let v = word.parse::<i64>().map_err(|_| None)? as i128;
    if values == Values::Zero || v as f64 as i128 == v {
        return Ok(v);
    }
    Err(Some(crate::Error::Unrepresentable {
        path: path.to_path_buf(),
        at: format!("line {n}"),
        value: v.to_string(),
        dtype: T::DTYPE,
        rounded: T::from_f64(v as f64).to_f32() as f64,
    }))
}

/// Calls `f(row, col, value, line)` for each value of an `array` file, in file order
/// (column-major over the stored triangle).
fn for_each_array_value<T: Scalar>(
    path: &Path,
    header: &Header<'_>,
    mut f: impl FnMut(usize, usize, Number, usize) -> Result<()>,
) -> Result<()> {
    let rows = header.rows;
    // The first stored row of column j: the whole column, the lower triangle, or the
    // strictly lower one.
    let top = |j: usize| match header.symmetry {
        Symmetry::General => 0,
        Symmetry::Symmetric => j,
        Symmetry::Skew => j + 1,
    };
    let (mut i, mut j) = (top(0), 0);
    let mut lines = header.data.clone();
    while let Some((n, line)) = lines.next_data(path)? {
        while i >= rows {
            j += 1;
            i = top(j);
        }
        let word = line.trim();
        let bad = |what: &str| {
            format_error(
                path,
                format!("line {n}: {what}: {}", quote(line.as_bytes())),
            )
        };
        if word.contains(char::is_whitespace) {
            return Err(bad("expected one value"));
        }
        let value = match header.field {
            Field::Integer => Number::Int(
                integer::<T>(path, n, word, header.values)
                    .map_err(|e| e.unwrap_or_else(|| bad("bad integer value")))?,
            ),
            _ => Number::Float(word.parse::<f64>().map_err(|_| bad("bad real value"))?),
        };
        f(i, j, value, n)?;
        i += 1;
    }
    Ok(())
}

fn array_entries<T: Scalar>(path: &Path, header: &Header<'_>) -> Result<Vec<Entry>> {
    count_data(path, header)?;
    let mut entries = Vec::new();
    for_each_array_value::<T>(path, header, |i, j, value, line| {
        let x = match value {
            Number::Float(x) => x,
            Number::Int(x) => x as f64,
        };
        // A sparse operand keeps the nonzeros (NaN among them).
        if x == 0.0 {
            return Ok(());
        }
        push_mirrored(path, &mut entries, header.symmetry, (i, j), x, line)
    })?;
    Ok(entries)
}

/// Writes a CSR matrix as a Matrix Market `coordinate real general` file (atomically
/// where `path` is, or links to, a regular file; see the [module docs](super)).
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
