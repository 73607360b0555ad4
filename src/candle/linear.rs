//! [`RosaLinear`]: a frozen linear layer with a low-rank and a sparse adapter, as a candle
//! module.

use std::sync::Arc;

use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Module, Result, Tensor, Var};

use super::storage::{dense_from_tensor, tensor_from_dense};
use super::SparseMask;
use crate::quant::{Nf4Config, Nf4Matrix};
use crate::random::Rng;
use crate::train::{lora_params, Group, Lora, LoraConfig};
use crate::{CsrShape, Dense, Error};

/// A weight or bias: frozen (a plain tensor, so autograd computes no gradient for it) or
/// trained (a [`Var`], under full fine-tuning).
#[derive(Debug, Clone)]
enum Param {
    Frozen(Tensor),
    Trained(Var),
}

impl Param {
    fn tensor(&self) -> &Tensor {
        match self {
            Param::Frozen(t) => t,
            Param::Trained(v) => v.as_tensor(),
        }
    }
}

/// The layer's W: a tensor, or 4-bit NF4 ([`RosaLinear::quantize_weight_nf4`]), which
/// holds no dense copy and is always frozen.
#[derive(Debug, Clone)]
enum Base {
    Dense(Param),
    Nf4 {
        w: Arc<super::nf4::Nf4Base>,
        device: Device,
    },
}

/// The low-rank pair of a [`RosaLinear`]: `A` (r x in), `B` (out x r), the factor `s` of
/// `s * B A`, and the dropout on the branch's input.
#[derive(Debug, Clone)]
pub struct LoraAdapter {
    a: Var,
    b: Var,
    scale: f32,
    dropout: f32,
}

impl LoraAdapter {
    /// Down projection, r x in.
    pub fn a(&self) -> &Var {
        &self.a
    }
    /// Up projection, out x r.
    pub fn b(&self) -> &Var {
        &self.b
    }
    /// `s` in `s * B A`.
    pub fn scale(&self) -> f32 {
        self.scale
    }
    /// Dropout probability on the branch's input (training only).
    pub fn dropout(&self) -> f32 {
        self.dropout
    }
    /// Rank `r`.
    pub fn rank(&self) -> usize {
        self.a.dims().first().copied().unwrap_or(0)
    }
}

/// The sparse adapter of a [`RosaLinear`]: a fixed mask over `W`'s shape and its values.
#[derive(Debug, Clone)]
pub struct SparseAdapter {
    mask: SparseMask,
    values: Var,
}

impl SparseAdapter {
    /// The mask (out x in).
    pub fn mask(&self) -> &SparseMask {
        &self.mask
    }
    /// The values, `nnz` of them in the mask's order.
    pub fn values(&self) -> &Var {
        &self.values
    }
}

/// A linear layer `y = x W^T + s (x A^T) B^T + x S^T (+ bias)` for candle's token-major
/// activations: `x` is `(..., in)` (typically `(batch, seq, in)` or `(tokens, in)`) and
/// `y` is `(..., out)`, in `x`'s dtype.
///
/// - `W` (out x in) is frozen and may be of any dtype candle multiplies (f32, f16, bf16,
///   f64); [`RosaLinear::set_train_weight`] makes it (and the bias) trainable instead,
///   for full fine-tuning.
/// - The adapters are [`Var`]s of the layer's adapter dtype (f32 unless
///   [`RosaLinear::set_adapter_dtype`] says f16 or bf16), and the adapted terms are summed
///   in it: LoRA ([`RosaLinear::add_lora`]: A Kaiming-uniform, B zero, scale `alpha / r`
///   or rsLoRA's `alpha / sqrt(r)`, dropout on the branch's input in training) and a
///   sparse adapter `S` over a fixed mask, values starting at zero
///   ([`RosaLinear::set_mask`]), through rosa's kernels.
/// - Dropout follows the layer's mode ([`RosaLinear::set_training`]; candle's
///   [`Module`] has no training flag) or the `train` argument of
///   [`RosaLinear::forward_t`].
///
/// Mask generation the paper's way (gradients of the dense weight after a LoRA warm-up)
/// goes through [`RosaLinear::start_probe`]; the other methods (full fine-tuning, LoRA,
/// SpA, random subspace adaptation) through [`RosaLinear::prepare`]. The module's own
/// example shows a whole RoSA run.
///
/// ```
/// use candle_core::{DType, Device, Module, Tensor};
/// use rosa::candle::RosaLinear;
/// use rosa::train::{LoraConfig, Scaling};
/// use rosa::{random::Rng, Csr};
/// let w = Tensor::ones((3, 4), DType::BF16, &Device::Cpu).unwrap();
/// let mut layer = RosaLinear::new(w, None).unwrap();
/// let cfg = LoraConfig { rank: 2, alpha: 4.0, scaling: Scaling::Standard, dropout: 0.0 };
/// layer.add_lora(cfg, &mut Rng::new(0)).unwrap();
/// layer.set_mask(&Csr::from_triplets(3, 4, &[(0, 1, 1.0f32), (2, 3, 1.0)]).unwrap()).unwrap();
/// let x = Tensor::ones((2, 5, 4), DType::BF16, &Device::Cpu).unwrap(); // (batch, seq, in)
/// let y = layer.forward(&x).unwrap();
/// assert_eq!(y.dims(), [2, 5, 3]);
/// // B and S start at zero, so the adapted layer starts as the frozen one.
/// assert_eq!(y.flatten_all().unwrap().to_vec1::<rosa::bf16>().unwrap()[0].to_f32(), 4.0);
/// assert_eq!(layer.trainable_params(), 2 * (3 + 4) + 2);
/// ```
#[derive(Debug, Clone)]
pub struct RosaLinear {
    weight: Base,
    bias: Option<Param>,
    lora: Option<LoraAdapter>,
    sparse: Option<SparseAdapter>,
    probe: Option<Var>,
    adapter_dtype: DType,
    training: bool,
    weight_changed: bool,
}

/// Errors unless `dtype` is one of the types rosa's kernels run on.
fn check_adapter_dtype(dtype: DType) -> Result<()> {
    match dtype {
        DType::F32 | DType::F16 | DType::BF16 => Ok(()),
        _ => Err(candle_core::Error::UnsupportedDTypeForOp(
            dtype,
            "RosaLinear adapters (f32, f16 or bf16)",
        )),
    }
}

/// A new [`Var`] holding a copy of `t`, never sharing storage with it (candle's
/// `Var::from_tensor` hands back a tensor that already is a variable as it is).
fn fresh_var(t: &Tensor) -> Result<Var> {
    Var::from_tensor(&t.detach())
}

fn shape_error(op: &'static str, detail: String) -> candle_core::Error {
    Error::ShapeMismatch { op, detail }.into()
}

impl RosaLinear {
    /// A frozen layer with weight `weight` (out x in) and an optional bias (out), on the
    /// weight's device; adapters will be f32.
    ///
    /// Errors unless the weight is 2-D and the bias 1-D of `out` elements on the same
    /// device.
    pub fn new(weight: Tensor, bias: Option<Tensor>) -> Result<Self> {
        let &[out, _] = weight.dims() else {
            return Err(shape_error(
                "RosaLinear::new",
                format!("the weight must be 2-D (out x in), got {:?}", weight.dims()),
            ));
        };
        if let Some(b) = &bias {
            if b.dims() != [out] {
                return Err(shape_error(
                    "RosaLinear::new",
                    format!("the bias must be ({out}), got {:?}", b.dims()),
                ));
            }
            if !b.device().same_device(weight.device()) {
                return Err(candle_core::Error::DeviceMismatchBinaryOp {
                    lhs: weight.device().location(),
                    rhs: b.device().location(),
                    op: "RosaLinear::new",
                });
            }
        }
        Ok(RosaLinear {
            weight: Base::Dense(Param::Frozen(weight.detach())),
            bias: bias.map(|b| Param::Frozen(b.detach())),
            lora: None,
            sparse: None,
            probe: None,
            adapter_dtype: DType::F32,
            training: false,
            weight_changed: false,
        })
    }

    /// Output features.
    pub fn out_features(&self) -> usize {
        match &self.weight {
            Base::Dense(p) => p.tensor().dims()[0],
            Base::Nf4 { w, .. } => w.w.rows(),
        }
    }

    /// Input features.
    pub fn in_features(&self) -> usize {
        match &self.weight {
            Base::Dense(p) => p.tensor().dims()[1],
            Base::Nf4 { w, .. } => w.w.cols(),
        }
    }

    /// `(out, in)`, the shape [`rosa::train::Budget`](crate::train::Budget) takes.
    pub fn shape(&self) -> (usize, usize) {
        (self.out_features(), self.in_features())
    }

    /// The weight (frozen, or a [`Var`] under full fine-tuning); an NF4 weight
    /// dequantized to a new f32 tensor (see [`RosaLinear::nf4_weight`] for the 4-bit
    /// one). Errors: an NF4 weight's dequantization (allocation).
    pub fn weight(&self) -> Result<Tensor> {
        match &self.weight {
            Base::Dense(p) => Ok(p.tensor().clone()),
            Base::Nf4 { w, device } => tensor_from_dense(&w.w.to_f32(), device),
        }
    }

    /// The 4-bit weight, when [`RosaLinear::quantize_weight_nf4`] made one.
    pub fn nf4_weight(&self) -> Option<&Nf4Matrix> {
        match &self.weight {
            Base::Nf4 { w, .. } => w.matrix(),
            Base::Dense(_) => None,
        }
    }

    /// Stores the frozen weight in 4-bit NormalFloat (QLoRA's NF4, [`Nf4Matrix`]) from
    /// now on: QLoRA with a LoRA adapter, QRoSA with LoRA and sparse ones. Every product
    /// with W dequantizes it, forward and backward alike, so no dense copy of W stays in
    /// the layer or in the autograd graph: on the CPU into rosa's f32 workspace, shared by
    /// all layers of a thread; on CUDA (feature `candle-cuda`) by rosa's NF4 kernel into a
    /// buffer of candle's pool that candle's GEMM reads and then frees. The layer's input
    /// and its products with W run in f32. A 4-bit W cannot take S in:
    /// [`RosaLinear::merge`] is refused (export the adapters, or take
    /// [`RosaLinear::merged_weight`]); so are full fine-tuning and replacing the weight.
    ///
    /// Errors: [`Error::Unsupported`] for a trained weight, or a layer neither on the CPU
    /// nor (with `candle-cuda`) on CUDA; the quantizer's errors (a non-finite weight, say).
    ///
    /// ```
    /// use candle_core::{Device, Module, Tensor};
    /// use rosa::candle::RosaLinear;
    /// use rosa::quant::Nf4Config;
    /// let w = Tensor::randn(0f32, 1.0, (8, 64), &Device::Cpu).unwrap();
    /// let mut layer = RosaLinear::new(w, None).unwrap();
    /// layer.quantize_weight_nf4(Nf4Config::default()).unwrap();
    /// assert!(layer.nf4_weight().is_some() && layer.merge().is_err());
    /// let x = Tensor::ones((2, 64), candle_core::DType::F32, &Device::Cpu).unwrap();
    /// // The same output as a dense layer holding the dequantized weight.
    /// let dense = RosaLinear::new(layer.weight().unwrap(), None).unwrap();
    /// let diff = (layer.forward(&x).unwrap() - dense.forward(&x).unwrap()).unwrap();
    /// assert!(diff.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap() < 1e-5);
    /// ```
    pub fn quantize_weight_nf4(&mut self, config: Nf4Config) -> Result<()> {
        let t = match &self.weight {
            Base::Nf4 { .. } => return Ok(()),
            Base::Dense(Param::Trained(_)) => {
                return Err(Error::Unsupported(
                    "NF4 storage of a trained weight: turn full fine-tuning off first".into(),
                )
                .into())
            }
            Base::Dense(Param::Frozen(t)) => t,
        };
        // CUDA needs rosa's NF4 kernel, which only the candle-cuda build links.
        if !(t.device().is_cpu() || cfg!(feature = "candle-cuda") && t.device().is_cuda()) {
            return Err(Error::Unsupported(format!(
                "an NF4 weight in rosa::candle runs on the CPU, or on CUDA with the \
                 candle-cuda feature; the layer is on {:?}",
                t.device().location()
            ))
            .into());
        }
        // Quantized on the host (W is read back once from a GPU), uploaded per device on
        // first use.
        let q = Nf4Matrix::quantize(dense_from_tensor(t)?.as_ref(), config)?;
        self.weight = Base::Nf4 {
            w: Arc::new(super::nf4::Nf4Base::new(q)),
            device: t.device().clone(),
        };
        Ok(())
    }

    /// The bias, if any.
    pub fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref().map(Param::tensor)
    }

    /// The device everything lives on.
    pub fn device(&self) -> &Device {
        match &self.weight {
            Base::Dense(p) => p.tensor().device(),
            Base::Nf4 { device, .. } => device,
        }
    }

    /// The dtype of the adapters and of the adapted terms' sum.
    pub fn adapter_dtype(&self) -> DType {
        self.adapter_dtype
    }

    /// Sets the adapters' dtype (f32, f16 or bf16); only before any adapter exists.
    pub fn set_adapter_dtype(&mut self, dtype: DType) -> Result<()> {
        check_adapter_dtype(dtype)?;
        if self.lora.is_some() || self.sparse.is_some() || self.trains_weight() {
            return Err(Error::InvalidArgument(
                "the adapter dtype is set before any adapter is added".into(),
            )
            .into());
        }
        self.adapter_dtype = dtype;
        Ok(())
    }

    /// The low-rank adapter, if any.
    pub fn lora(&self) -> Option<&LoraAdapter> {
        self.lora.as_ref()
    }

    /// The sparse adapter, if any.
    pub fn sparse(&self) -> Option<&SparseAdapter> {
        self.sparse.as_ref()
    }

    /// Adds a low-rank adapter: `A` drawn as rosa's core layer draws it
    /// ([`Lora::init`]: Kaiming-uniform, bound `1/sqrt(in)`, from `rng`), `B` zero, so the
    /// layer's output does not change.
    ///
    /// Errors on rank 0 or a dropout outside `[0, 1)`.
    pub fn add_lora(&mut self, cfg: LoraConfig, rng: &mut Rng) -> Result<()> {
        if cfg.rank == 0 {
            return Err(Error::InvalidArgument("LoRA rank 0".into()).into());
        }
        let lora = Lora::init(cfg, self.out_features(), self.in_features(), rng);
        self.set_lora(
            &tensor_from_dense(&lora.a, self.device())?,
            &tensor_from_dense(&lora.b, self.device())?,
            lora.scale,
            lora.dropout,
        )
    }

    /// Sets the low-rank pair directly (copied into new [`Var`]s of the adapter dtype):
    /// `a` (r x in), `b` (out x r), `scale` and `dropout` in `[0, 1)`.
    pub fn set_lora(&mut self, a: &Tensor, b: &Tensor, scale: f32, dropout: f32) -> Result<()> {
        let (out, inp) = self.shape();
        let ok = match (a.dims(), b.dims()) {
            (&[ra, ca], &[rb, cb]) => ca == inp && rb == out && ra == cb,
            _ => false,
        };
        if !ok {
            return Err(shape_error(
                "RosaLinear::set_lora",
                format!(
                    "A is {:?}, B is {:?}, W is ({out}, {inp}) (need A: (r, in), B: (out, r))",
                    a.dims(),
                    b.dims()
                ),
            ));
        }
        if !(0.0..1.0).contains(&dropout) || !scale.is_finite() {
            return Err(Error::InvalidArgument(format!(
                "LoRA dropout {dropout} must be in [0, 1) and scale {scale} finite"
            ))
            .into());
        }
        let var =
            |t: &Tensor| fresh_var(&t.to_device(self.device())?.to_dtype(self.adapter_dtype)?);
        self.lora = Some(LoraAdapter {
            a: var(a)?,
            b: var(b)?,
            scale,
            dropout,
        });
        Ok(())
    }

    /// Gives the layer a sparse adapter with `mask`'s structure (out x in; its values are
    /// ignored) and zero values, and ends gradient probing.
    pub fn set_mask(&mut self, mask: &impl CsrShape) -> Result<()> {
        let mask = SparseMask::from_csr(mask);
        let values = mask.zeros(self.adapter_dtype, self.device())?;
        self.set_sparse(mask, &values)
    }

    /// Sets the sparse adapter: a mask (out x in) and its values (1-D, `nnz`, copied into
    /// a new [`Var`] of the adapter dtype). Ends gradient probing.
    pub fn set_sparse(&mut self, mask: SparseMask, values: &Tensor) -> Result<()> {
        if (mask.rows(), mask.cols()) != self.shape() {
            return Err(shape_error(
                "RosaLinear::set_sparse",
                format!(
                    "the mask is {} x {}, W is {} x {}",
                    mask.rows(),
                    mask.cols(),
                    self.out_features(),
                    self.in_features()
                ),
            ));
        }
        if values.dims() != [mask.nnz()] {
            return Err(Error::ValuesLength {
                got: values.elem_count(),
                nnz: mask.nnz(),
            }
            .into());
        }
        let values = fresh_var(
            &values
                .to_device(self.device())?
                .to_dtype(self.adapter_dtype)?,
        )?;
        self.sparse = Some(SparseAdapter { mask, values });
        self.probe = None;
        Ok(())
    }

    /// Full fine-tuning on (`true`): the weight and bias become [`Var`]s of the adapter
    /// dtype; off (`false`): they are frozen again, as they are.
    ///
    /// ```
    /// use candle_core::{DType, Device, Tensor};
    /// use rosa::candle::RosaLinear;
    /// let w = Tensor::zeros((3, 4), DType::BF16, &Device::Cpu).unwrap();
    /// let mut layer = RosaLinear::new(w, Some(Tensor::zeros(3, DType::BF16, &Device::Cpu).unwrap())).unwrap();
    /// layer.set_train_weight(true).unwrap();
    /// assert_eq!(layer.weight().unwrap().dtype(), DType::F32); // trained in the adapter dtype
    /// assert_eq!((layer.vars().len(), layer.trainable_params()), (2, 3 * 4 + 3));
    /// ```
    pub fn set_train_weight(&mut self, on: bool) -> Result<()> {
        let Base::Dense(weight) = &self.weight else {
            if on {
                return Err(Error::Unsupported(
                    "full fine-tuning of an NF4 weight: it is frozen".into(),
                )
                .into());
            }
            return Ok(());
        };
        let dtype = self.adapter_dtype;
        let convert = |p: &Param| -> Result<Param> {
            Ok(match (p, on) {
                (Param::Frozen(t), true) => Param::Trained(fresh_var(&t.to_dtype(dtype)?)?),
                (Param::Trained(v), false) => Param::Frozen(v.as_detached_tensor()),
                (p, _) => p.clone(),
            })
        };
        self.weight = Base::Dense(convert(weight)?);
        self.bias = self.bias.as_ref().map(convert).transpose()?;
        self.weight_changed |= on;
        Ok(())
    }

    /// Whether full fine-tuning trains the weight and bias.
    pub fn trains_weight(&self) -> bool {
        matches!(self.weight, Base::Dense(Param::Trained(_)))
    }

    /// Sets the layer's mode: dropout on the LoRA branch applies in training mode only.
    /// Layers start in evaluation mode.
    pub fn set_training(&mut self, training: bool) {
        self.training = training;
    }

    /// Whether the layer is in training mode.
    pub fn is_training(&self) -> bool {
        self.training
    }

    /// Starts probing the dense weight gradient for mask generation: adds a zero f32
    /// term `P` (out x in) to the weight, `y += x P^T`, so that after a backward pass
    /// [`RosaLinear::probe_gradient`] reads `dL/dW = dY^T X`, the gradient the paper's
    /// masks are chosen from, whatever the weight's dtype and even though it is frozen.
    /// Costs one dense GEMM per forward and two per backward until
    /// [`RosaLinear::stop_probe`] or [`RosaLinear::set_mask`].
    ///
    /// ```
    /// use candle_core::{DType, Device, Module, Tensor};
    /// use rosa::candle::RosaLinear;
    /// use rosa::train::{Accumulation, GradAccumulator};
    /// let w = Tensor::zeros((2, 3), DType::F32, &Device::Cpu).unwrap();
    /// let mut layer = RosaLinear::new(w, None).unwrap();
    /// layer.start_probe().unwrap();
    /// let x = Tensor::new(&[[1.0f32, 2.0, 3.0]], &Device::Cpu).unwrap();
    /// let grads = layer.forward(&x).unwrap().sum_all().unwrap().backward().unwrap();
    /// let g = layer.probe_gradient(&grads).unwrap(); // dL/dW = dY^T X
    /// assert_eq!(g.as_slice(), &[1.0, 2.0, 3.0, 1.0, 2.0, 3.0]);
    /// let mut acc = GradAccumulator::new(Accumulation::MeanSquared, 1);
    /// acc.add(0, &g).unwrap();
    /// layer.set_mask(&acc.masks(&[0.5]).unwrap()[0]).unwrap(); // the 3 largest
    /// assert_eq!(layer.sparse().unwrap().mask().col_idx(), &[1, 2, 2]);
    /// ```
    pub fn start_probe(&mut self) -> Result<()> {
        self.probe = Some(Var::zeros(self.shape(), DType::F32, self.device())?);
        Ok(())
    }

    /// Ends gradient probing.
    pub fn stop_probe(&mut self) {
        self.probe = None;
    }

    /// The dense weight gradient `dL/dW` (out x in, f32) of the backward pass that made
    /// `grads`, for [`GradAccumulator::add`](crate::train::GradAccumulator::add).
    ///
    /// Errors unless probing is on and `grads` holds the probe's gradient (a forward pass
    /// through this layer after [`RosaLinear::start_probe`], then `backward`).
    pub fn probe_gradient(&self, grads: &GradStore) -> Result<Dense<f32>> {
        let probe = self.probe.as_ref().ok_or_else(|| {
            Error::InvalidArgument("probe_gradient: the layer is not probing".into())
        })?;
        let g = grads.get(probe).ok_or_else(|| {
            Error::InvalidArgument(
                "probe_gradient: no gradient for the probe (no forward pass since start_probe?)"
                    .into(),
            )
        })?;
        dense_from_tensor(g)
    }

    /// The number of values an optimizer updates: `r (out + in)` for LoRA
    /// ([`lora_params`]), `nnz` for the sparse adapter, `out * in` (+ `out`) under full
    /// fine-tuning.
    pub fn trainable_params(&self) -> usize {
        let lora = self
            .lora
            .as_ref()
            .map_or(0, |l| lora_params(&[self.shape()], l.rank()));
        let sparse = self.sparse.as_ref().map_or(0, |s| s.mask.nnz());
        let full = if self.trains_weight() {
            self.out_features() * self.in_features() + self.bias().map_or(0, Tensor::elem_count)
        } else {
            0
        };
        lora + sparse + full
    }

    /// Every trainable [`Var`]: LoRA's A and B, the sparse values, and under full
    /// fine-tuning the weight and bias. Rebuild the optimizer after anything that makes
    /// new ones (an adapter added, a mask set, a random subspace re-split).
    pub fn vars(&self) -> Vec<Var> {
        [Group::LowRank, Group::Other]
            .into_iter()
            .flat_map(|g| self.group_vars(g))
            .collect()
    }

    /// The trainable [`Var`]s of one learning-rate group, as rosa's trainer groups them:
    /// [`Group::LowRank`] is A and B; [`Group::Other`] the sparse values, and the weight
    /// and bias under full fine-tuning.
    pub fn group_vars(&self, group: Group) -> Vec<Var> {
        let mut out = Vec::new();
        match group {
            Group::LowRank => {
                if let Some(l) = &self.lora {
                    out.extend([l.a.clone(), l.b.clone()]);
                }
            }
            Group::Other => {
                if let Some(s) = &self.sparse {
                    out.push(s.values.clone());
                }
                let weight = match &self.weight {
                    Base::Dense(p) => Some(p),
                    Base::Nf4 { .. } => None,
                };
                for p in weight.into_iter().chain(&self.bias) {
                    if let Param::Trained(v) = p {
                        out.push(v.clone());
                    }
                }
            }
        }
        out
    }

    /// The forward pass with an explicit mode: dropout on the LoRA branch when `train`.
    ///
    /// Errors unless `x`'s last dimension is `in`.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let (out, inp) = self.shape();
        let Some((&last, lead)) = x.dims().split_last() else {
            return Err(shape_error(
                "RosaLinear::forward",
                "the input is a scalar".into(),
            ));
        };
        if last != inp {
            return Err(shape_error(
                "RosaLinear::forward",
                format!(
                    "the input is {:?}, its last dimension must be {inp}",
                    x.dims()
                ),
            ));
        }
        let tokens = lead.iter().product::<usize>();
        let x2 = x.reshape((tokens, inp))?;
        let base = match &self.weight {
            Base::Dense(p) => {
                let w = p.tensor();
                x2.to_dtype(w.dtype())?.matmul(&w.t()?)?
            }
            Base::Nf4 { w, .. } => super::nf4::product(w, &x2.to_dtype(DType::F32)?, false)?,
        };
        let adapted = self.lora.is_some() || self.sparse.is_some() || self.probe.is_some();
        let mut y = if adapted {
            let xa = x2.to_dtype(self.adapter_dtype)?;
            let mut y = base.to_dtype(self.adapter_dtype)?;
            if let Some(l) = &self.lora {
                let xl = if train && l.dropout > 0.0 {
                    candle_nn::ops::dropout(&xa, l.dropout)?
                } else {
                    xa.clone()
                };
                let h = xl.matmul(&l.a.t()?)?;
                y = (y + (h.matmul(&l.b.t()?)? * f64::from(l.scale))?)?;
            }
            if let Some(s) = &self.sparse {
                // Token-major activations make the sparse term the dense-times-sparse
                // product x S^T, which rosa's kernels (sparse operand on the left) compute
                // transposed: (x S^T)^T = S x^T. That is an SpMM with S (out x in) or an
                // SpMM^T with S^T's CSR; either needs x^T row-major (one copy here,
                // which the op's backward reuses; the f16/bf16 kernels widen the dense
                // operand into a copy anyway) and returns the (out x tokens) result,
                // left as a transposed view for the add. We keep S itself: the forward,
                // all that inference runs, is then the plain SpMM with no gather through
                // the transpose plan, the mask stays in W's orientation (as the mask
                // generator and the core layer have it), and the backward is the core
                // layer's pair: SpMM^T through the plan for dX, SDDMM for dS.
                let xt = xa.t()?.contiguous()?;
                y = (y + s.mask.spmm(&s.values, &xt)?.t()?)?;
            }
            if let Some(p) = &self.probe {
                let g = xa.to_dtype(DType::F32)?.matmul(&p.t()?)?;
                y = (y + g.to_dtype(self.adapter_dtype)?)?;
            }
            y
        } else {
            base
        };
        if let Some(b) = self.bias() {
            y = y.broadcast_add(&b.to_dtype(y.dtype())?)?;
        }
        let mut dims = lead.to_vec();
        dims.push(out);
        y.to_dtype(x.dtype())?.reshape(dims)
    }

    /// The weight with the adapters folded in, `W + s B A + S`, in `W`'s dtype (summed in
    /// f32, rounded once): the weight of an adapter-free layer for inference.
    pub fn merged_weight(&self) -> Result<Tensor> {
        let w = &self.weight()?;
        let mut m = w.to_dtype(DType::F32)?;
        if let Some(l) = &self.lora {
            let ba =
                l.b.to_dtype(DType::F32)?
                    .matmul(&l.a.to_dtype(DType::F32)?)?;
            m = (m + (ba * f64::from(l.scale))?)?;
        }
        if let Some(s) = &self.sparse {
            m = (m + s.mask.to_dense(&s.values.to_dtype(DType::F32)?)?)?;
        }
        Ok(m.to_dtype(w.dtype())?.detach())
    }

    /// Folds the adapters into the weight ([`RosaLinear::merged_weight`]) and drops them:
    /// the layer then costs what a plain linear layer costs. Export the adapters first
    /// ([`save_adapters`](super::save_adapters)) if they are wanted apart.
    ///
    /// ```
    /// use candle_core::{DType, Device, Tensor};
    /// use rosa::candle::RosaLinear;
    /// use rosa::Csr;
    /// let w = Tensor::zeros((2, 2), DType::F32, &Device::Cpu).unwrap();
    /// let mut layer = RosaLinear::new(w, None).unwrap();
    /// let s = Csr::from_triplets(2, 2, &[(1, 0, 5.0f32)]).unwrap();
    /// let mask = rosa::candle::SparseMask::from_csr(&s);
    /// layer.set_sparse(mask.clone(), &mask.values(&s, &Device::Cpu).unwrap()).unwrap();
    /// layer.merge().unwrap();
    /// assert_eq!(layer.weight().unwrap().to_vec2::<f32>().unwrap(), [[0.0, 0.0], [5.0, 0.0]]);
    /// assert!(layer.sparse().is_none());
    /// ```
    pub fn merge(&mut self) -> Result<()> {
        let Base::Dense(weight) = &self.weight else {
            return Err(Error::Unsupported(
                "merging adapters into a 4-bit NF4 weight: export the adapters instead \
                 (save_adapters), or build a dense layer from merged_weight()"
                    .into(),
            )
            .into());
        };
        let merged = self.merged_weight()?;
        self.weight = Base::Dense(match weight {
            Param::Frozen(_) => Param::Frozen(merged),
            Param::Trained(_) => Param::Trained(fresh_var(&merged)?),
        });
        self.lora = None;
        self.sparse = None;
        self.probe = None;
        self.weight_changed = true;
        Ok(())
    }

    /// A plain [`candle_nn::Linear`] with the merged weight and the bias, for inference.
    pub fn to_linear(&self) -> Result<candle_nn::Linear> {
        Ok(candle_nn::Linear::new(
            self.merged_weight()?,
            self.bias().map(Tensor::detach),
        ))
    }

    /// Whether the weight or bias differ from the ones the layer was made with (full
    /// fine-tuning, a random subspace split, a merge): then they are saved with the
    /// adapters.
    pub(crate) fn weight_changed(&self) -> bool {
        self.weight_changed
    }

    /// Replaces the weight (same shape; kept frozen or trained as it is) and optionally
    /// the bias.
    pub(crate) fn replace_weight(&mut self, w: Tensor, bias: Option<Tensor>) -> Result<()> {
        let Base::Dense(weight) = &self.weight else {
            return Err(
                Error::Unsupported("replacing a 4-bit NF4 weight: it is frozen".into()).into(),
            );
        };
        if w.dims() != weight.tensor().dims() {
            return Err(shape_error(
                "RosaLinear::replace_weight",
                format!(
                    "new W is {:?}, the layer is {:?}",
                    w.dims(),
                    weight.tensor().dims()
                ),
            ));
        }
        let w = w.to_device(self.device())?;
        self.weight = Base::Dense(match weight {
            Param::Frozen(_) => Param::Frozen(w.detach()),
            Param::Trained(_) => Param::Trained(fresh_var(&w)?),
        });
        if let Some(b) = bias {
            if b.dims() != [self.out_features()] {
                return Err(shape_error(
                    "RosaLinear::replace_weight",
                    format!(
                        "the bias must be ({}), got {:?}",
                        self.out_features(),
                        b.dims()
                    ),
                ));
            }
            let b = b.to_device(self.device())?;
            self.bias = Some(match &self.bias {
                Some(Param::Trained(_)) => Param::Trained(fresh_var(&b)?),
                _ => Param::Frozen(b.detach()),
            });
        }
        self.weight_changed = true;
        Ok(())
    }
}

/// The forward pass in the layer's mode ([`RosaLinear::set_training`]).
impl Module for RosaLinear {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_t(x, self.training)
    }
}
