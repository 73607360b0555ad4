//! Mask generation: accumulate dense weight gradients, keep the top entries per matrix.

use std::path::Path;

use super::store::{TensorsIn, TensorsOut};
use crate::{Csr, Dense, Error, MatRef, Result};

/// What the accumulator averages over the collected batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Accumulation {
    /// The running mean of `G ⊙ G`: the empirical diagonal Fisher, the paper's default.
    #[default]
    MeanSquared,
    /// The running mean of `G`.
    Mean,
}

impl std::str::FromStr for Accumulation {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "mean_squared" => Ok(Accumulation::MeanSquared),
            "mean" => Ok(Accumulation::Mean),
            _ => Err(Error::InvalidArgument(format!(
                "unknown gradient accumulation '{s}' (expected mean_squared or mean)"
            ))),
        }
    }
}

/// Running means of the dense weight gradients of every layer. Each `G` is folded in as
/// soon as it is made, so at most one layer's `G` exists at a time.
///
/// ```
/// use rosa::train::{Accumulation, GradAccumulator};
/// use rosa::Dense;
/// let mut acc = GradAccumulator::new(Accumulation::MeanSquared, 1);
/// acc.add(0, &Dense::from_vec(1, 3, vec![1.0, -3.0, 0.5]).unwrap()).unwrap();
/// acc.add(0, &Dense::from_vec(1, 3, vec![1.0, 1.0, 0.5]).unwrap()).unwrap();
/// assert_eq!(acc.get(0).unwrap().as_slice(), &[1.0, 5.0, 0.25]);
/// let masks = acc.masks(&[1.0 / 3.0]).unwrap();
/// assert_eq!(masks[0].col_idx(), &[1]);
/// # use rosa::CsrShape;
/// ```
#[derive(Debug, Clone)]
pub struct GradAccumulator {
    kind: Accumulation,
    acc: Vec<Option<(Dense<f32>, usize)>>,
}

impl GradAccumulator {
    /// An empty accumulator for `layers` matrices.
    pub fn new(kind: Accumulation, layers: usize) -> Self {
        GradAccumulator {
            kind,
            acc: vec![None; layers],
        }
    }

    /// Folds one gradient of layer `layer` into its running mean.
    pub fn add(&mut self, layer: usize, g: &Dense<f32>) -> Result<()> {
        let slot = self.acc.get_mut(layer).ok_or_else(|| {
            Error::InvalidArgument(format!("layer {layer} is out of range for the accumulator"))
        })?;
        let (acc, n) = slot.get_or_insert_with(|| (Dense::zeros(g.rows(), g.cols()), 0));
        if (acc.rows(), acc.cols()) != (g.rows(), g.cols()) {
            return Err(Error::ShapeMismatch {
                op: "GradAccumulator::add",
                detail: format!(
                    "layer {layer} had {} x {} gradients, got {} x {}",
                    acc.rows(),
                    acc.cols(),
                    g.rows(),
                    g.cols()
                ),
            });
        }
        *n += 1;
        // The incremental form of the mean never holds a sum that grows with the count.
        let inv = 1.0 / *n as f32;
        let square = self.kind == Accumulation::MeanSquared;
        for (a, &x) in acc.as_mut_slice().iter_mut().zip(g.as_slice()) {
            let v = if square { x * x } else { x };
            *a += (v - *a) * inv;
        }
        Ok(())
    }

    /// Layer `layer`'s accumulated statistic, if it has seen a gradient.
    pub fn get(&self, layer: usize) -> Option<&Dense<f32>> {
        self.acc.get(layer)?.as_ref().map(|(a, _)| a)
    }

    /// One mask per layer, keeping `densities[layer]` of its entries (a single density
    /// applies to every layer).
    pub fn masks(&self, densities: &[f64]) -> Result<Vec<Csr<f32>>> {
        (0..self.acc.len())
            .map(|i| {
                let acc = self.get(i).ok_or_else(|| {
                    Error::InvalidArgument(format!("layer {i} has no accumulated gradient"))
                })?;
                let d = densities
                    .get(i)
                    .or(densities.last())
                    .copied()
                    .unwrap_or(0.0);
                top_k_mask(
                    acc.as_ref(),
                    entries_for_density(d, acc.rows(), acc.cols())?,
                )
            })
            .collect()
    }
}

/// `round(d * rows * cols)`: how many entries density `d` keeps in one matrix.
pub fn entries_for_density(d: f64, rows: usize, cols: usize) -> Result<usize> {
    if !(0.0..=1.0).contains(&d) {
        return Err(Error::InvalidArgument(format!(
            "density {d} is outside [0, 1]"
        )));
    }
    Ok((d * rows as f64 * cols as f64).round() as usize)
}

/// The mask (values 1) of the `k` entries of `scores` with the largest magnitude.
/// Ties go to the smaller row-major index, so the mask is a function of the scores alone;
/// NaN counts as the largest magnitude, so a diverged gradient is visible in the mask.
///
/// ```
/// use rosa::train::top_k_mask;
/// use rosa::{CsrShape, Dense};
/// let scores = Dense::from_vec(2, 2, vec![0.5, -2.0, 2.0, 0.1]).unwrap();
/// let m = top_k_mask(scores.as_ref(), 2).unwrap();
/// assert_eq!((m.row_ptr(), m.col_idx()), (&[0, 1, 2][..], &[1, 0][..]));
/// ```
pub fn top_k_mask(scores: MatRef<'_, f32>, k: usize) -> Result<Csr<f32>> {
    let s = scores.as_slice();
    let k = k.min(s.len());
    let mut idx: Vec<u32> = (0..s.len() as u32).collect();
    let order = |a: &u32, b: &u32| {
        let (x, y) = (s[*a as usize].abs(), s[*b as usize].abs());
        y.total_cmp(&x).then(a.cmp(b))
    };
    if k > 0 && k < idx.len() {
        idx.select_nth_unstable_by(k - 1, order);
    }
    idx.truncate(k);
    idx.sort_unstable();
    let cols = scores.cols();
    let mut row_ptr = vec![0i32; scores.rows() + 1];
    for &p in &idx {
        row_ptr[p as usize / cols + 1] += 1;
    }
    for i in 0..scores.rows() {
        row_ptr[i + 1] += row_ptr[i];
    }
    let col_idx = idx.iter().map(|&p| (p as usize % cols) as i32).collect();
    Csr::from_parts(scores.rows(), cols, row_ptr, col_idx, vec![1.0; k])
}

/// Writes one mask per layer to a safetensors file (`layers.{i}.mask.{shape,row_ptr,col_idx}`).
pub fn save_masks(path: &Path, masks: &[Csr<f32>]) -> Result<()> {
    let mut out = TensorsOut::default();
    for (i, m) in masks.iter().enumerate() {
        out.csr(&format!("layers.{i}.mask"), m, false);
    }
    out.write(path)
}

/// Reads the masks [`save_masks`] wrote, so a run can restart from a stored mask.
///
/// ```
/// use rosa::train::{load_masks, save_masks};
/// use rosa::Csr;
/// let m = Csr::from_triplets(2, 3, &[(0, 2, 1.0f32), (1, 0, 1.0)]).unwrap();
/// let path = std::env::temp_dir().join(format!("rosa-doc-mask-{}.safetensors", std::process::id()));
/// save_masks(&path, &[m.clone()]).unwrap();
/// assert_eq!(load_masks(&path).unwrap(), vec![m]);
/// # std::fs::remove_file(&path).unwrap();
/// ```
pub fn load_masks(path: &Path) -> Result<Vec<Csr<f32>>> {
    let file = TensorsIn::read(path)?;
    let mut masks = Vec::new();
    while file.has(&format!("layers.{}.mask.shape", masks.len())) {
        masks.push(file.csr(&format!("layers.{}.mask", masks.len()))?);
    }
    if masks.is_empty() {
        return Err(Error::Format {
            path: file.path().into(),
            reason: "no layers.0.mask tensors".into(),
        });
    }
    Ok(masks)
}
