//! RoSA fine-tuning on top of the kernels: the adapter layer, mask generation, AdamW,
//! the methods compared (FFT, LoRA, SpA, RoSA, random subspace adaptation), a small
//! residual MLP, built-in tasks and the trainer behind `rosa train`.

pub mod backend;
pub mod layer;

pub use backend::{Backend, Cpu, Device, Trans};
pub use layer::{Group, Lora, LoraConfig, Param, RosaLinear, Scaling, SparseAdapter, Weight};
pub mod mask;
mod store;

pub use mask::{
    entries_for_density, load_masks, save_masks, top_k_mask, Accumulation, GradAccumulator,
};
pub mod optim;

pub use optim::{AdamConfig, AdamW, LrSchedule};
pub mod budget;
pub mod schedule;

pub use budget::{lora_params, sparse_params, Budget, Split};
pub use schedule::Schedule;
pub mod methods;

pub use methods::{subspace_split, Method};
pub mod model;

pub use model::{loss, LossValue, Mlp, MlpConfig, Targets};
pub mod tasks;

pub use tasks::{Source, Stream, Task, TaskKind};
pub mod memory;

pub use memory::{CountingAlloc, PeakSource};
pub mod trainer;

pub use trainer::{run, Report, Row, TrainConfig};
pub mod cli;
