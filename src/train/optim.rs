//! AdamW with two learning-rate groups, a warm-up + linear-decay schedule and global
//! gradient-norm clipping.

use std::collections::HashMap;

use super::layer::{Group, Param};

/// AdamW's hyperparameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamConfig {
    /// Peak learning rate of the low-rank pair (A, B).
    pub lr_low_rank: f32,
    /// Peak learning rate of everything else (S; W and bias under full fine-tuning).
    pub lr_other: f32,
    /// First-moment decay.
    pub beta1: f32,
    /// Second-moment decay.
    pub beta2: f32,
    /// Denominator floor.
    pub eps: f32,
    /// Decoupled weight decay (off by default: adapters start at zero and decaying the
    /// frozen-model-relative update toward zero is rarely wanted).
    pub weight_decay: f32,
    /// Global gradient-norm bound, if any.
    pub clip_norm: Option<f32>,
}

impl Default for AdamConfig {
    fn default() -> Self {
        AdamConfig {
            lr_low_rank: 1e-3,
            lr_other: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            clip_norm: Some(1.0),
        }
    }
}

/// The parts of one AdamW step that do not depend on where the moments live, shared by
/// [`AdamW`] and the device optimizer (`rosa::cuda::DeviceAdamW`) so both step alike.
impl AdamConfig {
    /// The factor every gradient is scaled by when the global norm is `norm`.
    pub(crate) fn clip_scale(&self, norm: f32) -> f32 {
        match self.clip_norm {
            Some(c) if norm > c => c / (norm + 1e-6),
            _ => 1.0,
        }
    }

    /// The learning rate of `group` at `lr_factor` times its peak.
    pub(crate) fn lr(&self, group: Group, lr_factor: f32) -> f32 {
        lr_factor
            * match group {
                Group::LowRank => self.lr_low_rank,
                Group::Other => self.lr_other,
            }
    }

    /// `1 - beta1^t` and `1 - beta2^t`, the bias corrections of a tensor's step `t`.
    pub(crate) fn bias_corrections(&self, t: i32) -> (f32, f32) {
        (1.0 - self.beta1.powi(t), 1.0 - self.beta2.powi(t))
    }
}

/// Linear warm-up from 0 over `warmup` steps, then linear decay to 0 at `total`.
///
/// ```
/// use rosa::train::LrSchedule;
/// let s = LrSchedule { warmup: 10, total: 110 };
/// assert_eq!(s.factor(0), 0.1);
/// assert_eq!(s.factor(9), 1.0);
/// assert_eq!(s.factor(60), 0.5);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LrSchedule {
    /// Warm-up steps.
    pub warmup: usize,
    /// Total steps.
    pub total: usize,
}

impl LrSchedule {
    /// The learning-rate multiplier at `step` (0-based).
    pub fn factor(&self, step: usize) -> f32 {
        if step < self.warmup {
            (step + 1) as f32 / self.warmup as f32
        } else {
            let left = self.total.saturating_sub(step) as f32;
            let span = self.total.saturating_sub(self.warmup).max(1) as f32;
            (left / span).clamp(0.0, 1.0)
        }
    }
}

#[derive(Debug, Clone)]
struct Moments {
    m: Vec<f32>,
    v: Vec<f32>,
    /// Steps this tensor has taken: tensors that join mid-run (S after the LoRA
    /// warm-up) get their own bias correction.
    t: i32,
}

/// AdamW whose state is keyed by parameter name, so tensors can join (a new mask) or be
/// replaced (a re-split) without disturbing the others.
///
/// ```
/// use rosa::train::{AdamConfig, AdamW, Group, Param};
/// let mut opt = AdamW::new(AdamConfig { clip_norm: None, ..AdamConfig::default() });
/// let mut w = vec![1.0f32];
/// let grad = vec![0.5f32];
/// let mut params = vec![("w".to_string(), Param { name: "w", group: Group::Other, value: &mut w, grad: &grad })];
/// opt.step(&mut params, 1.0);
/// drop(params);
/// assert!((w[0] - 0.999).abs() < 1e-6); // Adam's first step moves by lr
/// ```
#[derive(Debug, Clone)]
pub struct AdamW {
    cfg: AdamConfig,
    state: HashMap<String, Moments>,
}

impl AdamW {
    /// A fresh optimizer.
    pub fn new(cfg: AdamConfig) -> Self {
        AdamW {
            cfg,
            state: HashMap::new(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &AdamConfig {
        &self.cfg
    }

    /// Forgets all moments (random subspace adaptation does this at each re-split).
    pub fn reset(&mut self) {
        self.state.clear();
    }

    /// Bytes of optimizer state.
    pub fn state_bytes(&self) -> usize {
        self.state
            .values()
            .map(|m| (m.m.len() + m.v.len()) * 4)
            .sum()
    }

    /// One update of every parameter at `lr_factor` times its group's peak rate, after
    /// clipping the global gradient norm. Returns the norm before clipping.
    pub fn step(&mut self, params: &mut [(String, Param<'_>)], lr_factor: f32) -> f32 {
        let norm = params
            .iter()
            .flat_map(|(_, p)| p.grad.iter())
            .map(|&g| g as f64 * g as f64)
            .sum::<f64>()
            .sqrt() as f32;
        let c = self.cfg;
        let clip = c.clip_scale(norm);
        for (key, p) in params.iter_mut() {
            let lr = c.lr(p.group, lr_factor);
            let n = p.value.len();
            let st = self.state.entry(key.clone()).or_insert_with(|| Moments {
                m: vec![0.0; n],
                v: vec![0.0; n],
                t: 0,
            });
            if st.m.len() != n {
                *st = Moments {
                    m: vec![0.0; n],
                    v: vec![0.0; n],
                    t: 0,
                };
            }
            st.t += 1;
            let (bc1, bc2) = c.bias_corrections(st.t);
            for (((w, &g), m), v) in p.value.iter_mut().zip(p.grad).zip(&mut st.m).zip(&mut st.v) {
                let g = g * clip;
                *m = c.beta1 * *m + (1.0 - c.beta1) * g;
                *v = c.beta2 * *v + (1.0 - c.beta2) * g * g;
                let update = (*m / bc1) / ((*v / bc2).sqrt() + c.eps);
                *w -= lr * (update + c.weight_decay * *w);
            }
        }
        norm
    }
}
