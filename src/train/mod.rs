//! RoSA fine-tuning on top of the kernels: the adapter layer, mask generation, AdamW,
//! the methods compared (FFT, LoRA, SpA, RoSA, random subspace adaptation), a small
//! residual MLP, built-in tasks and the trainer behind `rosa train`.
//!
//! | file | concept |
//! |---|---|
//! | `backend` | the four heavy products behind one trait (CPU; CUDA with the `cuda` feature) |
//! | `layer` | [`RosaLinear`]: `y = W x + s B (A x) + S x`, its backward pass, merging |
//! | `mask` | gradient accumulation and top-k masks, stored as safetensors |
//! | `schedule` | `lora_only`, `spa_only`, `wlN` |
//! | `optim` | AdamW with two learning-rate groups, warm-up + decay, clipping |
//! | `plan` | the layer's merged or sparse plan, chosen by a cost model |
//! | `budget` | `(r, d)` pairs of equal trainable-parameter count |
//! | `methods` | FFT, LoRA, SpA, RoSA, random subspace adaptation |
//! | `model` | a residual GELU MLP of adapter layers; MSE and cross-entropy |
//! | `tasks` | built-in pretrain / fine-tune task pairs |
//! | `trainer` | the shared loop and [`run`], which makes the comparison table |
//! | `memory` | peak memory: a counting allocator or `VmHWM` |
//! | `cli` | the `rosa train` flags |
//!
//! One training step of one layer, by hand:
//!
//! ```
//! use rosa::train::{AdamConfig, AdamW, Cpu, LoraConfig, RosaLinear, Scaling, top_k_mask};
//! use rosa::{random, random::Rng};
//! let mut layer = RosaLinear::new(random::dense(8, 16, 1), None);
//! layer.add_lora(LoraConfig { rank: 2, alpha: 4.0, scaling: Scaling::Standard, dropout: 0.0 }, &mut Rng::new(2));
//! let x = random::dense::<f32>(16, 32, 3); // 16 features, 32 tokens
//! layer.forward(&Cpu, x.as_ref(), true).unwrap();
//! let dy = random::dense::<f32>(8, 32, 4);
//! // The sparse mask: the largest entries of the dense weight gradient.
//! let g = layer.dense_grad(&Cpu, dy.as_ref()).unwrap();
//! layer.set_sparse_mask(&top_k_mask(g.as_ref(), 6).unwrap()).unwrap();
//! layer.forward(&Cpu, x.as_ref(), true).unwrap();
//! layer.backward(&Cpu, dy.as_ref()).unwrap();
//! let mut opt = AdamW::new(AdamConfig::default());
//! let mut params: Vec<_> = layer.params().into_iter().map(|p| (p.name.to_string(), p)).collect();
//! assert_eq!(params.len(), 3); // A, B and S's values
//! opt.step(&mut params, 1.0);
//! ```

#![warn(missing_docs)]

pub mod backend;
pub mod budget;
pub mod cli;
pub mod layer;
pub mod mask;
pub mod memory;
pub mod methods;
pub mod model;
pub mod optim;
pub mod plan;
pub mod schedule;
mod store;
pub mod tasks;
pub mod trainer;

pub use backend::{Backend, Cpu, Device, Trans};
pub use budget::{lora_params, sparse_params, Budget, Split};
pub use layer::{Group, Lora, LoraConfig, Param, RosaLinear, Scaling, SparseAdapter, Weight};
pub use mask::{
    entries_for_density, load_masks, save_masks, top_k_mask, Accumulation, GradAccumulator,
};
pub use memory::{CountingAlloc, PeakSource};
pub use methods::{subspace_factors, subspace_split, Method, SubspaceSplit};
pub use model::{loss, LossValue, Mlp, MlpConfig, Targets};
pub use optim::{AdamConfig, AdamW, LrSchedule};
pub use schedule::Schedule;
pub use tasks::{Source, Stream, Task, TaskKind};
pub use trainer::{run, Report, Row, TrainConfig};
