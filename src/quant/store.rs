//! NF4 matrices in safetensors files: the tensor names and dtypes, the writer and a
//! checked reader.
//!
//! Each matrix is stored under its name `P` as these tensors (little-endian, 1-D):
//!
//! | tensor | dtype | length | holds |
//! |---|---|---|---|
//! | `P.shape` | I64 | 2 | rows, cols |
//! | `P.block_size` | I64 | 1 | elements per scale (32 to 4096, a power of two) |
//! | `P.codes` | U8 | `ceil(rows * cols / 2)` | the packed codes, high nibble first |
//! | `P.absmax` | F32 | blocks | the scales, without double quantization |
//!
//! or, double-quantized, instead of `P.absmax`:
//!
//! | tensor | dtype | length | holds |
//! |---|---|---|---|
//! | `P.absmax.codes` | U8 | blocks | 8-bit codes of the scales ([`dynamic_code`](super::dynamic_code) indices) |
//! | `P.absmax.block_size` | I64 | 1 | scales per nested block |
//! | `P.absmax.absmax` | F32 | nested blocks | absmax of each nested block of centred scales |
//! | `P.absmax.offset` | F32 | 1 | the mean subtracted from the scales |
//!
//! (bitsandbytes' own serialization names its tensors `weight`, `weight.absmax`,
//! `weight.nested_absmax`, ... with a JSON quant state; the layout of the codes and
//! scales is the same, the names and settings tensors are rosa's.)

use std::collections::BTreeSet;
use std::io::Read;
use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, Metadata, SafeTensors, TensorView};

use super::{BlockSize, DoubleQuant, Nf4Matrix, Scales};
use crate::error::try_vec;
use crate::{Error, Result};

/// Writes `matrices` (each under its name) to one safetensors file at `path`, through a
/// temporary file and a rename, so an interrupted save leaves any previous file intact.
///
/// Errors: [`Error::InvalidArgument`] if two names would give the same tensor name (the
/// same name twice, or `a` double-quantized next to a matrix named `a.absmax`);
/// [`Error::Io`] if the file cannot be written.
///
/// ```
/// use rosa::quant::{save_nf4, Nf4Config, Nf4File, Nf4Matrix};
/// use rosa::random;
/// let w = random::dense::<f32>(4, 70, 3);
/// let q = Nf4Matrix::quantize(w.as_ref(), Nf4Config::qlora()).unwrap();
/// let path = std::env::temp_dir().join(format!("rosa-doc-nf4-{}.safetensors", std::process::id()));
/// save_nf4(&path, &[("layers.0.weight", &q)]).unwrap();
/// let file = Nf4File::open(&path).unwrap();
/// assert_eq!(file.names(), ["layers.0.weight"]);
/// assert_eq!(file.matrix("layers.0.weight").unwrap(), q); // bit for bit
/// # std::fs::remove_file(&path).unwrap();
/// ```
pub fn save_nf4(path: impl AsRef<Path>, matrices: &[(&str, &Nf4Matrix)]) -> Result<()> {
    let path = path.as_ref();
    let mut out = Tensors::default();
    for (name, m) in matrices {
        let n = m.len();
        out.i64(format!("{name}.shape"), &[m.rows() as i64, m.cols() as i64]);
        out.i64(format!("{name}.block_size"), &[m.block_size().get() as i64]);
        out.push(format!("{name}.codes"), Dtype::U8, n.div_ceil(2), m.codes());
        match m.scales() {
            Scales::F32(v) => out.f32(format!("{name}.absmax"), v),
            Scales::Double(d) => {
                out.push(
                    format!("{name}.absmax.codes"),
                    Dtype::U8,
                    d.codes().len(),
                    d.codes(),
                );
                let nested = d.block_size().get() as i64;
                out.i64(format!("{name}.absmax.block_size"), &[nested]);
                out.f32(format!("{name}.absmax.absmax"), d.absmax());
                out.f32(format!("{name}.absmax.offset"), &[d.offset()]);
            }
        }
    }
    let mut seen = BTreeSet::new();
    if let Some(dup) = out.entries.iter().find(|e| !seen.insert(&e.name)) {
        return Err(Error::InvalidArgument(format!(
            "{}: two matrices would both write the tensor {}",
            path.display(),
            dup.name
        )));
    }
    let views = out
        .entries
        .iter()
        .map(|e| {
            TensorView::new(e.dtype, vec![e.len], &e.bytes)
                .map(|v| (e.name.as_str(), v))
                .map_err(|err| format_error(path, format!("{}: {err}", e.name)))
        })
        .collect::<Result<Vec<_>>>()?;
    let bytes = safetensors::serialize(views, None)
        .map_err(|err| format_error(path, format!("safetensors: {err}")))?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| Error::Io {
            path: dir.into(),
            source,
        })?;
    }
    crate::io::write_atomically(path, |w| std::io::Write::write_all(w, &bytes))
}

/// Reads one matrix from a file [`save_nf4`] wrote. To read several, open the file once
/// with [`Nf4File::open`].
pub fn load_nf4(path: impl AsRef<Path>, name: &str) -> Result<Nf4Matrix> {
    Nf4File::open(path)?.matrix(name)
}

/// The tensors of one file being written: name, dtype, length and little-endian bytes
/// (borrowed for the packed codes, which are already bytes and the bulk of the file).
#[derive(Default)]
struct Tensors<'a> {
    entries: Vec<Entry<'a>>,
}

struct Entry<'a> {
    name: String,
    dtype: Dtype,
    len: usize,
    bytes: std::borrow::Cow<'a, [u8]>,
}

impl<'a> Tensors<'a> {
    fn push(
        &mut self,
        name: String,
        dtype: Dtype,
        len: usize,
        bytes: impl Into<std::borrow::Cow<'a, [u8]>>,
    ) {
        let bytes = bytes.into();
        self.entries.push(Entry {
            name,
            dtype,
            len,
            bytes,
        });
    }

    fn f32(&mut self, name: String, v: &[f32]) {
        let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        self.push(name, Dtype::F32, v.len(), bytes);
    }

    fn i64(&mut self, name: String, v: &[i64]) {
        let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        self.push(name, Dtype::I64, v.len(), bytes);
    }
}

fn format_error(path: &Path, reason: String) -> Error {
    Error::Format {
        path: path.into(),
        reason,
    }
}

/// A safetensors file of NF4 matrices, read whole into memory (the buffer sized from the
/// file with fallible allocation) and its header parsed once.
///
/// Every matrix is checked as it is read: missing tensors, wrong dtypes or lengths, an
/// unknown block size, a negative or non-finite scale, a shape whose size overflows, a
/// nonzero pad nibble, or both kinds of scales at once are [`Error::Format`] errors
/// naming the file and the tensor.
///
/// ```
/// use rosa::quant::{load_nf4, Nf4File};
/// let path = std::env::temp_dir().join(format!("rosa-doc-nf4-bad-{}.safetensors", std::process::id()));
/// std::fs::write(&path, b"not a safetensors file").unwrap();
/// assert!(matches!(Nf4File::open(&path), Err(rosa::Error::Format { .. })));
/// # std::fs::remove_file(&path).unwrap();
/// ```
pub struct Nf4File {
    path: PathBuf,
    bytes: Vec<u8>,
    /// Where the tensor data starts in `bytes`.
    data_start: usize,
    metadata: Metadata,
}

impl Nf4File {
    /// Reads and parses the file at `path` ([`Error::Io`], [`Error::Alloc`] or
    /// [`Error::Format`]).
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let io = |source| Error::Io {
            path: path.into(),
            source,
        };
        let mut file = std::fs::File::open(path).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        let len = usize::try_from(len).map_err(|_| Error::Alloc {
            what: format!("{}", path.display()),
            bytes: len as u128,
        })?;
        let mut bytes = try_vec(len, || format!("{}", path.display()))?;
        file.read_to_end(&mut bytes).map_err(io)?;
        let (header, metadata) = SafeTensors::read_metadata(&bytes)
            .map_err(|e| format_error(path, format!("safetensors: {e}")))?;
        Ok(Nf4File {
            path: path.into(),
            bytes,
            data_start: 8 + header,
            metadata,
        })
    }

    /// The names of the matrices in the file (every `P` with a `P.shape` and a
    /// `P.codes` tensor), sorted.
    pub fn names(&self) -> Vec<String> {
        let tensors = self.metadata.tensors();
        let mut names: Vec<String> = tensors
            .keys()
            .filter_map(|k| k.strip_suffix(".codes"))
            .filter(|p| tensors.contains_key(&format!("{p}.shape")))
            .map(String::from)
            .collect();
        names.sort();
        names
    }

    /// The matrix stored under `name`, checked (see [`Nf4File`]).
    pub fn matrix(&self, name: &str) -> Result<Nf4Matrix> {
        let shape = self.i64s(&format!("{name}.shape"), 2)?;
        let dim = |i: usize| {
            usize::try_from(shape[i]).map_err(|_| {
                self.error(format!("{name}.shape holds {shape:?}, not two sizes >= 0"))
            })
        };
        let (rows, cols) = (dim(0)?, dim(1)?);
        let n = rows.checked_mul(cols).ok_or_else(|| {
            self.error(format!(
                "{name}.shape {rows} x {cols} overflows the address space"
            ))
        })?;
        let block_size = self.block_size(&format!("{name}.block_size"))?;
        let codes = self.u8s(&format!("{name}.codes"), n.div_ceil(2))?;
        let blocks = block_size.blocks(n);
        let plain = format!("{name}.absmax");
        let nested = format!("{name}.absmax.codes");
        let scales = match (self.has(&plain), self.has(&nested)) {
            (true, true) => {
                return Err(self.error(format!(
                    "{name} has both {plain} and {nested}: f32 and double-quantized scales"
                )))
            }
            (false, false) => {
                return Err(self.error(format!(
                    "{name} has no scales: neither {plain} (f32) nor {nested} (double-quantized)"
                )))
            }
            (true, false) => Scales::F32(self.f32s(&plain, blocks)?),
            (false, true) => {
                let codes = self.u8s(&nested, blocks)?;
                let nb = self.block_size(&format!("{name}.absmax.block_size"))?;
                let absmax = self.f32s(&format!("{name}.absmax.absmax"), nb.blocks(blocks))?;
                let offset = self.f32s(&format!("{name}.absmax.offset"), 1)?[0];
                Scales::Double(
                    DoubleQuant::from_parts(nb, codes, absmax, offset)
                        .map_err(|e| self.error(format!("{name}: {e}")))?,
                )
            }
        };
        Nf4Matrix::from_parts(rows, cols, block_size, codes, scales)
            .map_err(|e| self.error(format!("{name}: {e}")))
    }

    fn error(&self, reason: String) -> Error {
        format_error(&self.path, reason)
    }

    fn has(&self, name: &str) -> bool {
        self.metadata.info(name).is_some()
    }

    /// The bytes of tensor `name`, checked to be 1-D of `len` elements of `dtype`.
    fn raw(&self, name: &str, dtype: Dtype, len: usize) -> Result<&[u8]> {
        let info = self
            .metadata
            .info(name)
            .ok_or_else(|| self.error(format!("no tensor {name}")))?;
        if info.dtype != dtype {
            return Err(self.error(format!("{name} is {:?}, expected {dtype:?}", info.dtype)));
        }
        if info.shape != [len] {
            return Err(self.error(format!(
                "{name} has shape {:?}, expected [{len}]",
                info.shape
            )));
        }
        let (begin, end) = info.data_offsets;
        // `read_metadata` checked that the offsets tile the data section exactly.
        Ok(&self.bytes[self.data_start + begin..self.data_start + end])
    }

    fn u8s(&self, name: &str, len: usize) -> Result<Vec<u8>> {
        let raw = self.raw(name, Dtype::U8, len)?;
        let mut v = try_vec(len, || format!("{}: {name}", self.path.display()))?;
        v.extend_from_slice(raw);
        Ok(v)
    }

    fn f32s(&self, name: &str, len: usize) -> Result<Vec<f32>> {
        let raw = self.raw(name, Dtype::F32, len)?;
        let mut v = try_vec(len, || format!("{}: {name}", self.path.display()))?;
        v.extend(
            raw.chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        );
        Ok(v)
    }

    fn i64s(&self, name: &str, len: usize) -> Result<Vec<i64>> {
        let raw = self.raw(name, Dtype::I64, len)?;
        Ok(raw
            .chunks_exact(8)
            .map(|b| i64::from_le_bytes(std::array::from_fn(|k| b[k])))
            .collect())
    }

    fn block_size(&self, name: &str) -> Result<BlockSize> {
        let v = self.i64s(name, 1)?[0];
        usize::try_from(v)
            .map_err(|_| Error::InvalidArgument(format!("block size {v} is negative")))
            .and_then(BlockSize::new)
            .map_err(|e| self.error(format!("{name}: {e}")))
    }
}
