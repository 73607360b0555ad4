//! Splitting rows into tasks of equal work, with rows far longer than the rest split
//! by their nonzeros instead.

use std::ops::Range;

/// Below this many multiply-adds a task costs more to schedule than to run.
const MIN_TASK_FLOPS: usize = 1 << 15;
/// Tasks per thread: enough slack for rayon to even out what the cost model misses.
const TASKS_PER_THREAD: usize = 4;

/// How one sparse product is cut into parallel tasks.
#[derive(Debug)]
pub(super) struct RowPlan {
    /// Consecutive row ranges covering every row, each about `target` work.
    pub chunks: Vec<Range<usize>>,
    /// Rows longer than `target` nonzeros: skipped by the chunk pass and computed by
    /// splitting their nonzeros over several tasks.
    pub heavy: Vec<usize>,
    /// Nonzeros per task, for the heavy rows.
    pub piece: usize,
}

impl RowPlan {
    /// `width` is the work per nonzero (the dense operand's row length).
    pub fn new(row_ptr: &[i32], width: usize) -> Self {
        let rows = row_ptr.len() - 1;
        let nnz = row_ptr[rows] as usize;
        let threads = rayon::current_num_threads().max(1);
        // A row costs its nonzeros plus one for writing the output row.
        let total = nnz + rows;
        let min_task = (MIN_TASK_FLOPS / width.max(1)).max(1);
        let target = (total / (threads * TASKS_PER_THREAD)).max(min_task);
        let split_heavy = threads > 1;
        let (mut chunks, mut heavy) = (Vec::new(), Vec::new());
        let (mut start, mut cost) = (0, 0);
        for i in 0..rows {
            let len = (row_ptr[i + 1] - row_ptr[i]) as usize;
            if split_heavy && len > target {
                heavy.push(i);
                cost += 1;
            } else {
                cost += len + 1;
            }
            if cost >= target {
                chunks.push(start..i + 1);
                start = i + 1;
                cost = 0;
            }
        }
        if start < rows {
            chunks.push(start..rows);
        }
        RowPlan {
            chunks,
            heavy,
            piece: target,
        }
    }

    /// Whether row `i` is left to the heavy-row pass.
    pub fn is_heavy(&self, i: usize) -> bool {
        self.heavy.binary_search(&i).is_ok()
    }
}
