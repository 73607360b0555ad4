//! [`DeviceAdamW`]: the CPU [`AdamW`](crate::train::AdamW) with its moments on the GPU and
//! its update in `csrc/adamw.cu`.

use std::collections::hash_map::{Entry, HashMap};

use cudarc::driver::CudaSlice;

use super::result::{self, AdamwBuffers, AdamwStep};
use super::{elementwise, mem, Device, DeviceParam};
use crate::train::AdamConfig;
use crate::Result;

#[derive(Debug)]
struct Moments {
    m: CudaSlice<f32>,
    v: CudaSlice<f32>,
    len: usize,
    /// Steps this tensor has taken (its own bias correction, as on the CPU).
    t: i32,
}

/// AdamW over [`DeviceParam`]s with the semantics of the CPU optimizer: state keyed by
/// parameter name, two learning-rate groups, global gradient-norm clipping, per-tensor
/// bias correction, decoupled weight decay.
///
/// ```no_run
/// use rosa::cuda::{Device, DeviceAdamW};
/// use rosa::train::AdamConfig;
/// let dev = Device::new(0)?;
/// let mut opt = DeviceAdamW::new(AdamConfig::default());
/// // With a DeviceRosaLinear `layer` after its backward pass:
/// // let mut params: Vec<_> = layer.params().into_iter().map(|p| (p.name.to_string(), p)).collect();
/// // let norm = opt.step(&dev, &mut params, 1.0)?;
/// assert_eq!(opt.state_bytes(), 0);
/// # Ok::<(), rosa::Error>(())
/// ```
#[derive(Debug)]
pub struct DeviceAdamW {
    cfg: AdamConfig,
    state: HashMap<String, Moments>,
}

impl DeviceAdamW {
    /// A fresh optimizer (no state until the first step).
    ///
    /// No GPU is touched until the first step:
    ///
    /// ```
    /// use rosa::cuda::DeviceAdamW;
    /// use rosa::train::AdamConfig;
    /// let opt = DeviceAdamW::new(AdamConfig::default());
    /// assert_eq!(opt.state_bytes(), 0);
    /// ```
    pub fn new(cfg: AdamConfig) -> Self {
        DeviceAdamW {
            cfg,
            state: HashMap::new(),
        }
    }

    /// The configuration.
    ///
    /// ```
    /// use rosa::cuda::DeviceAdamW;
    /// use rosa::train::AdamConfig;
    /// assert_eq!(DeviceAdamW::new(AdamConfig::default()).config().beta1, 0.9);
    /// ```
    pub fn config(&self) -> &AdamConfig {
        &self.cfg
    }

    /// Forgets all moments.
    ///
    /// ```no_run
    /// # use rosa::cuda::{Device, DeviceAdamW, DeviceDense, DeviceRosaLinear};
    /// # use rosa::train::AdamConfig;
    /// # let dev = Device::new(0)?;
    /// # let mut host = rosa::train::RosaLinear::new(rosa::random::dense::<f32>(8, 4, 1), None);
    /// # host.set_sparse_mask(&rosa::random::csr::<f32>(8, 4, 0.5, 2)?)?;
    /// let mut layer = DeviceRosaLinear::from_host(&dev, &host)?;
    /// layer.forward(&DeviceDense::filled(&dev, 4, 2, 1.0f32)?, true)?;
    /// layer.backward(&DeviceDense::filled(&dev, 8, 2, 1.0f32)?)?;
    /// let mut opt = DeviceAdamW::new(AdamConfig::default());
    /// let mut params: Vec<_> = layer.params().into_iter().map(|p| (p.name.to_string(), p)).collect();
    /// opt.step(&dev, &mut params, 1.0)?;
    /// opt.reset();
    /// assert_eq!(opt.state_bytes(), 0);
    /// # Ok::<(), rosa::Error>(())
    /// ```
    pub fn reset(&mut self) {
        self.state.clear();
    }

    /// Bytes of optimizer state on the device.
    ///
    /// ```no_run
    /// # use rosa::cuda::{Device, DeviceAdamW, DeviceDense, DeviceRosaLinear};
    /// # use rosa::train::AdamConfig;
    /// # let dev = Device::new(0)?;
    /// # let mut host = rosa::train::RosaLinear::new(rosa::random::dense::<f32>(8, 4, 1), None);
    /// # host.set_sparse_mask(&rosa::random::csr::<f32>(8, 4, 0.5, 2)?)?;
    /// let mut layer = DeviceRosaLinear::from_host(&dev, &host)?;
    /// layer.forward(&DeviceDense::filled(&dev, 4, 2, 1.0f32)?, true)?;
    /// layer.backward(&DeviceDense::filled(&dev, 8, 2, 1.0f32)?)?;
    /// let mut opt = DeviceAdamW::new(AdamConfig::default());
    /// let mut params: Vec<_> = layer.params().into_iter().map(|p| (p.name.to_string(), p)).collect();
    /// opt.step(&dev, &mut params, 1.0)?;
    /// assert_eq!(opt.state_bytes(), 2 * 4 * params[0].1.len());
    /// # Ok::<(), rosa::Error>(())
    /// ```
    pub fn state_bytes(&self) -> usize {
        self.state.values().map(|m| 2 * m.len * 4).sum()
    }

    /// One update of every parameter at `lr_factor` times its group's peak rate, after
    /// clipping the global gradient norm; returns the norm before clipping. The norm is
    /// reduced on the device and read back (one synchronization per step), because the
    /// clipping factor depends on it.
    ///
    /// ```no_run
    /// # use rosa::cuda::{Device, DeviceAdamW, DeviceDense, DeviceRosaLinear};
    /// # use rosa::train::AdamConfig;
    /// # let dev = Device::new(0)?;
    /// # let mut host = rosa::train::RosaLinear::new(rosa::random::dense::<f32>(8, 4, 1), None);
    /// # host.set_sparse_mask(&rosa::random::csr::<f32>(8, 4, 0.5, 2)?)?;
    /// let mut layer = DeviceRosaLinear::from_host(&dev, &host)?;
    /// layer.forward(&DeviceDense::filled(&dev, 4, 2, 1.0f32)?, true)?;
    /// layer.backward(&DeviceDense::filled(&dev, 8, 2, 1.0f32)?)?;
    /// let mut opt = DeviceAdamW::new(AdamConfig::default());
    /// let mut params: Vec<_> = layer.params().into_iter().map(|p| (p.name.to_string(), p)).collect();
    /// let norm = opt.step(&dev, &mut params, 1.0)?; // before clipping
    /// assert!(norm > 0.0);
    /// # Ok::<(), rosa::Error>(())
    /// ```
    pub fn step(
        &mut self,
        dev: &Device,
        params: &mut [(String, DeviceParam<'_>)],
        lr_factor: f32,
    ) -> Result<f32> {
        let stream = dev.stream();
        for (_, p) in params.iter() {
            dev.check_same(p.value.stream(), p.name)?;
        }
        let grads = params.iter().map(|(_, p)| (p.grad, p.len, p.name));
        let norm = elementwise::sum_squares_of(dev, grads)?.sqrt() as f32;
        let c = self.cfg;
        let clip = c.clip_scale(norm);
        for (key, p) in params.iter_mut() {
            let lr = c.lr(p.group, lr_factor);
            let fresh = |len| -> Result<Moments> {
                Ok(Moments {
                    m: mem::zeros(stream, len)?,
                    v: mem::zeros(stream, len)?,
                    len,
                    t: 0,
                })
            };
            // A tensor that changed size (a new mask) starts over, as on the CPU.
            let st = match self.state.entry(key.clone()) {
                Entry::Occupied(mut e) => {
                    if e.get().len != p.len {
                        e.insert(fresh(p.len)?);
                    }
                    e.into_mut()
                }
                Entry::Vacant(e) => e.insert(fresh(p.len)?),
            };
            st.t += 1;
            let (bias_correction1, bias_correction2) = c.bias_corrections(st.t);
            result::adamw(
                stream,
                AdamwBuffers {
                    n: p.len,
                    param: p.value,
                    grad: p.grad,
                    m: &mut st.m,
                    v: &mut st.v,
                },
                AdamwStep {
                    lr,
                    beta1: c.beta1,
                    beta2: c.beta2,
                    eps: c.eps,
                    weight_decay: c.weight_decay,
                    bias_correction1,
                    bias_correction2,
                    grad_scale: clip,
                },
            )?;
        }
        Ok(norm)
    }
}
