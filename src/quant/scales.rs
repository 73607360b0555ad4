//! The per-block absmax scales of an NF4 matrix: as f32, or double-quantized.

use rayon::prelude::*;

use super::code::DYNAMIC;
use super::BlockSize;
use crate::error::try_vec;
use crate::{Error, Result};

/// The scale of every block of an [`Nf4Matrix`](super::Nf4Matrix): the block's absmax,
/// by which its code values are multiplied.
///
/// ```
/// use rosa::quant::{BlockSize, Scales};
/// let s = Scales::F32(vec![2.0, 0.5]);
/// assert_eq!((s.len(), s.get(1), s.stored_bytes()), (2, Some(0.5), 8));
/// let dq = Scales::double_quantize(&[2.0, 0.5], BlockSize::DOUBLE_QUANT_DEFAULT).unwrap();
/// assert!((dq.get(1).unwrap() - 0.5).abs() < 0.75 * 0.01); // within the 8-bit bound
/// assert_eq!(dq.stored_bytes(), 2 + 4 + 4);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum Scales {
    /// One f32 absmax per block (finite and not negative).
    F32(Vec<f32>),
    /// The absmaxes double-quantized to 8 bits (QLoRA's "double quantization").
    Double(DoubleQuant),
}

impl Scales {
    /// Double-quantizes `absmax` (finite, not negative) in blocks of `block_size`.
    /// See [`DoubleQuant`].
    pub fn double_quantize(absmax: &[f32], block_size: BlockSize) -> Result<Self> {
        DoubleQuant::quantize(absmax, block_size).map(Scales::Double)
    }

    /// The number of scales (blocks of the matrix).
    pub fn len(&self) -> usize {
        match self {
            Scales::F32(v) => v.len(),
            Scales::Double(d) => d.codes.len(),
        }
    }

    /// Whether there are no scales (an empty matrix).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The scale of block `block` (dequantized, for [`Scales::Double`]), or `None` past
    /// the last block.
    #[inline]
    pub fn get(&self, block: usize) -> Option<f32> {
        match self {
            Scales::F32(v) => v.get(block).copied(),
            Scales::Double(d) => d.get(block),
        }
    }

    /// Bytes held: 4 per f32 scale; 1 per 8-bit code, plus 4 per nested absmax and 4
    /// for the offset, when double-quantized.
    pub fn stored_bytes(&self) -> usize {
        match self {
            Scales::F32(v) => 4 * v.len(),
            Scales::Double(d) => d.codes.len() + 4 * d.absmax.len() + 4,
        }
    }

    /// Checks the invariants of a scale vector read from elsewhere (a file): f32 scales
    /// finite and not negative.
    pub(crate) fn check(&self) -> Result<()> {
        match self {
            Scales::F32(v) => check_absmax("scale", v),
            Scales::Double(_) => Ok(()), // checked when built
        }
    }
}

/// `what[i]` must be finite and not negative: an absmax.
fn check_absmax(what: &str, v: &[f32]) -> Result<()> {
    match v.iter().position(|x| !(x.is_finite() && *x >= 0.0)) {
        None => Ok(()),
        Some(i) => Err(Error::InvalidArgument(format!(
            "{what} {i} is {}, not a finite absmax >= 0",
            v[i]
        ))),
    }
}

/// Block scales in 8 bits, as QLoRA's double quantization stores them.
///
/// Follows bitsandbytes' `quantize_4bit(..., compress_statistics=True)`: the scales'
/// mean `offset` is subtracted (`c - offset`, rounded to f32), and the centred values
/// are quantized blockwise (blocks of [`block_size`](Self::block_size) scales, 256 in
/// QLoRA) with the signed 8-bit [`dynamic_code`](super::dynamic_code): each block keeps
/// its absmax `a` as f32 and each scale the index `q` of the code value nearest to
/// `(c - offset) / a`. A scale reads back as `dynamic_code()[q] * a + offset`, as two
/// f32 operations each rounded (bitsandbytes' `dequantize_blockwise(...) + offset`; a
/// fused multiply-add would round differently).
///
/// Where this differs from bitsandbytes: the mean is summed in f64 and rounded to f32
/// once (bitsandbytes: a float32 `torch.mean`); rounding to the code is exact
/// nearest-value with ties to the smaller value (bitsandbytes' CUDA `dQuantize` is a
/// binary search that ends on one of the two neighbours, its CPU path a nearest search);
/// the code values may differ in the last bit (see
/// [`dynamic_code`](super::dynamic_code)).
///
/// Error: `|c - read back| <= a * (E + 2^-23) + |read back| * 2^-24`, where `E` (about
/// 0.0070) is the farthest any point of `[-1, 1]` lies from its nearest code value.
#[derive(Debug, Clone, PartialEq)]
pub struct DoubleQuant {
    block_size: BlockSize,
    codes: Vec<u8>,
    absmax: Vec<f32>,
    offset: f32,
}

impl DoubleQuant {
    /// Quantizes `absmax` (one per NF4 block; finite and not negative, else
    /// [`Error::InvalidArgument`]) in blocks of `block_size`.
    pub fn quantize(absmax: &[f32], block_size: BlockSize) -> Result<Self> {
        check_absmax("scale", absmax)?;
        let n = absmax.len();
        let offset = if n == 0 {
            0.0
        } else {
            (absmax.iter().map(|&c| c as f64).sum::<f64>() / n as f64) as f32
        };
        let b = block_size.get();
        let mut codes = try_vec(n, || format!("{n} double-quantized scales"))?;
        codes.resize(n, 0u8);
        let blocks = block_size.blocks(n);
        let mut nested = try_vec(blocks, || format!("{blocks} nested absmax"))?;
        nested.resize(blocks, 0f32);
        absmax
            .par_chunks(b)
            .zip(codes.par_chunks_mut(b))
            .zip(nested.par_iter_mut())
            .for_each(|((c, q), a)| {
                let centred = |c: f32| c - offset;
                *a = c.iter().fold(0f32, |m, &c| m.max(centred(c).abs()));
                for (q, &c) in q.iter_mut().zip(c) {
                    *q = DYNAMIC.nearest(centred(c), *a);
                }
            });
        Ok(DoubleQuant {
            block_size,
            codes,
            absmax: nested,
            offset,
        })
    }

    /// Rebuilds double-quantized scales from their stored parts, checking that
    /// `absmax` has one entry per block of `block_size` codes, every entry finite and not
    /// negative, and `offset` finite ([`Error::InvalidArgument`] otherwise).
    pub fn from_parts(
        block_size: BlockSize,
        codes: Vec<u8>,
        absmax: Vec<f32>,
        offset: f32,
    ) -> Result<Self> {
        let blocks = block_size.blocks(codes.len());
        if absmax.len() != blocks {
            return Err(Error::InvalidArgument(format!(
                "{} double-quantized scales in blocks of {block_size} need {blocks} absmax, got {}",
                codes.len(),
                absmax.len()
            )));
        }
        check_absmax("nested absmax", &absmax)?;
        if !offset.is_finite() {
            return Err(Error::InvalidArgument(format!(
                "double-quantization offset {offset} is not finite"
            )));
        }
        Ok(DoubleQuant {
            block_size,
            codes,
            absmax,
            offset,
        })
    }

    /// Scales per nested block.
    pub fn block_size(&self) -> BlockSize {
        self.block_size
    }

    /// The 8-bit code of each scale: an index into
    /// [`dynamic_code`](super::dynamic_code).
    pub fn codes(&self) -> &[u8] {
        &self.codes
    }

    /// The f32 absmax of each nested block of centred scales.
    pub fn absmax(&self) -> &[f32] {
        &self.absmax
    }

    /// The mean of the scales, added back after dequantization.
    pub fn offset(&self) -> f32 {
        self.offset
    }

    /// Scale `block`, dequantized, or `None` past the last.
    #[inline]
    pub fn get(&self, block: usize) -> Option<f32> {
        let q = *self.codes.get(block)?;
        let a = self.absmax[self.block_size.block_of(block)];
        Some(DYNAMIC.values()[q as usize] * a + self.offset)
    }
}
