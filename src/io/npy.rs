//! NPY files for dense 2-D row-major matrices, through the `npyz` crate.
//!
//! NPY has no bfloat16 type, so a bf16 matrix is **written as `<f4`** (widening is exact,
//! so nothing is lost and NumPy reads it as float32) and **read by rounding** from any
//! float file. f16 is written as `<f2`, f32 as `<f4`.

use std::path::Path;

use half::f16;
use npyz::{TypeChar, WriterBuilder};

use super::{format_error, io_error, unsupported, write_atomically};
use crate::{DType, Dense, MatRef, Result, Scalar};

/// Reads a 2-D C-order NPY file of `float16`, `float32` or `float64` into a dense matrix.
///
/// Every element is converted to f32 (exact from f16, rounded from f64) and then rounded
/// to `T` (f32 to f16 or bf16 rounds to nearest even). Rejected with
/// [`Error::Unsupported`](crate::Error::Unsupported): Fortran order, a rank other than 2,
/// and any other dtype (integers, complex, structured, objects). Rejected with
/// [`Error::Format`](crate::Error::Format): anything that is not a well-formed NPY file,
/// including data shorter or longer than the header's shape.
///
/// ```
/// use rosa::{io, Dense};
/// let path = std::env::temp_dir().join(format!("rosa-read-npy-{}.npy", std::process::id()));
/// let m = Dense::from_vec(2, 2, vec![1.0f32, 2.0, 3.0, 4.5]).unwrap();
/// io::write_npy(&path, m.as_ref()).unwrap();
/// let h: Dense<rosa::f16> = io::read_npy(&path).unwrap(); // f32 file read as f16
/// assert_eq!(h.get(1, 1).unwrap().to_f32(), 4.5);
/// # std::fs::remove_file(&path).unwrap();
/// ```
pub fn read_npy<T: Scalar>(path: impl AsRef<Path>) -> Result<Dense<T>> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| io_error(path, e))?;
    check_pre_header(path, &bytes)?;
    let mut data = &bytes[..];
    let header = npyz::NpyHeader::from_reader(&mut data)
        .map_err(|e| format_error(path, format!("not a valid NPY file: {e}")))?;
    if header.order() == npyz::Order::Fortran {
        return Err(unsupported(
            path,
            "Fortran-order NPY arrays; save a C-order (row-major) array, e.g. np.ascontiguousarray",
        ));
    }
    let (rows, cols) = match *header.shape() {
        [rows, cols] => (to_usize(path, rows)?, to_usize(path, cols)?),
        ref shape => {
            return Err(unsupported(
                path,
                format!("a {}-D array of shape {shape:?}; expected 2-D", shape.len()),
            ))
        }
    };
    let dtype = header.dtype();
    let size = match &dtype {
        npyz::DType::Plain(ts) if ts.type_char() == TypeChar::Float => ts.size_field(),
        _ => 0,
    };
    if !matches!(size, 2 | 4 | 8) {
        return Err(unsupported(
            path,
            format!(
                "NPY dtype '{}'; expected float16, float32 or float64",
                dtype.descr()
            ),
        ));
    }
    let expected = (rows as u128) * (cols as u128) * size as u128;
    if expected != data.len() as u128 {
        return Err(format_error(
            path,
            format!(
                "a {rows} x {cols} array of {size}-byte floats needs {expected} data bytes, the file holds {}",
                data.len()
            ),
        ));
    }
    let file = npyz::NpyFile::with_header(header, data);
    let values: Vec<T> = match size {
        2 => convert(file.into_vec::<f16>(), f16::to_f32),
        4 => convert(file.into_vec::<f32>(), |x| x),
        _ => convert(file.into_vec::<f64>(), |x| x as f32),
    }
    .map_err(|e| format_error(path, format!("unreadable data: {e}")))?;
    Dense::from_vec(rows, cols, values).map_err(|e| format_error(path, e.to_string()))
}

fn convert<S, T: Scalar>(
    values: std::io::Result<Vec<S>>,
    to_f32: impl Fn(S) -> f32,
) -> std::io::Result<Vec<T>> {
    Ok(values?
        .into_iter()
        .map(|x| T::from_f32(to_f32(x)))
        .collect())
}

fn to_usize(path: &Path, dim: u64) -> Result<usize> {
    usize::try_from(dim).map_err(|_| format_error(path, format!("dimension {dim} is too large")))
}

/// Checks what `npyz` would trust blindly: the magic, that the declared header length
/// lies within the file (npyz allocates it before reading), that its brackets nest
/// shallowly, and that the shape's product cannot overflow (npyz multiplies it
/// unchecked, which panics in debug builds).
fn check_pre_header(path: &Path, bytes: &[u8]) -> Result<()> {
    const MAGIC: &[u8] = b"\x93NUMPY";
    let bad = |why: &str| format_error(path, format!("not a valid NPY file: {why}"));
    if bytes.len() < 10 || !bytes.starts_with(MAGIC) {
        return Err(bad("missing the \\x93NUMPY magic"));
    }
    let (len_bytes, text_start) = match bytes[6] {
        1 => (2, 10),
        2 | 3 => (4, 12),
        v => return Err(bad(&format!("unknown format version {v}"))),
    };
    if bytes.len() < text_start {
        return Err(bad("truncated header"));
    }
    let header_len = bytes[8..8 + len_bytes]
        .iter()
        .rev()
        .fold(0usize, |acc, &b| (acc << 8) | b as usize);
    let text = bytes
        .get(text_start..text_start + header_len)
        .ok_or_else(|| bad("truncated header"))?;
    let text = String::from_utf8_lossy(text);
    // npyz's Python-literal parser backtracks exponentially in nesting depth: a 200-byte
    // header of unclosed braces stalls it for seconds. Real headers nest at most a
    // structured dtype's few levels.
    let depth = text
        .chars()
        .try_fold((0usize, 0usize), |(d, max), c| match c {
            '{' | '[' | '(' => Some((d + 1, max.max(d + 1))),
            '}' | ']' | ')' => Some((d.checked_sub(1)?, max)),
            _ => Some((d, max)),
        });
    match depth {
        Some((_, max)) if max <= 8 => {}
        _ => return Err(bad("header brackets unbalanced or nested too deeply")),
    }
    // Every `shape` the dict might hold (a repeated key wins last in Python) must be a
    // tuple of plain integers: anything else could hide a size from this check.
    for (at, _) in text.match_indices("shape") {
        let rest = &text[at..];
        let dims = rest
            .find(['(', '['])
            .and_then(|open| Some(&rest[open + 1..open + rest[open..].find([')', ']'])?]))
            .ok_or_else(|| bad("shape is not a tuple"))?;
        let product = dims
            .split(',')
            .map(str::trim)
            .filter(|d| !d.is_empty())
            .map(|d| d.trim_end_matches(['L', 'l']).parse::<u64>().ok())
            // npyz multiplies shape prefixes both ways (size, strides): zeros do not save
            // it from an overflow, so the nonzero sizes must multiply within u64.
            .try_fold(1u64, |acc, d| acc.checked_mul(d?.max(1)));
        if product.is_none() {
            return Err(bad(&format!(
                "shape ({dims}) is not a tuple of sizes, or overflows"
            )));
        }
    }
    Ok(())
}

/// Writes a dense matrix as a 2-D C-order NPY file, atomically (a temporary file renamed
/// into place; nothing is left at `path` on error).
///
/// f32 is written as `<f4` and f16 as `<f2`; bf16 is written as `<f4` because NPY has no
/// bfloat16 (exact: every bf16 is an f32), and reads back to the same bf16 values.
///
/// ```
/// use rosa::{bf16, io, Dense};
/// let path = std::env::temp_dir().join(format!("rosa-write-npy-{}.npy", std::process::id()));
/// let m = Dense::from_fn(2, 3, |i, j| bf16::from_f32((i * 3 + j) as f32 / 7.0));
/// io::write_npy(&path, m.as_ref()).unwrap();
/// assert_eq!(io::read_npy::<bf16>(&path).unwrap(), m);
/// # std::fs::remove_file(&path).unwrap();
/// ```
pub fn write_npy<T: Scalar>(path: impl AsRef<Path>, m: MatRef<'_, T>) -> Result<()> {
    let values = m.as_slice().iter().map(|v| v.to_f32());
    match T::DTYPE {
        DType::F16 => write_as(path.as_ref(), m, values.map(f16::from_f32)),
        DType::F32 | DType::Bf16 => write_as(path.as_ref(), m, values),
    }
}

fn write_as<T: Scalar, S: npyz::AutoSerialize>(
    path: &Path,
    m: MatRef<'_, T>,
    values: impl Iterator<Item = S>,
) -> Result<()> {
    let shape = [m.rows() as u64, m.cols() as u64];
    write_atomically(path, |out| {
        let mut w = npyz::WriteOptions::new()
            .default_dtype()
            .shape(&shape)
            .writer(out)
            .begin_nd()?;
        w.extend(values)?;
        w.finish()
    })
}
