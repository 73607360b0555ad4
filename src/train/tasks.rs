//! Built-in tasks: a base model is pretrained on task A, then fine-tuned on task B.

use super::backend::{Backend, Trans};
use super::model::{Mlp, MlpConfig, Targets};
use crate::random::Rng;
use crate::{Dense, Error, Result};

/// Which built-in task pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskKind {
    /// Shaped for RoSA: task B is the pretrained base itself with every weight moved by
    /// a low-rank term, a few large sparse entries and noise, so the ideal update is
    /// exactly that (regression, MSE).
    LowRankSparse,
    /// Shaped by nobody: the base learns to classify inputs by their nearest centroid;
    /// task B labels them by the largest of a set of random sinusoids, another function
    /// family altogether (cross-entropy).
    NewFamily,
}

impl TaskKind {
    /// Both built-in tasks.
    pub const ALL: [TaskKind; 2] = [TaskKind::LowRankSparse, TaskKind::NewFamily];
}

impl std::fmt::Display for TaskKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TaskKind::LowRankSparse => "lowrank_sparse",
            TaskKind::NewFamily => "new_family",
        })
    }
}

impl std::str::FromStr for TaskKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        TaskKind::ALL
            .into_iter()
            .find(|t| t.to_string() == s)
            .ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "unknown task '{s}' (expected lowrank_sparse or new_family)"
                ))
            })
    }
}

/// Where a task's targets come from.
#[derive(Debug, Clone)]
pub enum Source {
    /// The outputs of a teacher network (regression).
    Teacher(Box<Mlp>),
    /// The index of the nearest centroid (rows: classes x inputs).
    Centroids(Dense<f32>),
    /// `argmax_k sin(w_k . x + b_k)`.
    Waves {
        /// Frequencies, classes x inputs.
        w: Dense<f32>,
        /// Phases, one per class.
        b: Vec<f32>,
    },
}

impl Source {
    /// The targets for inputs `x` (inputs x tokens).
    pub fn targets(&mut self, be: &dyn Backend, x: &Dense<f32>) -> Result<Targets> {
        let tokens = x.cols();
        match self {
            Source::Teacher(t) => Ok(Targets::Values(t.forward(be, x.as_ref(), false)?)),
            Source::Centroids(c) => {
                // argmin |x - c|^2 = argmax (c . x - |c|^2 / 2)
                let mut s = Dense::zeros(c.rows(), tokens);
                be.gemm(
                    1.0,
                    c.as_ref(),
                    Trans::N,
                    x.as_ref(),
                    Trans::N,
                    0.0,
                    s.as_mut(),
                )?;
                let half: Vec<f32> = (0..c.rows())
                    .map(|k| 0.5 * row(c, k).iter().map(|v| v * v).sum::<f32>())
                    .collect();
                Ok(Targets::Labels(argmax_cols(&s, |k, v| v - half[k])))
            }
            Source::Waves { w, b } => {
                let mut s = Dense::zeros(w.rows(), tokens);
                be.gemm(
                    1.0,
                    w.as_ref(),
                    Trans::N,
                    x.as_ref(),
                    Trans::N,
                    0.0,
                    s.as_mut(),
                )?;
                Ok(Targets::Labels(argmax_cols(&s, |k, v| (v + b[k]).sin())))
            }
        }
    }
}

fn row(m: &Dense<f32>, i: usize) -> &[f32] {
    &m.as_slice()[i * m.cols()..(i + 1) * m.cols()]
}

fn argmax_cols(s: &Dense<f32>, score: impl Fn(usize, f32) -> f32) -> Vec<usize> {
    (0..s.cols())
        .map(|t| {
            (0..s.rows())
                .map(|k| (k, score(k, s.as_slice()[k * s.cols() + t])))
                .fold(
                    (0, f32::NEG_INFINITY),
                    |best, c| if c.1 > best.1 { c } else { best },
                )
                .0
        })
        .collect()
}

fn gaussian(rng: &mut Rng) -> f32 {
    // Box-Muller; 1 - u keeps the logarithm finite.
    let (u, v) = (1.0 - rng.next_f64(), rng.next_f64());
    ((-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()) as f32
}

/// Which stream of inputs a batch is drawn from; every method sees the same batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Task A's training batches.
    Pretrain,
    /// Task B's training batches.
    Finetune,
    /// The held-out evaluation set.
    Eval,
}

/// A task pair built from a seed.
///
/// ```
/// use rosa::train::{Cpu, MlpConfig, Stream, Task, TaskKind};
/// let cfg = MlpConfig { inputs: 8, hidden: 16, outputs: 4, blocks: 1 };
/// let task = Task::new(TaskKind::NewFamily, cfg, 1);
/// let x = task.inputs(Stream::Pretrain, 0, 32);
/// assert_eq!((x.rows(), x.cols()), (8, 32));
/// assert_eq!(x, task.inputs(Stream::Pretrain, 0, 32)); // same step, same batch
/// ```
#[derive(Debug, Clone)]
pub struct Task {
    /// Which pair.
    pub kind: TaskKind,
    /// The model shape the task is built for.
    pub mlp: MlpConfig,
    seed: u64,
}

impl Task {
    /// The task pair `kind` for models of shape `mlp`, reproducible from `seed`.
    pub fn new(kind: TaskKind, mlp: MlpConfig, seed: u64) -> Self {
        Task { kind, mlp, seed }
    }

    /// Standard-normal inputs (inputs x tokens) for batch `step` of `stream`.
    pub fn inputs(&self, stream: Stream, step: usize, tokens: usize) -> Dense<f32> {
        let tag = match stream {
            Stream::Pretrain => 1u64,
            Stream::Finetune => 2,
            Stream::Eval => 3,
        };
        // Rng's state advances by a constant, so seeds that differ by a multiple of it
        // give shifted copies of one sequence; hashing the step first keeps batches apart.
        let step_hash = Rng::new(step as u64).next_u64();
        let mut rng = Rng::new(Rng::new(self.seed ^ (tag << 56)).next_u64() ^ step_hash);
        Dense::from_fn(self.mlp.inputs, tokens, |_, _| gaussian(&mut rng))
    }

    /// Task A, which the base model is pretrained on.
    pub fn pretrain_source(&self) -> Source {
        let mut rng = Rng::new(self.seed ^ 0xA);
        match self.kind {
            TaskKind::LowRankSparse => {
                Source::Teacher(Box::new(Mlp::new(self.mlp, self.seed ^ 0x7EAC)))
            }
            TaskKind::NewFamily => {
                Source::Centroids(Dense::from_fn(self.mlp.outputs, self.mlp.inputs, |_, _| {
                    gaussian(&mut rng)
                }))
            }
        }
    }

    /// Task B, given the pretrained base.
    pub fn finetune_source(&self, base: &Mlp) -> Result<Source> {
        let mut rng = Rng::new(self.seed ^ 0xB);
        match self.kind {
            TaskKind::LowRankSparse => {
                let mut teacher = base.clone();
                teacher.clear();
                for layer in teacher.layers_mut() {
                    let w = layer.weight().to_f32();
                    layer.set_weight(perturb(&w, &mut rng))?;
                }
                Ok(Source::Teacher(Box::new(teacher)))
            }
            TaskKind::NewFamily => {
                let scale = 0.5 / (self.mlp.inputs as f32).sqrt();
                let w = Dense::from_fn(self.mlp.outputs, self.mlp.inputs, |_, _| {
                    scale * gaussian(&mut rng)
                });
                let b = (0..self.mlp.outputs)
                    .map(|_| rng.uniform(0.0, std::f32::consts::TAU))
                    .collect();
                Ok(Source::Waves { w, b })
            }
        }
    }
}

/// Rank of the low-rank part of the shaped task's update.
pub const SHAPED_RANK: usize = 2;
/// Share of entries in the sparse part of the shaped task's update.
pub const SHAPED_DENSITY: f64 = 0.01;

/// `W + L + S + N`: a rank-[`SHAPED_RANK`] term of W's own scale, [`SHAPED_DENSITY`] of
/// entries moved by several times W's scale, and small dense noise.
fn perturb(w: &Dense<f32>, rng: &mut Rng) -> Dense<f32> {
    let (m, n) = (w.rows(), w.cols());
    let rms = (w.as_slice().iter().map(|v| v * v).sum::<f32>() / (m * n) as f32).sqrt();
    let u = Dense::from_fn(m, SHAPED_RANK, |_, _| gaussian(rng));
    let v = Dense::from_fn(SHAPED_RANK, n, |_, _| gaussian(rng));
    // Each entry of U V has variance r, so this gives the low-rank term rms 0.25 * rms(W).
    let low = 0.25 * rms / (SHAPED_RANK as f32).sqrt();
    let mut out = Dense::from_fn(m, n, |i, j| {
        let lr: f32 = (0..SHAPED_RANK)
            .map(|k| u.as_slice()[i * SHAPED_RANK + k] * v.as_slice()[k * n + j])
            .sum();
        w.as_slice()[i * n + j] + low * lr + 0.02 * rms * gaussian(rng)
    });
    let k = ((SHAPED_DENSITY * (m * n) as f64).round() as usize).max(1);
    for _ in 0..k {
        let p = rng.below(m * n);
        let sign = if rng.next_u64() & 1 == 0 { 1.0 } else { -1.0 };
        out.as_mut_slice()[p] += sign * rng.uniform(2.0, 4.0) * rms;
    }
    out
}
