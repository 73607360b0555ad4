//! The structural checks every CSR matrix passes before it exists, and its fingerprint.

use crate::{Error, Result};

/// Identifies a sparsity structure: shape, nonzero count and a hash of the indices.
///
/// Two matrices with the same `StructureId` have, with overwhelming probability, the
/// same `row_ptr` and `col_idx`; a [`TransposePlan`](crate::TransposePlan) records the id
/// of the matrix it was built from so that it is never applied to another one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StructureId {
    pub rows: usize,
    pub cols: usize,
    pub nnz: usize,
    pub hash: u64,
}

impl std::fmt::Display for StructureId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} x {}, {} nonzeros, structure hash {:016x}",
            self.rows, self.cols, self.nnz, self.hash
        )
    }
}

/// A fast 64-bit mixing hash (multiply-xorshift); not cryptographic, only a guard against
/// pairing a plan with the wrong matrix by mistake.
struct Mix(u64);

impl Mix {
    #[inline(always)]
    fn add(&mut self, x: i32) {
        const K: u64 = 0x9E37_79B9_7F4A_7C15;
        self.0 = (self.0 ^ (x as u32 as u64)).wrapping_mul(K).rotate_left(29);
    }
}

pub(crate) fn check_index(what: &'static str, value: usize) -> Result<()> {
    if value > i32::MAX as usize {
        Err(Error::IndexOverflow { what, value })
    } else {
        Ok(())
    }
}

/// Checks a CSR structure against the layout of [`crate::csr`] and returns its id.
///
/// Every rule has its own error naming the row and index where it first fails.
pub(crate) fn validate(
    rows: usize,
    cols: usize,
    row_ptr: &[i32],
    col_idx: &[i32],
    values_len: usize,
) -> Result<StructureId> {
    check_index("rows", rows)?;
    check_index("cols", cols)?;
    check_index("nnz", col_idx.len())?;
    if row_ptr.len() != rows + 1 {
        return Err(Error::RowPtrLength {
            got: row_ptr.len(),
            expected: rows + 1,
        });
    }
    if row_ptr[0] != 0 {
        return Err(Error::RowPtrStart { got: row_ptr[0] });
    }
    let nnz = col_idx.len();
    let mut mix = Mix(rows as u64 ^ ((cols as u64) << 32));
    for (row, w) in row_ptr.windows(2).enumerate() {
        let (start, end) = (w[0], w[1]);
        if end < start {
            return Err(Error::RowPtrDecreasing { row, start, end });
        }
        if end as usize > nnz {
            // Caught here rather than at the end so the slice below stays in bounds.
            return Err(Error::RowPtrEnd { got: end, nnz });
        }
        mix.add(end);
        let mut prev: Option<i32> = None;
        for (index, &col) in col_idx
            .iter()
            .enumerate()
            .take(end as usize)
            .skip(start as usize)
        {
            if col < 0 || col as usize >= cols {
                return Err(Error::ColumnOutOfRange {
                    row,
                    index,
                    col,
                    cols,
                });
            }
            match prev {
                Some(p) if p == col => return Err(Error::ColumnRepeated { row, index, col }),
                Some(p) if p > col => {
                    return Err(Error::ColumnsUnsorted {
                        row,
                        index,
                        prev: p,
                        col,
                    })
                }
                _ => {}
            }
            prev = Some(col);
            mix.add(col);
        }
    }
    let last = row_ptr[rows];
    if last as usize != nnz {
        return Err(Error::RowPtrEnd { got: last, nnz });
    }
    if values_len != nnz {
        return Err(Error::ValuesLength {
            got: values_len,
            nnz,
        });
    }
    Ok(StructureId {
        rows,
        cols,
        nnz,
        hash: mix.0,
    })
}
