//! `rosa train`: the command-line front of [`super::run`].
//!
//! It lives in the library so it is built and tested with it; the `rosa` binary wires it
//! in with a `Train(rosa::train::cli::TrainArgs)` subcommand whose arm calls [`run`].
//!
//! ```
//! use clap::Parser;
//! #[derive(Parser)]
//! struct Cli {
//!     #[command(flatten)]
//!     train: rosa::train::cli::TrainArgs,
//! }
//! let cli = Cli::parse_from(["rosa", "--method", "lora,rosa", "--schedule", "wl16", "--steps", "50"]);
//! let cfg = cli.train.config();
//! assert_eq!(cfg.methods.len(), 2);
//! assert_eq!(cfg.steps, 50);
//! assert_eq!(cfg.rosa_schedule().to_string(), "wl16");
//! ```

use std::path::PathBuf;

use super::backend::Device;
use super::layer::Scaling;
use super::mask::Accumulation;
use super::methods::Method;
use super::schedule::Schedule;
use super::tasks::TaskKind;
use super::trainer::TrainConfig;
use crate::quant::Nf4Config;
use crate::{Error, Result};

/// Pretrain a small residual MLP on a built-in task, fine-tune it with FFT, LoRA, SpA,
/// RoSA and random subspace adaptation at a matched parameter budget, and print one
/// table (progress goes to stderr).
#[derive(Debug, Clone, clap::Args)]
pub struct TrainArgs {
    /// Methods to compare (comma-separated): fft, lora, spa, rosa, random_subspace.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "fft,lora,spa,rosa,random_subspace"
    )]
    pub method: Vec<Method>,
    /// Built-in tasks (comma-separated): lowrank_sparse, new_family.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "lowrank_sparse,new_family"
    )]
    pub task: Vec<TaskKind>,
    /// Every method gets the trainable-parameter count of LoRA at this rank.
    #[arg(long, default_value_t = 8)]
    pub budget_rank: usize,
    /// Rank for LoRA, RoSA and random subspace, in 1..=the smallest layer side (default:
    /// from the budget; RoSA's density then fills the rest of it).
    #[arg(long)]
    pub rank: Option<usize>,
    /// Sparse density for SpA and RoSA, in (0, 1] (default: from the budget).
    #[arg(long)]
    pub density: Option<f64>,
    /// RoSA's schedule: lora_only, spa_only or wlN (default: wl of a tenth of the steps).
    #[arg(long)]
    pub schedule: Option<Schedule>,
    /// Fine-tuning steps per method.
    #[arg(long, default_value_t = 400)]
    pub steps: usize,
    /// Pretraining steps of the base model.
    #[arg(long, default_value_t = 400)]
    pub pretrain_steps: usize,
    /// Tokens per batch.
    #[arg(long, default_value_t = 128)]
    pub batch: usize,
    /// Width of the MLP's residual stream.
    #[arg(long, default_value_t = 128)]
    pub hidden: usize,
    /// Where the heavy products run: cpu, or cuda (GPU 0, needs the cuda feature; each
    /// product's operands are staged through host memory, so it checks the kernels in
    /// training but ms/step is mostly copies).
    #[arg(long, default_value = "cpu")]
    pub device: Device,
    /// Seed of the tasks, data and initialisation.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Directory to save adapters and masks to (safetensors, TASK/METHOD/ per run).
    #[arg(long)]
    pub save: Option<PathBuf>,
    /// Start from masks saved by an earlier run instead of generating them.
    #[arg(long)]
    pub masks: Option<PathBuf>,
    /// Peak learning rate of A and B.
    #[arg(long, default_value_t = 4e-3)]
    pub lr: f32,
    /// Peak learning rate of S.
    #[arg(long, default_value_t = 4e-3)]
    pub lr_sparse: f32,
    /// Peak learning rate of W under full fine-tuning and pretraining.
    #[arg(long, default_value_t = 1e-3)]
    pub lr_full: f32,
    /// Mask statistic: mean_squared (diagonal Fisher) or mean.
    #[arg(long, default_value = "mean_squared")]
    pub accumulation: Accumulation,
    /// Batches averaged for the mask.
    #[arg(long, default_value_t = 8)]
    pub spa_num_grads: usize,
    /// LoRA's alpha: the low-rank branch is scaled by alpha / r.
    #[arg(long, default_value_t = 16.0)]
    pub lora_alpha: f32,
    /// Scale the low-rank branch by alpha / sqrt(r) instead (rsLoRA).
    #[arg(long)]
    pub rslora: bool,
    /// Dropout on the low-rank branch's input.
    #[arg(long, default_value_t = 0.0)]
    pub lora_dropout: f32,
    /// Random subspace adaptation merges and re-draws its subspace every this many steps.
    #[arg(long, default_value_t = 100)]
    pub resplit_every: usize,
    /// Keep frozen weights in bf16 (every method but FFT).
    #[arg(long)]
    pub bf16_weights: bool,
    /// Store frozen weights in 4-bit NF4 (QLoRA blocks of 64, double-quantized scales):
    /// lora becomes QLoRA, rosa QRoSA. Refused for fft and random_subspace.
    #[arg(long, value_parser = ["nf4"])]
    pub quant: Option<String>,
    /// Print the rows as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// No progress lines on stderr.
    #[arg(long)]
    pub quiet: bool,
}

impl TrainArgs {
    /// Refuses a `--rank` outside `1..=` the smallest side of the model's layers (a
    /// rank-r factorization of a smaller matrix has nothing left to add) and a
    /// `--density` outside `(0, 1]`, each with the valid range.
    ///
    /// ```
    /// use clap::Parser;
    /// #[derive(Parser)]
    /// struct Cli {
    ///     #[command(flatten)]
    ///     train: rosa::train::cli::TrainArgs,
    /// }
    /// let args = |a: &[&str]| Cli::parse_from([&["rosa"], a].concat()).train;
    /// assert!(args(&["--rank", "16", "--hidden", "16"]).validate().is_ok());
    /// let err = args(&["--rank", "17", "--hidden", "16"]).validate().unwrap_err();
    /// assert!(err.to_string().contains("1..=16"));
    /// assert!(args(&["--density", "0"]).validate().is_err());
    /// ```
    pub fn validate(&self) -> Result<()> {
        let mlp = self.config().mlp;
        // Layers are hidden x inputs, hidden x hidden and outputs x hidden.
        let side = mlp.inputs.min(mlp.hidden).min(mlp.outputs);
        if let Some(r) = self.rank.filter(|r| !(1..=side).contains(r)) {
            return Err(Error::InvalidArgument(format!(
                "--rank {r} is outside 1..={side}: the smallest layer is {side} wide (inputs {}, hidden {}, outputs {})",
                mlp.inputs, mlp.hidden, mlp.outputs
            )));
        }
        if let Some(d) = self.density.filter(|d| !(*d > 0.0 && *d <= 1.0)) {
            return Err(Error::InvalidArgument(format!(
                "--density {d} is outside (0, 1]: the share of each layer's weights the sparse adapter trains"
            )));
        }
        Ok(())
    }

    /// The library configuration these flags describe.
    pub fn config(&self) -> TrainConfig {
        let mut cfg = TrainConfig {
            tasks: self.task.clone(),
            methods: self.method.clone(),
            budget_rank: self.budget_rank,
            rank: self.rank,
            density: self.density,
            schedule: self.schedule,
            steps: self.steps,
            pretrain_steps: self.pretrain_steps,
            batch: self.batch,
            device: self.device,
            seed: self.seed,
            save: self.save.clone(),
            masks: self.masks.clone(),
            lr_low_rank: self.lr,
            lr_sparse: self.lr_sparse,
            lr_full: self.lr_full,
            accumulation: self.accumulation,
            spa_num_grads: self.spa_num_grads,
            scaling: if self.rslora {
                Scaling::Rs
            } else {
                Scaling::Standard
            },
            // These four were parsed but never passed on (no-op flags) before.
            lora_alpha: self.lora_alpha,
            lora_dropout: self.lora_dropout,
            resplit_every: self.resplit_every,
            bf16_weights: self.bf16_weights,
            quant: self.quant.as_ref().map(|_| Nf4Config::qlora()),
            progress: !self.quiet,
            ..TrainConfig::default()
        };
        cfg.mlp.hidden = self.hidden;
        cfg
    }
}

/// Runs `rosa train` and prints its table (or JSON) on stdout.
pub fn run(args: &TrainArgs) -> Result<()> {
    args.validate()?;
    let report = super::trainer::run(&args.config())?;
    if args.json {
        println!("{}", report.to_json());
    } else {
        print!("{}", report.table());
    }
    Ok(())
}
