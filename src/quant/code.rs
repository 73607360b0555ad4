//! The code values: NF4's 16 normal quantiles, the signed 8-bit "dynamic" code that
//! double quantization stores the scales in, and rounding to the nearest code.

use std::sync::LazyLock;

/// The 16 NF4 code values, indexed by the 4-bit code: `NF4[q]` is the value code `q`
/// stands for, in units of its block's absmax.
///
/// The values are the float32 numbers bitsandbytes publishes and QLoRA uses
/// (Dettmers et al., 2023, "QLoRA: Efficient Finetuning of Quantized LLMs",
/// arXiv:2305.14314, section 3): `get_4bit_type("nf4")` in bitsandbytes'
/// `bitsandbytes/functional.py` and `nf4_dequantization_lut` in its `csrc/kernels.cu`,
/// digit for digit. They come from `create_normal_map(offset=0.9677083,
/// use_extra_value=True)` in the same file: 8 positive quantiles
/// `Φ⁻¹(p)` at `p` evenly spaced from `offset` down to 0.5 (exclusive), 7 negative ones
/// at `p` from `offset` to 0.5 in 7 steps, and an exact zero, divided by the largest;
/// `offset = (1 - 1/(2·15) + 1 - 1/(2·16)) / 2` keeps `Φ⁻¹` finite at the ends. The
/// code is asymmetric (8 positive values, 7 negative) so that 0 is exact.
///
/// ```
/// use rosa::quant::NF4;
/// assert_eq!((NF4[0], NF4[7], NF4[15]), (-1.0, 0.0, 1.0));
/// assert!(NF4.windows(2).all(|w| w[0] < w[1]));
/// ```
// The published digits, verbatim, so a reader can compare them with the source; each is
// the shortest decimal of an f32 printed as an f64 (the test suite checks both facts).
#[allow(clippy::excessive_precision)]
pub const NF4: [f32; 16] = [
    -1.0,
    -0.6961928009986877,
    -0.5250730514526367,
    -0.39491748809814453,
    -0.28444138169288635,
    -0.18477343022823334,
    -0.09105003625154495,
    0.0,
    0.07958029955625534,
    0.16093020141124725,
    0.24611230194568634,
    0.33791524171829224,
    0.44070982933044434,
    0.5626170039176941,
    0.7229568362236023,
    1.0,
];

/// The 4-bit code of an exact zero (`NF4[NF4_ZERO] == 0.0`).
pub const NF4_ZERO: u8 = 7;

/// The 256 values of the signed 8-bit code that double quantization stores the
/// mean-centred block scales in, sorted, indexed by the 8-bit code.
///
/// This is bitsandbytes' `create_dynamic_map(signed=True, max_exponent_bits=7,
/// total_bits=8)` (`bitsandbytes/functional.py`; Dettmers, 2016, "8-Bit Approximations
/// for Parallelism in Deep Learning", arXiv:1511.04561), the code `quantize_4bit(...,
/// compress_statistics=True)` passes to `quantize_blockwise`: for each decade
/// `10^(i-6)`, `i = 0..7`, the `2^i` midpoints of `2^i + 1` points evenly spaced from 0.1
/// to 1, with both signs, then 0 and 1 (127 negative values, zero, 128 positive values,
/// from about -0.993 to 1). bitsandbytes computes the points with float32
/// `torch.linspace` and rounds each product once more; here every value is computed in
/// f64 and rounded to f32 once, so a value may differ from bitsandbytes' in the last
/// bit. rosa's own files are unaffected (they store code indices and are read with this
/// same table); what that would change is reading bitsandbytes' nested absmax, which
/// rosa does not do.
///
/// ```
/// use rosa::quant::dynamic_code;
/// let code = dynamic_code();
/// assert_eq!((code[127], code[255]), (0.0, 1.0));
/// assert!(code.windows(2).all(|w| w[0] < w[1]));
/// ```
pub fn dynamic_code() -> &'static [f32; 256] {
    &DYNAMIC.values
}

/// The index of zero in [`dynamic_code`].
pub(crate) const DYNAMIC_ZERO: u8 = 127;

/// A sorted code and what rounding to it needs: the midpoints between neighbours.
pub(crate) struct Codebook<const N: usize> {
    values: [f32; N],
    /// `midpoints[k]` lies between `values[k]` and `values[k + 1]`, exactly (the sum of
    /// two f32 of equal sign or one of them zero needs at most 29 bits, so halving it in
    /// f64 is exact; a unit test checks the width).
    midpoints: [f64; N],
    /// Index of the value 0: the code of every element of an all-zero block.
    zero: u8,
}

impl<const N: usize> Codebook<N> {
    fn new(values: [f32; N], zero: u8) -> Self {
        debug_assert!(values.windows(2).all(|w| w[0] < w[1]));
        debug_assert_eq!(values[zero as usize], 0.0);
        // Only N - 1 midpoints exist; the last slot is +inf, which no finite value
        // exceeds, so searching all N slots finds the same code.
        let mut midpoints = [f64::INFINITY; N];
        for k in 0..N - 1 {
            midpoints[k] = (values[k] as f64 + values[k + 1] as f64) / 2.0;
        }
        Codebook {
            values,
            midpoints,
            zero,
        }
    }

    /// The code values, sorted.
    pub(crate) fn values(&self) -> &[f32; N] {
        &self.values
    }

    /// The index of the code value nearest to `v / scale`, ties to the smaller value.
    ///
    /// Decided exactly, without forming `v / scale`: `v` lies above the midpoint `m`
    /// between two codes iff `v > m * scale`, and `m * scale` is exact in f64 (at most
    /// 29 + 24 significant bits), as is `v`. `scale` must be finite and `>= |v|`;
    /// `scale == 0` (an all-zero block) gives the code of 0.
    #[inline]
    pub(crate) fn nearest(&self, v: f32, scale: f32) -> u8 {
        if scale == 0.0 {
            return self.zero;
        }
        let (v, s) = (v as f64, scale as f64);
        // At most 8 comparisons for 256 codes, 4 for 16.
        self.midpoints.partition_point(|&m| m * s < v) as u8
    }
}

/// NF4 as a codebook.
pub(crate) static NF4_BOOK: LazyLock<Codebook<16>> = LazyLock::new(|| Codebook::new(NF4, NF4_ZERO));

/// The dynamic 8-bit code as a codebook.
pub(crate) static DYNAMIC: LazyLock<Codebook<256>> =
    LazyLock::new(|| Codebook::new(build_dynamic(), DYNAMIC_ZERO));

fn build_dynamic() -> [f32; 256] {
    let mut values = Vec::with_capacity(256);
    for i in 0..7 {
        // 10^(i-6) as Python's `10 ** (i - 6)`: 10^(6-i) is an exact integer, and the
        // division rounds once.
        let decade = 1.0 / 10f64.powi(6 - i);
        let means = 1usize << i;
        for k in 0..means {
            // The midpoint of linspace(0.1, 1, means + 1)[k] and [k + 1].
            let mean = 0.1 + 0.9 * (k as f64 + 0.5) / means as f64;
            let v = (decade * mean) as f32;
            values.push(v);
            values.push(-v);
        }
    }
    values.push(0.0);
    values.push(1.0);
    values.sort_by(f32::total_cmp);
    values.try_into().expect("127 + 127 + 2 = 256 values")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The number of significant bits of a finite f64.
    fn significant_bits(x: f64) -> u32 {
        if x == 0.0 {
            return 0;
        }
        let bits = x.to_bits();
        let exp = (bits >> 52) & 0x7ff;
        let mantissa = bits & ((1 << 52) - 1) | if exp == 0 { 0 } else { 1 << 52 };
        64 - mantissa.leading_zeros() - mantissa.trailing_zeros()
    }

    /// What makes `nearest` exact: every midpoint times any f32 fits an f64's 53 bits.
    #[test]
    fn midpoints_are_exact_and_narrow() {
        fn check<const N: usize>(book: &Codebook<N>) {
            for k in 0..N - 1 {
                let (a, b) = (book.values[k] as f64, book.values[k + 1] as f64);
                let m = book.midpoints[k];
                assert_eq!(m * 2.0 - a, b, "midpoint {k} is not exact");
                assert!(significant_bits(m) <= 29, "midpoint {k} = {m} is too wide");
            }
        }
        check(&NF4_BOOK);
        check(&DYNAMIC);
        assert_eq!(significant_bits(1.5), 2);
        assert_eq!(significant_bits(f32::MAX as f64), 24);
    }

    /// Brute force: the chosen code is at least as close as every other, in exact
    /// rational terms (scaled by 2 * scale, so integers of f64 suffice).
    #[test]
    fn nearest_matches_brute_force() {
        let mut rng = crate::random::Rng::new(5);
        for _ in 0..20_000 {
            let scale = rng.uniform(1e-3, 10.0);
            let v = rng.uniform(-1.0, 1.0) * scale;
            for (values, q) in [
                (&NF4_BOOK.values[..], NF4_BOOK.nearest(v, scale)),
                (&DYNAMIC.values[..], DYNAMIC.nearest(v, scale)),
            ] {
                let dist = |c: f32| (v as f64 - c as f64 * scale as f64).abs();
                let best = dist(values[q as usize]);
                for (j, &c) in values.iter().enumerate() {
                    assert!(
                        best < dist(c) || (best == dist(c) && q as usize <= j),
                        "v = {v}, scale = {scale}: code {q} is not the nearest ({j} is)"
                    );
                }
            }
        }
    }

    #[test]
    fn zero_scale_gives_the_zero_code() {
        assert_eq!(NF4[NF4_BOOK.nearest(0.0, 0.0) as usize], 0.0);
        assert_eq!(DYNAMIC.values[DYNAMIC.nearest(-0.0, 0.0) as usize], 0.0);
        assert_eq!(NF4_BOOK.nearest(0.0, 1.0), NF4_ZERO);
    }
}
