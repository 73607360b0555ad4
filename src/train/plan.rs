//! Which of the RoSA layer's two plans runs (docs/CUDA.md, "The layer's two plans"), by a
//! cost model: the terms in which the plans differ, per training step, from the tuner's
//! measured kernel times where it has them and the three-floor roofline otherwise.
//!
//! - **Merged**: a dense working copy `W + S` in W's type; `y` and `dX` are one dense GEMM
//!   each, on the copy. After each optimizer step the mask's entries of the copy are
//!   rewritten from the frozen W (`csr_add_from`, nnz entries). Costs one dense copy of W.
//! - **Sparse**: W untouched; `S x` by SpMM and `S^T dY` by SpMM^T. No copy; the only plan
//!   for a quantized W.
//!
//! Everything else of the step (the GEMMs on W or on the copy, which have the same shape;
//! the LoRA products; SDDMM for dS) is the same in both and left out of the comparison.
//! Rewriting the copy costs O(nnz) bytes and the two products O(nnz N): at low density the
//! rewrite moves about 70 bytes per entry through DRAM (its CSR entry, and a 32-byte
//! sector of W read and one of the copy written) and the two products gather 2 s bytes per
//! entry and token through L2 (s = 2 with a bf16 or NF4 W, whose sparse terms run in bf16;
//! 4 in f32), so with the example's ceilings the merged plan wins from about 41 tokens per
//! step on for a bf16 W (21 for f32 products) whenever its copy fits, and the memory
//! budget is what decides. (With a bf16 W the copy is `bf16(W + S)`: an update of S
//! smaller than half a bf16 ulp of W's entry leaves the forward pass unchanged until it
//! accumulates.)
//!
//! ```
//! use rosa::bench::roofline::Ceilings;
//! use rosa::train::plan::{choose, LayerPlan, PlanInputs, PlanModel, PlanReason};
//! let model = PlanModel {
//!     ceilings: Ceilings { dram_bytes_per_s: 4.3e12, l2_bytes_per_s: 1.0e13,
//!         fma_flops_per_s: 6.7e13, l2_probe_bytes: 16 << 20 },
//!     measured: &[],
//!     memory_budget: None,
//! };
//! // A bf16 11008 x 4096 projection at 0.6% density and 2048 tokens: SpMM and SpMM^T
//! // gather 1.1 GB each through L2 (bf16); rewriting the mask's entries of a copy moves
//! // 19 MB.
//! let p = PlanInputs { out: 11008, inp: 4096, tokens: 2048, nnz: 270_532,
//!     weight_bytes: 2, value_bytes: 2, row_cv: 0.1, quantized: false, weight_trains: false };
//! let c = choose(&p, &model);
//! assert_eq!(c.plan, LayerPlan::Merged);
//! assert_eq!(c.costs.merged_bytes, 11008 * 4096 * 2); // 86 MiB
//! // One token per step (decoding): the products are cheaper than the rewrite.
//! assert_eq!(choose(&PlanInputs { tokens: 1, ..p }, &model).plan, LayerPlan::Sparse);
//! // The crossover: 69 B x 270,532 at 4.3 TB/s (4.4 us) against 2 x 2 B x 270,532 per
//! // token at 10 TB/s (0.11 us per token); products in f32 would cross at 21 tokens.
//! assert_eq!(choose(&PlanInputs { tokens: 40, ..p }, &model).plan, LayerPlan::Sparse);
//! assert_eq!(choose(&PlanInputs { tokens: 41, ..p }, &model).plan, LayerPlan::Merged);
//! let f32_products = PlanInputs { value_bytes: 4, ..p };
//! assert_eq!(choose(&PlanInputs { tokens: 20, ..f32_products }, &model).plan, LayerPlan::Sparse);
//! assert_eq!(choose(&PlanInputs { tokens: 21, ..f32_products }, &model).plan, LayerPlan::Merged);
//! // A 64 MiB budget leaves no room for the copy.
//! let tight = PlanModel { memory_budget: Some(64 << 20), ..model };
//! assert!(matches!(choose(&p, &tight).reason, PlanReason::OverBudget { .. }));
//! ```

use std::fmt;

use crate::bench::roofline::{self, Ceilings};
use crate::tune::{ProblemKey, TuneEntry};
use crate::{DType, Op};

/// How the layer computes its sparse term.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LayerPlan {
    /// `W + S` kept as a dense working copy, one GEMM for `y` and one for `dX`.
    Merged,
    /// W untouched, `S x` by SpMM and `S^T dY` by SpMM^T.
    Sparse,
}

impl fmt::Display for LayerPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LayerPlan::Merged => "merged",
            LayerPlan::Sparse => "sparse",
        })
    }
}

/// One layer and step as the cost model sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PlanInputs {
    /// Output features (rows of W and S).
    pub out: usize,
    /// Input features (columns of W and S).
    pub inp: usize,
    /// Tokens per step (columns of x and dY).
    pub tokens: usize,
    /// Stored entries of S.
    pub nnz: usize,
    /// Bytes per element of W's storage, which the working copy shares: 4 (f32) or 2
    /// (bf16).
    pub weight_bytes: usize,
    /// Bytes per element of the sparse products' operands: 4 (f32) or 2 (bf16; the device
    /// layer's products for a bf16 or NF4 W, which write f32 outputs).
    pub value_bytes: usize,
    /// Coefficient of variation of S's row lengths (keys the tuner's measurements).
    pub row_cv: f64,
    /// W is stored quantized (NF4): it cannot absorb S, so only the sparse plan exists.
    pub quantized: bool,
    /// W itself trains (full fine-tuning): a copy refreshed at the mask alone would miss
    /// W's own updates, so only the sparse plan exists.
    pub weight_trains: bool,
}

/// What the choice is based on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PlanModel<'a> {
    /// The device's ceilings (measured by `rosa info --ceilings` / the bench), for the terms
    /// the tuner has not measured.
    pub ceilings: Ceilings,
    /// The tuner's entries (`TuneCache::entries`): an entry whose key equals a sparse
    /// product's key gives that product's time.
    pub measured: &'a [TuneEntry],
    /// Bytes the merged plan's working copy may take, if limited.
    pub memory_budget: Option<usize>,
}

/// Where a term's time came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CostSource {
    /// The tuner's measured time of its chosen configuration.
    Measured,
    /// The three-floor roofline: a lower bound, not a measurement.
    Roofline,
}

/// The per-step costs of the terms in which the plans differ.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct PlanCosts {
    /// Seconds: rewriting the mask's entries of the working copy (roofline).
    pub merged_s: f64,
    /// Seconds: SpMM plus SpMM^T.
    pub sparse_s: f64,
    /// Where the sparse plan's time came from (the worse of its two products).
    pub sparse_source: CostSource,
    /// Bytes of the merged plan's working copy.
    pub merged_bytes: usize,
}

/// Why a plan was chosen.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PlanReason {
    /// W is quantized: the sparse plan is the only one.
    Quantized,
    /// W trains: the sparse plan is the only one.
    WeightTrains,
    /// The working copy does not fit the memory budget (bytes).
    OverBudget {
        /// The copy's bytes.
        need: usize,
        /// The budget's bytes.
        budget: usize,
    },
    /// The cheaper of the two by the cost model.
    Cheaper,
}

/// A plan, why, and the costs it was compared on.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct PlanChoice {
    /// The plan to run.
    pub plan: LayerPlan,
    /// Why.
    pub reason: PlanReason,
    /// The model's costs.
    pub costs: PlanCosts,
}

impl fmt::Display for PlanChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.costs;
        write!(
            f,
            "{} plan (merged {:.1} us vs sparse {:.1} us {}; copy {:.1} MiB",
            self.plan,
            c.merged_s * 1e6,
            c.sparse_s * 1e6,
            match c.sparse_source {
                CostSource::Measured => "measured",
                CostSource::Roofline => "roofline",
            },
            c.merged_bytes as f64 / (1 << 20) as f64
        )?;
        match self.reason {
            PlanReason::Quantized => write!(f, "; W is quantized)"),
            PlanReason::WeightTrains => write!(f, "; W trains)"),
            PlanReason::OverBudget { budget, .. } => write!(
                f,
                "; over the {:.1} MiB budget)",
                budget as f64 / (1 << 20) as f64
            ),
            PlanReason::Cheaper => write!(f, ")"),
        }
    }
}

/// DRAM bytes of rewriting the mask's entries of an `out x inp` copy: the CSR arrays and
/// values once, and for W and the copy every 32-byte sector holding a mask entry, read
/// (from W) and written (to the copy). With entries spread at density `d`, a sector of
/// `32 / s` elements holds one with probability `1 - (1 - d)^(32 / s)`.
pub fn refresh_bytes(out: usize, inp: usize, nnz: usize, weight_bytes: usize) -> f64 {
    const SECTOR: f64 = 32.0;
    let elems = (out * inp) as f64;
    if elems == 0.0 || nnz == 0 {
        return 0.0;
    }
    let d = (nnz as f64 / elems).min(1.0);
    let s = weight_bytes.max(1) as f64;
    let per_sector = (SECTOR / s).max(1.0);
    let sectors = elems / per_sector * (1.0 - (1.0 - d).powf(per_sector));
    8.0 * nnz as f64 + 4.0 * (out as f64 + 1.0) + 2.0 * sectors * SECTOR
}

/// The time of one sparse product: the tuner's measurement when an entry has this
/// product's key, the roofline floor otherwise.
fn product_time(op: Op, p: &PlanInputs, model: &PlanModel<'_>) -> (f64, CostSource) {
    if p.nnz == 0 {
        // No sparse adapter (or one without entries): nothing to multiply.
        return (0.0, CostSource::Roofline);
    }
    // Both products are keyed, and their bytes counted, on the stored S (out x inp), as
    // the tuner and the launchers key them (`ProblemKey::for_matrix`, `op_bytes`, which
    // swap the dimensions for SpMM^T themselves).
    let (m, k) = (p.out, p.inp);
    let dtype = if p.value_bytes == 2 {
        DType::Bf16
    } else {
        DType::F32
    };
    let density = if m * k == 0 {
        0.0
    } else {
        p.nnz as f64 / (m * k) as f64
    };
    let key = ProblemKey::new(op, dtype, m, k, p.tokens, density, p.row_cv);
    if let Some(e) = model.measured.iter().find(|e| e.key == key) {
        return (e.tuned_us * 1e-6, CostSource::Measured);
    }
    let mut work = roofline::work(op, m, k, p.tokens, p.nnz, p.value_bytes);
    // The layer's products add into its f32 activations (beta = 1): C is read and written
    // in f32, 8 bytes per element, where `op_bytes` counts one write of `value_bytes`. At
    // low density that output is most of the DRAM traffic.
    let c_rows = if op == Op::SpmmT { k } else { m };
    work.dram_bytes += (8 - p.value_bytes.min(8)) as f64 * c_rows as f64 * p.tokens as f64;
    (model.ceilings.floor(&work).seconds, CostSource::Roofline)
}

/// The plan for `p` under `model`: the sparse plan for a quantized or training W or when
/// the working copy exceeds the memory budget, otherwise the cheaper one per step (ties go to the
/// sparse plan, which needs no copy, so a layer without sparse entries keeps the sparse
/// plan). See the module's example.
pub fn choose(p: &PlanInputs, model: &PlanModel<'_>) -> PlanChoice {
    let merged_bytes = p.out * p.inp * p.weight_bytes;
    let (spmm_s, spmm_src) = product_time(Op::Spmm, p, model);
    let (spmm_t_s, spmm_t_src) = product_time(Op::SpmmT, p, model);
    let sparse_source = if spmm_src == CostSource::Measured && spmm_t_src == CostSource::Measured {
        CostSource::Measured
    } else {
        CostSource::Roofline
    };
    let costs = PlanCosts {
        merged_s: refresh_bytes(p.out, p.inp, p.nnz, p.weight_bytes)
            / model.ceilings.dram_bytes_per_s,
        sparse_s: spmm_s + spmm_t_s,
        sparse_source,
        merged_bytes,
    };
    let (plan, reason) = if p.quantized {
        (LayerPlan::Sparse, PlanReason::Quantized)
    } else if p.weight_trains {
        (LayerPlan::Sparse, PlanReason::WeightTrains)
    } else if let Some(budget) = model.memory_budget.filter(|&b| merged_bytes > b) {
        (
            LayerPlan::Sparse,
            PlanReason::OverBudget {
                need: merged_bytes,
                budget,
            },
        )
    } else if costs.merged_s < costs.sparse_s {
        (LayerPlan::Merged, PlanReason::Cheaper)
    } else {
        (LayerPlan::Sparse, PlanReason::Cheaper)
    };
    PlanChoice {
        plan,
        reason,
        costs,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tune::TuneEntry;

    fn ceilings() -> Ceilings {
        Ceilings {
            dram_bytes_per_s: 4.0e12,
            l2_bytes_per_s: 1.0e13,
            fma_flops_per_s: 6.0e13,
            l2_probe_bytes: 16 << 20,
        }
    }

    fn inputs(nnz: usize, tokens: usize) -> PlanInputs {
        PlanInputs {
            out: 4096,
            inp: 4096,
            tokens,
            nnz,
            weight_bytes: 2,
            value_bytes: 2,
            row_cv: 0.1,
            quantized: false,
            weight_trains: false,
        }
    }

    #[test]
    fn sparse_products_count_their_f32_output_read_and_written() {
        // 0.1% of an 11008 x 4096 bf16 S, 512 tokens: DRAM-bound, and the f32 y (SpMM) and
        // dX (SpMM^T) are most of the bytes, read and written (beta = 1).
        let p = PlanInputs {
            out: 11008,
            inp: 4096,
            nnz: 45_089,
            tokens: 512,
            ..inputs(0, 0)
        };
        let model = PlanModel {
            ceilings: ceilings(),
            measured: &[],
            memory_budget: None,
        };
        let (nnz, n) = (45_089.0, 512.0);
        let bytes = |rows: f64, inner: f64| {
            nnz * 6.0 + 4.0 * (rows + 1.0) + 2.0 * inner * n + 8.0 * rows * n
        };
        let want = (bytes(11008.0, 4096.0) + bytes(4096.0, 11008.0)) / 4.0e12;
        let got = choose(&p, &model).costs.sparse_s;
        assert!((got - want).abs() < 1e-12, "{got} vs {want}");
    }

    #[test]
    fn refresh_bytes_follow_the_sector_model() {
        // One entry: its CSR bytes and one sector read and written.
        let one = refresh_bytes(4, 16, 1, 2);
        assert!(
            (one - (8.0 + 20.0 + 2.0 * 32.0 * (1.0 - (1.0 - 1.0 / 64.0f64).powi(16)) * 4.0)).abs()
                < 1e-9
        );
        // A full mask touches every sector: the whole of W read and the copy written.
        let full = refresh_bytes(64, 64, 64 * 64, 4);
        assert!((full - (8.0 * 4096.0 + 4.0 * 65.0 + 2.0 * 64.0 * 64.0 * 4.0)).abs() < 1e-6);
        assert_eq!(refresh_bytes(0, 64, 0, 2), 0.0);
        assert_eq!(refresh_bytes(64, 64, 0, 2), 0.0);
    }

    #[test]
    fn the_choice_follows_density_and_tokens() {
        let model = PlanModel {
            ceilings: ceilings(),
            measured: &[],
            memory_budget: None,
        };
        let dense_enough = choose(&inputs(167_772, 2048), &model);
        assert_eq!(dense_enough.plan, LayerPlan::Merged);
        assert_eq!(dense_enough.reason, PlanReason::Cheaper);
        assert_eq!(dense_enough.costs.sparse_source, CostSource::Roofline);
        assert!(dense_enough.costs.merged_s < dense_enough.costs.sparse_s);
        let sparse_enough = choose(&inputs(1_678, 1), &model);
        assert_eq!(sparse_enough.plan, LayerPlan::Sparse);
        assert!(sparse_enough.costs.sparse_s <= sparse_enough.costs.merged_s);
        assert_eq!(dense_enough.costs.merged_bytes, 4096 * 4096 * 2);
        // No sparse entries: neither plan has anything to do, and the tie keeps the
        // sparse plan (no copy).
        let empty = choose(&inputs(0, 2048), &model);
        assert_eq!((empty.costs.merged_s, empty.costs.sparse_s), (0.0, 0.0));
        assert_eq!(empty.plan, LayerPlan::Sparse);
    }

    #[test]
    fn quantized_weights_and_budgets_force_the_sparse_plan() {
        let model = PlanModel {
            ceilings: ceilings(),
            measured: &[],
            memory_budget: Some(1 << 20),
        };
        let c = choose(&inputs(167_772, 2048), &model);
        assert_eq!(c.plan, LayerPlan::Sparse);
        assert_eq!(
            c.reason,
            PlanReason::OverBudget {
                need: 4096 * 4096 * 2,
                budget: 1 << 20
            }
        );
        assert!(c.to_string().contains("over the 1.0 MiB budget"), "{c}");
        let q = PlanInputs {
            quantized: true,
            ..inputs(167_772, 2048)
        };
        let unlimited = PlanModel {
            memory_budget: None,
            ..model
        };
        assert_eq!(choose(&q, &unlimited).reason, PlanReason::Quantized);
        assert_eq!(choose(&q, &unlimited).plan, LayerPlan::Sparse);
        let fft = PlanInputs {
            weight_trains: true,
            ..inputs(167_772, 2048)
        };
        assert_eq!(choose(&fft, &unlimited).reason, PlanReason::WeightTrains);
        assert!(choose(&fft, &unlimited).to_string().contains("W trains"));
    }

    #[test]
    fn measured_times_replace_the_roofline() {
        let p = inputs(167_772, 2048);
        let density = p.nnz as f64 / (4096.0 * 4096.0);
        let entry = |op, us| TuneEntry {
            key: ProblemKey::new(op, DType::Bf16, 4096, 4096, 2048, density, 0.1),
            config: 0,
            config_name: String::new(),
            tuned_us: us,
            heuristic_us: us,
        };
        // Measured sparse products far faster than the roofline says they can be: the
        // measurement wins, and with it the sparse plan.
        let measured = [entry(Op::Spmm, 0.5), entry(Op::SpmmT, 0.5)];
        let model = PlanModel {
            ceilings: ceilings(),
            measured: &measured,
            memory_budget: None,
        };
        let c = choose(&p, &model);
        assert_eq!(c.costs.sparse_source, CostSource::Measured);
        assert!((c.costs.sparse_s - 1e-6).abs() < 1e-12);
        assert_eq!(c.plan, LayerPlan::Sparse);
        // One product measured, the other not: the source says roofline.
        let half = PlanModel {
            measured: &measured[..1],
            ..model
        };
        assert_eq!(choose(&p, &half).costs.sparse_source, CostSource::Roofline);
    }

    /// On a non-square S, both products' entries are found under the keys the tuner
    /// stores them under: `ProblemKey::for_matrix` on S itself (out x inp), SpMM^T too.
    #[test]
    fn measured_keys_are_those_of_the_stored_s() {
        let p = PlanInputs {
            out: 11008,
            ..inputs(270_532, 2048)
        };
        let entry = |op| TuneEntry {
            key: ProblemKey::new(op, DType::Bf16, 11008, 4096, 2048, 0.006, 0.1),
            config: 0,
            config_name: String::new(),
            tuned_us: 1.0,
            heuristic_us: 1.0,
        };
        let measured = [entry(Op::Spmm), entry(Op::SpmmT)];
        let model = PlanModel {
            ceilings: ceilings(),
            measured: &measured,
            memory_budget: None,
        };
        let c = choose(&p, &model);
        assert_eq!(c.costs.sparse_source, CostSource::Measured);
        assert!((c.costs.sparse_s - 2e-6).abs() < 1e-12);
    }
}
