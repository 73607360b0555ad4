//! Block sizes and the quantization settings built from them.

use std::fmt;

use crate::{Error, Result};

/// The number of consecutive elements (in row-major order) that share one scale: a power
/// of two from [`BlockSize::MIN`] to [`BlockSize::MAX`].
///
/// These are the block sizes bitsandbytes' 4-bit and blockwise 8-bit quantization accept
/// (`quantize_4bit`: 32 to 4096). Being even, a block always starts on a byte boundary
/// of the packed codes; being a power of two, every block size divides
/// [`BlockSize::MAX`], so work split at multiples of `MAX` never splits a block. The
/// matrix size need not be a multiple: the last block may be partial.
///
/// ```
/// use rosa::quant::BlockSize;
/// assert_eq!(BlockSize::new(128).unwrap().get(), 128);
/// assert_eq!(BlockSize::default().get(), 64);
/// assert!(BlockSize::new(48).is_err() && BlockSize::new(8192).is_err());
/// assert_eq!(BlockSize::new(64).unwrap().blocks(130), 3);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BlockSize(u16);

impl BlockSize {
    /// The smallest block size.
    pub const MIN: usize = 32;
    /// The largest block size.
    pub const MAX: usize = 4096;
    /// QLoRA's block size for the NF4 codes (64).
    pub const NF4_DEFAULT: BlockSize = BlockSize(64);
    /// QLoRA's block size for double quantization of the scales (256).
    pub const DOUBLE_QUANT_DEFAULT: BlockSize = BlockSize(256);

    /// `n` as a block size, or [`Error::InvalidArgument`] unless it is a power of two
    /// from [`MIN`](Self::MIN) to [`MAX`](Self::MAX).
    pub fn new(n: usize) -> Result<Self> {
        if n.is_power_of_two() && (Self::MIN..=Self::MAX).contains(&n) {
            Ok(BlockSize(n as u16))
        } else {
            Err(Error::InvalidArgument(format!(
                "block size {n} is not a power of two from {} to {}",
                Self::MIN,
                Self::MAX
            )))
        }
    }

    /// The number of elements per block.
    pub const fn get(self) -> usize {
        self.0 as usize
    }

    /// The block holding element `index`: `index / self`, as a shift (a division by a
    /// run-time divisor costs tens of cycles, once per block in the kernels).
    #[inline]
    pub(crate) const fn block_of(self, index: usize) -> usize {
        index >> self.0.trailing_zeros()
    }

    /// The number of blocks `len` elements fill: `ceil(len / self)`.
    pub const fn blocks(self, len: usize) -> usize {
        len.div_ceil(self.get())
    }
}

impl Default for BlockSize {
    /// [`BlockSize::NF4_DEFAULT`].
    fn default() -> Self {
        Self::NF4_DEFAULT
    }
}

impl fmt::Display for BlockSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// How to quantize a matrix to NF4.
///
/// The default is bitsandbytes' `quantize_4bit` default (blocks of 64, scales in f32);
/// [`Nf4Config::qlora`] adds QLoRA's double quantization (scales in 8 bits, blocks of
/// 256), which cuts the scales from 0.5 to about 0.127 bits per weight.
///
/// ```
/// use rosa::quant::{BlockSize, Nf4Config};
/// let c = Nf4Config::qlora();
/// assert_eq!((c.block_size.get(), c.double_quant.map(BlockSize::get)), (64, Some(256)));
/// assert_eq!(Nf4Config::default().double_quant, None);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Nf4Config {
    /// Elements per absmax scale.
    pub block_size: BlockSize,
    /// `Some(b)`: store the scales double-quantized, in blocks of `b` scales; `None`:
    /// store them as f32.
    pub double_quant: Option<BlockSize>,
}

impl Nf4Config {
    /// QLoRA's setting: blocks of 64, double quantization in blocks of 256.
    pub const fn qlora() -> Self {
        Nf4Config {
            block_size: BlockSize::NF4_DEFAULT,
            double_quant: Some(BlockSize::DOUBLE_QUANT_DEFAULT),
        }
    }
}
