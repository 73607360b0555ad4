//! Sweeps on a given sparsity pattern ([`Mask`]), such as the RoSA masks chosen on MiniLM
//! (`data/minilm-rosa-masks/`, written by `examples/finetune.rs --save-masks`), each next
//! to a uniformly random matrix of the same shape and density, its *uniform twin*, in the
//! same process: [`Report::mask_ratios`] then says what the mask's row-length spread
//! costs our kernels and the baselines.
//!
//! ```
//! use rosa::bench::{self, mask::Mask, Sweep};
//! let pattern = rosa::random::csr_power_law::<f32>(64, 48, 0.1, 1.5, 3).unwrap();
//! let mask = Mask::new("skewed", pattern);
//! let base = Sweep { n: 8, ops: vec![rosa::Op::Spmm], target: std::time::Duration::ZERO,
//!     dense_baseline: false, ..Sweep::default() };
//! let mut report = bench::run(&mask.sweep(&base), |_| {}).unwrap();
//! report.rows.extend(bench::run(&mask.uniform_twin(&base), |_| {}).unwrap().rows);
//! assert_eq!(report.rows[0].mask.as_deref(), Some("skewed"));
//! let (on_mask, on_twin) = (&report.rows[0], report.rows.last().unwrap());
//! assert!(on_twin.mask.is_none() && on_mask.row_cv > 2.0 * on_twin.row_cv); // power law
//! let ratios = report.mask_ratios();
//! assert_eq!(ratios.len(), 1); // one point: spmm, f32, N = 8
//! assert_eq!(ratios[0].baselines.len(), 2); // sprs, and sprs+rayon
//! assert!(ratios[0].ours > 0.0 && ratios[0].baselines.iter().all(|b| b.1 > 0.0));
//! let mut wrong = mask.sweep(&base);
//! wrong.m += 1; // a sweep must keep its mask's shape and density
//! assert!(matches!(wrong.validate(), Err(rosa::Error::InvalidArgument(_))));
//! ```

use std::path::Path;
use std::sync::Arc;

use serde::Serialize;

use super::{Report, Row, Sweep};
use crate::{Csr, CsrShape, Error, Result, RowStats, Scalar};

/// A named sparsity pattern to benchmark on; its values are ignored (each sweep draws its
/// own, uniform in `[-1, 1)`, from the sweep's seed).
#[derive(Debug, Clone)]
pub struct Mask {
    name: String,
    pattern: Arc<Csr<f32>>,
}

impl Mask {
    /// A mask from a CSR matrix's structure.
    pub fn new(name: impl Into<String>, pattern: Csr<f32>) -> Self {
        Mask {
            name: name.into(),
            pattern: Arc::new(pattern),
        }
    }

    /// Reads a Matrix Market file's structure ([`crate::io::read_mtx_pattern`]); the
    /// mask is named after the file (its name without `.mtx`). Errors: those of the read;
    /// [`Error::InvalidArgument`] for a mask with no nonzeros.
    ///
    /// ```
    /// use rosa::CsrShape;
    /// let path = std::env::temp_dir().join(format!("rosa-mask-{}.q.mtx", std::process::id()));
    /// std::fs::write(&path, "%%MatrixMarket matrix coordinate pattern general\n2 3 2\n1 3\n2 1\n").unwrap();
    /// let mask = rosa::bench::mask::Mask::read(&path).unwrap();
    /// assert!(mask.name().ends_with(".q"));
    /// assert_eq!((mask.pattern().rows(), mask.pattern().cols(), mask.pattern().nnz()), (2, 3, 2));
    /// # std::fs::remove_file(&path).unwrap();
    /// ```
    pub fn read(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .ok_or_else(|| {
                Error::InvalidArgument(format!("{}: not a file name", path.display()))
            })?;
        let pattern = crate::io::read_mtx_pattern::<f32>(path)?;
        if pattern.nnz() == 0 {
            return Err(Error::InvalidArgument(format!(
                "{}: the mask has no nonzeros: nothing to time",
                path.display()
            )));
        }
        Ok(Mask {
            name,
            pattern: Arc::new(pattern),
        })
    }

    /// Reads every file as [`Mask::read`] does, in order; masks whose files share a name
    /// (the same file name in different folders) are named by their paths instead. The
    /// first failed read is the error.
    ///
    /// ```
    /// let dir = std::env::temp_dir().join(format!("rosa-masks-{}", std::process::id()));
    /// let (a, b) = (dir.join("a"), dir.join("b"));
    /// for d in [&a, &b] {
    ///     std::fs::create_dir_all(d).unwrap();
    ///     std::fs::write(d.join("q.mtx"), "%%MatrixMarket matrix coordinate pattern general\n1 1 1\n1 1\n").unwrap();
    /// }
    /// std::fs::write(a.join("v.mtx"), "%%MatrixMarket matrix coordinate pattern general\n1 1 1\n1 1\n").unwrap();
    /// let masks = rosa::bench::mask::Mask::read_all(&[a.join("q.mtx"), b.join("q.mtx"), a.join("v.mtx")]).unwrap();
    /// assert!(masks[0].name().ends_with("q.mtx") && masks[0].name() != masks[1].name());
    /// assert_eq!(masks[2].name(), "v");
    /// assert!(rosa::bench::mask::Mask::read_all(&[dir.join("absent.mtx")]).is_err());
    /// # std::fs::remove_dir_all(&dir).unwrap();
    /// ```
    pub fn read_all<P: AsRef<Path>>(paths: &[P]) -> Result<Vec<Self>> {
        let mut masks = paths.iter().map(Mask::read).collect::<Result<Vec<_>>>()?;
        let names: Vec<String> = masks.iter().map(|m| m.name.clone()).collect();
        for (mask, path) in masks.iter_mut().zip(paths) {
            if names.iter().filter(|n| **n == mask.name).count() > 1 {
                mask.name = path.as_ref().display().to_string();
            }
        }
        Ok(masks)
    }

    /// The same mask under another name (two files of one name in different folders,
    /// say).
    pub fn with_name(self, name: impl Into<String>) -> Self {
        Mask {
            name: name.into(),
            ..self
        }
    }

    /// The mask's name (for a file, its name without `.mtx`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The structure (values zero or the matrix's own; never used).
    pub fn pattern(&self) -> &Csr<f32> {
        &self.pattern
    }

    /// `base` (its N, dtype, ops, seed and timing) on this mask: M and K are the mask's,
    /// the one density its own.
    pub fn sweep(&self, base: &Sweep) -> Sweep {
        Sweep {
            mask: Some(self.clone()),
            ..self.uniform_twin(base)
        }
    }

    /// The same sweep on a uniformly random matrix ([`crate::random::csr`]) of the mask's
    /// shape and density: the mask's reference point.
    pub fn uniform_twin(&self, base: &Sweep) -> Sweep {
        Sweep {
            m: self.pattern.rows(),
            k: self.pattern.cols(),
            densities: vec![self.pattern.density()],
            mask: None,
            ..base.clone()
        }
    }
}

/// Two masks are equal when their names and structures (and values, never used) are.
impl PartialEq for Mask {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
            && (Arc::ptr_eq(&self.pattern, &other.pattern) || self.pattern == other.pattern)
    }
}

/// Which matrix a measurement ran on: its mask (none: uniformly random) and its
/// row-length spread, copied into each [`Row`].
#[derive(Debug, Clone)]
pub(crate) struct Pattern {
    pub mask: Option<String>,
    pub stats: RowStats,
}

impl Pattern {
    pub(crate) fn of<T: Scalar>(sweep: &Sweep, a: &Csr<T>) -> Self {
        Pattern {
            mask: sweep.mask.as_ref().map(|m| m.name.clone()),
            stats: a.row_stats(),
        }
    }
}

/// One (mask, op, dtype, N): times on the mask over times on its uniform twin, ours and
/// each sparse baseline's (the dense GEMM route, blind to the pattern, is left out).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MaskRatio {
    /// The mask's name.
    pub mask: String,
    /// `spmm`, `spmm_t` or `sddmm`.
    pub op: &'static str,
    /// Our element type.
    pub dtype: &'static str,
    /// Columns of the dense operands.
    pub n: usize,
    /// The mask's coefficient of variation of row lengths, and its twin's.
    pub cv: (f64, f64),
    /// Our time on the mask over ours on the twin (above 1: the mask is slower).
    pub ours: f64,
    /// Each baseline: its name, its time on the mask over its time on the twin, and its
    /// time over ours on the mask (above 1: ours is faster).
    pub baselines: Vec<(&'static str, f64, f64)>,
}

impl Report {
    /// For every mask point (mask, op, dtype, N), the uniform twin's rows of the same
    /// shape, density, N, op and dtype (see the module's example); points without a twin
    /// are left out.
    pub fn mask_ratios(&self) -> Vec<MaskRatio> {
        let point = |r: &Row| (r.op, r.dtype, r.m, r.k, r.n, r.density.to_bits());
        let sparse = |r: &&Row| r.baseline != super::DENSE_GEMM;
        let mut out: Vec<MaskRatio> = Vec::new();
        for r in self.rows.iter().filter(sparse) {
            let Some(mask) = &r.mask else { continue };
            let Some(twin) = self
                .rows
                .iter()
                .find(|t| t.mask.is_none() && point(t) == point(r) && t.baseline == r.baseline)
            else {
                continue;
            };
            let ratio = (
                r.baseline,
                r.baseline_us / twin.baseline_us.max(1e-12),
                r.speedup,
            );
            let same =
                |o: &&mut MaskRatio| (&o.mask, o.op, o.dtype, o.n) == (mask, r.op, r.dtype, r.n);
            match out.iter_mut().find(same) {
                Some(o) => o.baselines.push(ratio),
                None => out.push(MaskRatio {
                    mask: mask.clone(),
                    op: r.op,
                    dtype: r.dtype,
                    n: r.n,
                    cv: (r.row_cv, twin.row_cv),
                    ours: r.ours_us / twin.ours_us.max(1e-12),
                    baselines: vec![ratio],
                }),
            }
        }
        out
    }
}
