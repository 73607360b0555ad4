//! Widening dense operands to f32 once per call, so the hot loops read plain f32.

use std::borrow::Cow;

use rayon::prelude::*;

use crate::Scalar;

const CHUNK: usize = 1 << 15;

/// The operand as f32: borrowed when it already is, widened in parallel otherwise.
pub(super) fn widen<T: Scalar>(src: &[T]) -> Cow<'_, [f32]> {
    if let Some(s) = T::as_f32_slice(src) {
        return Cow::Borrowed(s);
    }
    let mut dst = vec![0.0f32; src.len()];
    dst.par_chunks_mut(CHUNK)
        .zip(src.par_chunks(CHUNK))
        .for_each(|(d, s)| T::slice_to_f32(s, d));
    Cow::Owned(dst)
}
