//! NPY files for dense 2-D matrices, through the `npyz` crate.
//!
//! npyz parses the header and decodes every dtype rosa reads (floats, integers and bool,
//! either byte order); this module checks what npyz would trust blindly (header length,
//! nesting, shape products), lays Fortran-order data out row-major, and rounds each
//! element to the compute dtype once, refusing what the dtype cannot hold.
//!
//! NPY has no bfloat16 type, so a bf16 matrix is **written as `<f4`** (widening is exact,
//! so nothing is lost and NumPy reads it as float32) and **read by rounding** from any
//! float file. f16 is written as `<f2`, f32 as `<f4`.

use std::path::Path;

use half::f16;
use npyz::{TypeChar, WriterBuilder};

use super::{
    excerpt, format_error, in_file, narrow, quote, read_file, unsupported, write_atomically, Number,
};
use crate::error::try_vec;
use crate::{DType, Dense, MatRef, Result, Scalar};

/// The first bytes of every NPY file.
pub(super) const MAGIC: &[u8] = b"\x93NUMPY";

/// The longest header read: NumPy's own default (`np.load(max_header_size=10000)`),
/// past which it too refuses a file unless told to trust it. A plain array's header is
/// about 128 bytes.
const MAX_HEADER: usize = 10_000;

/// Reads a 2-D NPY file into a row-major dense matrix.
///
/// Read: `float16`, `float32` and `float64`; `int8` to `int64`, `uint8` to `uint64` and
/// `bool` where every element is an integer `T` holds exactly (true is 1); either byte
/// order; C order, and Fortran order (`np.save(x.T)`, `np.asfortranarray`), which is
/// laid out row-major here. Every element is rounded to `T` once (round to nearest
/// even). A finite element past `T`'s range (f16: 65504), or an integer `T` would round
/// to another value, is [`Error::Unrepresentable`](crate::Error::Unrepresentable)
/// naming its `[row, column]`. Python 2 headers (`(3L, 4L)`) are read as NumPy reads
/// them.
///
/// Rejected with [`Error::Unsupported`](crate::Error::Unsupported): a rank other than 2,
/// and every other dtype (long double `f16`/`f12`, complex, strings, datetimes, objects,
/// structured). Rejected with [`Error::Format`](crate::Error::Format): anything that is
/// not a well-formed NPY file, a header over NumPy's 10000-byte limit, and data shorter
/// or longer than the header's shape.
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
    parse(path, &read_file(path)?)
}

/// The element types read, as npyz decodes them.
#[derive(Debug, Clone, Copy)]
enum Element {
    F16,
    F32,
    F64,
    I8,
    I16,
    I32,
    I64,
    U8,
    U16,
    U32,
    U64,
    Bool,
}

pub(super) fn parse<T: Scalar>(path: &Path, bytes: &[u8]) -> Result<Dense<T>> {
    let pre = pre_header(path, bytes)?;
    let header = header(path, bytes, &pre)?;
    let (rows, cols) = match *header.shape() {
        [rows, cols] => (to_usize(path, rows)?, to_usize(path, cols)?),
        ref shape => {
            let dims: Vec<String> = shape.iter().map(u64::to_string).collect();
            let tuple = match dims.len() {
                1 => format!("({},)", dims[0]),
                _ => format!("({})", dims.join(", ")),
            };
            return Err(unsupported(
                path,
                format!(
                    "a {}-D NPY array of shape {}; rosa reads 2-D arrays (a vector as a column: x.reshape(-1, 1))",
                    shape.len(),
                    quote(tuple.as_bytes())
                ),
            ));
        }
    };
    let element = element(path, &header.dtype())?;
    let data = &bytes[pre.data_start..];
    let size = element.size();
    let expected = (rows as u128) * (cols as u128) * size as u128;
    if expected != data.len() as u128 {
        return Err(format_error(
            path,
            format!(
                "a {rows} x {cols} array of {size}-byte elements needs {expected} data bytes, the file holds {}",
                data.len()
            ),
        ));
    }
    let fortran = header.order() == npyz::Order::Fortran;
    let file = npyz::NpyFile::with_header(header, data);
    let layout = Layout {
        rows,
        cols,
        fortran,
    };
    let float = Number::Float;
    let int = |x: i128| Number::Int(x);
    match element {
        Element::F16 => decode(path, file, layout, |x: f16| float(x.to_f64())),
        Element::F32 => decode(path, file, layout, |x: f32| float(x as f64)),
        Element::F64 => decode(path, file, layout, float),
        Element::I8 => decode(path, file, layout, |x: i8| int(x.into())),
        Element::I16 => decode(path, file, layout, |x: i16| int(x.into())),
        Element::I32 => decode(path, file, layout, |x: i32| int(x.into())),
        Element::I64 => decode(path, file, layout, |x: i64| int(x.into())),
        Element::U8 => decode(path, file, layout, |x: u8| int(x.into())),
        Element::U16 => decode(path, file, layout, |x: u16| int(x.into())),
        Element::U32 => decode(path, file, layout, |x: u32| int(x.into())),
        Element::U64 => decode(path, file, layout, |x: u64| int(x.into())),
        Element::Bool => decode(path, file, layout, |x: bool| int(x.into())),
    }
    .map_err(in_file(path))
}

impl Element {
    fn size(self) -> usize {
        match self {
            Element::I8 | Element::U8 | Element::Bool => 1,
            Element::F16 | Element::I16 | Element::U16 => 2,
            Element::F32 | Element::I32 | Element::U32 => 4,
            Element::F64 | Element::I64 | Element::U64 => 8,
        }
    }
}

/// The element type of `dtype`, or a refusal that names it as NumPy does.
fn element(path: &Path, dtype: &npyz::DType) -> Result<Element> {
    const READ: &str = "rosa reads float16, float32, float64, integer and bool arrays";
    let npyz::DType::Plain(ts) = dtype else {
        return Err(unsupported(
            path,
            format!(
                "NPY structured dtype {}; {READ}",
                quote(dtype.descr().as_bytes())
            ),
        ));
    };
    let bits = ts.size_field().saturating_mul(8);
    let name = quote(ts.to_string().as_bytes());
    Ok(match (ts.type_char(), ts.size_field()) {
        (TypeChar::Float, 2) => Element::F16,
        (TypeChar::Float, 4) => Element::F32,
        (TypeChar::Float, 8) => Element::F64,
        (TypeChar::Int, 1) => Element::I8,
        (TypeChar::Int, 2) => Element::I16,
        (TypeChar::Int, 4) => Element::I32,
        (TypeChar::Int, 8) => Element::I64,
        (TypeChar::Uint, 1) => Element::U8,
        (TypeChar::Uint, 2) => Element::U16,
        (TypeChar::Uint, 4) => Element::U32,
        (TypeChar::Uint, 8) => Element::U64,
        (TypeChar::Bool, 1) => Element::Bool,
        (TypeChar::Float, 12 | 16) => {
            return Err(unsupported(
                path,
                format!(
                    "NPY dtype {name} is a {bits}-bit long double (np.longdouble), not float16 ('<f2'); {READ}: save it with a.astype(np.float64)"
                ),
            ))
        }
        (kind, _) => {
            let what = match kind {
                TypeChar::Float => format!("float{bits}"),
                TypeChar::Int => format!("int{bits}"),
                TypeChar::Uint => format!("uint{bits}"),
                TypeChar::Bool => format!("a {bits}-bit bool"),
                TypeChar::Complex => format!("complex{bits}"),
                TypeChar::TimeDelta => "timedelta64".into(),
                TypeChar::DateTime => "datetime64".into(),
                TypeChar::ByteStr => "bytes".into(),
                TypeChar::UnicodeStr => "str".into(),
                TypeChar::Object => "Python objects".into(),
                TypeChar::RawData => "raw bytes (void)".into(),
                _ => "a kind NumPy added after npyz 0.9".into(),
            };
            return Err(unsupported(
                path,
                format!("NPY dtype {name} ({what}); {READ}"),
            ));
        }
    })
}

/// Where the `k`-th element of the file goes.
#[derive(Debug, Clone, Copy)]
struct Layout {
    rows: usize,
    cols: usize,
    fortran: bool,
}

impl Layout {
    /// `(row, column)` of the `k`-th element in file order.
    fn position(self, k: usize) -> (usize, usize) {
        if self.fortran {
            (k % self.rows, k / self.rows)
        } else {
            (k / self.cols, k % self.cols)
        }
    }
}

/// Decodes every element as `S`, rounds it to `T` and places it row-major.
fn decode<S: npyz::Deserialize, T: Scalar>(
    path: &Path,
    file: npyz::NpyFile<&[u8]>,
    layout: Layout,
    number: impl Fn(S) -> Number,
) -> Result<Dense<T>> {
    let (rows, cols) = (layout.rows, layout.cols);
    // The data's length was checked against the shape: this is what the file holds.
    let len = rows * cols;
    let mut out = try_vec(len, || format!("a {rows} x {cols} {} matrix", T::DTYPE))?;
    out.resize(len, T::default());
    let unreadable = |e: &dyn std::fmt::Display| {
        format_error(
            path,
            format!("unreadable data: {}", quote(e.to_string().as_bytes())),
        )
    };
    let elements = file.data::<S>().map_err(|e| unreadable(&e))?;
    for (k, x) in elements.enumerate() {
        let x = x.map_err(|e| unreadable(&e))?;
        let (i, j) = layout.position(k);
        out[i * cols + j] = narrow(path, number(x), || format!("element [{i}, {j}]"))?;
    }
    Dense::from_vec(rows, cols, out)
}

fn to_usize(path: &Path, dim: u64) -> Result<usize> {
    usize::try_from(dim).map_err(|_| format_error(path, format!("dimension {dim} is too large")))
}

/// Where the header text and the data lie.
struct PreHeader {
    version: u8,
    /// Bytes before the header text: magic, version, length.
    text_start: usize,
    data_start: usize,
}

/// Checks what `npyz` would trust blindly: the magic, that the declared header length
/// lies within the file (npyz allocates it before reading) and within NumPy's limit,
/// that its brackets nest shallowly, and that the shape's product cannot overflow (npyz
/// multiplies it unchecked, which panics in debug builds).
fn pre_header(path: &Path, bytes: &[u8]) -> Result<PreHeader> {
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
    if header_len > MAX_HEADER {
        return Err(bad(&format!(
            "a header of {header_len} bytes, over NumPy's own limit of {MAX_HEADER} (np.load's max_header_size); a plain array's header is about 128 bytes"
        )));
    }
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
            .map(|d| d.trim_end_matches('L').parse::<u64>().ok())
            // npyz multiplies shape prefixes both ways (size, strides): zeros do not save
            // it from an overflow, so the nonzero sizes must multiply within u64.
            .try_fold(1u64, |acc, d| acc.checked_mul(d?.max(1)));
        if product.is_none() {
            return Err(bad(&format!(
                "shape {} is not a tuple of sizes, or its product overflows 64 bits",
                quote(format!("({dims})").as_bytes())
            )));
        }
    }
    Ok(PreHeader {
        version: bytes[6],
        text_start,
        data_start: text_start + header_len,
    })
}

/// The header as npyz parses it; for format versions 1 and 2, retried without Python 2
/// long suffixes (`3L`) as NumPy does, and otherwise refused in plain words.
fn header(path: &Path, bytes: &[u8], pre: &PreHeader) -> Result<npyz::NpyHeader> {
    let text = &bytes[pre.text_start..pre.data_start];
    let first = npyz::NpyHeader::from_reader(&bytes[..pre.data_start]);
    let retried = match (first, pre.version) {
        (Ok(h), _) => return Ok(h),
        (Err(e), 1 | 2) => match drop_long_suffixes(text) {
            Some(filtered) => {
                let mut again = bytes[..8].to_vec();
                if pre.version == 1 {
                    again.extend((filtered.len() as u16).to_le_bytes());
                } else {
                    again.extend((filtered.len() as u32).to_le_bytes());
                }
                again.extend(filtered);
                npyz::NpyHeader::from_reader(&again[..])
            }
            None => Err(e),
        },
        (Err(e), _) => Err(e),
    };
    retried.map_err(|e| {
        // npyz's messages are short, but a parse error dumps the whole header.
        let why = e.to_string();
        let why = match why.lines().next() {
            Some(_) if why.starts_with("could not parse Python expression") => {
                "is not a Python literal".to_string()
            }
            Some(line) => {
                let (line, cut) = excerpt(line.as_bytes());
                format!("is not what NumPy writes ({line}{cut})")
            }
            None => "is not what NumPy writes".to_string(),
        };
        format_error(
            path,
            format!(
                "not a valid NPY file: the header {why}: {}",
                quote(text.trim_ascii_end())
            ),
        )
    })
}

/// The header without the `L` Python 2 wrote after long integers (`(3L, 4L)`), outside
/// string literals, as NumPy's `_filter_header` does; `None` if there is none.
fn drop_long_suffixes(text: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len());
    let mut quote: Option<u8> = None;
    for (k, &b) in text.iter().enumerate() {
        match quote {
            Some(q) if b == q => quote = None,
            Some(_) => {}
            None if b == b'\'' || b == b'"' => quote = Some(b),
            None if b == b'L'
                && k > 0
                && text[k - 1].is_ascii_digit()
                && !text.get(k + 1).is_some_and(|c| c.is_ascii_alphanumeric()) =>
            {
                continue
            }
            None => {}
        }
        out.push(b);
    }
    (out.len() < text.len()).then_some(out)
}

/// Writes a dense matrix as a 2-D C-order NPY file (atomically where `path` is, or links
/// to, a regular file; see the [module docs](super)).
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
