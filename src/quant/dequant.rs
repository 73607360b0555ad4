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
    /// a time.
    fn dequantize_span<T: Scalar>(&self, start: usize, out: &mut [T]) {
        let b = self.block_size().get();
        let (head, rest) = out.split_at_mut((b - start % b).min(out.len()));
        self.dequantize_block(start, head);
        let next = start + head.len();
        for (k, chunk) in rest.chunks_mut(b).enumerate() {
            self.dequantize_block(next + k * b, chunk);
        }
    }

    /// Dequantizes elements `start..start + out.len()`, all in one block.
    #[inline]
    fn dequantize_block<T: Scalar>(&self, start: usize, out: &mut [T]) {
        if out.is_empty() {
            return;
        }
        // Every block has a scale: the matrix was checked when built.
        let scale = self
            .scales()
            .get(start / self.block_size().get())
            .unwrap_or(0.0);
        let table: [T; 16] = std::array::from_fn(|k| T::from_f32(NF4[k] * scale));
        decode(self.codes(), start, &table, out);
    }
}

/// Writes `table[code]` for the codes of elements `start..start + out.len()`: the high
/// nibble of `codes[i / 2]` for even `i`, the low one for odd `i`.
#[inline]
fn decode<T: Copy>(codes: &[u8], start: usize, table: &[T; 16], out: &mut [T]) {
    let (head, body) = out.split_at_mut((start % 2).min(out.len()));
    if let [first] = head {
        *first = table[(codes[start / 2] & 0x0f) as usize];
    }
    // `body` starts on a byte: its element 2j is the high nibble of bytes[j].
    let bytes = &codes[start.div_ceil(2)..];
    let pairs = body.len() / 2;
    let mut chunks = body.chunks_exact_mut(2);
    for (pair, &byte) in (&mut chunks).zip(bytes) {
        pair[0] = table[(byte >> 4) as usize];
        pair[1] = table[(byte & 0x0f) as usize];
    }
    if let [last] = chunks.into_remainder() {
        *last = table[(bytes[pairs] >> 4) as usize];
    }
}
