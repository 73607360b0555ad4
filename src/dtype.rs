//! The element types the kernels accept: f32, f16 and bf16, all accumulated in f32.

use std::fmt;
use std::str::FromStr;

use half::slice::HalfFloatSliceExt;
pub use half::{bf16, f16};

use crate::Error;

/// The runtime name of an element type, as the command line and file formats spell it.
///
/// ```
/// use rosa::DType;
/// assert_eq!("bf16".parse::<DType>().unwrap(), DType::Bf16);
/// assert_eq!(DType::F16.size(), 2);
/// ```
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum DType {
    F32,
    F16,
    Bf16,
}

impl DType {
    /// Every element type, in a fixed order.
    pub const ALL: [DType; 3] = [DType::F32, DType::F16, DType::Bf16];

    /// Bytes per element.
    pub const fn size(self) -> usize {
        match self {
            DType::F32 => 4,
            DType::F16 | DType::Bf16 => 2,
        }
    }

    /// The lower-case name (`f32`, `f16`, `bf16`).
    pub const fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F16 => "f16",
            DType::Bf16 => "bf16",
        }
    }

    /// The largest finite value: every finite value of larger magnitude rounds to ±inf.
    ///
    /// ```
    /// use rosa::DType;
    /// assert_eq!(DType::F16.max_finite(), 65504.0);
    /// assert_eq!(DType::F32.max_finite(), f32::MAX as f64);
    /// ```
    pub fn max_finite(self) -> f64 {
        match self {
            DType::F32 => f32::MAX as f64,
            DType::F16 => f16::MAX.to_f64(),
            DType::Bf16 => bf16::MAX.to_f64(),
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for DType {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s.to_ascii_lowercase().as_str() {
            "f32" | "float32" => Ok(DType::F32),
            "f16" | "float16" | "half" => Ok(DType::F16),
            "bf16" | "bfloat16" => Ok(DType::Bf16),
            other => Err(Error::InvalidArgument(format!(
                "unknown dtype '{other}' (expected f32, f16 or bf16)"
            ))),
        }
    }
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for half::f16 {}
    impl Sealed for half::bf16 {}
}

/// An element type of a matrix: converts to and from the f32 the kernels accumulate in.
///
/// Sealed: implemented for `f32`, [`f16`](half::f16) and [`bf16`](half::bf16) only, the
/// types the CUDA kernels are compiled for.
///
/// ```
/// use rosa::{bf16, Scalar};
/// let x = bf16::from_f32(1.5);
/// assert_eq!(x.to_f32(), 1.5);
/// assert_eq!(<bf16 as Scalar>::DTYPE.name(), "bf16");
/// ```
pub trait Scalar:
    sealed::Sealed + Copy + Default + PartialEq + fmt::Debug + Send + Sync + 'static
{
    /// The runtime tag of this type.
    const DTYPE: DType;
    /// Converts to f32 exactly (every f16 and bf16 is representable in f32).
    fn to_f32(self) -> f32;
    /// Rounds an f32 to this type (round to nearest even; overflow gives infinity).
    ///
    /// Out of range means infinite, never saturated: for f16, `|x| >= 65520` (the tie
    /// above `f16::MAX = 65504`) becomes `±inf`; bf16 shares f32's range. NaN stays NaN.
    ///
    /// ```
    /// use rosa::{f16, Scalar};
    /// assert_eq!(<f16 as Scalar>::from_f32(65519.0), f16::MAX);
    /// assert_eq!(<f16 as Scalar>::from_f32(-65520.0), f16::NEG_INFINITY);
    /// ```
    fn from_f32(x: f32) -> Self;
    /// Rounds an f64 to this type once (round to nearest even; overflow gives infinity).
    ///
    /// Not `from_f32(x as f32)`: rounding twice can land on the other side of a tie
    /// (`1 + 2^-8 + 2^-30` is above bf16's halfway point between 1 and `1 + 2^-7`, but
    /// its f32 rounding `1 + 2^-8` is the tie itself, which goes to even, down). Nor
    /// `half`'s own `from_f64`, which drops the low 32 bits of the f64 before rounding.
    ///
    /// ```
    /// use rosa::{bf16, Scalar};
    /// let x = 1.0 + 2f64.powi(-8) + 2f64.powi(-30);
    /// assert_eq!(<bf16 as Scalar>::from_f64(x).to_f32(), 1.0 + 2f32.powi(-7));
    /// assert_eq!(<bf16 as Scalar>::from_f32(x as f32).to_f32(), 1.0);
    /// ```
    fn from_f64(x: f64) -> Self {
        Self::from_f32(round_to_odd(x))
    }
    /// The smallest difference from 1 this type can represent: the base of test tolerances.
    fn epsilon() -> f32;
    /// Widens a slice to f32 (`dst.len() == src.len()`), with SIMD where `half` has it.
    fn slice_to_f32(src: &[Self], dst: &mut [f32]);
    /// The slice itself when `Self` is f32, so kernels can skip a widening copy.
    fn as_f32_slice(src: &[Self]) -> Option<&[f32]>;
    /// The slice itself when `Self` is f32, so kernels can write results without rounding.
    fn as_f32_slice_mut(src: &mut [Self]) -> Option<&mut [f32]>;
}

/// `x` rounded to f32 towards zero, with the last bit set if that lost anything ("round
/// to odd"). An f32 holds at least two more bits than f16 or bf16 at every exponent, so
/// rounding this result to nearest even gives the correctly rounded f16 or bf16 of `x`
/// (Boldo and Melquiond, "Emulation of FMA and correctly rounded sums: proved algorithms
/// using rounding to odd", IEEE Trans. Computers 57(4), 2008).
fn round_to_odd(x: f64) -> f32 {
    let nearest = x as f32;
    if x.is_nan() || nearest as f64 == x {
        return nearest;
    }
    // Inexact: step towards zero if rounding went away from it (overflow included: inf
    // steps back to f32::MAX), then mark the lost bits in the last place.
    let mut bits = nearest.to_bits();
    if (nearest as f64).abs() > x.abs() {
        bits -= 1;
    }
    f32::from_bits(bits | 1)
}

impl Scalar for f32 {
    const DTYPE: DType = DType::F32;
    #[inline(always)]
    fn to_f32(self) -> f32 {
        self
    }
    #[inline(always)]
    fn from_f32(x: f32) -> Self {
        x
    }
    fn from_f64(x: f64) -> Self {
        x as f32
    }
    fn epsilon() -> f32 {
        f32::EPSILON
    }
    fn slice_to_f32(src: &[Self], dst: &mut [f32]) {
        dst.copy_from_slice(src);
    }
    fn as_f32_slice(src: &[Self]) -> Option<&[f32]> {
        Some(src)
    }
    #[inline(always)]
    fn as_f32_slice_mut(src: &mut [Self]) -> Option<&mut [f32]> {
        Some(src)
    }
}

impl Scalar for f16 {
    const DTYPE: DType = DType::F16;
    #[inline(always)]
    fn to_f32(self) -> f32 {
        f16::to_f32(self)
    }
    #[inline(always)]
    fn from_f32(x: f32) -> Self {
        f16::from_f32(x)
    }
    fn epsilon() -> f32 {
        f16::EPSILON.to_f32()
    }
    fn slice_to_f32(src: &[Self], dst: &mut [f32]) {
        src.convert_to_f32_slice(dst);
    }
    fn as_f32_slice(_: &[Self]) -> Option<&[f32]> {
        None
    }
    #[inline(always)]
    fn as_f32_slice_mut(_: &mut [Self]) -> Option<&mut [f32]> {
        None
    }
}

impl Scalar for bf16 {
    const DTYPE: DType = DType::Bf16;
    #[inline(always)]
    fn to_f32(self) -> f32 {
        bf16::to_f32(self)
    }
    #[inline(always)]
    fn from_f32(x: f32) -> Self {
        bf16::from_f32(x)
    }
    fn epsilon() -> f32 {
        bf16::EPSILON.to_f32()
    }
    fn slice_to_f32(src: &[Self], dst: &mut [f32]) {
        src.convert_to_f32_slice(dst);
    }
    fn as_f32_slice(_: &[Self]) -> Option<&[f32]> {
        None
    }
    #[inline(always)]
    fn as_f32_slice_mut(_: &mut [Self]) -> Option<&mut [f32]> {
        None
    }
}
