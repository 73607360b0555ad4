//! The fine-tuning methods the trainer compares, all on the same model and loop.

use nalgebra::DMatrix;

use super::backend::Backend;
use super::layer::{Lora, RosaLinear};
use super::schedule::Schedule;
use crate::random::Rng;
use crate::{Dense, Error, Result};

/// A fine-tuning method.
///
/// ```
/// use rosa::train::Method;
/// assert_eq!("random_subspace".parse::<Method>().unwrap(), Method::RandomSubspace);
/// assert_eq!(Method::Rosa.to_string(), "rosa");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Full fine-tuning: every weight and bias trains.
    Fft,
    /// Low-rank adapter only (RoSA under the `lora_only` schedule).
    Lora,
    /// Sparse adapter only (RoSA under `spa_only`).
    Spa,
    /// Robust Adaptation: low-rank plus sparse adapter.
    Rosa,
    /// Random Subspace Adaptation: a random contiguous block of W's singular components
    /// trains, re-drawn periodically.
    RandomSubspace,
}

impl Method {
    /// Whether the method writes W (FFT trains it, random subspace re-splits it), so a
    /// frozen 4-bit W cannot serve it.
    pub fn rewrites_w(self) -> bool {
        matches!(self, Method::Fft | Method::RandomSubspace)
    }

    /// Every method, in the report's order.
    pub const ALL: [Method; 5] = [
        Method::Fft,
        Method::Lora,
        Method::Spa,
        Method::Rosa,
        Method::RandomSubspace,
    ];

    /// The adapter schedule this method runs: LoRA and SpA are RoSA's two degenerate
    /// schedules; `rosa_schedule` is RoSA's own.
    pub fn schedule(self, rosa_schedule: Schedule) -> Option<Schedule> {
        match self {
            Method::Lora => Some(Schedule::LoraOnly),
            Method::Spa => Some(Schedule::SpaOnly),
            Method::Rosa => Some(rosa_schedule),
            Method::Fft | Method::RandomSubspace => None,
        }
    }
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Method::Fft => "fft",
            Method::Lora => "lora",
            Method::Spa => "spa",
            Method::Rosa => "rosa",
            Method::RandomSubspace => "random_subspace",
        })
    }
}

impl std::str::FromStr for Method {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Method::ALL
            .into_iter()
            .find(|m| m.to_string() == s)
            .ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "unknown method '{s}' (expected fft, lora, spa, rosa or random_subspace)"
                ))
            })
    }
}

/// Random subspace adaptation's split of a weight `W` (out x in): `W = rest + B A`.
#[derive(Debug, Clone)]
pub struct SubspaceSplit {
    /// What stays frozen: `W` minus the drawn block of singular components.
    pub rest: Dense<f32>,
    /// `U_k Σ_k^½` (out x rank).
    pub b: Dense<f32>,
    /// `Σ_k^½ V_k^T` (rank x in).
    pub a: Dense<f32>,
}

/// Splits `w` (out x in): `W = U Σ V^T`, a random contiguous block (in the spectrum,
/// largest first) of `rank` singular components becomes the trainable pair
/// `B = U_k Σ_k^½`, `A = Σ_k^½ V_k^T`, and `rest` keeps the others. The SVD runs in f64.
/// Shared by [`subspace_split`] and `rosa::candle`'s layer.
///
/// ```
/// use rosa::train::subspace_factors;
/// use rosa::{random, random::Rng};
/// let w = random::dense::<f32>(4, 3, 1);
/// let s = subspace_factors(&w, 2, &mut Rng::new(5)).unwrap();
/// assert_eq!((s.b.cols(), s.a.rows()), (2, 2));
/// assert!(subspace_factors(&w, 4, &mut Rng::new(5)).is_err()); // rank > min(out, in)
/// ```
pub fn subspace_factors(w: &Dense<f32>, rank: usize, rng: &mut Rng) -> Result<SubspaceSplit> {
    let (m, n) = (w.rows(), w.cols());
    let full = m.min(n);
    if rank == 0 || rank > full {
        return Err(Error::InvalidArgument(format!(
            "subspace rank {rank} must be in 1..={full} for a {m} x {n} weight"
        )));
    }
    let mat = DMatrix::from_fn(m, n, |i, j| w.as_slice()[i * n + j] as f64);
    let svd = mat.svd(true, true);
    let (u, vt) = match (svd.u, svd.v_t) {
        (Some(u), Some(vt)) => (u, vt),
        _ => {
            return Err(Error::InvalidArgument(
                "SVD did not produce U and V^T".into(),
            ))
        }
    };
    // Order components by singular value ourselves, so "contiguous" means contiguous in
    // the spectrum whatever order the SVD returns them in.
    let mut order: Vec<usize> = (0..svd.singular_values.len()).collect();
    order.sort_by(|&a, &b| {
        svd.singular_values[b]
            .total_cmp(&svd.singular_values[a])
            .then(a.cmp(&b))
    });
    let start = rng.below(full - rank + 1);
    let block = &order[start..start + rank];
    let root: Vec<f64> = block
        .iter()
        .map(|&c| svd.singular_values[c].sqrt())
        .collect();
    let b = Dense::from_fn(m, rank, |i, k| (u[(i, block[k])] * root[k]) as f32);
    let a = Dense::from_fn(rank, n, |k, j| (vt[(block[k], j)] * root[k]) as f32);
    let rest = Dense::from_fn(m, n, |i, j| {
        let part: f64 = (0..rank)
            .map(|k| b.as_slice()[i * rank + k] as f64 * a.as_slice()[k * n + j] as f64)
            .sum();
        (w.as_slice()[i * n + j] as f64 - part) as f32
    });
    Ok(SubspaceSplit { rest, b, a })
}

/// Splits `layer`'s weight for random subspace adaptation ([`subspace_factors`]): the
/// drawn block becomes the trainable pair (scale 1) and W keeps the rest. Any existing
/// pair is merged first, so calling this again is the periodic re-split.
///
/// ```
/// use rosa::train::{subspace_split, Cpu, RosaLinear};
/// use rosa::{random, random::Rng};
/// let w = random::dense::<f32>(6, 5, 1);
/// let mut layer = RosaLinear::new(w.clone(), None);
/// subspace_split(&mut layer, &Cpu, 2, &mut Rng::new(3)).unwrap();
/// layer.merge(&Cpu).unwrap(); // W_rest + B A is the original W again
/// let merged = layer.weight().to_f32();
/// assert!(merged.as_slice().iter().zip(w.as_slice()).all(|(a, b)| (a - b).abs() < 1e-5));
/// ```
pub fn subspace_split(
    layer: &mut RosaLinear,
    be: &dyn Backend,
    rank: usize,
    rng: &mut Rng,
) -> Result<()> {
    if layer.sparse().is_some() {
        return Err(Error::InvalidArgument(
            "random subspace adaptation on a layer with a sparse adapter".into(),
        ));
    }
    layer.fold_adapters(be)?;
    let split = subspace_factors(&layer.weight().to_f32(), rank, rng)?;
    layer.set_weight(split.rest)?;
    layer.set_lora(Some(Lora {
        a: split.a,
        b: split.b,
        scale: 1.0,
        dropout: 0.0,
    }))
}
