//! The fine-tuning methods rosa's trainer compares, on one [`RosaLinear`].

use candle_core::{DType, Result};

use super::storage::{dense_from_tensor, tensor_from_dense};
use super::RosaLinear;
use crate::random::Rng;
use crate::train::{subspace_factors, LoraConfig, Method};
use crate::Error;

impl RosaLinear {
    /// Sets the layer up for `method` ([`Method`], as `rosa train` names them):
    ///
    /// | method | what this does | what the training loop does |
    /// |---|---|---|
    /// | `Fft` | weight and bias become trainable | train [`RosaLinear::vars`] |
    /// | `Lora` | adds LoRA (`lora`) | train the vars |
    /// | `Spa` | nothing yet | mask before the first step ([`RosaLinear::start_probe`]), then train |
    /// | `Rosa` | adds LoRA | warm up LoRA, mask, then train both |
    /// | `RandomSubspace` | [`RosaLinear::subspace_split`] at `lora.rank` | train; re-split now and then, each time with a fresh optimizer |
    ///
    /// [`Method::schedule`] gives SpA's and RoSA's mask step.
    ///
    /// ```
    /// use candle_core::{DType, Device, Tensor};
    /// use rosa::candle::RosaLinear;
    /// use rosa::train::{LoraConfig, Method, Scaling};
    /// use rosa::random::Rng;
    /// let w = Tensor::randn(0f32, 1.0, (6, 5), &Device::Cpu).unwrap();
    /// let cfg = LoraConfig { rank: 2, alpha: 4.0, scaling: Scaling::Rs, dropout: 0.1 };
    /// for method in Method::ALL {
    ///     let mut layer = RosaLinear::new(w.clone(), None).unwrap();
    ///     layer.prepare(method, cfg, &mut Rng::new(1)).unwrap();
    ///     let expected = match method {
    ///         Method::Fft => 30,
    ///         Method::Lora | Method::Rosa | Method::RandomSubspace => 2 * (6 + 5),
    ///         Method::Spa => 0,
    ///     };
    ///     assert_eq!(layer.trainable_params(), expected, "{method}");
    /// }
    /// ```
    pub fn prepare(&mut self, method: Method, lora: LoraConfig, rng: &mut Rng) -> Result<()> {
        match method {
            Method::Fft => self.set_train_weight(true),
            Method::Lora | Method::Rosa => self.add_lora(lora, rng),
            Method::Spa => Ok(()),
            Method::RandomSubspace => self.subspace_split(lora.rank, rng),
        }
    }

    /// Random subspace adaptation (Hameed et al., 2024) through rosa's
    /// [`subspace_factors`]: folds any low-rank pair into the weight, then a random
    /// contiguous block of `rank` singular components of the result becomes the trainable
    /// pair (scale 1, no dropout) and the weight keeps the rest, in its own dtype. Calling
    /// it again is the periodic re-split; the pair's [`Var`](candle_core::Var)s are new
    /// each time, so the optimizer starts afresh, as the method wants.
    ///
    /// Errors on a layer with a sparse adapter or a trained weight, or a rank outside
    /// `1..=min(out, in)`.
    ///
    /// ```
    /// use candle_core::{Device, Tensor};
    /// use rosa::candle::RosaLinear;
    /// use rosa::random::Rng;
    /// let w = Tensor::randn(0f32, 1.0, (6, 5), &Device::Cpu).unwrap();
    /// let mut layer = RosaLinear::new(w.clone(), None).unwrap();
    /// layer.subspace_split(2, &mut Rng::new(3)).unwrap();
    /// // W_rest + B A is the original W.
    /// let diff = (layer.merged_weight().unwrap() - &w).unwrap().abs().unwrap();
    /// assert!(diff.max_all().unwrap().to_scalar::<f32>().unwrap() < 1e-5);
    /// ```
    pub fn subspace_split(&mut self, rank: usize, rng: &mut Rng) -> Result<()> {
        if self.sparse().is_some() || self.trains_weight() {
            return Err(Error::InvalidArgument(
                "random subspace adaptation on a layer with a sparse adapter or a trained weight"
                    .into(),
            )
            .into());
        }
        let merged = self.merged_weight()?;
        let split = subspace_factors(&dense_from_tensor(&merged)?, rank, rng)?;
        let dtype: DType = merged.dtype();
        let rest = tensor_from_dense(&split.rest, self.device())?.to_dtype(dtype)?;
        self.replace_weight(rest, None)?;
        self.set_lora(
            &tensor_from_dense(&split.a, self.device())?,
            &tensor_from_dense(&split.b, self.device())?,
            1.0,
            0.0,
        )
    }
}
