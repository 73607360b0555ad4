//! [`Nf4Matrix`]: a row-major matrix stored as packed NF4 codes and block scales.

use rayon::prelude::*;

use super::code::NF4_BOOK;
use super::{BlockSize, Nf4Config, Scales};
use crate::error::{shape, try_vec};
use crate::{Error, MatRef, Result, Scalar};

/// A `rows x cols` matrix in 4-bit NormalFloat (NF4), as QLoRA stores its frozen base
/// weights.
///
/// Layout, following bitsandbytes' `quantize_4bit`:
/// - The elements, in row-major order (element `i` is `(i / cols, i % cols)`), are cut
///   into blocks of [`block_size`](Self::block_size) consecutive elements; the last block
///   holds the remainder, however many. Block `b` has the scale `absmax_b`, the largest
///   `|x|` in it.
/// - Element `i` is stored as the 4-bit index `q` of the [`NF4`](super::NF4) value
///   nearest to `x / absmax_b` (exactly; ties go to the smaller value; an all-zero block
///   stores the code of 0). It reads back as `NF4[q] * absmax_b`, one f32 product.
/// - Two codes per byte, [`codes`](Self::codes)`[i / 2]`: element `2j` in the **high**
///   nibble, element `2j + 1` in the low one, as bitsandbytes packs them. With an odd
///   element count the last low nibble is 0.
/// - The scales as f32, or double-quantized ([`Scales`]).
///
/// Rounding error per element: `|x - read back| <= absmax_b * 0.15190 + |read back| *
/// 2^-24`, where 0.15190 is half the widest gap between neighbouring NF4 values
/// (`(-0.69619 - -1) / 2`; on the positive side it is `(1 - 0.72296) / 2 = 0.13852`);
/// double quantization adds the error of its scale (see
/// [`DoubleQuant`](super::DoubleQuant)).
///
/// ```
/// use rosa::quant::{Nf4Config, Nf4Matrix};
/// use rosa::Dense;
/// let w = Dense::from_fn(3, 5, |i, j| (i as f32 - j as f32) / 4.0);
/// let q = Nf4Matrix::quantize(w.as_ref(), Nf4Config::default()).unwrap();
/// assert_eq!((q.rows(), q.cols(), q.codes().len()), (3, 5, 8)); // 15 codes in 8 bytes
/// assert_eq!(q.stored_bytes(), 8 + 4); // one block of 64 (partial): one f32 scale
/// let back = q.dequantize::<f32>().unwrap();
/// for (x, y) in w.as_slice().iter().zip(back.as_slice()) {
///     assert!((x - y).abs() <= 1.0 * 0.1520);
/// }
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Nf4Matrix {
    rows: usize,
    cols: usize,
    block_size: BlockSize,
    codes: Vec<u8>,
    scales: Scales,
}

impl Nf4Matrix {
    /// Quantizes `w` (any [`Scalar`]: f32, f16, bf16; every value is widened to f32
    /// exactly) with `config`, in parallel.
    ///
    /// Errors: [`Error::NonFinite`] naming the first (row-major) NaN or infinity;
    /// [`Error::Alloc`] if the codes or scales cannot be allocated.
    pub fn quantize<T: Scalar>(w: MatRef<'_, T>, config: Nf4Config) -> Result<Self> {
        let x = w.as_slice();
        let cols = w.cols();
        if let Some(i) = x.par_iter().position_first(|v| !v.to_f32().is_finite()) {
            return Err(Error::NonFinite {
                what: "Nf4Matrix::quantize",
                row: i / cols,
                col: i % cols,
                value: x[i].to_f32(),
            });
        }
        let n = x.len();
        let b = config.block_size.get();
        let blocks = config.block_size.blocks(n);
        let what = || format!("NF4 codes of a {} matrix", shape(w.rows(), cols));
        let mut codes = try_vec(n.div_ceil(2), what)?;
        codes.resize(n.div_ceil(2), 0u8);
        let mut absmax = try_vec(blocks, || format!("{blocks} NF4 block scales"))?;
        absmax.resize(blocks, 0f32);
        x.par_chunks(b)
            .zip(codes.par_chunks_mut(b / 2))
            .zip(absmax.par_iter_mut())
            .with_min_len(64)
            .for_each(|((x, q), a)| *a = quantize_block(x, q));
        let scales = match config.double_quant {
            None => Scales::F32(absmax),
            Some(nested) => Scales::double_quantize(&absmax, nested)?,
        };
        Ok(Nf4Matrix {
            rows: w.rows(),
            cols,
            block_size: config.block_size,
            codes,
            scales,
        })
    }

    /// Rebuilds a matrix from its stored parts (as [`codes`](Self::codes) and
    /// [`scales`](Self::scales) give them), checking that `codes` holds
    /// `ceil(rows * cols / 2)` bytes with a zero pad nibble, that there is one scale per
    /// block, and that f32 scales are finite and not negative ([`Error::InvalidArgument`]
    /// otherwise, [`Error::DenseLength`] for a size that overflows).
    pub fn from_parts(
        rows: usize,
        cols: usize,
        block_size: BlockSize,
        codes: Vec<u8>,
        scales: Scales,
    ) -> Result<Self> {
        let n = rows.checked_mul(cols).ok_or(Error::DenseLength {
            rows,
            cols,
            len: codes.len(),
        })?;
        if codes.len() != n.div_ceil(2) {
            return Err(Error::InvalidArgument(format!(
                "{} NF4 codes need {} bytes, got {}",
                shape(rows, cols),
                n.div_ceil(2),
                codes.len()
            )));
        }
        if n % 2 == 1 && codes[n / 2] & 0x0f != 0 {
            return Err(Error::InvalidArgument(format!(
                "the pad nibble after the last of {n} NF4 codes is {}, not 0",
                codes[n / 2] & 0x0f
            )));
        }
        if scales.len() != block_size.blocks(n) {
            return Err(Error::InvalidArgument(format!(
                "{} in blocks of {block_size} needs {} scales, got {}",
                shape(rows, cols),
                block_size.blocks(n),
                scales.len()
            )));
        }
        scales.check()?;
        Ok(Nf4Matrix {
            rows,
            cols,
            block_size,
            codes,
            scales,
        })
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of columns.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Number of elements, `rows * cols`.
    pub fn len(&self) -> usize {
        self.rows * self.cols
    }

    /// Whether the matrix has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Elements per scale.
    pub fn block_size(&self) -> BlockSize {
        self.block_size
    }

    /// The settings this matrix was quantized with.
    pub fn config(&self) -> Nf4Config {
        Nf4Config {
            block_size: self.block_size,
            double_quant: match &self.scales {
                Scales::F32(_) => None,
                Scales::Double(d) => Some(d.block_size()),
            },
        }
    }

    /// The packed 4-bit codes, `ceil(rows * cols / 2)` bytes, high nibble first.
    pub fn codes(&self) -> &[u8] {
        &self.codes
    }

    /// The block scales, one per block.
    pub fn scales(&self) -> &Scales {
        &self.scales
    }

    /// The bytes this matrix holds: the packed codes plus the scales (f32 scales, or the
    /// 8-bit codes, nested f32 absmaxes and offset of double quantization). What a memory
    /// report counts for a quantized W; excludes the few bytes of shape and settings.
    ///
    /// A 4096 x 4096 W takes 8 MiB of codes and 1 MiB of f32 scales (4.5 bits per
    /// weight), or 8 MiB + 260 KiB double-quantized (about 4.127 bits), against 32 MiB in
    /// f32.
    pub fn stored_bytes(&self) -> usize {
        self.codes.len() + self.scales.stored_bytes()
    }
}

/// Quantizes one block (its elements `x`, finite) into `codes` (`ceil(x.len() / 2)`
/// bytes); returns the block's absmax.
fn quantize_block<T: Scalar>(x: &[T], codes: &mut [u8]) -> f32 {
    let absmax = x.iter().fold(0f32, |m, v| m.max(v.to_f32().abs()));
    let code = |v: &T| NF4_BOOK.nearest(v.to_f32(), absmax);
    let mut pairs = x.chunks_exact(2);
    for (byte, pair) in codes.iter_mut().zip(&mut pairs) {
        *byte = code(&pair[0]) << 4 | code(&pair[1]);
    }
    if let [last] = pairs.remainder() {
        codes[x.len() / 2] = code(last) << 4;
    }
    absmax
}
