//! [`DeviceRosaLinear`]: the RoSA layer with every tensor resident on the GPU, the CUDA
//! twin of [`crate::train::RosaLinear`] (same forward, backward and merge semantics).

use cudarc::driver::CudaSlice;

use super::elementwise;
use super::{
    mem, quant, result, sddmm, spmm, spmm_f32_out, spmm_t, spmm_t_f32_out, Blas, Device, DeviceCsr,
    DeviceDense, DeviceNf4, SparseView, SparseViewMut, Transpose,
};
use crate::bf16;
use crate::quant::Nf4Matrix;
use crate::train::layer::check_feature_rows;
use crate::train::plan::{self, LayerPlan, PlanChoice, PlanInputs, PlanModel};
use crate::train::{Group, Lora, RosaLinear, Weight};
use crate::{Dense, Error, Result};

/// The frozen weight on the device, in its host storage type.
#[derive(Debug)]
enum DeviceWeight {
    F32(DeviceDense<f32>),
    /// Products round the f32 operand to bf16 and accumulate in f32 (cuBLAS GemmEx), the
    /// usual mixed-precision path: the CPU layer widens W instead, so results agree to
    /// bf16 precision, not f32.
    Bf16(DeviceDense<bf16>),
    /// 4-bit NF4 (QLoRA / QRoSA): each product dequantizes W into the device's shared bf16
    /// workspace, then runs as the bf16 W does. W is frozen, so the host matrix kept
    /// beside it (an eighth of an f32 W's bytes) is what `to_host` returns.
    Nf4(Box<Nf4Weight>),
}

#[derive(Debug)]
struct Nf4Weight {
    dev: DeviceNf4,
    host: Nf4Matrix,
}

/// A 4-bit W takes neither S (the merged plan) nor the adapters (merge): the errors.
fn nf4_refusal(what: &str) -> Error {
    Error::Unsupported(format!(
        "{what} into a 4-bit NF4 weight: it is frozen; export the adapters instead"
    ))
}

impl DeviceWeight {
    /// A device copy in the same type.
    fn copy(&self, dev: &Device) -> Result<Self> {
        Ok(match self {
            DeviceWeight::F32(w) => {
                let mut c = DeviceDense::zeros(dev, w.rows(), w.cols())?;
                elementwise::cast(dev, w, &mut c)?;
                DeviceWeight::F32(c)
            }
            DeviceWeight::Bf16(w) => {
                let mut c = DeviceDense::zeros(dev, w.rows(), w.cols())?;
                elementwise::cast(dev, w, &mut c)?;
                DeviceWeight::Bf16(c)
            }
            DeviceWeight::Nf4(_) => return Err(nf4_refusal("a merged copy of W + S")),
        })
    }

    /// Bytes per element of the products' W: the workspace's bf16 for NF4.
    fn element_bytes(&self) -> usize {
        match self {
            DeviceWeight::F32(_) => 4,
            DeviceWeight::Bf16(_) | DeviceWeight::Nf4(_) => 2,
        }
    }

    fn shape(&self) -> (usize, usize) {
        match self {
            DeviceWeight::F32(w) => (w.rows(), w.cols()),
            DeviceWeight::Bf16(w) => (w.rows(), w.cols()),
            DeviceWeight::Nf4(q) => (q.dev.rows(), q.dev.cols()),
        }
    }
}

/// The merged plan's working copy `W + S` (see [`LayerPlan::Merged`]).
#[derive(Debug)]
struct Merged {
    w: DeviceWeight,
    /// S (or W) changed since the copy's mask entries were last rewritten.
    stale: bool,
}

#[derive(Debug)]
struct DeviceLora {
    a: DeviceDense<f32>,
    b: DeviceDense<f32>,
    scale: f32,
}

/// What a training-mode forward pass keeps: the input, and `A x` when there is a
/// low-rank branch.
#[derive(Debug)]
struct Cache {
    x: DeviceDense<f32>,
    h: Option<DeviceDense<f32>>,
    /// x rounded to bf16 for a bf16 W's product, kept for the bf16 SDDMM of dS.
    x16: Option<DeviceDense<bf16>>,
}

/// Gradient buffers, allocated with the layer and overwritten by each backward pass.
#[derive(Debug)]
struct Grads {
    a: Option<DeviceDense<f32>>,
    b: Option<DeviceDense<f32>>,
    /// S's gradient shares its mask, so SDDMM writes it straight into a second CSR.
    s: Option<DeviceCsr<f32>>,
    /// With a bf16 W, SDDMM reads the bf16 activations of W's products (half the bytes
    /// gathered per nonzero) and writes dS here, f32-accumulated and rounded once, before
    /// it is widened into `s` for the f32 master values.
    s16: Option<CudaSlice<bf16>>,
    w: Option<DeviceDense<f32>>,
    bias: Option<DeviceDense<f32>>,
    /// Whether a backward pass has filled them (the optimizer sees nothing before).
    ready: bool,
}

/// One trainable tensor on the device and its gradient, as [`super::DeviceAdamW`] sees it:
/// the device twin of [`crate::train::Param`].
#[derive(Debug)]
pub struct DeviceParam<'a> {
    /// Stable name within the layer (`lora_a`, `lora_b`, `sparse`, `weight`, `bias`).
    pub name: &'static str,
    /// Learning-rate group.
    pub group: Group,
    pub(crate) value: &'a mut cudarc::driver::CudaSlice<f32>,
    pub(crate) grad: &'a cudarc::driver::CudaSlice<f32>,
    pub(crate) len: usize,
}

impl DeviceParam<'_> {
    /// Number of values.
    ///
    /// ```no_run
    /// # use rosa::cuda::{Device, DeviceDense, DeviceRosaLinear};
    /// # let dev = Device::new(0)?;
    /// # let mut host = rosa::train::RosaLinear::new(rosa::random::dense::<f32>(8, 4, 1), None);
    /// # host.set_sparse_mask(&rosa::random::csr::<f32>(8, 4, 0.5, 2)?)?;
    /// let mut layer = DeviceRosaLinear::from_host(&dev, &host)?;
    /// layer.forward(&DeviceDense::filled(&dev, 4, 2, 1.0f32)?, true)?;
    /// layer.backward(&DeviceDense::filled(&dev, 8, 2, 1.0f32)?)?;
    /// let params = layer.params();
    /// assert_eq!(params[0].len(), host.sparse().unwrap().matrix().values().len());
    /// # Ok::<(), rosa::Error>(())
    /// ```
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the tensor has no values (an empty mask).
    ///
    /// ```no_run
    /// # use rosa::cuda::{Device, DeviceDense, DeviceRosaLinear};
    /// # let dev = Device::new(0)?;
    /// # let mut host = rosa::train::RosaLinear::new(rosa::random::dense::<f32>(8, 4, 1), None);
    /// # host.set_sparse_mask(&rosa::random::csr::<f32>(8, 4, 0.5, 2)?)?;
    /// let mut layer = DeviceRosaLinear::from_host(&dev, &host)?;
    /// layer.forward(&DeviceDense::filled(&dev, 4, 2, 1.0f32)?, true)?;
    /// layer.backward(&DeviceDense::filled(&dev, 8, 2, 1.0f32)?)?;
    /// let params = layer.params();
    /// assert_eq!(params[0].is_empty(), params[0].len() == 0);
    /// # Ok::<(), rosa::Error>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The gradient, copied back (waits for the queued work): for checks and logs.
    ///
    /// ```no_run
    /// # use rosa::cuda::{Device, DeviceDense, DeviceRosaLinear};
    /// # let dev = Device::new(0)?;
    /// # let mut host = rosa::train::RosaLinear::new(rosa::random::dense::<f32>(8, 4, 1), None);
    /// # host.set_sparse_mask(&rosa::random::csr::<f32>(8, 4, 0.5, 2)?)?;
    /// let mut layer = DeviceRosaLinear::from_host(&dev, &host)?;
    /// layer.forward(&DeviceDense::filled(&dev, 4, 2, 1.0f32)?, true)?;
    /// layer.backward(&DeviceDense::filled(&dev, 8, 2, 1.0f32)?)?;
    /// let params = layer.params();
    /// let g = params[0].grad_to_host()?; // dS = (dY X^T) at the mask
    /// assert!(g.iter().all(|&v| v == 2.0));
    /// # Ok::<(), rosa::Error>(())
    /// ```
    pub fn grad_to_host(&self) -> Result<Vec<f32>> {
        super::mem::download(self.grad, self.len)
    }

    /// The values, copied back (waits for the queued work).
    ///
    /// ```no_run
    /// # use rosa::cuda::{Device, DeviceDense, DeviceRosaLinear};
    /// # let dev = Device::new(0)?;
    /// # let mut host = rosa::train::RosaLinear::new(rosa::random::dense::<f32>(8, 4, 1), None);
    /// # host.set_sparse_mask(&rosa::random::csr::<f32>(8, 4, 0.5, 2)?)?;
    /// let mut layer = DeviceRosaLinear::from_host(&dev, &host)?;
    /// layer.forward(&DeviceDense::filled(&dev, 4, 2, 1.0f32)?, true)?;
    /// layer.backward(&DeviceDense::filled(&dev, 8, 2, 1.0f32)?)?;
    /// let params = layer.params();
    /// assert!(params[0].value_to_host()?.iter().all(|&v| v == 0.0)); // S starts at zero
    /// # Ok::<(), rosa::Error>(())
    /// ```
    pub fn value_to_host(&self) -> Result<Vec<f32>> {
        super::mem::download(self.value, self.len)
    }
}

/// A [`RosaLinear`] on a GPU: `y = W x + s B (A x) + S x (+ bias)` with feature-major
/// activations (`x` is in x tokens, `y` out x tokens), every tensor in device memory and
/// no host round trip per product. Dense products run on cuBLAS (f32 without TF32, or a
/// bf16 W times bf16-rounded activations accumulated in f32), the sparse ones on this
/// crate's SpMM, transposed SpMM and SDDMM (for a bf16 or NF4 W on the same bf16
/// activations and S rounded to bf16, accumulated in f32 into the f32 output), the rest on
/// `csrc/elementwise.cu`.
///
/// Built from a host layer ([`DeviceRosaLinear::from_host`]) and copied back with
/// [`DeviceRosaLinear::to_host`]; trained with [`super::DeviceAdamW`]. LoRA dropout has no
/// device path yet (refused when building).
///
/// ```no_run
/// use rosa::cuda::{Device, DeviceAdamW, DeviceDense, DeviceRosaLinear};
/// use rosa::train::{AdamConfig, LoraConfig, RosaLinear, Scaling};
/// use rosa::{random::Rng, Csr, Dense};
/// let dev = Device::new(0)?;
/// let mut host = RosaLinear::new(rosa::random::dense::<f32>(64, 32, 1), None);
/// host.add_lora(LoraConfig { rank: 4, alpha: 8.0, scaling: Scaling::Standard, dropout: 0.0 }, &mut Rng::new(0));
/// host.set_sparse_mask(&rosa::random::csr::<f32>(64, 32, 0.05, 2)?)?;
/// let mut layer = DeviceRosaLinear::from_host(&dev, &host)?;
/// let x = DeviceDense::from_host(&dev, rosa::random::dense::<f32>(32, 16, 3).as_ref())?;
/// let y = layer.forward(&x, true)?;
/// let dx = layer.backward(&DeviceDense::filled(&dev, 64, 16, 1.0f32)?)?;
/// let mut opt = DeviceAdamW::new(AdamConfig::default());
/// let mut params: Vec<_> = layer.params().into_iter().map(|p| (p.name.to_string(), p)).collect();
/// let grad_norm = opt.step(&dev, &mut params, 1.0)?;
/// drop(params);
/// let trained: RosaLinear = layer.to_host()?;
/// # Ok::<(), rosa::Error>(())
/// ```
#[derive(Debug)]
pub struct DeviceRosaLinear {
    dev: Device,
    blas: Blas,
    w: DeviceWeight,
    bias: Option<DeviceDense<f32>>,
    lora: Option<DeviceLora>,
    sparse: Option<DeviceCsr<f32>>,
    /// With a bf16 or NF4 W: S's values rounded to bf16 before each sparse-plan product,
    /// which then reads bf16 values and activations (half the bytes per nonzero) and adds
    /// into the f32 output unrounded.
    sparse16: Option<CudaSlice<bf16>>,
    train_w: bool,
    merged: bool,
    cache: Option<Cache>,
    grads: Grads,
    plan: LayerPlan,
    /// The working copy, present under the merged plan when there is a sparse adapter.
    work: Option<Merged>,
}

fn column(dev: &Device, v: &[f32]) -> Result<DeviceDense<f32>> {
    DeviceDense::from_host(dev, Dense::from_vec(v.len(), 1, v.to_vec())?.as_ref())
}

impl DeviceRosaLinear {
    /// Uploads `layer`: its weight in its storage type, bias, adapters, the mask with its
    /// transpose plan, and zeroed gradient buffers for whatever trains.
    ///
    /// ```no_run
    /// # use rosa::cuda::{Device, DeviceDense, DeviceRosaLinear};
    /// # let dev = Device::new(0)?;
    /// # let host = rosa::train::RosaLinear::new(rosa::random::dense::<f32>(8, 4, 1), None);
    /// let layer = DeviceRosaLinear::from_host(&dev, &host)?;
    /// assert_eq!((layer.out_features(), layer.in_features()), (8, 4));
    /// # Ok::<(), rosa::Error>(())
    /// ```
    pub fn from_host(dev: &Device, layer: &RosaLinear) -> Result<Self> {
        if layer.lora().is_some_and(|l| l.dropout > 0.0) {
            return Err(Error::Unsupported(
                "LoRA dropout on the CUDA layer (DeviceRosaLinear); use dropout 0 or the CPU"
                    .into(),
            ));
        }
        let w = match layer.weight() {
            Weight::F32(w) => DeviceWeight::F32(DeviceDense::from_host(dev, w.as_ref())?),
            Weight::Bf16(w) => DeviceWeight::Bf16(DeviceDense::from_host(dev, w.as_ref())?),
            Weight::Nf4(q) => DeviceWeight::Nf4(Box::new(Nf4Weight {
                dev: DeviceNf4::from_host(dev, q)?,
                host: q.clone(),
            })),
        };
        let bias = layer.bias().map(|b| column(dev, b)).transpose()?;
        let lora = layer
            .lora()
            .map(|l| -> Result<DeviceLora> {
                Ok(DeviceLora {
                    a: DeviceDense::from_host(dev, l.a.as_ref())?,
                    b: DeviceDense::from_host(dev, l.b.as_ref())?,
                    scale: l.scale,
                })
            })
            .transpose()?;
        let s_host = layer.sparse().map(|s| s.matrix());
        let sparse = s_host
            .map(|s| DeviceCsr::from_host(dev, s.as_ref()))
            .transpose()?;
        let train_w = layer.trains_weight();
        let (out, inp) = (layer.out_features(), layer.in_features());
        let zeros = |r, c| DeviceDense::<f32>::zeros(dev, r, c);
        // A bf16 or NF4 W's sparse terms run in bf16: nnz bf16 values for S and for dS.
        let values16 = || -> Result<Option<CudaSlice<bf16>>> {
            match (&w, s_host) {
                (DeviceWeight::Bf16(_) | DeviceWeight::Nf4(_), Some(s)) => {
                    Ok(Some(mem::zeros(dev.stream(), crate::CsrShape::nnz(s))?))
                }
                _ => Ok(None),
            }
        };
        let grads = Grads {
            a: lora.as_ref().map(|l| zeros(l.a.rows(), inp)).transpose()?,
            b: lora.as_ref().map(|l| zeros(out, l.b.cols())).transpose()?,
            s: s_host
                .map(|s| {
                    let g = s.with_values(vec![0.0f32; crate::CsrShape::nnz(s)])?;
                    DeviceCsr::from_host(dev, g.as_ref())
                })
                .transpose()?,
            s16: values16()?,
            w: train_w.then(|| zeros(out, inp)).transpose()?,
            bias: (train_w && bias.is_some())
                .then(|| zeros(out, 1))
                .transpose()?,
            ready: false,
        };
        let sparse16 = values16()?;
        Ok(DeviceRosaLinear {
            dev: dev.clone(),
            blas: Blas::new(dev)?,
            w,
            bias,
            lora,
            sparse,
            sparse16,
            train_w,
            merged: layer.is_merged(),
            cache: None,
            grads,
            plan: LayerPlan::Sparse,
            work: None,
        })
    }

    /// Copies the parameters back into a host layer (W in its storage type, bias,
    /// adapters, whether W trains). Training caches and gradients stay behind. A merged
    /// layer must be unmerged first: the host layer cannot be built in the merged state.
    ///
    /// ```no_run
    /// # use rosa::cuda::{Device, DeviceDense, DeviceRosaLinear};
    /// # let dev = Device::new(0)?;
    /// # let host = rosa::train::RosaLinear::new(rosa::random::dense::<f32>(8, 4, 1), None);
    /// let layer = DeviceRosaLinear::from_host(&dev, &host)?;
    /// assert_eq!(layer.to_host()?.weight().to_f32(), host.weight().to_f32());
    /// # Ok::<(), rosa::Error>(())
    /// ```
    pub fn to_host(&self) -> Result<RosaLinear> {
        if self.merged {
            return Err(Error::InvalidArgument(
                "DeviceRosaLinear::to_host on a merged layer: unmerge it first".into(),
            ));
        }
        let w = match &self.w {
            DeviceWeight::F32(w) => Weight::F32(w.to_host()?),
            DeviceWeight::Bf16(w) => Weight::Bf16(w.to_host()?),
            DeviceWeight::Nf4(q) => Weight::Nf4(q.host.clone()),
        };
        let bias = self
            .bias
            .as_ref()
            .map(|b| Ok::<_, Error>(b.to_host()?.as_slice().to_vec()))
            .transpose()?;
        let mut host = RosaLinear::from_weight(w, bias);
        if let Some(l) = &self.lora {
            host.set_lora(Some(Lora {
                a: l.a.to_host()?,
                b: l.b.to_host()?,
                scale: l.scale,
                dropout: 0.0,
            }))?;
        }
        if let Some(s) = &self.sparse {
            host.set_sparse(s.to_host()?)?;
        }
        host.set_train_weight(self.train_w)?;
        Ok(host)
    }

    /// Output features.
    ///
    /// ```no_run
    /// # use rosa::cuda::{Device, DeviceDense, DeviceRosaLinear};
    /// # let dev = Device::new(0)?;
    /// # let host = rosa::train::RosaLinear::new(rosa::random::dense::<f32>(8, 4, 1), None);
    /// assert_eq!(DeviceRosaLinear::from_host(&dev, &host)?.out_features(), 8);
    /// # Ok::<(), rosa::Error>(())
    /// ```
    pub fn out_features(&self) -> usize {
        self.w.shape().0
    }

    /// Input features.
    ///
    /// ```no_run
    /// # use rosa::cuda::{Device, DeviceDense, DeviceRosaLinear};
    /// # let dev = Device::new(0)?;
    /// # let host = rosa::train::RosaLinear::new(rosa::random::dense::<f32>(8, 4, 1), None);
    /// assert_eq!(DeviceRosaLinear::from_host(&dev, &host)?.in_features(), 4);
    /// # Ok::<(), rosa::Error>(())
    /// ```
    pub fn in_features(&self) -> usize {
        self.w.shape().1
    }

    /// The device the layer lives on.
    ///
    /// ```no_run
    /// # use rosa::cuda::{Device, DeviceDense, DeviceRosaLinear};
    /// # let dev = Device::new(0)?;
    /// # let host = rosa::train::RosaLinear::new(rosa::random::dense::<f32>(8, 4, 1), None);
    /// let layer = DeviceRosaLinear::from_host(&dev, &host)?;
    /// assert_eq!(layer.device().ordinal(), 0);
    /// # Ok::<(), rosa::Error>(())
    /// ```
    pub fn device(&self) -> &Device {
        &self.dev
    }

    /// The dense matrix of the products: the working copy `W + S` under the merged plan
    /// (unless the adapters are folded into W), W otherwise.
    fn product_weight(&self) -> &DeviceWeight {
        match (&self.work, self.merged) {
            (Some(m), false) => &m.w,
            _ => &self.w,
        }
    }

    /// Whether S rides in the product weight, so it has no products of its own.
    fn s_in_copy(&self) -> bool {
        self.work.is_some() && !self.merged
    }

    /// Rewrites the working copy's mask entries from W and S when either has changed.
    fn refresh_work(&mut self) -> Result<()> {
        let (Some(m), Some(s), false) = (&mut self.work, &self.sparse, self.merged) else {
            return Ok(());
        };
        if !m.stale {
            return Ok(());
        }
        match (&self.w, &mut m.w) {
            (DeviceWeight::F32(w), DeviceWeight::F32(c)) => {
                elementwise::csr_add_from(&self.dev, w, 1.0, s, c)?
            }
            (DeviceWeight::Bf16(w), DeviceWeight::Bf16(c)) => {
                elementwise::csr_add_from(&self.dev, w, 1.0, s, c)?
            }
            // The copy is made from W by DeviceWeight::copy, so the types always agree.
            _ => {
                return Err(Error::InvalidArgument(
                    "DeviceRosaLinear: the working copy's type differs from W's".into(),
                ))
            }
        }
        m.stale = false;
        Ok(())
    }

    /// A fresh working copy of W under the merged plan (after W changed everywhere).
    fn rebuild_work(&mut self) -> Result<()> {
        if self.work.is_some() {
            self.work = Some(Merged {
                w: self.w.copy(&self.dev)?,
                stale: true,
            });
        }
        Ok(())
    }

    /// The plan the products run by (the sparse plan until set or chosen).
    ///
    /// ```no_run
    /// # use rosa::cuda::{Device, DeviceRosaLinear};
    /// use rosa::train::plan::LayerPlan;
    /// # let dev = Device::new(0)?;
    /// # let host = rosa::train::RosaLinear::new(rosa::random::dense::<f32>(8, 4, 1), None);
    /// let layer = DeviceRosaLinear::from_host(&dev, &host)?;
    /// assert_eq!(layer.plan(), LayerPlan::Sparse);
    /// # Ok::<(), rosa::Error>(())
    /// ```
    pub fn plan(&self) -> LayerPlan {
        self.plan
    }

    /// Runs the products by `plan` from the next pass on. [`LayerPlan::Merged`] allocates a
    /// working copy of W (in W's type) when there is a sparse adapter, and rewrites its
    /// mask entries from W and S before a pass whenever S has changed (after each
    /// optimizer step); [`LayerPlan::Sparse`] frees it. Both compute the same function:
    /// results differ by rounding only (for a bf16 W, by `W + S` rounded to bf16).
    ///
    /// # Errors
    /// [`Error::Unsupported`] for the merged plan on a layer whose W trains (its copy
    /// would miss W's updates) or whose W is 4-bit NF4 (it cannot hold S);
    /// [`Error::Cuda`] when the copy cannot be allocated.
    ///
    /// ```no_run
    /// # use rosa::cuda::{Device, DeviceDense, DeviceRosaLinear};
    /// use rosa::train::plan::LayerPlan;
    /// # let dev = Device::new(0)?;
    /// # let host = rosa::train::RosaLinear::new(rosa::random::dense::<f32>(8, 4, 1), None);
    /// let mut layer = DeviceRosaLinear::from_host(&dev, &host)?;
    /// layer.set_plan(LayerPlan::Merged)?;
    /// let y = layer.forward(&DeviceDense::filled(&dev, 4, 2, 1.0f32)?, false)?;
    /// # Ok::<(), rosa::Error>(())
    /// ```
    pub fn set_plan(&mut self, plan: LayerPlan) -> Result<()> {
        match plan {
            LayerPlan::Sparse => self.work = None,
            LayerPlan::Merged => {
                if matches!(self.w, DeviceWeight::Nf4(_)) {
                    return Err(nf4_refusal("the merged plan (W + S)"));
                }
                if self.train_w {
                    return Err(Error::Unsupported(
                        "the merged plan on a layer whose W trains (full fine-tuning); \
                         use the sparse plan"
                            .into(),
                    ));
                }
                if self.work.is_none() && self.sparse.is_some() {
                    self.work = Some(Merged {
                        w: self.w.copy(&self.dev)?,
                        stale: true,
                    });
                }
            }
        }
        self.plan = plan;
        Ok(())
    }

    /// What the cost model sees of this layer at `tokens` tokens per step.
    ///
    /// ```no_run
    /// # use rosa::cuda::{Device, DeviceRosaLinear};
    /// # let dev = Device::new(0)?;
    /// # let host = rosa::train::RosaLinear::new(rosa::random::dense::<f32>(8, 4, 1), None);
    /// let layer = DeviceRosaLinear::from_host(&dev, &host)?;
    /// assert_eq!(layer.plan_inputs(512).nnz, 0);
    /// # Ok::<(), rosa::Error>(())
    /// ```
    pub fn plan_inputs(&self, tokens: usize) -> PlanInputs {
        PlanInputs {
            out: self.out_features(),
            inp: self.in_features(),
            tokens,
            nnz: self.sparse.as_ref().map_or(0, |s| s.nnz()),
            weight_bytes: self.w.element_bytes(),
            // The sparse products read W's type: f32, or bf16 for a bf16 or NF4 W (their C,
            // y or dX, is f32 either way; the model counts it so).
            value_bytes: self.w.element_bytes(),
            row_cv: self.sparse.as_ref().map_or(0.0, |s| s.mask().row_cv()),
            quantized: matches!(self.w, DeviceWeight::Nf4(_)),
            weight_trains: self.train_w,
        }
    }

    /// Chooses the plan for `tokens` tokens per step by [`plan::choose`] under `model`
    /// (the device's ceilings, the tuner's entries, a memory budget), sets it, and returns
    /// the choice with its costs, for the caller to report (`PlanChoice` displays as one
    /// line).
    ///
    /// # Errors
    /// As [`DeviceRosaLinear::set_plan`].
    ///
    /// ```no_run
    /// # use rosa::cuda::{Device, DeviceRosaLinear};
    /// use rosa::bench::roofline::Ceilings;
    /// use rosa::train::plan::PlanModel;
    /// # let dev = Device::new(0)?;
    /// # let host = rosa::train::RosaLinear::new(rosa::random::dense::<f32>(8, 4, 1), None);
    /// let mut layer = DeviceRosaLinear::from_host(&dev, &host)?;
    /// let ceilings = Ceilings { dram_bytes_per_s: 4.3e12, l2_bytes_per_s: 1.0e13,
    ///     fma_flops_per_s: 6.7e13, l2_probe_bytes: 16 << 20 };
    /// let model = PlanModel { ceilings, measured: &[], memory_budget: Some(1 << 30) };
    /// let choice = layer.choose_plan(2048, &model)?;
    /// println!("{choice}");
    /// assert_eq!(layer.plan(), choice.plan);
    /// # Ok::<(), rosa::Error>(())
    /// ```
    pub fn choose_plan(&mut self, tokens: usize, model: &PlanModel<'_>) -> Result<PlanChoice> {
        let choice = plan::choose(&self.plan_inputs(tokens), model);
        self.set_plan(choice.plan)?;
        Ok(choice)
    }

    /// `out = op(W) rhs` (overwritten), in W's storage type, with W the working copy
    /// `W + S` under the merged plan.
    /// `rhs16` is `rhs` rounded to bf16 ([`Self::narrow`]), required for a bf16 W.
    fn weight_product(
        &self,
        t: Transpose,
        rhs: &DeviceDense<f32>,
        rhs16: Option<&DeviceDense<bf16>>,
        out: &mut DeviceDense<f32>,
    ) -> Result<()> {
        match (self.product_weight(), rhs16) {
            (DeviceWeight::F32(w), _) => self.blas.gemm(1.0, w, t, rhs, Transpose::No, 0.0, out),
            (DeviceWeight::Bf16(w), Some(narrow)) => {
                self.blas
                    .gemm_f32_out(1.0, w, t, narrow, Transpose::No, 0.0, out)
            }
            (DeviceWeight::Nf4(q), Some(narrow)) => {
                let (w, rows, cols) = (&q.dev, q.dev.rows(), q.dev.cols());
                self.dev.with_scratch(rows, cols, |ws| {
                    quant::dequantize(&self.dev, w, 0..rows, ws)?;
                    self.blas
                        .gemm_f32_out(1.0, ws, t, narrow, Transpose::No, 0.0, out)
                })
            }
            (DeviceWeight::Bf16(_) | DeviceWeight::Nf4(_), None) => Err(Error::InvalidArgument(
                "DeviceRosaLinear: a bf16 or NF4 W's product needs bf16 activations".into(),
            )),
        }
    }

    /// `m` rounded to bf16 when W is bf16 (its products' operand; cuBLAS multiplies one
    /// type), `None` for an f32 W.
    fn narrow(&self, m: &DeviceDense<f32>) -> Result<Option<DeviceDense<bf16>>> {
        match self.w {
            DeviceWeight::F32(_) => Ok(None),
            DeviceWeight::Bf16(_) | DeviceWeight::Nf4(_) => {
                let mut narrow = DeviceDense::<bf16>::zeros(&self.dev, m.rows(), m.cols())?;
                elementwise::cast(&self.dev, m, &mut narrow)?;
                Ok(Some(narrow))
            }
        }
    }

    /// `y = W x + s B (A x) + S x + bias` for `x` (in x tokens), all queued on the
    /// device's stream. With `train`, the input (copied on the device) and `A x` are kept
    /// for the backward pass.
    ///
    /// ```no_run
    /// # use rosa::cuda::{Device, DeviceDense, DeviceRosaLinear};
    /// # let dev = Device::new(0)?;
    /// # let host = rosa::train::RosaLinear::new(rosa::random::dense::<f32>(8, 4, 1), None);
    /// let mut layer = DeviceRosaLinear::from_host(&dev, &host)?;
    /// let x = DeviceDense::filled(&dev, 4, 16, 1.0f32)?; // 4 features, 16 tokens
    /// let y = layer.forward(&x, false)?;
    /// assert_eq!((y.rows(), y.cols()), (8, 16));
    /// # Ok::<(), rosa::Error>(())
    /// ```
    pub fn forward(&mut self, x: &DeviceDense<f32>, train: bool) -> Result<DeviceDense<f32>> {
        check_feature_rows("DeviceRosaLinear::forward", x.rows(), self.in_features())?;
        if train && self.merged {
            return Err(Error::InvalidArgument(
                "training a merged layer: unmerge it first".into(),
            ));
        }
        self.refresh_work()?;
        let dev = &self.dev;
        let tokens = x.cols();
        let mut y = DeviceDense::zeros(dev, self.out_features(), tokens)?;
        let x16 = self.narrow(x)?;
        self.weight_product(Transpose::No, x, x16.as_ref(), &mut y)?;
        if let Some(b) = &self.bias {
            elementwise::bias_add(dev, b, &mut y)?;
        }
        let mut h_kept = None;
        if let (Some(l), false) = (&self.lora, self.merged) {
            let mut h = DeviceDense::zeros(dev, l.a.rows(), tokens)?;
            self.blas
                .gemm(1.0, &l.a, Transpose::No, x, Transpose::No, 0.0, &mut h)?;
            self.blas
                .gemm(l.scale, &l.b, Transpose::No, &h, Transpose::No, 1.0, &mut y)?;
            h_kept = Some(h);
        }
        if let (Some(s), false) = (&self.sparse, self.merged || self.s_in_copy()) {
            let s16 = self.sparse16.as_mut();
            sparse_product(dev, s, s16, Transpose::No, x, x16.as_ref(), &mut y)?;
        }
        self.cache = if train {
            let mut copy = DeviceDense::zeros(dev, x.rows(), tokens)?;
            elementwise::axpby(dev, 1.0, x, 0.0, &mut copy)?;
            Some(Cache {
                x: copy,
                h: h_kept,
                x16: x16.filter(|_| self.sparse.is_some()),
            })
        } else {
            None
        };
        Ok(y)
    }

    /// Backward pass for `dY` (out x tokens): fills the gradients of the trainable tensors
    /// and returns `dX = W^T dY + s A^T (B^T dY) + S^T dY`.
    ///
    /// ```no_run
    /// # use rosa::cuda::{Device, DeviceDense, DeviceRosaLinear};
    /// # let dev = Device::new(0)?;
    /// # let host = rosa::train::RosaLinear::new(rosa::random::dense::<f32>(8, 4, 1), None);
    /// let mut layer = DeviceRosaLinear::from_host(&dev, &host)?;
    /// layer.forward(&DeviceDense::filled(&dev, 4, 16, 1.0f32)?, true)?;
    /// let dx = layer.backward(&DeviceDense::filled(&dev, 8, 16, 1.0f32)?)?;
    /// assert_eq!((dx.rows(), dx.cols()), (4, 16));
    /// # Ok::<(), rosa::Error>(())
    /// ```
    pub fn backward(&mut self, dy: &DeviceDense<f32>) -> Result<DeviceDense<f32>> {
        const OP: &str = "DeviceRosaLinear::backward";
        check_feature_rows(OP, dy.rows(), self.out_features())?;
        if self.merged {
            // The cached pass may predate the merge; W now carries the adapters too.
            return Err(Error::InvalidArgument(format!(
                "{OP}: the layer is merged; unmerge it first"
            )));
        }
        if self.cache.is_some() {
            // The plan may have changed since the forward pass.
            self.refresh_work()?;
        }
        let cache = self.cache.as_ref().ok_or_else(|| {
            Error::InvalidArgument(format!(
                "{OP}: no training-mode forward pass to go back through"
            ))
        })?;
        let x = &cache.x;
        if dy.cols() != x.cols() {
            return Err(Error::ShapeMismatch {
                op: OP,
                detail: format!(
                    "dY has {} tokens, the forward pass had {}",
                    dy.cols(),
                    x.cols()
                ),
            });
        }
        let s_in_copy = self.s_in_copy();
        let (dev, blas) = (&self.dev, &self.blas);
        let tokens = x.cols();
        let mut dx = DeviceDense::zeros(dev, self.in_features(), tokens)?;
        let dy16 = self.narrow(dy)?;
        self.weight_product(Transpose::Yes, dy, dy16.as_ref(), &mut dx)?;
        let g = &mut self.grads;
        // Stale until every gradient below is written: a failure half-way must not let the
        // optimizer step on a mix of this pass's and the last one's.
        g.ready = false;
        if let Some(gw) = &mut g.w {
            blas.gemm(1.0, dy, Transpose::No, x, Transpose::Yes, 0.0, gw)?;
        }
        if let Some(gb) = &mut g.bias {
            elementwise::row_sum(dev, dy, gb)?;
        }
        if let (Some(l), Some(ga), Some(gb)) = (&self.lora, &mut g.a, &mut g.b) {
            let h = cache.h.as_ref().ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "{OP}: the low-rank adapter was added after the forward pass"
                ))
            })?;
            // t = B^T dY is shared by dA and dX.
            let mut t = DeviceDense::zeros(dev, l.a.rows(), tokens)?;
            blas.gemm(1.0, &l.b, Transpose::Yes, dy, Transpose::No, 0.0, &mut t)?;
            blas.gemm(l.scale, dy, Transpose::No, h, Transpose::Yes, 0.0, gb)?;
            blas.gemm(l.scale, &t, Transpose::No, x, Transpose::Yes, 0.0, ga)?;
            blas.gemm(
                l.scale,
                &l.a,
                Transpose::Yes,
                &t,
                Transpose::No,
                1.0,
                &mut dx,
            )?;
        }
        if let (Some(s), Some(gs)) = (&self.sparse, &mut g.s) {
            match (&dy16, &cache.x16, &mut g.s16) {
                (Some(dy16), Some(x16), Some(s16)) => {
                    let nnz = s.nnz();
                    let mut out = SparseViewMut::new(s.mask(), s16.slice_mut(0..nnz))?;
                    sddmm(dev, 1.0, dy16, x16, 0.0, &mut out)?;
                    result::cast(dev.stream(), nnz, s16, &mut gs.values)?;
                }
                _ => sddmm(dev, 1.0, dy, x, 0.0, gs)?,
            }
            if !s_in_copy {
                let s16 = self.sparse16.as_mut();
                sparse_product(dev, s, s16, Transpose::Yes, dy, dy16.as_ref(), &mut dx)?;
            }
        }
        g.ready = true;
        Ok(dx)
    }

    /// The trainable tensors and their last gradients (empty before a backward pass).
    ///
    /// ```no_run
    /// # use rosa::cuda::{Device, DeviceDense, DeviceRosaLinear};
    /// # let dev = Device::new(0)?;
    /// # let host = rosa::train::RosaLinear::new(rosa::random::dense::<f32>(8, 4, 1), None);
    /// let mut layer = DeviceRosaLinear::from_host(&dev, &host)?;
    /// assert!(layer.params().is_empty()); // no backward pass yet (and nothing trains)
    /// # Ok::<(), rosa::Error>(())
    /// ```
    pub fn params(&mut self) -> Vec<DeviceParam<'_>> {
        let g = &self.grads;
        let mut out = Vec::new();
        if !g.ready {
            return out;
        }
        // The optimizer may change S through these: the working copy is rewritten before
        // the next pass.
        if let Some(m) = &mut self.work {
            m.stale = true;
        }
        if let (Some(l), Some(ga), Some(gb)) = (&mut self.lora, &g.a, &g.b) {
            out.push(dense_param("lora_a", Group::LowRank, &mut l.a, ga));
            out.push(dense_param("lora_b", Group::LowRank, &mut l.b, gb));
        }
        if let (Some(s), Some(gs)) = (&mut self.sparse, &g.s) {
            out.push(DeviceParam {
                name: "sparse",
                group: Group::Other,
                len: s.nnz(),
                value: &mut s.values,
                grad: &gs.values,
            });
        }
        if let (DeviceWeight::F32(w), Some(gw)) = (&mut self.w, &g.w) {
            out.push(dense_param("weight", Group::Other, w, gw));
        }
        if let (Some(b), Some(gb)) = (&mut self.bias, &g.bias) {
            out.push(dense_param("bias", Group::Other, b, gb));
        }
        out
    }

    /// Drops the training cache and marks the gradients stale (they keep their memory).
    ///
    /// ```no_run
    /// # use rosa::cuda::{Device, DeviceDense, DeviceRosaLinear};
    /// # let dev = Device::new(0)?;
    /// # let host = rosa::train::RosaLinear::new(rosa::random::dense::<f32>(8, 4, 1), None);
    /// let mut layer = DeviceRosaLinear::from_host(&dev, &host)?;
    /// layer.forward(&DeviceDense::filled(&dev, 4, 2, 1.0f32)?, true)?;
    /// layer.clear();
    /// assert!(layer.backward(&DeviceDense::filled(&dev, 8, 2, 1.0f32)?).is_err());
    /// # Ok::<(), rosa::Error>(())
    /// ```
    pub fn clear(&mut self) {
        self.cache = None;
        self.grads.ready = false;
    }

    /// Whether the adapters are currently folded into W.
    ///
    /// ```no_run
    /// # use rosa::cuda::{Device, DeviceDense, DeviceRosaLinear};
    /// # let dev = Device::new(0)?;
    /// # let host = rosa::train::RosaLinear::new(rosa::random::dense::<f32>(8, 4, 1), None);
    /// let mut layer = DeviceRosaLinear::from_host(&dev, &host)?;
    /// layer.merge()?;
    /// assert!(layer.is_merged());
    /// # Ok::<(), rosa::Error>(())
    /// ```
    pub fn is_merged(&self) -> bool {
        self.merged
    }

    /// Folds the adapters into W on the device (`W += s B A + S`, the sparse part through
    /// the CSR-add kernel); the forward pass skips them until [`DeviceRosaLinear::unmerge`].
    ///
    /// ```no_run
    /// # use rosa::cuda::{Device, DeviceDense, DeviceRosaLinear};
    /// # let dev = Device::new(0)?;
    /// # let host = rosa::train::RosaLinear::new(rosa::random::dense::<f32>(8, 4, 1), None);
    /// let mut layer = DeviceRosaLinear::from_host(&dev, &host)?;
    /// layer.merge()?; // adapter-free inference from here
    /// let y = layer.forward(&DeviceDense::filled(&dev, 4, 2, 1.0f32)?, false)?;
    /// # Ok::<(), rosa::Error>(())
    /// ```
    pub fn merge(&mut self) -> Result<()> {
        if matches!(self.w, DeviceWeight::Nf4(_)) {
            return Err(nf4_refusal("merging the adapters"));
        }
        if !self.merged {
            self.fold(1.0)?;
            self.merged = true;
            self.rebuild_work()?;
        }
        Ok(())
    }

    /// Takes the adapters back out of W (`W -= s B A + S`): exact up to the rounding of
    /// W's storage, as on the CPU.
    ///
    /// ```no_run
    /// # use rosa::cuda::{Device, DeviceDense, DeviceRosaLinear};
    /// # let dev = Device::new(0)?;
    /// # let host = rosa::train::RosaLinear::new(rosa::random::dense::<f32>(8, 4, 1), None);
    /// let mut layer = DeviceRosaLinear::from_host(&dev, &host)?;
    /// layer.merge()?;
    /// layer.unmerge()?;
    /// assert!(!layer.is_merged());
    /// # Ok::<(), rosa::Error>(())
    /// ```
    pub fn unmerge(&mut self) -> Result<()> {
        if self.merged {
            self.fold(-1.0)?;
            self.merged = false;
            self.rebuild_work()?;
        }
        Ok(())
    }

    /// `W += sign (s B A + S)`. A bf16 W is widened into an f32 copy, updated and rounded
    /// back once, as the CPU layer does, so both round the same sum.
    fn fold(&mut self, sign: f32) -> Result<()> {
        let (dev, blas) = (&self.dev, &self.blas);
        let (lora, sparse) = (&self.lora, &self.sparse);
        let update = |w: &mut DeviceDense<f32>| -> Result<()> {
            if let Some(l) = lora {
                blas.gemm(
                    sign * l.scale,
                    &l.b,
                    Transpose::No,
                    &l.a,
                    Transpose::No,
                    1.0,
                    w,
                )?;
            }
            if let Some(s) = sparse {
                elementwise::csr_add(dev, sign, s, w)?;
            }
            Ok(())
        };
        match &mut self.w {
            DeviceWeight::F32(w) => update(w),
            DeviceWeight::Bf16(w) => {
                let mut wide = DeviceDense::<f32>::zeros(dev, w.rows(), w.cols())?;
                elementwise::cast(dev, w, &mut wide)?;
                update(&mut wide)?;
                elementwise::cast(dev, &wide, w)
            }
            DeviceWeight::Nf4(_) => Err(nf4_refusal("merging the adapters")),
        }
    }
}

/// `out += op(S) rhs` for the sparse plan: in f32, or, where W is bf16 or NF4 (`s16` and
/// `rhs16`, the bf16 activations of W's product, are both there), with S's values rounded
/// into `s16` first and the bf16 kernels accumulating in f32 into the f32 `out`.
fn sparse_product(
    dev: &Device,
    s: &DeviceCsr<f32>,
    s16: Option<&mut CudaSlice<bf16>>,
    t: Transpose,
    rhs: &DeviceDense<f32>,
    rhs16: Option<&DeviceDense<bf16>>,
    out: &mut DeviceDense<f32>,
) -> Result<()> {
    match (s16, rhs16) {
        (Some(s16), Some(rhs16)) => {
            // Rounded per product, not once per step: S may have changed since the forward
            // pass (an optimizer step, a plan switch), and this is O(nnz) next to the
            // product's O(nnz tokens).
            let nnz = s.nnz();
            result::cast(dev.stream(), nnz, s.values(), s16)?;
            let s16 = SparseView::new(s.mask(), s16.slice(0..nnz))?;
            match t {
                Transpose::No => spmm_f32_out(dev, 1.0, &s16, rhs16, 1.0, out),
                Transpose::Yes => spmm_t_f32_out(dev, 1.0, &s16, rhs16, 1.0, out),
            }
        }
        _ => match t {
            Transpose::No => spmm(dev, 1.0, s, rhs, 1.0, out),
            Transpose::Yes => spmm_t(dev, 1.0, s, rhs, 1.0, out),
        },
    }
}

fn dense_param<'a>(
    name: &'static str,
    group: Group,
    value: &'a mut DeviceDense<f32>,
    grad: &'a DeviceDense<f32>,
) -> DeviceParam<'a> {
    DeviceParam {
        name,
        group,
        len: grad.rows() * grad.cols(),
        value: &mut value.data,
        grad: &grad.data,
    }
}
