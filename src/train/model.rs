//! A small residual MLP of [`RosaLinear`] layers, and its losses.

use std::path::Path;

use super::backend::Backend;
use super::layer::{Lora, Param, RosaLinear};
use super::mask::GradAccumulator;
use super::store::{TensorsIn, TensorsOut};
use crate::random::Rng;
use crate::{Csr, Dense, Error, MatRef, Result};

/// The MLP's sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MlpConfig {
    /// Input features.
    pub inputs: usize,
    /// Width of the residual stream.
    pub hidden: usize,
    /// Output features (classes, or regression targets).
    pub outputs: usize,
    /// Residual blocks, each `h + L2(gelu(L1 h))`.
    pub blocks: usize,
}

/// `gelu(L_in x)`, then `blocks` residual blocks `h + L2(gelu(L1 h))`, then `L_out h`;
/// activations feature-major (features x tokens) throughout.
///
/// ```
/// use rosa::train::{Cpu, Mlp, MlpConfig};
/// use rosa::Dense;
/// let mut mlp = Mlp::new(MlpConfig { inputs: 4, hidden: 8, outputs: 3, blocks: 1 }, 7);
/// let y = mlp.forward(&Cpu, Dense::filled(4, 5, 0.5f32).as_ref(), false).unwrap();
/// assert_eq!((y.rows(), y.cols()), (3, 5));
/// assert_eq!(mlp.layers().len(), 4);
/// ```
#[derive(Debug, Clone)]
pub struct Mlp {
    cfg: MlpConfig,
    layers: Vec<RosaLinear>,
    /// Pre-activations of every GELU, from the last training forward pass.
    pre: Vec<Dense<f32>>,
}

fn init_layer(out: usize, inp: usize, gain: f32, rng: &mut Rng) -> RosaLinear {
    // Uniform with variance gain^2 / in: He-style for GELU layers.
    let bound = gain * (3.0 / inp as f32).sqrt();
    let w = Dense::from_fn(out, inp, |_, _| rng.uniform(-bound, bound));
    RosaLinear::new(w, Some(vec![0.0; out]))
}

impl Mlp {
    /// A freshly initialised MLP, reproducible from `seed`.
    pub fn new(cfg: MlpConfig, seed: u64) -> Self {
        let mut rng = Rng::new(seed);
        let mut layers = vec![init_layer(cfg.hidden, cfg.inputs, 2f32.sqrt(), &mut rng)];
        for _ in 0..cfg.blocks {
            layers.push(init_layer(cfg.hidden, cfg.hidden, 2f32.sqrt(), &mut rng));
            // Smaller residual branches keep the stream's scale steady with depth.
            layers.push(init_layer(cfg.hidden, cfg.hidden, 0.5, &mut rng));
        }
        layers.push(init_layer(cfg.outputs, cfg.hidden, 1.0, &mut rng));
        for (i, l) in layers.iter_mut().enumerate() {
            l.set_seed(seed ^ (0xD0D0 + i as u64));
        }
        Mlp {
            cfg,
            layers,
            pre: Vec::new(),
        }
    }

    /// The sizes.
    pub fn config(&self) -> MlpConfig {
        self.cfg
    }

    /// The layers, input first.
    pub fn layers(&self) -> &[RosaLinear] {
        &self.layers
    }

    /// The layers, mutably (to add adapters).
    pub fn layers_mut(&mut self) -> &mut [RosaLinear] {
        &mut self.layers
    }

    /// `(out, in)` of every layer.
    pub fn shapes(&self) -> Vec<(usize, usize)> {
        self.layers
            .iter()
            .map(|l| (l.out_features(), l.in_features()))
            .collect()
    }

    /// Trainable values over all layers.
    pub fn trainable_params(&self) -> usize {
        self.layers.iter().map(RosaLinear::trainable_params).sum()
    }

    /// Outputs (outputs x tokens) for `x` (inputs x tokens).
    pub fn forward(
        &mut self,
        be: &dyn Backend,
        x: MatRef<'_, f32>,
        train: bool,
    ) -> Result<Dense<f32>> {
        self.pre.clear();
        let (first, rest) = self.layers.split_first_mut().expect("an MLP has layers");
        let z = first.forward(be, x, train)?;
        let mut h = gelu(&z);
        if train {
            self.pre.push(z);
        }
        let (blocks, head) = rest.split_at_mut(rest.len() - 1);
        for pair in blocks.chunks_mut(2) {
            let u = pair[0].forward(be, h.as_ref(), train)?;
            let v = pair[1].forward(be, gelu(&u).as_ref(), train)?;
            h.as_mut_slice()
                .iter_mut()
                .zip(v.as_slice())
                .for_each(|(a, b)| *a += b);
            if train {
                self.pre.push(u);
            }
        }
        head[0].forward(be, h.as_ref(), train)
    }

    /// Backward pass from the loss gradient `dout`, storing every trainable tensor's
    /// gradient. With `collect`, each layer's dense weight gradient is folded into it as
    /// soon as it is made, so only one exists at a time.
    pub fn backward(
        &mut self,
        be: &dyn Backend,
        dout: MatRef<'_, f32>,
        mut collect: Option<&mut GradAccumulator>,
    ) -> Result<()> {
        if self.pre.len() != self.cfg.blocks + 1 {
            return Err(Error::InvalidArgument(
                "Mlp::backward without a training forward pass".into(),
            ));
        }
        let n = self.layers.len();
        let mut step =
            |i: usize, layers: &mut [RosaLinear], dy: MatRef<'_, f32>| -> Result<Dense<f32>> {
                if let Some(acc) = collect.as_deref_mut() {
                    let g = layers[i].dense_grad(be, dy)?;
                    acc.add(i, &g)?;
                }
                layers[i].backward(be, dy)
            };
        let mut dh = step(n - 1, &mut self.layers, dout)?;
        for b in (0..self.cfg.blocks).rev() {
            let (l1, l2) = (1 + 2 * b, 2 + 2 * b);
            let dg = step(l2, &mut self.layers, dh.as_ref())?;
            let du = gelu_backward(&self.pre[b + 1], &dg);
            let d = step(l1, &mut self.layers, du.as_ref())?;
            dh.as_mut_slice()
                .iter_mut()
                .zip(d.as_slice())
                .for_each(|(a, b)| *a += b);
        }
        let dz = gelu_backward(&self.pre[0], &dh);
        step(0, &mut self.layers, dz.as_ref())?;
        Ok(())
    }

    /// Every trainable tensor, keyed `layers.{i}.{name}` for the optimizer.
    pub fn params(&mut self) -> Vec<(String, Param<'_>)> {
        self.layers
            .iter_mut()
            .enumerate()
            .flat_map(|(i, l)| {
                l.params()
                    .into_iter()
                    .map(move |p| (format!("layers.{i}.{}", p.name), p))
            })
            .collect()
    }

    /// Drops training caches and gradients.
    pub fn clear(&mut self) {
        self.pre.clear();
        self.layers.iter_mut().for_each(RosaLinear::clear);
    }

    /// Writes the adapters (and, with `weights`, every layer's W and bias) to a
    /// safetensors file: `layers.{i}.lora_a|lora_b|lora_scale`, `layers.{i}.sparse.*`,
    /// `layers.{i}.weight|bias`.
    pub fn save_adapters(&self, path: &Path, weights: bool) -> Result<()> {
        let mut out = TensorsOut::default();
        for (i, l) in self.layers.iter().enumerate() {
            if let Some(lo) = l.lora() {
                out.f32(
                    format!("layers.{i}.lora_a"),
                    vec![lo.a.rows(), lo.a.cols()],
                    lo.a.as_slice(),
                );
                out.f32(
                    format!("layers.{i}.lora_b"),
                    vec![lo.b.rows(), lo.b.cols()],
                    lo.b.as_slice(),
                );
                out.f32(format!("layers.{i}.lora_scale"), vec![1], &[lo.scale]);
            }
            if let Some(sp) = l.sparse() {
                out.csr(&format!("layers.{i}.sparse"), sp.matrix(), true);
            }
            if weights {
                let w = l.weight().to_f32();
                out.f32(
                    format!("layers.{i}.weight"),
                    vec![w.rows(), w.cols()],
                    w.as_slice(),
                );
                if let Some(b) = l.bias() {
                    out.f32(format!("layers.{i}.bias"), vec![b.len()], b);
                }
            }
        }
        out.write(path)
    }

    /// Loads what [`Mlp::save_adapters`] wrote onto this model's layers, replacing their
    /// adapters (and weights, where the file has them).
    pub fn load_adapters(&mut self, path: &Path) -> Result<()> {
        let file = TensorsIn::read(path)?;
        for (i, l) in self.layers.iter_mut().enumerate() {
            let name = |t: &str| format!("layers.{i}.{t}");
            if file.has(&name("lora_a")) {
                let (sa, a) = file.f32(&name("lora_a"))?;
                let (sb, b) = file.f32(&name("lora_b"))?;
                let (_, scale) = file.f32(&name("lora_scale"))?;
                let (ra, ca, rb, cb) = match (&sa[..], &sb[..]) {
                    ([ra, ca], [rb, cb]) => (*ra, *ca, *rb, *cb),
                    _ => {
                        return Err(Error::Format {
                            path: path.into(),
                            reason: format!("layer {i}: lora tensors must be 2-D"),
                        })
                    }
                };
                l.set_lora(Some(Lora {
                    a: Dense::from_vec(ra, ca, a)?,
                    b: Dense::from_vec(rb, cb, b)?,
                    scale: scale.first().copied().unwrap_or(1.0),
                    dropout: l.lora().map_or(0.0, |lo| lo.dropout),
                }))?;
            }
            if file.has(&name("sparse.shape")) {
                let s: Csr<f32> = file.csr(&name("sparse"))?;
                l.set_sparse(s)?;
            }
            if file.has(&name("weight")) {
                let (s, w) = file.f32(&name("weight"))?;
                let [r, c] = s[..] else {
                    return Err(Error::Format {
                        path: path.into(),
                        reason: format!("layer {i}: weight must be 2-D"),
                    });
                };
                l.set_weight(Dense::from_vec(r, c, w)?)?;
            }
            if file.has(&name("bias")) {
                let (_, b) = file.f32(&name("bias"))?;
                l.set_bias(b)?;
            }
        }
        Ok(())
    }
}

const SQRT_2_OVER_PI: f32 = 0.797_884_6;

/// GELU, tanh form.
fn gelu(z: &Dense<f32>) -> Dense<f32> {
    let mut out = z.clone();
    for v in out.as_mut_slice() {
        let x = *v;
        *v = 0.5 * x * (1.0 + (SQRT_2_OVER_PI * (x + 0.044715 * x * x * x)).tanh());
    }
    out
}

/// `d gelu(z) ⊙ upstream`.
fn gelu_backward(z: &Dense<f32>, upstream: &Dense<f32>) -> Dense<f32> {
    let mut out = upstream.clone();
    for (o, &x) in out.as_mut_slice().iter_mut().zip(z.as_slice()) {
        let t = (SQRT_2_OVER_PI * (x + 0.044715 * x * x * x)).tanh();
        let dt = SQRT_2_OVER_PI * (1.0 + 3.0 * 0.044715 * x * x);
        *o *= 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * dt;
    }
    out
}

/// What the model is trained to produce for a batch.
#[derive(Debug, Clone, PartialEq)]
pub enum Targets {
    /// Regression targets (outputs x tokens): mean squared error; a token counts as
    /// correct when its largest output is the target's largest.
    Values(Dense<f32>),
    /// A class per token: softmax cross-entropy over the output rows.
    Labels(Vec<usize>),
}

/// A batch's loss, its gradient with respect to the outputs, and how many tokens were
/// right.
#[derive(Debug, Clone)]
pub struct LossValue {
    /// Mean loss per token (MSE: per element).
    pub loss: f32,
    /// `d loss / d outputs`.
    pub grad: Dense<f32>,
    /// Tokens whose prediction is right.
    pub correct: usize,
}

fn argmax_col(m: &Dense<f32>, t: usize) -> usize {
    (0..m.rows())
        .max_by(|&a, &b| {
            let (x, y) = (
                m.as_slice()[a * m.cols() + t],
                m.as_slice()[b * m.cols() + t],
            );
            x.total_cmp(&y).then(b.cmp(&a))
        })
        .unwrap_or(0)
}

/// Loss and gradient of `out` (outputs x tokens) against `targets`.
///
/// ```
/// use rosa::train::{loss, Targets};
/// use rosa::Dense;
/// let out = Dense::from_vec(2, 1, vec![2.0f32, 0.0]).unwrap();
/// let l = loss(&out, &Targets::Labels(vec![0])).unwrap();
/// assert!((l.loss - (1.0 + (-2.0f32).exp()).ln()).abs() < 1e-6);
/// assert_eq!(l.correct, 1);
/// ```
pub fn loss(out: &Dense<f32>, targets: &Targets) -> Result<LossValue> {
    let (rows, tokens) = (out.rows(), out.cols());
    let mut grad = Dense::zeros(rows, tokens);
    match targets {
        Targets::Values(t) => {
            if (t.rows(), t.cols()) != (rows, tokens) {
                return Err(Error::ShapeMismatch {
                    op: "mse",
                    detail: format!(
                        "outputs {rows} x {tokens}, targets {} x {}",
                        t.rows(),
                        t.cols()
                    ),
                });
            }
            let n = (rows * tokens).max(1) as f32;
            let mut sum = 0.0f64;
            for ((g, &o), &y) in grad
                .as_mut_slice()
                .iter_mut()
                .zip(out.as_slice())
                .zip(t.as_slice())
            {
                let d = o - y;
                sum += (d * d) as f64;
                *g = 2.0 * d / n;
            }
            let correct = (0..tokens)
                .filter(|&k| argmax_col(out, k) == argmax_col(t, k))
                .count();
            Ok(LossValue {
                loss: (sum / n as f64) as f32,
                grad,
                correct,
            })
        }
        Targets::Labels(labels) => {
            if labels.len() != tokens || labels.iter().any(|&c| c >= rows) {
                return Err(Error::ShapeMismatch {
                    op: "cross_entropy",
                    detail: format!(
                        "{} labels for {tokens} tokens and {rows} classes",
                        labels.len()
                    ),
                });
            }
            let (o, g) = (out.as_slice(), grad.as_mut_slice());
            let (mut sum, mut correct) = (0.0f64, 0);
            for (k, &label) in labels.iter().enumerate() {
                let max = (0..rows)
                    .map(|c| o[c * tokens + k])
                    .fold(f32::NEG_INFINITY, f32::max);
                let z: f32 = (0..rows).map(|c| (o[c * tokens + k] - max).exp()).sum();
                sum += (z.ln() + max - o[label * tokens + k]) as f64;
                for c in 0..rows {
                    let p = (o[c * tokens + k] - max).exp() / z;
                    g[c * tokens + k] = (p - f32::from(u8::from(c == label))) / tokens as f32;
                }
                correct += usize::from(argmax_col(out, k) == label);
            }
            Ok(LossValue {
                loss: (sum / tokens.max(1) as f64) as f32,
                grad,
                correct,
            })
        }
    }
}
