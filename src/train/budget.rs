//! Matching methods by trainable-parameter count.

use crate::{Error, Result};

/// A parameter budget: a count, or "what LoRA at this rank trains".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Budget {
    /// This many trainable values.
    Params(usize),
    /// As many as LoRA of this rank on every layer.
    LoraRank(usize),
}

/// One way to spend a budget: rank `r` plus density `d` on every layer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Split {
    /// Low-rank adapter rank (0: sparse only).
    pub rank: usize,
    /// Sparse adapter density (0: low-rank only).
    pub density: f64,
}

/// Trainable values of LoRA at `rank` on layers of `shapes` (out, in).
pub fn lora_params(shapes: &[(usize, usize)], rank: usize) -> usize {
    shapes.iter().map(|&(o, i)| rank * (o + i)).sum()
}

/// Trainable values of a sparse adapter of density `d` (rounded per layer, as masks are).
pub fn sparse_params(shapes: &[(usize, usize)], d: f64) -> usize {
    shapes
        .iter()
        .map(|&(o, i)| (d * (o * i) as f64).round() as usize)
        .sum()
}

impl Budget {
    /// The budget as a count of trainable values on layers of `shapes`.
    pub fn params(self, shapes: &[(usize, usize)]) -> usize {
        match self {
            Budget::Params(n) => n,
            Budget::LoraRank(r) => lora_params(shapes, r),
        }
    }

    /// The density that, with rank `rank`, spends the budget; `Err` if the rank alone
    /// exceeds it.
    pub fn density_for_rank(self, shapes: &[(usize, usize)], rank: usize) -> Result<f64> {
        let total = self.params(shapes);
        let lora = lora_params(shapes, rank);
        let dense: usize = shapes.iter().map(|&(o, i)| o * i).sum();
        if lora > total || dense == 0 {
            return Err(Error::InvalidArgument(format!(
                "rank {rank} needs {lora} parameters, over the budget of {total}"
            )));
        }
        Ok(((total - lora) as f64 / dense as f64).min(1.0))
    }

    /// Every `(r, d)` pair that spends the budget, from sparse only (`r = 0`) to
    /// low-rank only (the largest rank that fits).
    ///
    /// ```
    /// use rosa::train::Budget;
    /// let shapes = [(100, 100)];
    /// let pairs = Budget::LoraRank(2).pairs(&shapes);
    /// assert_eq!(pairs.len(), 3);
    /// assert_eq!((pairs[0].rank, pairs[0].density), (0, 0.04));
    /// assert_eq!((pairs[1].rank, pairs[1].density), (1, 0.02));
    /// assert_eq!((pairs[2].rank, pairs[2].density), (2, 0.0));
    /// ```
    pub fn pairs(self, shapes: &[(usize, usize)]) -> Vec<Split> {
        (0..)
            .map_while(|rank| {
                self.density_for_rank(shapes, rank)
                    .ok()
                    .map(|density| Split { rank, density })
            })
            .collect()
    }
}
