//! The CPU dequantization kernel: NF4 codes to f32, f16 or bf16, into the caller's
//! workspace, a whole matrix or a range of rows at a time.

use std::ops::Range;

use rayon::prelude::*;

use super::{BlockSize, Nf4Matrix, NF4};
use crate::{Dense, Error, MatMut, Result, Scalar};

/// Output elements per parallel task: a multiple of every block size, so that tasks
/// split only at block boundaries, and large enough (64 KiB of f32) that scheduling
/// costs little against the writes.
const TASK: usize = 4 * BlockSize::MAX;

impl Nf4Matrix {
    /// Dequantizes rows `rows` of the matrix into `out` (`rows.len() x cols`, row-major),
    /// in parallel: `out[(i, j)] = T::from_f32(NF4[q] * scale)` for element
    /// `(rows.start + i, j)`, the same value for every range it is read through.
    ///
    /// `out` is a workspace the caller owns, so one buffer serves every layer of a model
    /// in turn (size it for the largest tile) and nothing is kept per layer; it is only
    /// written, never read, so it may hold anything before. A range is a tile of W for a
    /// GEMM over an output-feature slice; it may start and end anywhere, mid-block and
    /// mid-byte included.
    ///
    /// Per block, the 16 code values are scaled and rounded to `T` once, then every
    /// nibble is a lookup in that 16-entry table. For f16, a scale beyond f16's range
    /// gives infinities, as [`Scalar::from_f32`] rounds.
    ///
    /// Errors: [`Error::ShapeMismatch`] if `rows` reaches past the last row or `out` is
    /// not `rows.len() x cols`.
    ///
    /// ```
    /// use rosa::quant::{Nf4Config, Nf4Matrix};
    /// use rosa::{bf16, random, Dense};
    /// let w = random::dense::<f32>(6, 33, 1);
    /// let q = Nf4Matrix::quantize(w.as_ref(), Nf4Config::qlora()).unwrap();
    /// let whole = q.dequantize::<bf16>().unwrap();
    /// let mut tile = Dense::<bf16>::zeros(2, 33); // a reusable workspace
    /// q.dequantize_into(3..5, tile.as_mut()).unwrap();
    /// assert_eq!(tile.as_slice(), &whole.as_slice()[3 * 33..5 * 33]);
    /// assert!(q.dequantize_into(5..7, tile.as_mut()).is_err()); // only 6 rows
    /// ```
    pub fn dequantize_into<T: Scalar>(&self, rows: Range<usize>, out: MatMut<'_, T>) -> Result<()> {
        let cols = self.cols();
        if rows.start > rows.end || rows.end > self.rows() {
            return Err(Error::ShapeMismatch {
                op: "Nf4Matrix::dequantize_into",
                detail: format!("rows {rows:?} of a matrix with {} rows", self.rows()),
            });
        }
        if (out.rows(), out.cols()) != (rows.len(), cols) {
            return Err(Error::ShapeMismatch {
                op: "Nf4Matrix::dequantize_into",
                detail: format!(
                    "rows {rows:?} of {cols} columns go into a {} x {cols} output, got {}",
                    rows.len(),
                    out.shape()
                ),
            });
        }
        let start = rows.start * cols;
        let out = out.into_slice();
        // The head runs up to the first task boundary (a multiple of TASK in the whole
        // matrix), so every later task starts on one and no block is split between tasks.
        let head = ((TASK - start % TASK) % TASK).min(out.len());
        let (head_out, body) = out.split_at_mut(head);
        rayon::join(
            || self.dequantize_span(start, head_out),
            || {
                body.par_chunks_mut(TASK)
                    .enumerate()
                    .for_each(|(t, chunk)| self.dequantize_span(start + head + t * TASK, chunk))
            },
        );
        Ok(())
    }

    /// The whole matrix, dequantized into a new matrix ([`Error::Alloc`] if it cannot be
    /// allocated). See [`dequantize_into`](Self::dequantize_into), which reuses a buffer.
    pub fn dequantize<T: Scalar>(&self) -> Result<Dense<T>> {
        let mut out = Dense::try_zeros(self.rows(), self.cols(), "dequantized NF4 matrix")?;
        self.dequantize_into(0..self.rows(), out.as_mut())?;
        Ok(out)
    }

    /// Dequantizes elements `start..start + out.len()` (row-major) into `out`, a block at
    /// a time: a partial first block, whole blocks (the hot loop: one scale, one table,
    /// `block / 2` bytes), a partial last block.
    fn dequantize_span<T: Scalar>(&self, start: usize, out: &mut [T]) {
        let size = self.block_size();
        let b = size.get();
        let end = start + out.len();
        let (head, rest) = out.split_at_mut((b.wrapping_sub(start) & (b - 1)).min(out.len()));
        self.dequantize_part(start, head);
        let at = start + head.len(); // on a block boundary, unless `out` ended first
        let first = size.block_of(at);
        let mut blocks = rest.chunks_exact_mut(b);
        let codes = self.codes()[at / 2..].chunks_exact(b / 2);
        for (k, (out, bytes)) in (&mut blocks).zip(codes).enumerate() {
            decode_pairs(bytes, &self.table(first + k), out);
        }
        let tail = blocks.into_remainder();
        self.dequantize_part(end - tail.len(), tail);
    }

    /// Dequantizes elements `start..start + out.len()`, all in one block, starting
    /// anywhere (mid-byte included).
    fn dequantize_part<T: Scalar>(&self, start: usize, out: &mut [T]) {
        if out.is_empty() {
            return;
        }
        let table = self.table(self.block_size().block_of(start));
        let codes = self.codes();
        let (head, body) = out.split_at_mut(start % 2);
        if let [first] = head {
            *first = table[(codes[start / 2] & 0x0f) as usize];
        }
        // `body` starts on a byte boundary.
        decode_pairs(&codes[start.div_ceil(2)..], &table, body);
    }

    /// Block `block`'s 16 values, scaled and rounded to `T`.
    #[inline(always)]
    fn table<T: Scalar>(&self, block: usize) -> [T; 16] {
        // Every block has a scale: the matrix was checked when built.
        let scale = self.scales().get(block).unwrap_or(0.0);
        std::array::from_fn(|k| T::from_f32(NF4[k] * scale))
    }
}

/// Writes `table[code]` for `out.len()` codes read from `bytes`: element `2j` is the high
/// nibble of `bytes[j]`, element `2j + 1` the low one (an odd last element takes a high
/// nibble alone).
#[inline]
fn decode_pairs<T: Copy>(bytes: &[u8], table: &[T; 16], out: &mut [T]) {
    let pairs = out.len() / 2;
    let mut chunks = out.chunks_exact_mut(2);
    for (pair, &byte) in (&mut chunks).zip(bytes) {
        pair[0] = table[(byte >> 4) as usize];
        pair[1] = table[(byte & 0x0f) as usize];
    }
    if let [last] = chunks.into_remainder() {
        *last = table[(bytes[pairs] >> 4) as usize];
    }
}
