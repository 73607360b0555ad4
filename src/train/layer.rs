//! [`RosaLinear`]: a frozen linear layer with a low-rank and a sparse adapter.

use super::backend::{Backend, Trans};
use crate::quant::{Nf4Config, Nf4Matrix};
use crate::random::Rng;
use crate::{bf16, Csr, CsrShape, Dense, Error, MatMut, MatRef, Result, TransposePlan};
use std::cell::RefCell;

/// How the low-rank branch is scaled: `alpha / r`, or `alpha / sqrt(r)` ("rsLoRA"), which
/// keeps the update's size steady as the rank grows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Scaling {
    /// `s = alpha / r`.
    #[default]
    Standard,
    /// `s = alpha / sqrt(r)`.
    Rs,
}

/// The low-rank adapter's hyperparameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoraConfig {
    /// Rank `r`.
    pub rank: usize,
    /// `alpha` in the scaling factor.
    pub alpha: f32,
    /// Which scaling rule turns `alpha` and `r` into `s`.
    pub scaling: Scaling,
    /// Dropout probability on the low-rank branch's input (training only).
    pub dropout: f32,
}

impl LoraConfig {
    /// The factor `s` of `s * B A`.
    pub fn scale(&self) -> f32 {
        match self.scaling {
            Scaling::Standard => self.alpha / self.rank as f32,
            Scaling::Rs => self.alpha / (self.rank as f32).sqrt(),
        }
    }
}

/// The low-rank pair: `A` (r x in), `B` (out x r), and the scale `s` of `s * B A`.
#[derive(Debug, Clone)]
pub struct Lora {
    /// Down projection, r x in.
    pub a: Dense<f32>,
    /// Up projection, out x r.
    pub b: Dense<f32>,
    /// `s` in `s * B A`.
    pub scale: f32,
    /// Dropout probability on the branch's input.
    pub dropout: f32,
}

impl Lora {
    /// A fresh pair for an `out x in` weight: A Kaiming-uniform (bound `1/sqrt(in)`, as
    /// PyTorch's LoRA), B zero, so the adapted layer starts as the frozen one. Shared by
    /// [`RosaLinear::add_lora`] and `rosa::candle`, so both start from the same A for a seed.
    ///
    /// ```
    /// use rosa::train::{Lora, LoraConfig, Scaling};
    /// let cfg = LoraConfig { rank: 2, alpha: 8.0, scaling: Scaling::Standard, dropout: 0.0 };
    /// let l = Lora::init(cfg, 3, 16, &mut rosa::random::Rng::new(1));
    /// assert_eq!((l.a.rows(), l.a.cols(), l.b.rows(), l.b.cols()), (2, 16, 3, 2));
    /// assert!(l.a.as_slice().iter().all(|v| v.abs() <= 0.25));
    /// assert!(l.b.as_slice().iter().all(|&v| v == 0.0));
    /// assert_eq!(l.scale, 4.0);
    /// ```
    pub fn init(cfg: LoraConfig, out_features: usize, in_features: usize, rng: &mut Rng) -> Lora {
        let bound = 1.0 / (in_features as f32).sqrt();
        let a = Dense::from_fn(cfg.rank, in_features, |_, _| rng.uniform(-bound, bound));
        Lora {
            a,
            b: Dense::zeros(out_features, cfg.rank),
            scale: cfg.scale(),
            dropout: cfg.dropout,
        }
    }
}

/// The frozen weight's storage. bf16 halves its memory and NF4 (QRoSA, QLoRA) cuts it to
/// about 4.1-4.5 bits a weight; both are widened to f32 in a workspace for each product.
#[derive(Debug, Clone)]
pub enum Weight {
    /// Full precision.
    F32(Dense<f32>),
    /// bf16, widened per product.
    Bf16(Dense<bf16>),
    /// 4-bit NormalFloat ([`Nf4Matrix`]), dequantized per product. Frozen: it cannot be
    /// trained, merged into, or rewritten.
    Nf4(Nf4Matrix),
}

thread_local! {
    /// The f32 workspace a bf16 or NF4 W is widened into before its GEMM: one per thread,
    /// shared by every layer in turn and grown to the largest W, so nothing is kept per
    /// layer (the point of 4-bit storage).
    static WORKSPACE: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

impl Weight {
    pub(crate) fn rows(&self) -> usize {
        match self {
            Weight::F32(w) => w.rows(),
            Weight::Bf16(w) => w.rows(),
            Weight::Nf4(w) => w.rows(),
        }
    }
    pub(crate) fn cols(&self) -> usize {
        match self {
            Weight::F32(w) => w.cols(),
            Weight::Bf16(w) => w.cols(),
            Weight::Nf4(w) => w.cols(),
        }
    }
    /// The bytes W's storage holds: 4 per weight in f32, 2 in bf16, and for NF4 the codes
    /// and scales ([`Nf4Matrix::stored_bytes`]).
    pub fn stored_bytes(&self) -> usize {
        match self {
            Weight::F32(w) => 4 * w.as_slice().len(),
            Weight::Bf16(w) => 2 * w.as_slice().len(),
            Weight::Nf4(w) => w.stored_bytes(),
        }
    }
    /// The weight as f32, widened or dequantized if it is stored in bf16 or NF4.
    pub fn to_f32(&self) -> Dense<f32> {
        if let Weight::F32(w) = self {
            return w.clone();
        }
        let mut out = Dense::zeros(self.rows(), self.cols());
        // Cannot fail: `out` is rows x cols and an NF4 W is dequantized over all its rows.
        self.widen_into(out.as_mut()).ok();
        out
    }
    /// Widens a bf16 or NF4 W into `out` (rows x cols); a no-op copy for f32.
    fn widen_into(&self, mut out: MatMut<'_, f32>) -> Result<()> {
        match self {
            Weight::F32(w) => out.as_mut_slice().copy_from_slice(w.as_slice()),
            Weight::Bf16(w) => {
                for (o, v) in out.as_mut_slice().iter_mut().zip(w.as_slice()) {
                    *o = v.to_f32();
                }
            }
            Weight::Nf4(q) => q.dequantize_into(0..q.rows(), out)?,
        }
        Ok(())
    }
    /// Runs `f` on W as f32: directly for f32, else through the shared [`WORKSPACE`], so
    /// every storage takes the one GEMM path.
    pub(crate) fn with_f32(&self, f: impl FnOnce(MatRef<'_, f32>) -> Result<()>) -> Result<()> {
        if let Weight::F32(w) = self {
            return f(w.as_ref());
        }
        let (rows, cols) = (self.rows(), self.cols());
        WORKSPACE.with(|ws| {
            let mut ws = ws.borrow_mut();
            if ws.len() < rows * cols {
                ws.resize(rows * cols, 0.0);
            }
            let buf = &mut ws[..rows * cols];
            self.widen_into(MatMut::new(buf, rows, cols)?)?;
            f(MatRef::new(buf, rows, cols)?)
        })
    }
    /// Applies `f` to an f32 copy and stores it back (rounding once for bf16). A 4-bit W
    /// is refused: rounding an update into NF4 would lose it.
    fn update(&mut self, f: impl FnOnce(&mut Dense<f32>) -> Result<()>) -> Result<()> {
        match self {
            Weight::F32(w) => f(w),
            Weight::Bf16(_) => {
                let mut wide = self.to_f32();
                f(&mut wide)?;
                let cols = wide.cols();
                *self = Weight::Bf16(Dense::from_fn(wide.rows(), cols, |i, j| {
                    bf16::from_f32(wide.as_slice()[i * cols + j])
                }));
                Ok(())
            }
            Weight::Nf4(_) => Err(Error::Unsupported(
                "rewriting a 4-bit NF4 weight: it is frozen; export the adapters instead".into(),
            )),
        }
    }
}

/// Errors unless a layer's input (or output gradient) has the `expected` feature rows:
/// shared by the host and device layers, so both refuse alike.
pub(crate) fn check_feature_rows(op: &'static str, rows: usize, expected: usize) -> Result<()> {
    if rows == expected {
        Ok(())
    } else {
        Err(Error::ShapeMismatch {
            op,
            detail: format!("expected {expected} feature rows, got {rows}"),
        })
    }
}

/// The sparse adapter: `S` with a fixed mask, and the transpose plan built once from it.
#[derive(Debug, Clone)]
pub struct SparseAdapter {
    s: Csr<f32>,
    plan: TransposePlan,
}

impl SparseAdapter {
    /// The adapter matrix.
    pub fn matrix(&self) -> &Csr<f32> {
        &self.s
    }
}

/// Which optimizer group a parameter belongs to (they get separate learning rates).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    /// The low-rank pair A, B.
    LowRank,
    /// Everything else: S's values, and W and the bias under full fine-tuning.
    Other,
}

/// One trainable tensor with its gradient, as the optimizer sees it.
#[derive(Debug)]
pub struct Param<'a> {
    /// Stable name within the layer (`lora_a`, `lora_b`, `sparse`, `weight`, `bias`).
    pub name: &'static str,
    /// Learning-rate group.
    pub group: Group,
    /// The values to update.
    pub value: &'a mut [f32],
    /// Their gradient from the last backward pass.
    pub grad: &'a [f32],
}

/// What a training-mode forward pass keeps for the backward pass.
#[derive(Debug, Clone)]
struct Cache {
    x: Dense<f32>,
    /// Dropout factors (0 or 1/(1-p)) on the low-rank branch's input, if any.
    keep: Option<Vec<f32>>,
    /// `A x` (after dropout), r x tokens.
    h: Option<Dense<f32>>,
}

#[derive(Debug, Clone, Default)]
struct Grads {
    a: Vec<f32>,
    b: Vec<f32>,
    s: Vec<f32>,
    w: Vec<f32>,
    bias: Vec<f32>,
}

/// A linear layer `y = W x + s B (A x) + S x (+ bias)` with activations feature-major:
/// `x` is (in x tokens) and `y` is (out x tokens).
///
/// `W` is frozen unless [`RosaLinear::set_train_weight`] turns on full fine-tuning; the
/// adapters are added with [`RosaLinear::add_lora`] and [`RosaLinear::set_sparse_mask`].
///
/// ```
/// use rosa::train::{Cpu, LoraConfig, RosaLinear, Scaling};
/// use rosa::{random::Rng, Csr, Dense};
/// let mut layer = RosaLinear::new(Dense::from_fn(3, 4, |i, j| (i + j) as f32), None);
/// let cfg = LoraConfig { rank: 2, alpha: 4.0, scaling: Scaling::Standard, dropout: 0.0 };
/// layer.add_lora(cfg, &mut Rng::new(0));
/// layer.set_sparse_mask(&Csr::from_triplets(3, 4, &[(0, 1, 1.0f32), (2, 3, 1.0)]).unwrap()).unwrap();
/// let x = Dense::filled(4, 5, 1.0f32); // 4 features, 5 tokens
/// let y = layer.forward(&Cpu, x.as_ref(), true).unwrap();
/// // B and S start at zero, so the adapted layer starts as the frozen one.
/// assert_eq!(y.as_slice()[0], 6.0);
/// let dx = layer.backward(&Cpu, Dense::filled(3, 5, 1.0f32).as_ref()).unwrap();
/// assert_eq!((dx.rows(), dx.cols()), (4, 5));
/// assert_eq!(layer.trainable_params(), 2 * (3 + 4) + 2);
/// ```
#[derive(Debug, Clone)]
pub struct RosaLinear {
    w: Weight,
    bias: Option<Vec<f32>>,
    lora: Option<Lora>,
    sparse: Option<SparseAdapter>,
    train_w: bool,
    merged: bool,
    rng: Rng,
    cache: Option<Cache>,
    grads: Grads,
}

impl RosaLinear {
    /// A frozen layer with weight `w` (out x in) and an optional bias (out).
    pub fn new(w: Dense<f32>, bias: Option<Vec<f32>>) -> Self {
        Self::from_weight(Weight::F32(w), bias)
    }

    /// Like [`RosaLinear::new`], with the weight in either storage.
    pub fn from_weight(w: Weight, bias: Option<Vec<f32>>) -> Self {
        RosaLinear {
            w,
            bias,
            lora: None,
            sparse: None,
            train_w: false,
            merged: false,
            rng: Rng::new(0x5EED),
            cache: None,
            grads: Grads::default(),
        }
    }

    /// Output features.
    pub fn out_features(&self) -> usize {
        self.w.rows()
    }

    /// Input features.
    pub fn in_features(&self) -> usize {
        self.w.cols()
    }

    /// The frozen (or, under full fine-tuning, trained) weight.
    pub fn weight(&self) -> &Weight {
        &self.w
    }

    /// Replaces W's values, keeping its storage type (random subspace re-splits).
    pub fn set_weight(&mut self, w: Dense<f32>) -> Result<()> {
        if (w.rows(), w.cols()) != (self.out_features(), self.in_features()) {
            return Err(Error::ShapeMismatch {
                op: "set_weight",
                detail: format!(
                    "new W is {} x {}, the layer is {} x {}",
                    w.rows(),
                    w.cols(),
                    self.out_features(),
                    self.in_features()
                ),
            });
        }
        self.w.update(|old| {
            *old = w;
            Ok(())
        })
    }

    /// Replaces the bias.
    pub fn set_bias(&mut self, b: Vec<f32>) -> Result<()> {
        if b.len() != self.out_features() {
            return Err(Error::ShapeMismatch {
                op: "set_bias",
                detail: format!("{} values for {} outputs", b.len(), self.out_features()),
            });
        }
        self.bias = Some(b);
        Ok(())
    }

    /// The bias, if the layer has one.
    pub fn bias(&self) -> Option<&[f32]> {
        self.bias.as_deref()
    }

    /// The low-rank adapter, if any.
    pub fn lora(&self) -> Option<&Lora> {
        self.lora.as_ref()
    }

    /// The sparse adapter, if any.
    pub fn sparse(&self) -> Option<&SparseAdapter> {
        self.sparse.as_ref()
    }

    /// Seeds the layer's dropout stream.
    pub fn set_seed(&mut self, seed: u64) {
        self.rng = Rng::new(seed);
    }

    /// Full fine-tuning: W (and the bias) become trainable.
    pub fn set_train_weight(&mut self, on: bool) -> Result<()> {
        if on && !matches!(self.w, Weight::F32(_)) {
            return Err(Error::Unsupported(
                "training a bf16- or NF4-stored weight (full fine-tuning needs f32 storage)".into(),
            ));
        }
        self.train_w = on;
        Ok(())
    }

    /// Whether full fine-tuning trains W (and the bias).
    pub fn trains_weight(&self) -> bool {
        self.train_w
    }

    /// Stores the frozen W in bf16 from now on, halving its memory; products widen it
    /// back to f32 on the fly.
    pub fn store_weight_bf16(&mut self) -> Result<()> {
        if self.train_w {
            return Err(Error::Unsupported(
                "bf16 storage of a weight that full fine-tuning trains".into(),
            ));
        }
        if let Weight::F32(w) = &self.w {
            let narrow = w.as_slice().iter().map(|&v| bf16::from_f32(v)).collect();
            self.w = Weight::Bf16(Dense::from_vec(w.rows(), w.cols(), narrow)?);
        }
        Ok(())
    }

    /// Stores the frozen W in 4-bit NF4 from now on (QLoRA / QRoSA): about 4.1-4.5 bits a
    /// weight; products dequantize it into a workspace shared by all layers. From then on
    /// the forward pass adds `S x` by SpMM and the backward pass `S^T dY` by SpMM^T, as
    /// a 4-bit W cannot absorb S; [`RosaLinear::merge`] is refused.
    ///
    /// Errors: [`Error::Unsupported`] under full fine-tuning or on a merged layer; the
    /// quantizer's errors ([`Nf4Matrix::quantize`], a non-finite weight say).
    pub fn quantize_weight_nf4(&mut self, config: Nf4Config) -> Result<()> {
        if self.train_w || self.merged {
            return Err(Error::Unsupported(
                "NF4 storage of a weight that is trained or has adapters merged into it".into(),
            ));
        }
        if !matches!(self.w, Weight::Nf4(_)) {
            let w = self.w.to_f32();
            self.w = Weight::Nf4(Nf4Matrix::quantize(w.as_ref(), config)?);
        }
        Ok(())
    }

    /// Adds a low-rank adapter ([`Lora::init`]: A Kaiming-uniform, B zero), so the layer's
    /// output does not change.
    pub fn add_lora(&mut self, cfg: LoraConfig, rng: &mut Rng) {
        self.lora = Some(Lora::init(
            cfg,
            self.out_features(),
            self.in_features(),
            rng,
        ));
    }

    /// Sets (or, with `None`, removes) the low-rank pair directly.
    pub fn set_lora(&mut self, lora: Option<Lora>) -> Result<()> {
        if let Some(l) = &lora {
            let r = l.a.rows();
            if l.a.cols() != self.in_features()
                || l.b.rows() != self.out_features()
                || l.b.cols() != r
            {
                return Err(Error::ShapeMismatch {
                    op: "set_lora",
                    detail: format!(
                        "A is {} x {}, B is {} x {}, W is {} x {}",
                        l.a.rows(),
                        l.a.cols(),
                        l.b.rows(),
                        l.b.cols(),
                        self.out_features(),
                        self.in_features()
                    ),
                });
            }
        }
        self.lora = lora;
        Ok(())
    }

    /// Gives the layer a sparse adapter with `mask`'s structure and zero values, and
    /// builds the transpose plan once for all backward passes.
    pub fn set_sparse_mask(&mut self, mask: &Csr<f32>) -> Result<()> {
        if mask.rows() != self.out_features() || mask.cols() != self.in_features() {
            return Err(Error::ShapeMismatch {
                op: "set_sparse_mask",
                detail: format!(
                    "mask is {} x {}, W is {} x {}",
                    mask.rows(),
                    mask.cols(),
                    self.out_features(),
                    self.in_features()
                ),
            });
        }
        let s = mask.with_values(vec![0.0f32; mask.nnz()])?;
        self.set_sparse(s)
    }

    /// Sets the sparse adapter with its values (a stored adapter, say).
    pub fn set_sparse(&mut self, s: Csr<f32>) -> Result<()> {
        if s.rows() != self.out_features() || s.cols() != self.in_features() {
            return Err(Error::ShapeMismatch {
                op: "set_sparse",
                detail: format!("S is {} x {}", s.rows(), s.cols()),
            });
        }
        let plan = s.transpose_plan();
        self.sparse = Some(SparseAdapter { s, plan });
        Ok(())
    }

    /// The number of values the optimizer updates.
    pub fn trainable_params(&self) -> usize {
        let lora = self.lora.as_ref().map_or(0, |l| numel(&l.a) + numel(&l.b));
        let sparse = self.sparse.as_ref().map_or(0, |s| s.s.nnz());
        let full = if self.train_w {
            self.out_features() * self.in_features() + self.bias.as_ref().map_or(0, Vec::len)
        } else {
            0
        };
        lora + sparse + full
    }

    /// `y = W x + s B (A x) + S x + bias` for `x` (in x tokens). With `train`, dropout is
    /// applied and what the backward pass needs is kept.
    pub fn forward(
        &mut self,
        be: &dyn Backend,
        x: MatRef<'_, f32>,
        train: bool,
    ) -> Result<Dense<f32>> {
        check_feature_rows("RosaLinear::forward", x.rows(), self.in_features())?;
        if train && self.merged {
            return Err(Error::InvalidArgument(
                "training a merged layer: unmerge it first".into(),
            ));
        }
        let tokens = x.cols();
        let mut y = Dense::zeros(self.out_features(), tokens);
        self.w
            .with_f32(|w| be.gemm(1.0, w, Trans::N, x, Trans::N, 0.0, y.as_mut()))?;
        if let Some(b) = &self.bias {
            for (row, &bi) in y.as_mut_slice().chunks_mut(tokens.max(1)).zip(b) {
                row.iter_mut().for_each(|v| *v += bi);
            }
        }
        let (mut keep, mut h_kept) = (None, None);
        if let (Some(l), false) = (&self.lora, self.merged) {
            let mut h = Dense::zeros(l.a.rows(), tokens);
            if train && l.dropout > 0.0 {
                let factor = 1.0 / (1.0 - l.dropout);
                let rng = &mut self.rng;
                let k: Vec<f32> = (0..x.as_slice().len())
                    .map(|_| {
                        if rng.next_f64() < l.dropout as f64 {
                            0.0
                        } else {
                            factor
                        }
                    })
                    .collect();
                let xd: Vec<f32> = x.as_slice().iter().zip(&k).map(|(a, b)| a * b).collect();
                let xd = MatRef::new(&xd, x.rows(), tokens)?;
                be.gemm(1.0, l.a.as_ref(), Trans::N, xd, Trans::N, 0.0, h.as_mut())?;
                keep = Some(k);
            } else {
                be.gemm(1.0, l.a.as_ref(), Trans::N, x, Trans::N, 0.0, h.as_mut())?;
            }
            be.gemm(
                l.scale,
                l.b.as_ref(),
                Trans::N,
                h.as_ref(),
                Trans::N,
                1.0,
                y.as_mut(),
            )?;
            h_kept = Some(h);
        }
        if let (Some(sp), false) = (&self.sparse, self.merged) {
            be.spmm(1.0, sp.s.as_ref(), x, 1.0, y.as_mut())?;
        }
        self.cache = train.then(|| Cache {
            x: x.to_owned(),
            keep,
            h: h_kept,
        });
        Ok(y)
    }

    fn cache(&self, op: &'static str) -> Result<&Cache> {
        self.cache.as_ref().ok_or_else(|| {
            Error::InvalidArgument(format!(
                "{op}: no training-mode forward pass to go back through"
            ))
        })
    }

    /// The dense weight gradient `G = dY X^T` (out x in) of the last training forward
    /// pass, which mask generation accumulates.
    pub fn dense_grad(&self, be: &dyn Backend, dy: MatRef<'_, f32>) -> Result<Dense<f32>> {
        let x = &self.cache("RosaLinear::dense_grad")?.x;
        let mut g = Dense::zeros(self.out_features(), self.in_features());
        be.gemm(1.0, dy, Trans::N, x.as_ref(), Trans::T, 0.0, g.as_mut())?;
        Ok(g)
    }

    /// Backward pass for `dY` (out x tokens): stores the gradients of the trainable
    /// tensors and returns `dX = W^T dY + s A^T (B^T dY) + S^T dY`.
    pub fn backward(&mut self, be: &dyn Backend, dy: MatRef<'_, f32>) -> Result<Dense<f32>> {
        check_feature_rows("RosaLinear::backward", dy.rows(), self.out_features())?;
        self.cache("RosaLinear::backward")?;
        // Taken out so the pass can borrow the layer mutably; put back whatever happens,
        // so a failed call leaves the layer as it was.
        let cache = self.cache.take().expect("checked above");
        let out = self.backward_from(be, &cache, dy);
        self.cache = Some(cache);
        out
    }

    fn backward_from(
        &mut self,
        be: &dyn Backend,
        cache: &Cache,
        dy: MatRef<'_, f32>,
    ) -> Result<Dense<f32>> {
        let x = cache.x.as_ref();
        if dy.cols() != x.cols() {
            return Err(Error::ShapeMismatch {
                op: "RosaLinear::backward",
                detail: format!(
                    "dY has {} tokens, the forward pass had {}",
                    dy.cols(),
                    x.cols()
                ),
            });
        }
        let tokens = x.cols();
        let mut dx = Dense::zeros(self.in_features(), tokens);
        self.w
            .with_f32(|w| be.gemm(1.0, w, Trans::T, dy, Trans::N, 0.0, dx.as_mut()))?;
        let mut grads = std::mem::take(&mut self.grads);
        if self.train_w {
            grads
                .w
                .resize(self.out_features() * self.in_features(), 0.0);
            let gw = crate::MatMut::new(&mut grads.w, self.out_features(), self.in_features())?;
            be.gemm(1.0, dy, Trans::N, x, Trans::T, 0.0, gw)?;
            if self.bias.is_some() {
                grads.bias = dy
                    .as_slice()
                    .chunks(tokens.max(1))
                    .map(|row| row.iter().sum())
                    .collect();
            }
        }
        if let Some(l) = &self.lora {
            let h = cache.h.as_ref().ok_or_else(|| {
                Error::InvalidArgument(
                    "RosaLinear::backward: the low-rank adapter was added after the forward pass"
                        .into(),
                )
            })?;
            let r = l.a.rows();
            // g = B^T dY is shared by dA and dX.
            let mut g = Dense::zeros(r, tokens);
            be.gemm(1.0, l.b.as_ref(), Trans::T, dy, Trans::N, 0.0, g.as_mut())?;
            grads.b.resize(numel(&l.b), 0.0);
            let gb = crate::MatMut::new(&mut grads.b, l.b.rows(), r)?;
            be.gemm(l.scale, dy, Trans::N, h.as_ref(), Trans::T, 0.0, gb)?;
            grads.a.resize(numel(&l.a), 0.0);
            let ga = crate::MatMut::new(&mut grads.a, r, self.in_features())?;
            match &cache.keep {
                Some(keep) => {
                    let xd: Vec<f32> = x.as_slice().iter().zip(keep).map(|(a, b)| a * b).collect();
                    let xd = MatRef::new(&xd, self.in_features(), tokens)?;
                    be.gemm(l.scale, g.as_ref(), Trans::N, xd, Trans::T, 0.0, ga)?;
                    // The branch saw the dropped-out input, so its dX goes through the
                    // same factors.
                    let mut t = Dense::zeros(self.in_features(), tokens);
                    be.gemm(
                        l.scale,
                        l.a.as_ref(),
                        Trans::T,
                        g.as_ref(),
                        Trans::N,
                        0.0,
                        t.as_mut(),
                    )?;
                    for ((d, v), k) in dx.as_mut_slice().iter_mut().zip(t.as_slice()).zip(keep) {
                        *d += v * k;
                    }
                }
                None => {
                    be.gemm(l.scale, g.as_ref(), Trans::N, x, Trans::T, 0.0, ga)?;
                    be.gemm(
                        l.scale,
                        l.a.as_ref(),
                        Trans::T,
                        g.as_ref(),
                        Trans::N,
                        1.0,
                        dx.as_mut(),
                    )?;
                }
            }
        }
        if let Some(sp) = &self.sparse {
            // The gradient shares S's structure; its value buffer is reused across steps.
            let mut buf = std::mem::take(&mut grads.s);
            buf.resize(sp.s.nnz(), 0.0);
            let mut gs = sp.s.with_values(buf)?;
            be.sddmm(1.0, dy, x, 0.0, gs.as_mut())?;
            grads.s = gs.into_parts().4;
            be.spmm_t(1.0, sp.s.as_ref(), &sp.plan, dy, 1.0, dx.as_mut())?;
        }
        self.grads = grads;
        Ok(dx)
    }

    /// The trainable tensors and their last gradients (empty before a backward pass).
    pub fn params(&mut self) -> Vec<Param<'_>> {
        let mut out = Vec::new();
        let g = &self.grads;
        if let Some(l) = &mut self.lora {
            if g.a.len() == numel(&l.a) && g.b.len() == numel(&l.b) {
                out.push(Param {
                    name: "lora_a",
                    group: Group::LowRank,
                    value: l.a.as_mut_slice(),
                    grad: &g.a,
                });
                out.push(Param {
                    name: "lora_b",
                    group: Group::LowRank,
                    value: l.b.as_mut_slice(),
                    grad: &g.b,
                });
            }
        }
        if let Some(sp) = &mut self.sparse {
            if g.s.len() == sp.s.nnz() {
                out.push(Param {
                    name: "sparse",
                    group: Group::Other,
                    value: sp.s.values_mut(),
                    grad: &g.s,
                });
            }
        }
        if self.train_w {
            if let Weight::F32(w) = &mut self.w {
                if g.w.len() == numel(w) {
                    out.push(Param {
                        name: "weight",
                        group: Group::Other,
                        value: w.as_mut_slice(),
                        grad: &g.w,
                    });
                }
            }
            if let Some(b) = &mut self.bias {
                if g.bias.len() == b.len() {
                    out.push(Param {
                        name: "bias",
                        group: Group::Other,
                        value: b,
                        grad: &g.bias,
                    });
                }
            }
        }
        out
    }

    /// Drops the training cache and gradients (memory between phases).
    pub fn clear(&mut self) {
        self.cache = None;
        self.grads = Grads::default();
    }

    /// Folds the adapters into W (`W += s B A + S`) for adapter-free inference; the
    /// forward pass then skips them until [`RosaLinear::unmerge`].
    ///
    /// Errors: [`Error::Unsupported`] for an NF4 W, which cannot hold the update.
    pub fn merge(&mut self, be: &dyn Backend) -> Result<()> {
        if matches!(self.w, Weight::Nf4(_)) {
            return Err(Error::Unsupported(
                "merging adapters into a 4-bit NF4 weight: export the adapters instead".into(),
            ));
        }
        if !self.merged {
            self.fold(be, 1.0)?;
            self.merged = true;
        }
        Ok(())
    }

    /// Takes the adapters back out of W (`W -= s B A + S`). Floating-point rounding makes
    /// this exact only up to an ulp or so of W's entries.
    pub fn unmerge(&mut self, be: &dyn Backend) -> Result<()> {
        if self.merged {
            self.fold(be, -1.0)?;
            self.merged = false;
        }
        Ok(())
    }

    /// Whether the adapters are currently folded into W.
    pub fn is_merged(&self) -> bool {
        self.merged
    }

    /// Merges and then drops the adapters: W alone carries the update.
    pub fn fold_adapters(&mut self, be: &dyn Backend) -> Result<()> {
        self.merge(be)?;
        self.lora = None;
        self.sparse = None;
        self.merged = false;
        self.clear();
        Ok(())
    }

    fn fold(&mut self, be: &dyn Backend, sign: f32) -> Result<()> {
        let (lora, sparse) = (&self.lora, &self.sparse);
        self.w.update(|w| {
            if let Some(l) = lora {
                be.gemm(
                    sign * l.scale,
                    l.b.as_ref(),
                    Trans::N,
                    l.a.as_ref(),
                    Trans::N,
                    1.0,
                    w.as_mut(),
                )?;
            }
            if let Some(sp) = sparse {
                let cols = w.cols();
                let dense = w.as_mut_slice();
                for i in 0..sp.s.rows() {
                    let (c, v) = sp.s.row(i);
                    for (&j, &x) in c.iter().zip(v) {
                        dense[i * cols + j as usize] += sign * x;
                    }
                }
            }
            Ok(())
        })
    }
}

fn numel(m: &Dense<f32>) -> usize {
    m.rows() * m.cols()
}
