//! # rosa from candle (feature `candle`)
//!
//! rosa's sparse products as [candle](https://github.com/huggingface/candle) custom ops
//! with backward passes, and a RoSA linear layer as a candle module.
//!
//! | item | what it is |
//! |---|---|
//! | [`SparseMask`] | a fixed CSR structure (row_ptr, col_idx, transpose plan), built once |
//! | [`SparseMask::spmm`] | `C = S X`; backward: dValues = SDDMM(dC, X), dX = S^T dC |
//! | [`SparseMask::spmm_t`] | `C = S^T X` through the plan; backward: dValues = SDDMM(X, dC), dX = S dC |
//! | [`SparseMask::sddmm`] | `values = (L R^T)` at the mask; backward: dL = G R, dR = G^T L |
//! | [`RosaLinear`] | `y = x W^T + s (x A^T) B^T + x S^T`, token-major, with mask generation, merging and the other methods |
//! | [`save_adapters`], [`load_adapters`] | safetensors, with the names `rosa train` uses |
//! | [`rosa_error`] | the typed [`crate::Error`] inside a candle error |
//!
//! S's values are a 1-D tensor *input* of every op, so candle's autograd gives them
//! gradients (make them a [`candle_core::Var`]); the mask's structure never changes. The
//! ops take f32, f16 and bf16 tensors (one dtype per call; f32 accumulation, rounded
//! once, as everywhere in rosa) and run on the CPU through [`crate::cpu`]. Bad shapes,
//! dtypes and devices are errors, never panics.
//!
//! With feature `candle-cuda` the same ops run on candle's CUDA device: each op's
//! `cuda_fwd` launches rosa's kernels on the candle device's own stream, over views of
//! candle's buffers (strided operands are first copied row-major by candle), with the
//! mask's structure uploaded once per device and kept in the [`SparseMask`]. The
//! backward passes, being written with the same ops, and [`RosaLinear`] then work on the
//! GPU with nothing more. Building it: README "Using rosa from candle" and
//! docs/CANDLE.md.
//!
//! A whole RoSA run the paper's way on one layer, learning a weight shift: LoRA warm-up,
//! a mask from the mean squared dense gradient (the empirical diagonal Fisher), then both
//! adapters, each group with its own AdamW, then a plain linear layer for inference:
//!
//! ```
//! use candle_core::{Device, Module, Tensor};
//! use candle_nn::{AdamW, Optimizer, ParamsAdamW};
//! use rosa::candle::RosaLinear;
//! use rosa::random::{self, Rng};
//! use rosa::train::{Accumulation, Budget, GradAccumulator, Group, LoraConfig, Scaling};
//! # fn main() -> candle_core::Result<()> {
//! let dev = Device::Cpu;
//! let (out, inp) = (12, 16);
//! let tensor = |rows, cols, seed| {
//!     Tensor::from_vec(random::dense::<f32>(rows, cols, seed).into_vec(), (rows, cols), &dev)
//! };
//! let w = tensor(out, inp, 1)?;
//! let target = (&w + (tensor(out, inp, 2)? * 0.3)?)?;
//! let batch = |step: u64| -> candle_core::Result<(Tensor, Tensor)> {
//!     let x = tensor(8, inp, 100 + step)?.reshape((2, 4, inp))?; // (batch, seq, in)
//!     let y = x.broadcast_matmul(&target.t()?)?;
//!     Ok((x, y))
//! };
//! let mse = |layer: &RosaLinear, step| -> candle_core::Result<Tensor> {
//!     let (x, y) = batch(step)?;
//!     (layer.forward(&x)? - y)?.sqr()?.mean_all()
//! };
//! let adam = |lr| ParamsAdamW { lr, weight_decay: 0.0, ..Default::default() };
//!
//! let mut layer = RosaLinear::new(w, None)?;
//! layer.set_training(true);
//! // The budget of LoRA at rank 4, spent as rank 2 plus a sparse adapter.
//! let density = Budget::LoraRank(4).density_for_rank(&[layer.shape()], 2)?;
//! let cfg = LoraConfig { rank: 2, alpha: 4.0, scaling: Scaling::Standard, dropout: 0.0 };
//! layer.add_lora(cfg, &mut Rng::new(0))?;
//! let mut lora_opt = AdamW::new(layer.group_vars(Group::LowRank), adam(2e-2))?;
//! let first = mse(&layer, 0)?.to_scalar::<f32>()?;
//! for step in 0..10 {
//!     lora_opt.backward_step(&mse(&layer, step)?)?;
//! }
//! // The mask: top (density * out * in) entries of the accumulated squared gradient.
//! layer.start_probe()?;
//! let mut acc = GradAccumulator::new(Accumulation::MeanSquared, 1);
//! for step in 10..14 {
//!     let grads = mse(&layer, step)?.backward()?;
//!     acc.add(0, &layer.probe_gradient(&grads)?)?;
//! }
//! layer.set_mask(&acc.masks(&[density])?[0])?;
//! assert_eq!(layer.trainable_params(), Budget::LoraRank(4).params(&[layer.shape()]));
//! let mut sparse_opt = AdamW::new(layer.group_vars(Group::Other), adam(2e-2))?;
//! for step in 14..60 {
//!     let grads = mse(&layer, step)?.backward()?;
//!     lora_opt.step(&grads)?;
//!     sparse_opt.step(&grads)?;
//! }
//! let last = mse(&layer, 60)?.to_scalar::<f32>()?;
//! assert!(last < 0.5 * first, "{first} -> {last}");
//! // Inference: the adapters folded into one weight.
//! let linear = layer.to_linear()?;
//! let (x, _) = batch(61)?;
//! let diff = (linear.forward(&x)? - layer.forward(&x)?)?.abs()?.max_all()?;
//! assert!(diff.to_scalar::<f32>()? < 1e-4);
//! # Ok(())
//! # }
//! ```

#[cfg(feature = "candle-cuda")]
mod cuda;
mod error;
mod linear;
mod mask;
mod methods;
#[cfg(feature = "real-model")]
pub mod minilm;
mod nf4;
mod op;
mod sddmm;
mod spmm;
mod storage;
mod store;

pub use error::rosa_error;
pub use linear::{LoraAdapter, RosaLinear, SparseAdapter};
pub use mask::SparseMask;
pub use store::{load_adapters, save_adapters};
