//! The compiled tile configurations, read from the one table in `csrc/tiles.cuh`.
//!
//! Needs no cudarc: compiled into `rosa::cuda` and, through `#[path]` (as `sys` and
//! [`super::launch`] are), into `rosa::emu`, whose [`super::raw`] takes these
//! configurations too. The examples are the `cuda` build's; under `cuda-emu` alone they
//! compile to nothing.

use std::fmt;

use super::{launch, sys};
use crate::{DType, Error, Op, Result};

/// The op's code in the C ABI: each op has its own table of tile configurations.
fn code(op: Op) -> i32 {
    match op {
        Op::Spmm => sys::rosa_op::ROSA_OP_SPMM as i32,
        Op::SpmmT => sys::rosa_op::ROSA_OP_SPMM_T as i32,
        Op::Sddmm => sys::rosa_op::ROSA_OP_SDDMM as i32,
    }
}

/// One compiled tile shape of one op: a sub-warp of `subwarp` threads per sparse row,
/// `block_rows` rows per block, `vectors` 16-byte vectors per thread along the dense
/// dimension.
///
/// ```
/// # #[cfg(feature = "cuda")] {
/// use rosa::cuda::{KernelConfig, Op};
/// // Listing the table needs no GPU.
/// let all = KernelConfig::all(Op::Spmm);
/// assert!(all.len() > 1);
/// assert!(all.iter().enumerate().all(|(i, c)| c.index == i && c.threads == c.subwarp * c.block_rows));
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KernelConfig {
    /// The op this configuration belongs to.
    pub op: Op,
    /// Position in the op's table: what the launchers take.
    pub index: usize,
    /// Threads per sparse row.
    pub subwarp: u32,
    /// Sparse rows per block.
    pub block_rows: u32,
    /// 16-byte vectors per thread per step.
    pub vectors: u32,
    /// Threads per block.
    pub threads: u32,
    /// SpMM: nonzeros whose B vectors are loaded before the first FMA uses one. 1 is the
    /// general path; above 1 is the fast path, taken when B's base is 16-byte aligned and
    /// its leading dimension a multiple of the vector width (the general path otherwise).
    /// SDDMM: nonzeros per round that share one load of L's chunk and one shuffle
    /// reduction.
    pub unroll: u32,
    /// Long-row split: 0 is off; otherwise a row longer than `split` times the mean row
    /// length (and than one sub-warp) gets a whole block, whose sub-warps share its
    /// nonzeros and, for SpMM, add their partial sums in a fixed order (bitwise
    /// reproducible). [`KernelConfig::long_rows`] counts those rows.
    pub split: u32,
}

impl KernelConfig {
    /// Every compiled configuration of `op`, in table order.
    pub fn all(op: Op) -> Vec<KernelConfig> {
        (0..launch::config_count(code(op)))
            .filter_map(|i| Self::get(op, i).ok())
            .collect()
    }

    /// Configuration `index` of `op`.
    ///
    /// ```
    /// # #[cfg(feature = "cuda")] {
    /// use rosa::cuda::{KernelConfig, Op};
    /// assert!(KernelConfig::get(Op::Sddmm, 0).is_ok());
    /// assert!(KernelConfig::get(Op::Sddmm, 10_000).is_err());
    /// # }
    /// ```
    pub fn get(op: Op, index: usize) -> Result<KernelConfig> {
        let c = launch::config_get(code(op), index)?;
        let u = |x: i32| u32::try_from(x).unwrap_or(0);
        Ok(KernelConfig {
            op,
            index,
            subwarp: u(c.subwarp),
            block_rows: u(c.block_rows),
            vectors: u(c.vectors),
            threads: u(c.threads),
            unroll: u(c.unroll),
            split: u(c.split),
        })
    }

    /// Whether `op` has a configuration `index` in this build: what a tuning cache entry
    /// must name to be used.
    ///
    /// ```
    /// # #[cfg(feature = "cuda")] {
    /// use rosa::cuda::{KernelConfig, Op};
    /// assert!(KernelConfig::exists(Op::Spmm, 0));
    /// assert!(!KernelConfig::exists(Op::Spmm, KernelConfig::all(Op::Spmm).len()));
    /// # }
    /// ```
    pub fn exists(op: Op, index: usize) -> bool {
        index < launch::config_count(code(op))
    }

    /// Dense elements one sub-warp covers per step: `subwarp * vectors * (16 / size)`.
    pub fn step(&self, dtype: DType) -> usize {
        (self.subwarp * self.vectors) as usize * (16 / dtype.size())
    }

    /// A reasonable choice without tuning: the smallest sub-warp whose single-vector step
    /// covers the dense dimension (`n` for SpMM, `k` for SDDMM), so no lane idles on short
    /// dimensions; for wide ones the configuration with the most work per thread.
    ///
    /// ```
    /// # #[cfg(feature = "cuda")] {
    /// use rosa::cuda::{KernelConfig, Op};
    /// use rosa::DType;
    /// let narrow = KernelConfig::heuristic(Op::Sddmm, DType::F32, 16);
    /// let wide = KernelConfig::heuristic(Op::Sddmm, DType::F32, 4096);
    /// assert!(narrow.subwarp <= wide.subwarp);
    /// # }
    /// ```
    pub fn heuristic(op: Op, dtype: DType, dense_dim: usize) -> KernelConfig {
        let all = Self::all(op);
        let single = all
            .iter()
            .filter(|c| c.vectors == 1)
            .filter(|c| c.step(dtype) >= dense_dim)
            .min_by_key(|c| (c.subwarp, c.index));
        let widest = all
            .iter()
            .max_by_key(|c| (c.step(dtype), c.threads, std::cmp::Reverse(c.index)));
        *single
            .or(widest)
            .expect("csrc/tiles.cuh compiles at least one configuration per op")
    }

    /// The launch's `long_rows` for a structure walked in `row_swizzle` order (the host
    /// arrays: [`crate::CsrShape::row_ptr`] and [`crate::CsrShape::row_swizzle`], or a
    /// [`crate::TransposePlan`]'s): see [`crate::csr::long_rows`]; always 0 when this
    /// configuration does not split.
    ///
    /// ```
    /// # #[cfg(feature = "cuda")] {
    /// use rosa::cuda::{KernelConfig, Op};
    /// use rosa::CsrShape;
    /// let mut lens = vec![2; 60];
    /// (lens[7], lens[30]) = (400, 300); // far above the mean
    /// let a = rosa::random::csr_with_row_lengths::<f32>(60, 512, &lens, 1)?;
    /// for c in KernelConfig::all(Op::Spmm) {
    ///     let long = c.long_rows(a.row_ptr(), &a.row_swizzle());
    ///     assert_eq!(long, if c.split > 0 { 2 } else { 0 });
    /// }
    /// # }
    /// # Ok::<(), rosa::Error>(())
    /// ```
    pub fn long_rows(&self, row_ptr: &[i32], row_swizzle: &[i32]) -> usize {
        crate::csr::long_rows(row_ptr, row_swizzle, self.split, self.subwarp as usize)
    }

    /// A short name such as `sw8_br16_v1`, `sw8_br16_v1_u8` for a fast-path configuration
    /// and `sw8_br16_v1_u8_s4` for one that splits long rows (the unroll-1 names are those
    /// of tuning caches written before the fast path existed, so those caches still read).
    ///
    /// ```
    /// # #[cfg(feature = "cuda")] {
    /// use rosa::cuda::{KernelConfig, Op};
    /// let names: Vec<String> = KernelConfig::all(Op::Spmm).iter().map(|c| c.name()).collect();
    /// assert!(names.iter().any(|n| n.ends_with("_u8")));
    /// assert!(names.iter().any(|n| n.ends_with("_u8_s4")));
    /// assert!(names.contains(&"sw8_br16_v1".to_string()));
    /// # }
    /// ```
    pub fn name(&self) -> String {
        let mut name = format!("sw{}_br{}_v{}", self.subwarp, self.block_rows, self.vectors);
        if self.unroll > 1 {
            name += &format!("_u{}", self.unroll);
        }
        if self.split > 0 {
            name += &format!("_s{}", self.split);
        }
        name
    }
}

/// Refuses a configuration of another op than the launch's.
pub(crate) fn check_config(config: &KernelConfig, op: Op) -> Result<()> {
    if config.op == op {
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!(
            "configuration {config} is not for {op}"
        )))
    }
}

/// Refuses a long-row count for a configuration that does not split long rows: its
/// kernel would take the count's first blocks for ordinary ones and skip rows.
pub(crate) fn check_long_rows(config: &KernelConfig, long_rows: usize) -> Result<()> {
    if long_rows == 0 || config.split > 0 {
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!(
            "long_rows {long_rows} given to {config}, which does not split long rows"
        )))
    }
}

impl fmt::Display for KernelConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{} {}", self.op, self.index, self.name())
    }
}
