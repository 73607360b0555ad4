//! `rosa::candle::RosaLinear`: trained against rosa's own trainer step by step, merged,
//! saved and loaded bit-exact, set up for every method, and refusing bad input.
#![cfg(feature = "candle")]

mod common;

use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{AdamW as CandleAdamW, Optimizer, ParamsAdamW};
use common::candle::{tensor, vec_f32};
use rosa::candle::{load_adapters, rosa_error, save_adapters, RosaLinear};
use rosa::random::{self, Rng};
use rosa::train::{
    self, loss, Accumulation, AdamConfig, AdamW, Cpu, GradAccumulator, Group, LoraConfig, Method,
    Mlp, MlpConfig, Scaling, Targets,
};
use rosa::{Csr, CsrShape, Dense, Error};

const CPU: Device = Device::Cpu;

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    vec_f32(a)
        .iter()
        .zip(vec_f32(b))
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn mse(y: &Tensor, t: &Tensor) -> Tensor {
    (y - t).unwrap().sqr().unwrap().mean_all().unwrap()
}

/// A regression batch, feature-major for rosa's layer (`x`: in x tokens, `y`: out x
/// tokens): the targets are `W_target x` with `W_target` the frozen weight plus a shift.
struct Task {
    w: Dense<f32>,
    target: Dense<f32>,
    tokens: usize,
}

impl Task {
    fn new(out: usize, inp: usize, tokens: usize) -> Self {
        let w = random::dense::<f32>(out, inp, 1);
        let shift = random::dense::<f32>(out, inp, 2);
        let target = Dense::from_fn(out, inp, |i, j| {
            w.get(i, j).unwrap() + 0.5 * shift.get(i, j).unwrap()
        });
        Task { w, target, tokens }
    }

    /// Feature-major `(x, y)` for step `step`.
    fn batch(&self, step: usize) -> (Dense<f32>, Dense<f32>) {
        let x = random::dense::<f32>(self.w.cols(), self.tokens, 100 + step as u64);
        let mut y = Dense::zeros(self.w.rows(), self.tokens);
        rosa::train::Backend::gemm(
            &Cpu,
            1.0,
            self.target.as_ref(),
            train::Trans::N,
            x.as_ref(),
            train::Trans::N,
            0.0,
            y.as_mut(),
        )
        .unwrap();
        (x, y)
    }

    /// The same batch token-major for candle, `x` as (batch 2, seq, in).
    fn candle_batch(&self, step: usize) -> (Tensor, Tensor) {
        let (x, y) = self.batch(step);
        let t = |d: &Dense<f32>| tensor(d).t().unwrap().contiguous().unwrap();
        let seq = self.tokens / 2;
        let x = t(&x).reshape((2, seq, self.w.cols())).unwrap();
        let y = t(&y).reshape((2, seq, self.w.rows())).unwrap();
        (x, y)
    }
}

/// One step of rosa's trainer on its layer: forward, MSE, backward, AdamW. Returns the
/// loss, and the dense weight gradient when asked (mask generation).
fn core_step(
    layer: &mut train::RosaLinear,
    opt: Option<&mut AdamW>,
    acc: Option<&mut GradAccumulator>,
    x: &Dense<f32>,
    y: &Dense<f32>,
) -> f32 {
    let out = layer.forward(&Cpu, x.as_ref(), true).unwrap();
    let l = loss(&out, &Targets::Values(y.clone())).unwrap();
    if let Some(acc) = acc {
        acc.add(0, &layer.dense_grad(&Cpu, l.grad.as_ref()).unwrap())
            .unwrap();
    }
    layer.backward(&Cpu, l.grad.as_ref()).unwrap();
    if let Some(opt) = opt {
        let mut params: Vec<_> = layer
            .params()
            .into_iter()
            .map(|p| (p.name.to_string(), p))
            .collect();
        opt.step(&mut params, 1.0);
    }
    l.loss
}

fn adam(lr: f64) -> ParamsAdamW {
    ParamsAdamW {
        lr,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: 0.0,
    }
}

/// The candle layer reproduces rosa's trainer on the same data, init and AdamW settings
/// through a whole RoSA schedule: LoRA warm-up, mask generation from the mean squared
/// dense gradient, then both adapters (the sparse values with their own moments and
/// learning rate, as rosa's per-tensor AdamW has them).
#[test]
fn rosa_schedule_reproduces_the_core_trainer() {
    let (out, inp, tokens) = (10, 16, 24);
    let task = Task::new(out, inp, tokens);
    let (lr_low_rank, lr_sparse) = (1e-2, 5e-3);
    let (warmup, grads, steps) = (4, 3, 12);
    let density = 0.1;
    let cfg = LoraConfig {
        rank: 3,
        alpha: 6.0,
        scaling: Scaling::Standard,
        dropout: 0.0,
    };

    let mut core = train::RosaLinear::new(task.w.clone(), None);
    core.add_lora(cfg, &mut Rng::new(7));
    let mut core_opt = AdamW::new(AdamConfig {
        lr_low_rank,
        lr_other: lr_sparse,
        clip_norm: None,
        weight_decay: 0.0,
        ..AdamConfig::default()
    });

    let mut layer = RosaLinear::new(tensor(&task.w), None).unwrap();
    layer.set_training(true);
    layer.add_lora(cfg, &mut Rng::new(7)).unwrap();
    let a0 = layer.lora().unwrap().a().as_tensor().clone();
    assert_eq!(vec_f32(&a0), core.lora().unwrap().a.as_slice(), "same init");
    let mut lora_opt =
        CandleAdamW::new(layer.group_vars(Group::LowRank), adam(lr_low_rank as f64)).unwrap();

    let compare = |step: usize, core_loss: f32, candle_loss: &Tensor| {
        let c = candle_loss.to_scalar::<f32>().unwrap();
        assert!(
            (c - core_loss).abs() <= 2e-5 * core_loss.abs(),
            "step {step}: core loss {core_loss}, candle loss {c}"
        );
    };

    for step in 0..warmup {
        let (x, y) = task.batch(step);
        let core_loss = core_step(&mut core, Some(&mut core_opt), None, &x, &y);
        let (xc, yc) = task.candle_batch(step);
        let l = mse(&layer.forward(&xc).unwrap(), &yc);
        lora_opt.backward_step(&l).unwrap();
        compare(step, core_loss, &l);
    }

    let mut core_acc = GradAccumulator::new(Accumulation::MeanSquared, 1);
    let mut acc = GradAccumulator::new(Accumulation::MeanSquared, 1);
    layer.start_probe().unwrap();
    for k in 0..grads {
        let (x, y) = task.batch(warmup + k);
        core_step(&mut core, None, Some(&mut core_acc), &x, &y);
        let (xc, yc) = task.candle_batch(warmup + k);
        let g: GradStore = mse(&layer.forward(&xc).unwrap(), &yc).backward().unwrap();
        acc.add(0, &layer.probe_gradient(&g).unwrap()).unwrap();
        // Every trainable tensor got a gradient, the frozen weight none.
        assert!(layer.vars().iter().all(|v| g.get(v).is_some()));
        assert!(g.get(&layer.weight().unwrap()).is_none());
    }
    core.clear();
    let (s_core, s) = (core_acc.get(0).unwrap(), acc.get(0).unwrap());
    let scale = s_core.as_slice().iter().fold(0.0f32, |m, v| m.max(v.abs()));
    for (a, b) in s_core.as_slice().iter().zip(s.as_slice()) {
        assert!(
            (a - b).abs() <= 1e-5 * scale,
            "accumulated statistic {a} vs {b}"
        );
    }
    let core_mask = core_acc.masks(&[density]).unwrap().remove(0);
    let mask = acc.masks(&[density]).unwrap().remove(0);
    assert_eq!(mask.nnz(), (density * (out * inp) as f64).round() as usize);
    assert_eq!(mask.structure_id(), core_mask.structure_id(), "same mask");
    core.set_sparse_mask(&core_mask).unwrap();
    layer.set_mask(&mask).unwrap();
    let mut sparse_opt =
        CandleAdamW::new(layer.group_vars(Group::Other), adam(lr_sparse as f64)).unwrap();

    for step in warmup + grads..warmup + grads + steps {
        let (x, y) = task.batch(step);
        let core_loss = core_step(&mut core, Some(&mut core_opt), None, &x, &y);
        let (xc, yc) = task.candle_batch(step);
        let l = mse(&layer.forward(&xc).unwrap(), &yc);
        let g = l.backward().unwrap();
        lora_opt.step(&g).unwrap();
        sparse_opt.step(&g).unwrap();
        compare(step, core_loss, &l);
    }
    // The trained adapters agree too.
    let sp = layer.sparse().unwrap().values().as_tensor().clone();
    let core_sp = core.sparse().unwrap().matrix().values().to_vec();
    let err = vec_f32(&sp)
        .iter()
        .zip(&core_sp)
        .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(err < 1e-4, "sparse values differ by {err}");
    assert!(
        core_sp.iter().any(|&v| v != 0.0),
        "the sparse adapter trained"
    );
    let b = layer.lora().unwrap().b().as_tensor().clone();
    assert!(max_abs_diff(&b, &tensor(&core.lora().unwrap().b)) < 1e-4);
    assert_eq!(layer.trainable_params(), core.trainable_params());
}

/// A layer with both adapters trained (in f32, then converted to `dtype`: candle's AdamW
/// keeps its moments in the parameters' dtype, where f16 flushes its epsilon to zero),
/// on a bf16 frozen weight with a bias.
fn trained_layer(dtype: DType) -> RosaLinear {
    let task = Task::new(6, 8, 8);
    let w = tensor(&task.w).to_dtype(DType::BF16).unwrap();
    let mut layer = RosaLinear::new(w, Some(Tensor::ones(6, DType::BF16, &CPU).unwrap())).unwrap();
    let cfg = LoraConfig {
        rank: 2,
        alpha: 4.0,
        scaling: Scaling::Rs,
        dropout: 0.0,
    };
    layer.add_lora(cfg, &mut Rng::new(3)).unwrap();
    let mask = random::csr_with_row_lengths::<f32>(6, 8, &[0, 3, 8, 1, 0, 2], 4).unwrap();
    layer.set_mask(&mask).unwrap();
    let mut opt = CandleAdamW::new(layer.vars(), adam(1e-2)).unwrap();
    for step in 0..3 {
        let (x, y) = task.candle_batch(step);
        let l = mse(
            &layer.forward(&x.to_dtype(DType::BF16).unwrap()).unwrap(),
            &y.to_dtype(DType::BF16).unwrap(),
        );
        opt.backward_step(&l.to_dtype(DType::F32).unwrap()).unwrap();
    }
    if dtype == DType::F32 {
        return layer;
    }
    let mut converted = RosaLinear::new(layer.weight().unwrap(), layer.bias().cloned()).unwrap();
    converted.set_adapter_dtype(dtype).unwrap();
    let (l, s) = (layer.lora().unwrap(), layer.sparse().unwrap());
    converted
        .set_lora(l.a(), l.b(), l.scale(), l.dropout())
        .unwrap();
    converted.set_sparse(s.mask().clone(), s.values()).unwrap();
    converted
}

/// The dtype and bit patterns of a tensor's elements.
fn bits(t: &Tensor) -> (DType, Vec<u32>) {
    let flat = t.flatten_all().unwrap();
    let b = match t.dtype() {
        DType::F32 => flat
            .to_vec1::<f32>()
            .unwrap()
            .iter()
            .map(|v| v.to_bits())
            .collect(),
        DType::F16 => flat
            .to_vec1::<rosa::f16>()
            .unwrap()
            .iter()
            .map(|v| v.to_bits().into())
            .collect(),
        DType::BF16 => flat
            .to_vec1::<rosa::bf16>()
            .unwrap()
            .iter()
            .map(|v| v.to_bits().into())
            .collect(),
        other => panic!("unexpected dtype {other:?}"),
    };
    (t.dtype(), b)
}

#[test]
fn adapters_round_trip_bit_exact() {
    for dtype in [DType::F32, DType::F16, DType::BF16] {
        let layer = trained_layer(dtype);
        let lora = layer.lora().unwrap();
        assert!(vec_f32(lora.b()).iter().any(|&v| v != 0.0), "B trained");
        let path = std::env::temp_dir().join(format!(
            "rosa-candle-adapters-{}-{dtype:?}.safetensors",
            std::process::id()
        ));
        save_adapters(&path, &[("model.up", &layer)]).unwrap();

        let mut fresh = RosaLinear::new(layer.weight().unwrap(), layer.bias().cloned()).unwrap();
        fresh.set_adapter_dtype(dtype).unwrap();
        load_adapters(&path, &mut [("model.up", &mut fresh)]).unwrap();
        std::fs::remove_file(&path).unwrap();

        let (a, b) = (layer.lora().unwrap(), fresh.lora().unwrap());
        assert_eq!(bits(a.a()), bits(b.a()), "{dtype:?} A");
        assert_eq!(bits(a.b()), bits(b.b()), "{dtype:?} B");
        assert_eq!(a.scale().to_bits(), b.scale().to_bits());
        let (s, t) = (layer.sparse().unwrap(), fresh.sparse().unwrap());
        assert_eq!(s.mask().structure_id(), t.mask().structure_id());
        assert_eq!(bits(s.values()), bits(t.values()), "{dtype:?} values");
        assert_eq!(t.values().dtype(), dtype);
        let x = Tensor::ones((3, 8), DType::BF16, &CPU).unwrap();
        assert_eq!(
            bits(&layer.forward(&x).unwrap()),
            bits(&fresh.forward(&x).unwrap())
        );
    }
}

#[test]
fn adapters_saved_by_rosa_train_load_into_candle() {
    let cfg = MlpConfig {
        inputs: 5,
        hidden: 7,
        outputs: 3,
        blocks: 1,
    };
    let mut mlp = Mlp::new(cfg, 11);
    let first = &mut mlp.layers_mut()[0];
    let lora = LoraConfig {
        rank: 2,
        alpha: 2.0,
        scaling: Scaling::Standard,
        dropout: 0.0,
    };
    first.add_lora(lora, &mut Rng::new(1));
    let mut l = first.lora().unwrap().clone();
    l.b = random::dense(7, 2, 2);
    first.set_lora(Some(l)).unwrap();
    let s = random::csr::<f32>(7, 5, 0.3, 3).unwrap();
    first.set_sparse(s).unwrap();
    let path = std::env::temp_dir().join(format!(
        "rosa-core-adapters-{}.safetensors",
        std::process::id()
    ));
    mlp.save_adapters(&path, false).unwrap();

    let core = &mut mlp.layers_mut()[0];
    let w = core.weight().to_f32();
    let bias = Tensor::from_slice(core.bias().unwrap(), 7, &CPU).unwrap();
    let mut layer = RosaLinear::new(tensor(&w), Some(bias)).unwrap();
    load_adapters(&path, &mut [("layers.0", &mut layer)]).unwrap();
    let e = load_adapters(&path, &mut [("layers.9", &mut layer)]).unwrap_err();
    assert!(rosa_error(&e).is_some(), "{e}");
    std::fs::remove_file(&path).unwrap();

    let x = random::dense::<f32>(5, 4, 5);
    let want = core.forward(&Cpu, x.as_ref(), false).unwrap();
    let got = layer.forward(&tensor(&x).t().unwrap()).unwrap();
    assert!(max_abs_diff(&got.t().unwrap(), &tensor(&want)) < 1e-5);
}

#[test]
fn merge_folds_the_adapters_into_the_weight() {
    let layer = trained_layer(DType::F32);
    let x = random::dense::<f32>(5, 8, 9);
    let x = tensor(&x).to_dtype(DType::BF16).unwrap();
    // W + s B A + S by hand, in f32.
    let l = layer.lora().unwrap();
    let sp = layer.sparse().unwrap();
    let manual = (layer.weight().unwrap().to_dtype(DType::F32).unwrap()
        + (l.b().matmul(l.a()).unwrap() * f64::from(l.scale())).unwrap()
        + sp.mask().to_dense(sp.values()).unwrap())
    .unwrap();
    let merged = layer.merged_weight().unwrap();
    assert_eq!(merged.dtype(), DType::BF16);
    assert_eq!(
        vec_f32(&merged),
        vec_f32(&manual.to_dtype(DType::BF16).unwrap()),
        "rounded once from f32"
    );
    let linear = layer.to_linear().unwrap();
    let (a, b) = (linear.forward(&x).unwrap(), layer.forward(&x).unwrap());
    let scale = vec_f32(&b).iter().fold(0.0f32, |m, v| m.max(v.abs()));
    // Both round to bf16 at different points: a few bf16 ulps of the output's scale.
    assert!(max_abs_diff(&a, &b) <= 8.0 * 2f32.powi(-8) * scale);
    let mut m = layer.clone();
    m.merge().unwrap();
    assert!(m.lora().is_none() && m.sparse().is_none());
    assert_eq!(m.trainable_params(), 0);
    assert_eq!(vec_f32(&m.weight().unwrap()), vec_f32(&merged));
}

#[test]
fn every_method_trains_what_it_should() {
    let task = Task::new(6, 5, 8);
    let cfg = LoraConfig {
        rank: 2,
        alpha: 2.0,
        scaling: Scaling::Standard,
        dropout: 0.0,
    };
    for method in Method::ALL {
        let mut layer = RosaLinear::new(
            tensor(&task.w),
            Some(Tensor::zeros(6, DType::F32, &CPU).unwrap()),
        )
        .unwrap();
        let before = layer.forward(&task.candle_batch(0).0).unwrap();
        layer.prepare(method, cfg, &mut Rng::new(1)).unwrap();
        if let Some(step) = method
            .schedule(train::Schedule::WarmLora(0))
            .and_then(|s| s.mask_step())
        {
            assert_eq!(step, 0);
            layer.start_probe().unwrap();
            let (x, y) = task.candle_batch(0);
            let g = mse(&layer.forward(&x).unwrap(), &y).backward().unwrap();
            let mut acc = GradAccumulator::new(Accumulation::Mean, 1);
            acc.add(0, &layer.probe_gradient(&g).unwrap()).unwrap();
            layer.set_mask(&acc.masks(&[0.2]).unwrap()[0]).unwrap();
        }
        // Setting up never changes what the layer computes.
        let after = layer.forward(&task.candle_batch(0).0).unwrap();
        assert!(max_abs_diff(&before, &after) < 1e-5, "{method}");
        let expected = match method {
            Method::Fft => 6 * 5 + 6,
            Method::Lora | Method::RandomSubspace => 2 * (6 + 5),
            Method::Spa => 6,
            Method::Rosa => 2 * (6 + 5) + 6,
        };
        assert_eq!(layer.trainable_params(), expected, "{method}");
        let vars = layer.vars();
        assert_eq!(vars.iter().map(|v| v.elem_count()).sum::<usize>(), expected);
        let mut opt = CandleAdamW::new(vars, adam(1e-2)).unwrap();
        let (x, y) = task.candle_batch(1);
        let first = mse(&layer.forward(&x).unwrap(), &y)
            .to_scalar::<f32>()
            .unwrap();
        for _ in 0..20 {
            opt.backward_step(&mse(&layer.forward(&x).unwrap(), &y))
                .unwrap();
        }
        let last = mse(&layer.forward(&x).unwrap(), &y)
            .to_scalar::<f32>()
            .unwrap();
        assert!(last < first, "{method}: {first} -> {last}");
        if method == Method::RandomSubspace {
            // The re-split keeps the function and makes a fresh pair.
            let y0 = layer.forward(&x).unwrap();
            layer.subspace_split(2, &mut Rng::new(9)).unwrap();
            assert!(max_abs_diff(&y0, &layer.forward(&x).unwrap()) < 1e-4);
        }
    }
}

#[test]
fn dropout_applies_in_training_only() {
    let task = Task::new(6, 32, 8);
    let mut layer = RosaLinear::new(tensor(&task.w), None).unwrap();
    let cfg = LoraConfig {
        rank: 4,
        alpha: 4.0,
        scaling: Scaling::Standard,
        dropout: 0.5,
    };
    layer.add_lora(cfg, &mut Rng::new(1)).unwrap();
    // A nonzero B, so that the branch shows.
    let a = layer.lora().unwrap().a().as_tensor().clone();
    layer
        .set_lora(
            &a,
            &Tensor::ones((6, 4), DType::F32, &CPU).unwrap(),
            1.0,
            0.5,
        )
        .unwrap();
    let (x, _) = task.candle_batch(0);
    let eval = layer.forward(&x).unwrap();
    assert_eq!(
        vec_f32(&eval),
        vec_f32(&layer.forward_t(&x, false).unwrap())
    );
    assert!(max_abs_diff(&eval, &layer.forward_t(&x, true).unwrap()) > 1e-3);
    layer.set_training(true);
    assert!(max_abs_diff(&eval, &layer.forward(&x).unwrap()) > 1e-3);
}

fn rosa_err(e: &candle_core::Error) -> &Error {
    rosa_error(e).unwrap_or_else(|| panic!("not a rosa error: {e}"))
}

#[test]
fn bad_input_is_an_error() {
    let w = Tensor::zeros((3, 4), DType::F32, &CPU).unwrap();
    assert!(RosaLinear::new(w.reshape(12).unwrap(), None).is_err());
    assert!(RosaLinear::new(w.clone(), Some(Tensor::zeros(4, DType::F32, &CPU).unwrap())).is_err());
    let mut layer = RosaLinear::new(w, None).unwrap();
    let e = layer
        .forward(&Tensor::zeros((2, 5), DType::F32, &CPU).unwrap())
        .unwrap_err();
    assert!(matches!(rosa_err(&e), Error::ShapeMismatch { .. }), "{e}");
    assert!(layer.forward(&Tensor::new(1f32, &CPU).unwrap()).is_err());
    // Gradients of something else: no probe, then a probe this backward pass missed.
    let other = candle_core::Var::zeros(2, DType::F32, &CPU).unwrap();
    let unrelated = other.sum_all().unwrap().backward().unwrap();
    let e = layer.probe_gradient(&unrelated).unwrap_err();
    assert!(matches!(rosa_err(&e), Error::InvalidArgument(_)), "{e}");
    layer.start_probe().unwrap();
    assert!(layer.probe_gradient(&unrelated).is_err());
    let e = layer
        .set_mask(&Csr::from_triplets(4, 3, &[(0, 0, 1.0f32)]).unwrap())
        .unwrap_err();
    assert!(matches!(rosa_err(&e), Error::ShapeMismatch { .. }), "{e}");
    assert!(layer.set_adapter_dtype(DType::F64).is_err());
    let cfg = LoraConfig {
        rank: 0,
        alpha: 1.0,
        scaling: Scaling::Standard,
        dropout: 0.0,
    };
    assert!(layer.add_lora(cfg, &mut Rng::new(0)).is_err());
    let cfg = LoraConfig {
        rank: 2,
        dropout: 1.0,
        ..cfg
    };
    assert!(layer.add_lora(cfg, &mut Rng::new(0)).is_err());
    let a = Tensor::zeros((2, 4), DType::F32, &CPU).unwrap();
    assert!(layer
        .set_lora(
            &a,
            &Tensor::zeros((3, 3), DType::F32, &CPU).unwrap(),
            1.0,
            0.0
        )
        .is_err());
    layer
        .set_lora(
            &a,
            &Tensor::zeros((3, 2), DType::F32, &CPU).unwrap(),
            1.0,
            0.0,
        )
        .unwrap();
    // The dtype is fixed once an adapter exists; a rank beyond min(out, in) is refused.
    assert!(layer.set_adapter_dtype(DType::BF16).is_err());
    assert!(layer.subspace_split(4, &mut Rng::new(0)).is_err());
    layer
        .set_mask(&Csr::from_triplets(3, 4, &[(0, 0, 1.0f32)]).unwrap())
        .unwrap();
    assert!(
        layer.subspace_split(1, &mut Rng::new(0)).is_err(),
        "sparse adapter present"
    );

    // Adapter files that do not fit the layer.
    let mut other =
        RosaLinear::new(Tensor::zeros((5, 4), DType::F32, &CPU).unwrap(), None).unwrap();
    let tensors: std::collections::HashMap<_, _> =
        layer.adapter_tensors("l").unwrap().into_iter().collect();
    assert!(other.load_adapter_tensors("l", &tensors).is_err());
    let mut bad = tensors.clone();
    bad.insert(
        "l.sparse.col_idx".into(),
        Tensor::new(&[7i32], &CPU).unwrap(),
    );
    let mut same = RosaLinear::new(Tensor::zeros((3, 4), DType::F32, &CPU).unwrap(), None).unwrap();
    let e = same.load_adapter_tensors("l", &bad).unwrap_err();
    assert!(
        matches!(rosa_err(&e), Error::ColumnOutOfRange { .. }),
        "{e}"
    );
    bad.insert(
        "l.sparse.col_idx".into(),
        Tensor::new(&[0f32], &CPU).unwrap(),
    );
    assert!(same.load_adapter_tensors("l", &bad).is_err());
    bad.remove("l.lora_b");
    let e = same.load_adapter_tensors("l", &bad).unwrap_err();
    assert!(
        matches!(e, candle_core::Error::CannotFindTensor { .. }),
        "{e}"
    );
}

/// An NF4 W (QRoSA): the layer computes what a dense layer holding the dequantized W
/// computes, forward and backward (input, LoRA and sparse gradients), through its own
/// dequantize-per-product op; the 4-bit-only refusals hold.
#[test]
fn nf4_weight_matches_a_dense_layer_of_its_dequantized_weight() {
    use rosa::quant::Nf4Config;
    let (out, inp) = (12, 70); // 840 weights: 13 blocks of 64 and a partial one
    let w = tensor(&random::dense::<f32>(out, inp, 5));
    let bias = tensor(&random::dense::<f32>(1, out, 6))
        .reshape(out)
        .unwrap();
    let mask =
        Csr::from_triplets(out, inp, &[(0, 3, 0.5f32), (0, 69, -1.0), (11, 0, 2.0)]).unwrap();
    // The same adapters (nonzero B, so every gradient is nontrivial) on a given weight.
    let adapted = |w: Tensor| {
        let mut l = RosaLinear::new(w, Some(bias.clone())).unwrap();
        let a = tensor(&random::dense::<f32>(2, inp, 7));
        let b = tensor(&random::dense::<f32>(out, 2, 8));
        l.set_lora(&a, &b, 2.0, 0.0).unwrap();
        let m = rosa::candle::SparseMask::from_csr(&mask);
        l.set_sparse(m.clone(), &m.values(&mask, &CPU).unwrap())
            .unwrap();
        l
    };
    let mut q = adapted(w.clone());
    let params = q.trainable_params();
    q.quantize_weight_nf4(Nf4Config::default()).unwrap();
    q.quantize_weight_nf4(Nf4Config::default()).unwrap(); // a no-op the second time
    assert_eq!(q.trainable_params(), params);
    let stored = q.nf4_weight().unwrap();
    assert_eq!((stored.rows(), stored.cols()), (out, inp));
    let dequantized = q.weight().unwrap();
    assert_eq!(
        vec_f32(&dequantized),
        stored.dequantize::<f32>().unwrap().as_slice()
    );
    // NF4's rounding is visible: the dequantized W is not W.
    assert!(max_abs_diff(&dequantized, &w) > 1e-3);
    let dense = adapted(dequantized);

    let x = candle_core::Var::from_tensor(
        &tensor(&random::dense::<f32>(15, inp, 9))
            .reshape((3, 5, inp))
            .unwrap(),
    )
    .unwrap();
    let coef = tensor(&random::dense::<f32>(15, out, 10))
        .reshape((3, 5, out))
        .unwrap();
    let run = |l: &RosaLinear| {
        let y = l.forward(&x).unwrap();
        let g = (&y * &coef).unwrap().sum_all().unwrap().backward().unwrap();
        let grad = |t: &Tensor| g.get(t).expect("a gradient").clone();
        let (lora, sparse) = (l.lora().unwrap(), l.sparse().unwrap());
        [
            y,
            grad(&x),
            grad(lora.a()),
            grad(lora.b()),
            grad(sparse.values()),
        ]
    };
    let (got, want) = (run(&q), run(&dense));
    for (name, (g, w)) in ["y", "dX", "dA", "dB", "dS"]
        .iter()
        .zip(got.iter().zip(&want))
    {
        let scale = vec_f32(w).iter().fold(1.0f32, |m, v| m.max(v.abs()));
        assert!(
            max_abs_diff(g, w) <= 1e-5 * scale,
            "{name}: {}",
            max_abs_diff(g, w)
        );
    }
    // to_linear: a dense layer of the merged weight, same outputs.
    let plain = q.to_linear().unwrap();
    assert!(max_abs_diff(&plain.forward(&x).unwrap(), &got[0]) <= 1e-4);

    let e = q.merge().unwrap_err();
    assert!(matches!(rosa_err(&e), Error::Unsupported(m) if m.contains("export the adapters")));
    let e = q.set_train_weight(true).unwrap_err();
    assert!(matches!(rosa_err(&e), Error::Unsupported(_)), "{e}");
    q.set_train_weight(false).unwrap();
    let mut trained = RosaLinear::new(w, None).unwrap();
    trained.set_train_weight(true).unwrap();
    let e = trained
        .quantize_weight_nf4(Nf4Config::default())
        .unwrap_err();
    assert!(matches!(rosa_err(&e), Error::Unsupported(_)), "{e}");
}
