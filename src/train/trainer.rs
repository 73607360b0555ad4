//! The training loop every method shares, and [`run`]: pretrain a base per task, then
//! fine-tune it with each method at a matched budget and report one table.

use std::path::PathBuf;
use std::time::Instant;

use super::backend::{Backend, Device};
use super::budget::Budget;
use super::layer::{LoraConfig, RosaLinear, Scaling};
use super::mask::{load_masks, save_masks, Accumulation, GradAccumulator};
use super::memory::{PeakMeter, PeakSource};
use super::methods::{subspace_split, Method};
use super::model::{loss, Mlp, MlpConfig, Targets};
use super::optim::{AdamConfig, AdamW, LrSchedule};
use super::schedule::Schedule;
use super::tasks::{Source, Stream, Task, TaskKind};
use crate::quant::Nf4Config;
use crate::random::Rng;
use crate::{Csr, CsrShape, Dense, Error, Result};

/// Everything a `rosa train` run needs. [`TrainConfig::default`] is the built-in
/// comparison: every method on both tasks at the budget of LoRA rank 8.
#[derive(Debug, Clone)]
pub struct TrainConfig {
    /// Tasks to run.
    pub tasks: Vec<TaskKind>,
    /// Methods to compare on each task.
    pub methods: Vec<Method>,
    /// The budget every method is matched to: what LoRA of this rank trains.
    pub budget_rank: usize,
    /// Rank override for the methods that have one (RoSA's density then fills the budget).
    pub rank: Option<usize>,
    /// Density override for SpA and RoSA.
    pub density: Option<f64>,
    /// RoSA's schedule (default `wlN` with N a tenth of the steps).
    pub schedule: Option<Schedule>,
    /// Fine-tuning steps.
    pub steps: usize,
    /// Pretraining steps of the base model on task A.
    pub pretrain_steps: usize,
    /// Tokens per batch.
    pub batch: usize,
    /// Tokens in the held-out evaluation set.
    pub eval_tokens: usize,
    /// The model's shape.
    pub mlp: MlpConfig,
    /// Seed of the tasks, the data and every initialisation.
    pub seed: u64,
    /// Where the kernels run.
    pub device: Device,
    /// Directory for adapters and masks (safetensors), one subdirectory per task/method.
    pub save: Option<PathBuf>,
    /// Masks to use instead of generating them (from an earlier `save`).
    pub masks: Option<PathBuf>,
    /// Peak learning rate of A and B.
    pub lr_low_rank: f32,
    /// Peak learning rate of S.
    pub lr_sparse: f32,
    /// Peak learning rate of W under full fine-tuning (and of pretraining).
    pub lr_full: f32,
    /// Share of the steps spent warming the learning rate up.
    pub warmup_frac: f32,
    /// Global gradient-norm bound.
    pub clip_norm: Option<f32>,
    /// AdamW's decoupled weight decay.
    pub weight_decay: f32,
    /// LoRA's alpha (`s = alpha / r`, or `/ sqrt(r)` with rsLoRA).
    pub lora_alpha: f32,
    /// LoRA's scaling rule.
    pub scaling: Scaling,
    /// Dropout on the low-rank branch.
    pub lora_dropout: f32,
    /// What mask generation averages.
    pub accumulation: Accumulation,
    /// Batches whose gradients mask generation averages.
    pub spa_num_grads: usize,
    /// Random subspace adaptation re-draws its subspace every this many steps.
    pub resplit_every: usize,
    /// Frozen weights in bf16 for every method but FFT (which trains them in f32).
    pub bf16_weights: bool,
    /// Frozen weights in 4-bit NF4 (QLoRA, QRoSA: rows are named `q` + the method) for
    /// the adapter methods; FFT and random subspace, which rewrite W, are refused.
    pub quant: Option<Nf4Config>,
    /// Progress lines on stderr.
    pub progress: bool,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            tasks: TaskKind::ALL.to_vec(),
            methods: Method::ALL.to_vec(),
            budget_rank: 8,
            rank: None,
            density: None,
            schedule: None,
            steps: 400,
            pretrain_steps: 400,
            batch: 128,
            eval_tokens: 2048,
            mlp: MlpConfig {
                inputs: 32,
                hidden: 128,
                outputs: 16,
                blocks: 2,
            },
            seed: 0,
            device: Device::Cpu,
            save: None,
            masks: None,
            lr_low_rank: 4e-3,
            lr_sparse: 4e-3,
            lr_full: 1e-3,
            warmup_frac: 0.05,
            clip_norm: Some(1.0),
            weight_decay: 0.0,
            lora_alpha: 16.0,
            scaling: Scaling::Standard,
            lora_dropout: 0.0,
            accumulation: Accumulation::MeanSquared,
            spa_num_grads: 8,
            resplit_every: 100,
            bf16_weights: false,
            quant: None,
            progress: false,
        }
    }
}

impl TrainConfig {
    /// Rejects settings no run can use, before any work is done.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidArgument(m));
        if !(0.0..1.0).contains(&self.lora_dropout) {
            return bad(format!(
                "LoRA dropout {} is outside [0, 1)",
                self.lora_dropout
            ));
        }
        if let Some(d) = self.density.filter(|d| !(0.0..=1.0).contains(d)) {
            return bad(format!("density {d} is outside [0, 1]"));
        }
        if self.batch == 0 || self.eval_tokens == 0 {
            return bad("batch and eval tokens must be positive".into());
        }
        let m = self.mlp;
        if m.inputs == 0 || m.hidden == 0 || m.outputs == 0 {
            return bad(format!("every layer needs a positive width, got {m:?}"));
        }
        for lr in [self.lr_low_rank, self.lr_sparse, self.lr_full] {
            if !(lr.is_finite() && lr >= 0.0) {
                return bad(format!(
                    "learning rate {lr} must be finite and non-negative"
                ));
            }
        }
        // Refused here, before any pretraining, not when the method's turn comes.
        if let Some(method) = self.methods.iter().find(|m| m.rewrites_w()) {
            if self.quant.is_some() {
                return Err(Error::Unsupported(format!(
                    "--quant nf4 with {method}: it rewrites W, which a 4-bit W cannot take; \
                     use lora, spa or rosa"
                )));
            }
        }
        Ok(())
    }

    /// RoSA's schedule: the configured one, or LoRA warm-up for a tenth of the steps.
    pub fn rosa_schedule(&self) -> Schedule {
        self.schedule.unwrap_or(Schedule::WarmLora(self.steps / 10))
    }

    /// The `(rank, density)` `method` runs with: matched to [`TrainConfig::budget_rank`]
    /// unless overridden. LoRA and random subspace take the budget's rank; SpA spends it
    /// all on S; RoSA takes half the rank and spends the rest on S.
    pub fn rank_density(&self, method: Method, shapes: &[(usize, usize)]) -> Result<(usize, f64)> {
        let budget = Budget::LoraRank(self.budget_rank);
        Ok(match method {
            Method::Fft => (0, 0.0),
            Method::Lora | Method::RandomSubspace => (self.rank.unwrap_or(self.budget_rank), 0.0),
            Method::Spa => (
                0,
                match self.density {
                    Some(d) => d,
                    None => budget.density_for_rank(shapes, 0)?,
                },
            ),
            Method::Rosa => {
                let r = self.rank.unwrap_or(self.budget_rank / 2);
                let d = match self.density {
                    Some(d) => d,
                    None => budget.density_for_rank(shapes, r)?,
                };
                (r, d)
            }
        })
    }
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Row {
    /// Task name.
    pub task: String,
    /// Method name (`base` for the pretrained model before fine-tuning).
    pub method: String,
    /// Schedule (RoSA family), or `-`.
    pub schedule: String,
    /// Low-rank rank (0: none).
    pub rank: usize,
    /// Sparse density actually used (nnz over dense entries).
    pub density: f64,
    /// Trainable values at the end of training.
    pub trainable: usize,
    /// Loss on the held-out set.
    pub eval_loss: f32,
    /// Share of held-out tokens predicted right.
    pub accuracy: f32,
    /// Wall time per training step (mask generation and re-splits included), ms.
    pub ms_per_step: f64,
    /// Peak memory in bytes; see [`Report::memory`].
    pub peak_bytes: usize,
    /// Bytes the frozen weights W of all layers are stored in (f32, bf16 or NF4).
    pub w_bytes: usize,
}

/// Bytes the frozen weights of all of `model`'s layers are stored in.
fn stored_w_bytes(model: &Mlp) -> usize {
    model
        .layers()
        .iter()
        .map(|l| l.weight().stored_bytes())
        .sum()
}

/// The result of [`run`].
#[derive(Debug, Clone)]
pub struct Report {
    /// One row per task and method, after a `base` row per task.
    pub rows: Vec<Row>,
    /// What `peak_bytes` measures.
    pub memory: PeakSource,
    /// Wall time of the whole run, seconds.
    pub wall_s: f64,
    /// Where the heavy products ran ([`Backend::name`]: `cpu` or `cuda`).
    pub backend: &'static str,
}

impl Report {
    /// The table `rosa train` prints.
    pub fn table(&self) -> String {
        let mut s = format!(
            "{:<15} {:<16} {:<10} {:>4} {:>8} {:>9} {:>10} {:>8} {:>9} {:>9} {:>9}\n",
            "task",
            "method",
            "schedule",
            "r",
            "d%",
            "trainable",
            "eval_loss",
            "acc%",
            "ms/step",
            "peak_MiB",
            "W_KiB"
        );
        for r in &self.rows {
            // The base model was not trained here: no step time or peak to show.
            let (ms, peak) = if r.method == "base" {
                ("-".to_string(), "-".to_string())
            } else {
                (
                    format!("{:.3}", r.ms_per_step),
                    format!("{:.2}", r.peak_bytes as f64 / (1 << 20) as f64),
                )
            };
            s += &format!(
                "{:<15} {:<16} {:<10} {:>4} {:>8.3} {:>9} {:>10.5} {:>8.2} {:>9} {:>9} {:>9.1}\n",
                r.task,
                r.method,
                r.schedule,
                r.rank,
                100.0 * r.density,
                r.trainable,
                r.eval_loss,
                100.0 * r.accuracy,
                ms,
                peak,
                r.w_bytes as f64 / 1024.0
            );
        }
        s += "acc: held-out tokens whose largest output is the right class (regression: the target's largest)\n";
        s += &format!(
            "backend: {}\npeak memory: {}\nwall time: {:.1} s\n",
            self.backend,
            self.memory.describe(),
            self.wall_s
        );
        s
    }

    /// The same rows as JSON (non-finite numbers become `null`).
    pub fn to_json(&self) -> String {
        serde_json::json!({
            "rows": self.rows,
            "backend": self.backend,
            "memory": self.memory.describe(),
            "wall_s": self.wall_s,
        })
        .to_string()
    }
}

/// A task's data for one stream, batch by batch; every method reads the same batches.
struct Data<'a> {
    be: &'a dyn Backend,
    task: &'a Task,
    source: Source,
    stream: Stream,
    batch: usize,
}

impl Data<'_> {
    fn batch(&mut self, step: usize) -> Result<(Dense<f32>, Targets)> {
        let x = self.task.inputs(self.stream, step, self.batch);
        let t = self.source.targets(self.be, &x)?;
        Ok((x, t))
    }

    fn evaluate(&mut self, model: &mut Mlp, tokens: usize) -> Result<(f32, f32)> {
        let x = self.task.inputs(Stream::Eval, 0, tokens);
        let t = self.source.targets(self.be, &x)?;
        let out = model.forward(self.be, x.as_ref(), false)?;
        let l = loss(&out, &t)?;
        Ok((l.loss, l.correct as f32 / tokens.max(1) as f32))
    }
}

/// What one method's fine-tuning needs to know.
struct Plan {
    method: Method,
    schedule: Option<Schedule>,
    rank: usize,
    density: f64,
    adam: AdamConfig,
}

/// How far a training run got: its trained model and wall time per step.
struct Trained {
    model: Mlp,
    masks: Option<Vec<Csr<f32>>>,
    secs_per_step: f64,
}

fn progress(cfg: &TrainConfig, label: &str, step: usize, steps: usize, loss: f32) {
    let every = (steps / 5).max(1);
    if cfg.progress && ((step + 1).is_multiple_of(every) || step + 1 == steps) {
        eprintln!("[{label}] step {:>5}/{steps}  loss {loss:.5}", step + 1);
    }
}

/// The masks for `model`'s layers: loaded, or from the gradients of the next
/// `spa_num_grads` batches at the model's current state.
fn make_masks(
    cfg: &TrainConfig,
    be: &dyn Backend,
    model: &mut Mlp,
    data: &mut Data<'_>,
    step: usize,
    density: f64,
) -> Result<Vec<Csr<f32>>> {
    if let Some(path) = &cfg.masks {
        let masks = load_masks(path)?;
        if masks.len() != model.layers().len() {
            return Err(Error::InvalidArgument(format!(
                "{} holds {} masks, the model has {} layers",
                path.display(),
                masks.len(),
                model.layers().len()
            )));
        }
        return Ok(masks);
    }
    let mut acc = GradAccumulator::new(cfg.accumulation, model.layers().len());
    for k in 0..cfg.spa_num_grads.max(1) {
        let (x, t) = data.batch(step + k)?;
        let out = model.forward(be, x.as_ref(), true)?;
        let l = loss(&out, &t)?;
        model.backward(be, l.grad.as_ref(), Some(&mut acc))?;
    }
    model.clear();
    acc.masks(&[density])
}

fn train(
    cfg: &TrainConfig,
    be: &dyn Backend,
    base: &Mlp,
    data: &mut Data<'_>,
    plan: &Plan,
    steps: usize,
    label: &str,
) -> Result<Trained> {
    let mut model = base.clone();
    let mut rng = Rng::new(cfg.seed ^ 0x5AB5);
    let lora = LoraConfig {
        rank: plan.rank,
        alpha: cfg.lora_alpha,
        scaling: cfg.scaling,
        dropout: cfg.lora_dropout,
    };
    if cfg.bf16_weights && plan.method != Method::Fft {
        model
            .layers_mut()
            .iter_mut()
            .try_for_each(RosaLinear::store_weight_bf16)?;
    }
    // Pretraining (an FFT plan) keeps f32; the refusal for FFT and random subspace as
    // fine-tuning methods is in `run`.
    if let Some(q) = cfg.quant.filter(|_| !plan.method.rewrites_w()) {
        model
            .layers_mut()
            .iter_mut()
            .try_for_each(|l| l.quantize_weight_nf4(q))?;
    }
    match plan.method {
        Method::Fft => model
            .layers_mut()
            .iter_mut()
            .try_for_each(|l| l.set_train_weight(true))?,
        Method::RandomSubspace => model
            .layers_mut()
            .iter_mut()
            .try_for_each(|l| subspace_split(l, be, plan.rank, &mut rng))?,
        _ => {
            if plan.schedule.is_some_and(Schedule::uses_lora) && plan.rank > 0 {
                model
                    .layers_mut()
                    .iter_mut()
                    .for_each(|l| l.add_lora(lora, &mut rng));
            }
        }
    }
    let mask_step = plan
        .schedule
        .and_then(Schedule::mask_step)
        .filter(|_| plan.density > 0.0);
    let mut masks = None;
    let mut opt = AdamW::new(plan.adam);
    let lr = LrSchedule {
        warmup: ((steps as f32 * cfg.warmup_frac) as usize).max(1),
        total: steps,
    };
    let start = Instant::now();
    for step in 0..steps {
        if mask_step == Some(step) {
            let m = make_masks(cfg, be, &mut model, data, step, plan.density)?;
            for (l, mask) in model.layers_mut().iter_mut().zip(&m) {
                l.set_sparse_mask(mask)?;
            }
            masks = Some(m);
        }
        if plan.method == Method::RandomSubspace
            && step > 0
            && step.is_multiple_of(cfg.resplit_every.max(1))
        {
            model
                .layers_mut()
                .iter_mut()
                .try_for_each(|l| subspace_split(l, be, plan.rank, &mut rng))?;
            opt.reset();
        }
        let (x, t) = data.batch(step)?;
        let out = model.forward(be, x.as_ref(), true)?;
        let l = loss(&out, &t)?;
        if !l.loss.is_finite() {
            return Err(Error::InvalidArgument(format!(
                "{label}: the loss diverged at step {step}"
            )));
        }
        model.backward(be, l.grad.as_ref(), None)?;
        opt.step(&mut model.params(), lr.factor(step));
        progress(cfg, label, step, steps, l.loss);
    }
    let secs_per_step = start.elapsed().as_secs_f64() / steps.max(1) as f64;
    model.clear();
    Ok(Trained {
        model,
        masks,
        secs_per_step,
    })
}

fn sparse_density(model: &Mlp) -> f64 {
    let dense: usize = model.shapes().iter().map(|&(o, i)| o * i).sum();
    let nnz: usize = model
        .layers()
        .iter()
        .filter_map(|l| l.sparse())
        .map(|s| s.matrix().nnz())
        .sum();
    nnz as f64 / dense.max(1) as f64
}

/// Pretrains a base model per task, fine-tunes it with every configured method on the
/// same batches from the same seed, and reports the held-out loss and accuracy, the
/// time per step and the peak memory of each.
///
/// ```
/// use rosa::train::{run, Method, MlpConfig, TaskKind, TrainConfig};
/// let cfg = TrainConfig {
///     tasks: vec![TaskKind::NewFamily],
///     methods: vec![Method::Rosa],
///     steps: 20,
///     pretrain_steps: 20,
///     batch: 32,
///     eval_tokens: 64,
///     mlp: MlpConfig { inputs: 8, hidden: 16, outputs: 4, blocks: 1 },
///     budget_rank: 2,
///     ..TrainConfig::default()
/// };
/// let report = run(&cfg).unwrap();
/// assert_eq!(report.rows.len(), 2); // the base model, then RoSA
/// assert!(report.table().contains("rosa"));
/// assert!(report.table().contains("backend: cpu"));
/// ```
pub fn run(cfg: &TrainConfig) -> Result<Report> {
    cfg.validate()?;
    let be = cfg.device.backend()?;
    let be = be.as_ref();
    let t0 = Instant::now();
    let mut rows = Vec::new();
    let mut memory = PeakSource::None;
    for &kind in &cfg.tasks {
        let task = Task::new(kind, cfg.mlp, cfg.seed);
        let name = kind.to_string();
        let mut pre = Data {
            be,
            task: &task,
            source: task.pretrain_source(),
            stream: Stream::Pretrain,
            batch: cfg.batch,
        };
        let pre_plan = Plan {
            method: Method::Fft,
            schedule: None,
            rank: 0,
            density: 0.0,
            adam: AdamConfig {
                lr_low_rank: cfg.lr_full,
                lr_other: cfg.lr_full,
                clip_norm: cfg.clip_norm,
                weight_decay: cfg.weight_decay,
                ..AdamConfig::default()
            },
        };
        let init = Mlp::new(cfg.mlp, cfg.seed ^ 0xBA5E);
        let mut base = train(
            cfg,
            be,
            &init,
            &mut pre,
            &pre_plan,
            cfg.pretrain_steps,
            &format!("{name} pretrain"),
        )?
        .model;
        base.layers_mut()
            .iter_mut()
            .try_for_each(|l| l.set_train_weight(false))?;
        let (pre_loss, pre_acc) = pre.evaluate(&mut base, cfg.eval_tokens)?;
        if cfg.progress {
            eprintln!(
                "[{name} pretrain] task A eval loss {pre_loss:.5}, accuracy {:.2}%",
                100.0 * pre_acc
            );
        }
        let mut data = Data {
            be,
            task: &task,
            source: task.finetune_source(&base)?,
            stream: Stream::Finetune,
            batch: cfg.batch,
        };
        let (base_loss, base_acc) = data.evaluate(&mut base, cfg.eval_tokens)?;
        rows.push(Row {
            task: name.clone(),
            method: "base".into(),
            schedule: "-".into(),
            rank: 0,
            density: 0.0,
            trainable: 0,
            eval_loss: base_loss,
            accuracy: base_acc,
            ms_per_step: 0.0,
            peak_bytes: 0,
            w_bytes: stored_w_bytes(&base),
        });
        let shapes = base.shapes();
        for &method in &cfg.methods {
            let (rank, density) = cfg.rank_density(method, &shapes)?;
            let plan = Plan {
                method,
                schedule: method.schedule(cfg.rosa_schedule()),
                rank,
                density,
                adam: AdamConfig {
                    lr_low_rank: cfg.lr_low_rank,
                    lr_other: if method == Method::Fft {
                        cfg.lr_full
                    } else {
                        cfg.lr_sparse
                    },
                    clip_norm: cfg.clip_norm,
                    weight_decay: cfg.weight_decay,
                    ..AdamConfig::default()
                },
            };
            let label = format!("{name} {method}");
            let meter = PeakMeter::start();
            let trained = train(cfg, be, &base, &mut data, &plan, cfg.steps, &label)?;
            let (peak, source) = meter.read();
            memory = source;
            let mut model = trained.model;
            let (eval_loss, accuracy) = data.evaluate(&mut model, cfg.eval_tokens)?;
            if cfg.progress {
                eprintln!(
                    "[{label}] eval loss {eval_loss:.5}, accuracy {:.2}%",
                    100.0 * accuracy
                );
            }
            if let Some(dir) = &cfg.save {
                let dir = dir.join(&name).join(method.to_string());
                let weights = matches!(method, Method::Fft | Method::RandomSubspace);
                model.save_adapters(&dir.join("adapters.safetensors"), weights)?;
                if let Some(m) = &trained.masks {
                    save_masks(&dir.join("masks.safetensors"), m)?;
                }
            }
            rows.push(Row {
                task: name.clone(),
                method: if cfg.quant.is_some() {
                    format!("q{method}")
                } else {
                    method.to_string()
                },
                schedule: plan.schedule.map_or("-".into(), |s| s.to_string()),
                rank,
                density: sparse_density(&model),
                trainable: model.trainable_params(),
                eval_loss,
                accuracy,
                ms_per_step: 1e3 * trained.secs_per_step,
                peak_bytes: peak,
                w_bytes: stored_w_bytes(&model),
            });
        }
    }
    Ok(Report {
        rows,
        memory,
        wall_s: t0.elapsed().as_secs_f64(),
        backend: be.name(),
    })
}
