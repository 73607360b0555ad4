//! The device-resident RoSA layer and its elementwise kernels against the CPU: forward
//! output, every gradient (x, A, B, S values, W and bias under full fine-tuning) and one
//! AdamW step of `DeviceRosaLinear` + `DeviceAdamW` against `RosaLinear` + `AdamW` on
//! random small shapes (f32 and bf16 W, empty masks, rank 1, one token); merge then
//! unmerge; the elementwise kernels on ragged sizes including 0 and 1 elements, outputs
//! poisoned with NaN before each call.
//!
//! `CudaBackend`, the trainer's GPU backend, against the CPU backend: each product on
//! random small shapes (empty rows, N = 1, a zero inner dimension), outputs poisoned with
//! NaN when beta = 0, the same errors for the same bad calls, and a short `train::run`
//! on each device ending at the same losses.
//!
//! Without a GPU (or a driver) every test prints a `skipped: no CUDA device (...)` line
//! and passes.
#![cfg(feature = "cuda")]

mod common;

use common::gpu::device;
use rosa::bench::roofline::Ceilings;
use rosa::cuda::{
    self, CudaBackend, Device, DeviceAdamW, DeviceCsr, DeviceDense, DeviceRosaLinear,
};
use rosa::quant::Nf4Config;
use rosa::train::plan::{LayerPlan, PlanModel, PlanReason};
use rosa::train::{
    AdamConfig, AdamW, Backend, Cpu, Lora, Method, MlpConfig, RosaLinear, TaskKind, TrainConfig,
    Trans, Weight,
};
use rosa::{bf16, random, Csr, CsrShape, Dense, Error};

/// Every element within `rel * (1 + max |want|)` of the CPU's; NaN never passes.
fn assert_near(what: &str, got: &[f32], want: &[f32], rel: f32) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let scale = 1.0 + want.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= rel * scale,
            "{what}: element {i} is {g} on the GPU, {w} on the CPU (tolerance {})",
            rel * scale
        );
    }
}

fn up(dev: &Device, m: &Dense<f32>) -> DeviceDense<f32> {
    DeviceDense::from_host(dev, m.as_ref()).unwrap()
}

const SIZES: [usize; 8] = [0, 1, 2, 31, 255, 256, 257, 4099];

// ---------------------------------------------------------------- elementwise kernels

#[test]
fn axpby_matches_cpu_and_overwrites_nan_when_beta_is_zero() {
    let Some(dev) = device("axpby_matches_cpu_and_overwrites_nan_when_beta_is_zero") else {
        return;
    };
    for (k, &n) in SIZES.iter().enumerate() {
        let x = random::dense::<f32>(1, n, k as u64);
        let y0 = random::dense::<f32>(1, n, 100 + k as u64);
        let mut y = DeviceDense::filled(dev, 1, n, f32::NAN).unwrap();
        cuda::axpby(dev, 1.5, &up(dev, &x), 0.0, &mut y).unwrap();
        let want: Vec<f32> = x.as_slice().iter().map(|v| 1.5 * v).collect();
        assert_near(
            &format!("axpby beta 0, n {n}"),
            y.to_host().unwrap().as_slice(),
            &want,
            1e-6,
        );
        let mut y = up(dev, &y0);
        cuda::axpby(dev, -0.5, &up(dev, &x), 2.0, &mut y).unwrap();
        let want: Vec<f32> = x
            .as_slice()
            .iter()
            .zip(y0.as_slice())
            .map(|(a, b)| -0.5 * a + 2.0 * b)
            .collect();
        assert_near(
            &format!("axpby, n {n}"),
            y.to_host().unwrap().as_slice(),
            &want,
            1e-6,
        );
    }
    let mut wrong = DeviceDense::<f32>::zeros(dev, 2, 3).unwrap();
    let x = DeviceDense::<f32>::zeros(dev, 3, 2).unwrap();
    assert!(matches!(
        cuda::axpby(dev, 1.0, &x, 0.0, &mut wrong),
        Err(Error::ShapeMismatch { .. })
    ));
}

#[test]
fn cast_rounds_like_the_host() {
    let Some(dev) = device("cast_rounds_like_the_host") else {
        return;
    };
    for (k, &n) in SIZES.iter().enumerate() {
        let x = random::dense::<f32>(1, n, 7 + k as u64);
        let mut narrow = DeviceDense::filled(dev, 1, n, bf16::NAN).unwrap();
        cuda::cast(dev, &up(dev, &x), &mut narrow).unwrap();
        let got = narrow.to_host().unwrap();
        let want: Vec<bf16> = x.as_slice().iter().map(|&v| bf16::from_f32(v)).collect();
        assert_eq!(got.as_slice(), &want[..], "f32 -> bf16, n {n}");
        let mut wide = DeviceDense::filled(dev, 1, n, f32::NAN).unwrap();
        cuda::cast(dev, &narrow, &mut wide).unwrap();
        let back: Vec<f32> = want.iter().map(|v| v.to_f32()).collect();
        assert_eq!(
            wide.to_host().unwrap().as_slice(),
            &back[..],
            "bf16 -> f32, n {n}"
        );
    }
}

#[test]
fn bias_add_and_row_sum_match_cpu_on_ragged_shapes() {
    let Some(dev) = device("bias_add_and_row_sum_match_cpu_on_ragged_shapes") else {
        return;
    };
    for (k, &(rows, cols)) in [(0, 5), (5, 0), (1, 1), (3, 257), (300, 7), (1, 4099)]
        .iter()
        .enumerate()
    {
        let seed = 10 * k as u64;
        let y0 = random::dense::<f32>(rows, cols, seed);
        let bias = random::dense::<f32>(rows, 1, seed + 1);
        let mut y = up(dev, &y0);
        cuda::bias_add(dev, &up(dev, &bias), &mut y).unwrap();
        let want = Dense::from_fn(rows, cols, |i, j| {
            y0.as_slice()[i * cols + j] + bias.as_slice()[i]
        });
        assert_near(
            &format!("bias_add {rows} x {cols}"),
            y.to_host().unwrap().as_slice(),
            want.as_slice(),
            1e-6,
        );

        let mut sums = DeviceDense::filled(dev, rows, 1, f32::NAN).unwrap();
        cuda::row_sum(dev, &up(dev, &y0), &mut sums).unwrap();
        let want: Vec<f32> = (0..rows)
            .map(|i| {
                y0.as_slice()[i * cols..(i + 1) * cols]
                    .iter()
                    .map(|&v| v as f64)
                    .sum::<f64>() as f32
            })
            .collect();
        assert_near(
            &format!("row_sum {rows} x {cols}"),
            sums.to_host().unwrap().as_slice(),
            &want,
            1e-5,
        );
    }
}

#[test]
fn sum_squares_matches_f64_over_several_buffers() {
    let Some(dev) = device("sum_squares_matches_f64_over_several_buffers") else {
        return;
    };
    let hosts: Vec<Dense<f32>> = SIZES
        .iter()
        .enumerate()
        .map(|(k, &n)| random::dense::<f32>(1, n, 30 + k as u64))
        .collect();
    let devs: Vec<DeviceDense<f32>> = hosts.iter().map(|h| up(dev, h)).collect();
    let refs: Vec<&DeviceDense<f32>> = devs.iter().collect();
    let got = cuda::sum_squares(dev, &refs).unwrap();
    let want: f64 = hosts
        .iter()
        .flat_map(|h| h.as_slice())
        .map(|&v| v as f64 * v as f64)
        .sum();
    assert!((got - want).abs() <= 1e-9 * (1.0 + want), "{got} vs {want}");
    assert_eq!(cuda::sum_squares(dev, &[]).unwrap(), 0.0);
}

#[test]
fn csr_add_folds_and_unfolds_a_sparse_matrix() {
    let Some(dev) = device("csr_add_folds_and_unfolds_a_sparse_matrix") else {
        return;
    };
    for (k, &(rows, cols, density)) in [
        (0, 4, 0.5),
        (1, 1, 1.0),
        (7, 9, 0.0),
        (33, 65, 0.2),
        (300, 40, 0.9),
    ]
    .iter()
    .enumerate()
    {
        let seed = 50 + k as u64;
        let s = random::csr::<f32>(rows, cols, density, seed).unwrap();
        let w0 = random::dense::<f32>(rows, cols, seed + 1);
        let ds = DeviceCsr::from_host(dev, s.as_ref()).unwrap();
        let mut w = up(dev, &w0);
        cuda::csr_add(dev, 0.5, &ds, &mut w).unwrap();
        let mut want = w0.clone();
        for i in 0..rows {
            let (c, v) = s.row(i);
            for (&j, &x) in c.iter().zip(v) {
                want.as_mut_slice()[i * cols + j as usize] += 0.5 * x;
            }
        }
        assert_near(
            &format!("csr_add {rows} x {cols}"),
            w.to_host().unwrap().as_slice(),
            want.as_slice(),
            1e-6,
        );
        cuda::csr_add(dev, -0.5, &ds, &mut w).unwrap();
        assert_near(
            &format!("csr_add undo {rows} x {cols}"),
            w.to_host().unwrap().as_slice(),
            w0.as_slice(),
            1e-6,
        );
    }
}

// ---------------------------------------------------------------- the layer

#[derive(Debug, Clone, Copy)]
struct Shape {
    out: usize,
    inp: usize,
    tokens: usize,
    rank: usize,
    density: f64,
    bias: bool,
    bf16_w: bool,
    train_w: bool,
}

/// A host layer with every part non-trivial: random B and S values (not their zero init),
/// so that each term of the forward and backward passes shows.
fn host_layer(s: Shape, seed: u64) -> RosaLinear {
    let w = random::dense::<f32>(s.out, s.inp, seed);
    let bias = s
        .bias
        .then(|| random::dense::<f32>(s.out, 1, seed + 1).as_slice().to_vec());
    let mut layer = RosaLinear::new(w, bias);
    if s.rank > 0 {
        layer
            .set_lora(Some(Lora {
                a: random::dense::<f32>(s.rank, s.inp, seed + 2),
                b: random::dense::<f32>(s.out, s.rank, seed + 3),
                scale: 2.0 / s.rank as f32,
                dropout: 0.0,
            }))
            .unwrap();
    }
    let mask = random::csr::<f32>(s.out, s.inp, s.density, seed + 4).unwrap();
    let values = random::dense::<f32>(1, mask.nnz(), seed + 5);
    layer
        .set_sparse(mask.with_values(values.as_slice().to_vec()).unwrap())
        .unwrap();
    if s.bf16_w {
        layer.store_weight_bf16().unwrap();
    }
    layer.set_train_weight(s.train_w).unwrap();
    layer
}

fn shapes() -> Vec<Shape> {
    let base = Shape {
        out: 33,
        inp: 40,
        tokens: 17,
        rank: 4,
        density: 0.1,
        bias: true,
        bf16_w: false,
        train_w: false,
    };
    vec![
        base,
        Shape {
            out: 1,
            inp: 1,
            tokens: 1,
            rank: 1,
            density: 1.0,
            ..base
        },
        Shape {
            out: 70,
            inp: 7,
            tokens: 64,
            rank: 1,
            density: 0.0,
            bias: false,
            ..base
        },
        Shape {
            out: 5,
            inp: 129,
            tokens: 3,
            rank: 8,
            density: 0.3,
            train_w: true,
            ..base
        },
        Shape {
            out: 64,
            inp: 48,
            tokens: 33,
            bf16_w: true,
            ..base
        },
        Shape {
            out: 9,
            inp: 300,
            tokens: 5,
            rank: 2,
            density: 0.05,
            bias: false,
            bf16_w: true,
            ..base
        },
    ]
}

fn adam() -> AdamConfig {
    // A large eps: Adam's first step moves each value by about lr * sign(g), so a gradient
    // within rounding of 0 could flip between CPU and GPU; eps bounds that difference.
    AdamConfig {
        lr_low_rank: 1e-2,
        lr_other: 3e-3,
        eps: 1e-3,
        weight_decay: 0.1,
        clip_norm: Some(1.0),
        ..AdamConfig::default()
    }
}

fn weight_f32(l: &RosaLinear) -> Dense<f32> {
    l.weight().to_f32()
}

#[test]
fn layer_forward_backward_and_step_match_cpu() {
    let Some(dev) = device("layer_forward_backward_and_step_match_cpu") else {
        return;
    };
    for (k, s) in shapes().into_iter().enumerate() {
        let seed = 1000 * (k as u64 + 1);
        let mut cpu = host_layer(s, seed);
        let mut gpu = DeviceRosaLinear::from_host(dev, &cpu).unwrap();
        let x = random::dense::<f32>(s.inp, s.tokens, seed + 10);
        let dy = random::dense::<f32>(s.out, s.tokens, seed + 11);
        // The bf16 path rounds the activations to bf16 for the W products (cuBLAS needs
        // both operands in one type), and the sparse plan's S x and S^T dY read those bf16
        // activations and S rounded to bf16 (f32 accumulation and output); the CPU widens
        // W instead and keeps S in f32. The low-rank terms stay f32.
        let w_rel = if s.bf16_w { 2e-2 } else { 1e-5 };
        // With a bf16 W, dS comes from the bf16 activations of W's products (f32
        // accumulation): a few 1e-3 relative. The clipping norm inherits that, and Adam's
        // first step on a gradient that close to 0 can move a value 2 lr the other way.
        let grad_rel = |name: &str| {
            if s.bf16_w && name == "sparse" {
                1e-2
            } else {
                1e-5
            }
        };
        let (norm_rel, step_rel) = if s.bf16_w { (1e-2, 5e-3) } else { (1e-5, 1e-5) };
        let what = |t: &str| format!("{t} ({s:?})");

        let y_cpu = cpu.forward(&Cpu, x.as_ref(), true).unwrap();
        let y_gpu = gpu.forward(&up(dev, &x), true).unwrap().to_host().unwrap();
        assert_near(&what("y"), y_gpu.as_slice(), y_cpu.as_slice(), w_rel);

        let dx_cpu = cpu.backward(&Cpu, dy.as_ref()).unwrap();
        let dx_gpu = gpu.backward(&up(dev, &dy)).unwrap().to_host().unwrap();
        assert_near(&what("dx"), dx_gpu.as_slice(), dx_cpu.as_slice(), w_rel);

        let mut cpu_params: Vec<_> = cpu
            .params()
            .into_iter()
            .map(|p| (p.name.to_string(), p))
            .collect();
        let mut gpu_params: Vec<_> = gpu
            .params()
            .into_iter()
            .map(|p| (p.name.to_string(), p))
            .collect();
        let cpu_names: Vec<&str> = cpu_params.iter().map(|(n, _)| n.as_str()).collect();
        let gpu_names: Vec<&str> = gpu_params.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(cpu_names, gpu_names, "{s:?}");
        for ((name, c), (_, g)) in cpu_params.iter().zip(&gpu_params) {
            assert_near(
                &what(&format!("grad of {name}")),
                &g.grad_to_host().unwrap(),
                c.grad,
                grad_rel(name),
            );
        }
        let norm_cpu = AdamW::new(adam()).step(&mut cpu_params, 0.5);
        let norm_gpu = DeviceAdamW::new(adam())
            .step(dev, &mut gpu_params, 0.5)
            .unwrap();
        assert!(
            (norm_cpu - norm_gpu).abs() <= norm_rel * (1.0 + norm_cpu),
            "norm {norm_gpu} vs {norm_cpu} ({s:?})"
        );
        for ((name, c), (_, g)) in cpu_params.iter().zip(&gpu_params) {
            assert_near(
                &what(&format!("{name} after a step")),
                &g.value_to_host().unwrap(),
                c.value,
                step_rel,
            );
        }
        drop((cpu_params, gpu_params));

        // The trained parameters come back whole.
        let back = gpu.to_host().unwrap();
        assert_eq!(back.trainable_params(), cpu.trainable_params());
        assert_near(
            &what("W back"),
            weight_f32(&back).as_slice(),
            weight_f32(&cpu).as_slice(),
            1e-5,
        );
        assert_eq!(back.bias().is_some(), cpu.bias().is_some());
        if let (Some(b), Some(c)) = (back.bias(), cpu.bias()) {
            assert_near(&what("bias back"), b, c, 1e-5);
        }
        assert_near(
            &what("S back"),
            back.sparse().unwrap().matrix().values(),
            cpu.sparse().unwrap().matrix().values(),
            step_rel,
        );
        assert!(matches!(back.weight(), Weight::Bf16(_)) == s.bf16_w);
    }
}

#[test]
fn a_second_step_keeps_agreeing() {
    let Some(dev) = device("a_second_step_keeps_agreeing") else {
        return;
    };
    let s = shapes()[0];
    let mut cpu = host_layer(s, 77);
    let mut gpu = DeviceRosaLinear::from_host(dev, &cpu).unwrap();
    let (mut opt_cpu, mut opt_gpu) = (AdamW::new(adam()), DeviceAdamW::new(adam()));
    for step in 0..3u64 {
        let x = random::dense::<f32>(s.inp, s.tokens, 200 + step);
        let dy = random::dense::<f32>(s.out, s.tokens, 300 + step);
        cpu.forward(&Cpu, x.as_ref(), true).unwrap();
        cpu.backward(&Cpu, dy.as_ref()).unwrap();
        gpu.forward(&up(dev, &x), true).unwrap();
        gpu.backward(&up(dev, &dy)).unwrap();
        let mut cp: Vec<_> = cpu
            .params()
            .into_iter()
            .map(|p| (p.name.to_string(), p))
            .collect();
        let mut gp: Vec<_> = gpu
            .params()
            .into_iter()
            .map(|p| (p.name.to_string(), p))
            .collect();
        opt_cpu.step(&mut cp, 1.0);
        opt_gpu.step(dev, &mut gp, 1.0).unwrap();
    }
    assert_eq!(opt_gpu.state_bytes(), opt_cpu.state_bytes());
    let back = gpu.to_host().unwrap();
    let (lb, lc) = (back.lora().unwrap(), cpu.lora().unwrap());
    assert_near("A after 3 steps", lb.a.as_slice(), lc.a.as_slice(), 1e-4);
    assert_near("B after 3 steps", lb.b.as_slice(), lc.b.as_slice(), 1e-4);
}

/// The merged plan (W + S in a working copy, refreshed after each optimizer step) trains
/// like the CPU layer over three steps, on every shape whose W is frozen; the plan switched
/// between a forward and its backward pass still gives the same dX; a training W refuses
/// the merged plan; `choose_plan` sets what it returns.
#[test]
fn the_merged_plan_trains_like_the_cpu_layer() {
    let Some(dev) = device("the_merged_plan_trains_like_the_cpu_layer") else {
        return;
    };
    for (k, s) in shapes().into_iter().enumerate() {
        let seed = 5000 * (k as u64 + 1);
        let mut cpu = host_layer(s, seed);
        let mut gpu = DeviceRosaLinear::from_host(dev, &cpu).unwrap();
        if s.train_w {
            assert!(matches!(
                gpu.set_plan(LayerPlan::Merged),
                Err(rosa::Error::Unsupported(_))
            ));
            assert_eq!(gpu.plan(), LayerPlan::Sparse);
            continue;
        }
        gpu.set_plan(LayerPlan::Merged).unwrap();
        let w_rel = if s.bf16_w { 2e-2 } else { 1e-5 };
        let (mut opt_cpu, mut opt_gpu) = (AdamW::new(adam()), DeviceAdamW::new(adam()));
        for step in 0..3u64 {
            let what = |t: &str| format!("merged plan, step {step}: {t} ({s:?})");
            let x = random::dense::<f32>(s.inp, s.tokens, seed + 10 + step);
            let dy = random::dense::<f32>(s.out, s.tokens, seed + 20 + step);
            let y_cpu = cpu.forward(&Cpu, x.as_ref(), true).unwrap();
            let y_gpu = gpu.forward(&up(dev, &x), true).unwrap().to_host().unwrap();
            assert_near(&what("y"), y_gpu.as_slice(), y_cpu.as_slice(), w_rel);
            if step == 1 {
                // Back to the sparse plan between the passes: dX must not change.
                gpu.set_plan(LayerPlan::Sparse).unwrap();
            }
            let dx_cpu = cpu.backward(&Cpu, dy.as_ref()).unwrap();
            let dx_gpu = gpu.backward(&up(dev, &dy)).unwrap().to_host().unwrap();
            assert_near(&what("dx"), dx_gpu.as_slice(), dx_cpu.as_slice(), w_rel);
            if step == 1 {
                gpu.set_plan(LayerPlan::Merged).unwrap();
            }
            let mut cp: Vec<_> = cpu
                .params()
                .into_iter()
                .map(|p| (p.name.to_string(), p))
                .collect();
            let mut gp: Vec<_> = gpu
                .params()
                .into_iter()
                .map(|p| (p.name.to_string(), p))
                .collect();
            opt_cpu.step(&mut cp, 1.0);
            opt_gpu.step(dev, &mut gp, 1.0).unwrap();
        }
        // A fourth forward pass sees the third step's S through the refreshed copy.
        let x = random::dense::<f32>(s.inp, s.tokens, seed + 99);
        let y_cpu = cpu.forward(&Cpu, x.as_ref(), false).unwrap();
        let y_gpu = gpu.forward(&up(dev, &x), false).unwrap().to_host().unwrap();
        assert_near(
            &format!("merged plan, after 3 steps: y ({s:?})"),
            y_gpu.as_slice(),
            y_cpu.as_slice(),
            w_rel.max(1e-4),
        );
        let back = gpu.to_host().unwrap();
        assert_near(
            &format!("merged plan: S after 3 steps ({s:?})"),
            back.sparse().unwrap().matrix().values(),
            cpu.sparse().unwrap().matrix().values(),
            // Three steps of the first test's bf16 bound.
            if s.bf16_w { 1e-2 } else { 1e-4 },
        );
        let model = PlanModel {
            ceilings: Ceilings {
                dram_bytes_per_s: 4.3e12,
                l2_bytes_per_s: 1.0e13,
                fma_flops_per_s: 6.7e13,
                l2_probe_bytes: 16 << 20,
            },
            measured: &[],
            memory_budget: Some(0),
        };
        let choice = gpu.choose_plan(s.tokens, &model).unwrap();
        assert_eq!(gpu.plan(), choice.plan);
        assert_eq!(
            choice.plan,
            LayerPlan::Sparse,
            "a zero budget leaves no copy"
        );
    }
}

/// QRoSA on the device: an NF4 W (double-quantized scales) dequantized per product into the
/// device's shared bf16 workspace trains like the CPU layer on the same NF4 W, two layers of
/// different sizes taking turns with the workspace (it grows, then is reused smaller);
/// merging and the merged plan are refused, the cost model says why, and `to_host` gives
/// the same 4-bit W back.
#[test]
fn an_nf4_layer_trains_like_the_cpu_nf4_layer() {
    let Some(dev) = device("an_nf4_layer_trains_like_the_cpu_nf4_layer") else {
        return;
    };
    let shapes = [
        Shape {
            out: 33,
            inp: 64,
            tokens: 17,
            rank: 4,
            density: 0.1,
            bias: true,
            bf16_w: false,
            train_w: false,
        },
        Shape {
            out: 130,
            inp: 200,
            tokens: 9,
            rank: 2,
            density: 0.05,
            bias: false,
            bf16_w: false,
            train_w: false,
        },
    ];
    let mut layers: Vec<_> = shapes
        .iter()
        .enumerate()
        .map(|(k, &s)| {
            let mut cpu = host_layer(s, 9000 + k as u64);
            cpu.quantize_weight_nf4(Nf4Config::qlora()).unwrap();
            let gpu = DeviceRosaLinear::from_host(dev, &cpu).unwrap();
            (s, cpu, gpu)
        })
        .collect();
    for step in 0..2u64 {
        for (k, (s, cpu, gpu)) in layers.iter_mut().enumerate() {
            let what = |t: &str| format!("NF4 layer {k}, step {step}: {t} ({s:?})");
            let x = random::dense::<f32>(s.inp, s.tokens, 100 * step + k as u64);
            let dy = random::dense::<f32>(s.out, s.tokens, 100 * step + k as u64 + 50);
            // The device rounds the dequantized W and the activations to bf16.
            let y_cpu = cpu.forward(&Cpu, x.as_ref(), true).unwrap();
            let y_gpu = gpu.forward(&up(dev, &x), true).unwrap().to_host().unwrap();
            assert_near(&what("y"), y_gpu.as_slice(), y_cpu.as_slice(), 2e-2);
            let dx_cpu = cpu.backward(&Cpu, dy.as_ref()).unwrap();
            let dx_gpu = gpu.backward(&up(dev, &dy)).unwrap().to_host().unwrap();
            assert_near(&what("dx"), dx_gpu.as_slice(), dx_cpu.as_slice(), 2e-2);
            let mut cp: Vec<_> = cpu
                .params()
                .into_iter()
                .map(|p| (p.name.to_string(), p))
                .collect();
            let mut gp: Vec<_> = gpu
                .params()
                .into_iter()
                .map(|p| (p.name.to_string(), p))
                .collect();
            for ((name, c), (_, g)) in cp.iter().zip(&gp) {
                let rel = if name == "sparse" { 1e-2 } else { 1e-5 };
                assert_near(
                    &what(&format!("grad of {name}")),
                    &g.grad_to_host().unwrap(),
                    c.grad,
                    rel,
                );
            }
            AdamW::new(adam()).step(&mut cp, 1.0);
            DeviceAdamW::new(adam()).step(dev, &mut gp, 1.0).unwrap();
        }
    }
    for (s, cpu, gpu) in &mut layers {
        assert!(matches!(gpu.merge(), Err(Error::Unsupported(_))), "{s:?}");
        assert!(matches!(
            gpu.set_plan(LayerPlan::Merged),
            Err(Error::Unsupported(_))
        ));
        let model = PlanModel {
            ceilings: Ceilings {
                dram_bytes_per_s: 4.3e12,
                l2_bytes_per_s: 1.0e13,
                fma_flops_per_s: 6.7e13,
                l2_probe_bytes: 16 << 20,
            },
            measured: &[],
            memory_budget: None,
        };
        let choice = gpu.choose_plan(s.tokens, &model).unwrap();
        assert_eq!(choice.plan, LayerPlan::Sparse);
        assert_eq!(choice.reason, PlanReason::Quantized);
        let back = gpu.to_host().unwrap();
        match (back.weight(), cpu.weight()) {
            (Weight::Nf4(b), Weight::Nf4(c)) => assert_eq!(b, c),
            _ => panic!("the NF4 weight did not come back as NF4 ({s:?})"),
        }
        assert_near(
            &format!("NF4 layer: S after 2 steps ({s:?})"),
            back.sparse().unwrap().matrix().values(),
            cpu.sparse().unwrap().matrix().values(),
            1e-2,
        );
    }
}

#[test]
fn merge_then_unmerge_restores_w_and_merged_forward_agrees() {
    let Some(dev) = device("merge_then_unmerge_restores_w_and_merged_forward_agrees") else {
        return;
    };
    for s in shapes() {
        let cpu = host_layer(s, 4242);
        let mut gpu = DeviceRosaLinear::from_host(dev, &cpu).unwrap();
        let x = up(dev, &random::dense::<f32>(s.inp, s.tokens, 5));
        let y = gpu.forward(&x, false).unwrap().to_host().unwrap();
        gpu.merge().unwrap();
        assert!(gpu.is_merged());
        assert!(gpu.to_host().is_err(), "to_host of a merged layer");
        assert!(gpu.forward(&x, true).is_err(), "training a merged layer");
        let dy = DeviceDense::<f32>::zeros(dev, s.out, s.tokens).unwrap();
        assert!(
            gpu.backward(&dy).is_err(),
            "backward through a merged layer"
        );
        let y_merged = gpu.forward(&x, false).unwrap().to_host().unwrap();
        // A bf16 W rounds the merged sum to bf16.
        let rel = if s.bf16_w { 3e-2 } else { 1e-5 };
        assert_near(
            &format!("merged y ({s:?})"),
            y_merged.as_slice(),
            y.as_slice(),
            rel,
        );
        gpu.unmerge().unwrap();
        let back = gpu.to_host().unwrap();
        let w_rel = if s.bf16_w { 3e-2 } else { 1e-5 };
        assert_near(
            &format!("W after unmerge ({s:?})"),
            weight_f32(&back).as_slice(),
            weight_f32(&cpu).as_slice(),
            w_rel,
        );
    }
}

#[test]
fn wrong_shapes_and_order_are_errors() {
    let Some(dev) = device("wrong_shapes_and_order_are_errors") else {
        return;
    };
    let s = shapes()[0];
    let mut gpu = DeviceRosaLinear::from_host(dev, &host_layer(s, 1)).unwrap();
    let dy = DeviceDense::<f32>::zeros(dev, s.out, s.tokens).unwrap();
    assert!(
        matches!(gpu.backward(&dy), Err(Error::InvalidArgument(_))),
        "backward before forward"
    );
    assert!(gpu.params().is_empty());
    let bad = DeviceDense::<f32>::zeros(dev, s.inp + 1, s.tokens).unwrap();
    assert!(matches!(
        gpu.forward(&bad, true),
        Err(Error::ShapeMismatch { .. })
    ));
    let x = DeviceDense::<f32>::zeros(dev, s.inp, s.tokens).unwrap();
    gpu.forward(&x, true).unwrap();
    let short = DeviceDense::<f32>::zeros(dev, s.out, s.tokens + 1).unwrap();
    assert!(matches!(
        gpu.backward(&short),
        Err(Error::ShapeMismatch { .. })
    ));
    let mut with_dropout = host_layer(s, 2);
    let mut l = with_dropout.lora().unwrap().clone();
    l.dropout = 0.1;
    with_dropout.set_lora(Some(l)).unwrap();
    assert!(matches!(
        DeviceRosaLinear::from_host(dev, &with_dropout),
        Err(Error::Unsupported(_))
    ));
}

// ---------------------------------------------------------------- the trainer's backend

/// (M, K, N) of the backend comparisons: one element, N = 1, ragged tiles, a wide inner
/// dimension, no rows, and K = 0 (the GEMM's inner dimension, the mask's columns).
const PRODUCTS: [(usize, usize, usize); 7] = [
    (1, 1, 1),
    (17, 33, 1),
    (40, 25, 8),
    (64, 64, 33),
    (3, 130, 5),
    (0, 4, 3),
    (6, 0, 2),
];

/// A random M x K mask in which every third row is empty (none when K = 0).
fn mask(m: usize, k: usize, seed: u64) -> Csr<f32> {
    let lens: Vec<usize> = (0..m)
        .map(|i| if i % 3 == 1 { 0 } else { (i * 7 + 1) % (k + 1) })
        .collect();
    random::csr_with_row_lengths::<f32>(m, k, &lens, seed).unwrap()
}

/// Both backends' `C` after `op` on a copy of `c0`, or on NaN when `beta` is 0.
fn on_both(
    gpu: &CudaBackend,
    c0: &Dense<f32>,
    beta: f32,
    op: impl Fn(&dyn Backend, &mut Dense<f32>),
) -> (Dense<f32>, Dense<f32>) {
    let start = || {
        if beta == 0.0 {
            Dense::filled(c0.rows(), c0.cols(), f32::NAN)
        } else {
            c0.clone()
        }
    };
    let (mut got, mut want) = (start(), start());
    op(gpu, &mut got);
    op(&Cpu, &mut want);
    (got, want)
}

/// Non-trivial scalings, then beta = 0 on a NaN-poisoned output.
const SCALES: [(f32, f32); 2] = [(1.5, -0.5), (-0.75, 0.0)];

#[test]
fn backend_gemm_matches_cpu_in_every_transpose() {
    let Some(dev) = device("backend_gemm_matches_cpu_in_every_transpose") else {
        return;
    };
    let gpu = CudaBackend::new(dev).unwrap();
    for (s, &(m, k, n)) in PRODUCTS.iter().enumerate() {
        let seed = 10 * s as u64;
        for (op_a, op_b) in [
            (Trans::N, Trans::N),
            (Trans::T, Trans::N),
            (Trans::N, Trans::T),
            (Trans::T, Trans::T),
        ] {
            let stored = |t, r, c, sd| match t {
                Trans::N => random::dense::<f32>(r, c, sd),
                Trans::T => random::dense::<f32>(c, r, sd),
            };
            let (a, b) = (stored(op_a, m, k, seed), stored(op_b, k, n, seed + 1));
            let c0 = random::dense::<f32>(m, n, seed + 2);
            for (alpha, beta) in SCALES {
                let (got, want) = on_both(&gpu, &c0, beta, |be, c| {
                    be.gemm(alpha, a.as_ref(), op_a, b.as_ref(), op_b, beta, c.as_mut())
                        .unwrap()
                });
                assert_near(
                    &format!("gemm {op_a:?}{op_b:?} {m}x{k}x{n} beta {beta}"),
                    got.as_slice(),
                    want.as_slice(),
                    1e-4,
                );
            }
        }
    }
}

#[test]
fn backend_spmm_and_spmm_t_match_cpu_with_empty_rows() {
    let Some(dev) = device("backend_spmm_and_spmm_t_match_cpu_with_empty_rows") else {
        return;
    };
    let gpu = CudaBackend::new(dev).unwrap();
    for (s, &(m, k, n)) in PRODUCTS.iter().enumerate() {
        let seed = 10 * s as u64;
        let a = mask(m, k, seed);
        let plan = a.transpose_plan();
        let (b, bt) = (
            random::dense::<f32>(k, n, seed + 1),
            random::dense::<f32>(m, n, seed + 2),
        );
        let (c0, ct0) = (
            random::dense::<f32>(m, n, seed + 3),
            random::dense::<f32>(k, n, seed + 4),
        );
        for (alpha, beta) in SCALES {
            let (got, want) = on_both(&gpu, &c0, beta, |be, c| {
                be.spmm(alpha, a.as_ref(), b.as_ref(), beta, c.as_mut())
                    .unwrap()
            });
            let what = format!("spmm {m}x{k}x{n} beta {beta}");
            assert_near(&what, got.as_slice(), want.as_slice(), 1e-4);
            let (got, want) = on_both(&gpu, &ct0, beta, |be, c| {
                be.spmm_t(alpha, a.as_ref(), &plan, bt.as_ref(), beta, c.as_mut())
                    .unwrap()
            });
            let what = format!("spmm_t {m}x{k}x{n} beta {beta}");
            assert_near(&what, got.as_slice(), want.as_slice(), 1e-4);
        }
    }
}

#[test]
fn backend_sddmm_matches_cpu_with_empty_rows() {
    let Some(dev) = device("backend_sddmm_matches_cpu_with_empty_rows") else {
        return;
    };
    let gpu = CudaBackend::new(dev).unwrap();
    // Here (M, K, N) is (mask rows, mask columns, inner dimension).
    for (s, &(m, k, n)) in PRODUCTS.iter().enumerate() {
        let seed = 10 * s as u64;
        let out0 = mask(m, k, seed);
        let (l, r) = (
            random::dense::<f32>(m, n, seed + 1),
            random::dense::<f32>(k, n, seed + 2),
        );
        for (alpha, beta) in SCALES {
            let run = |be: &dyn Backend| {
                let mut out = if beta == 0.0 {
                    out0.with_values(vec![f32::NAN; out0.nnz()]).unwrap()
                } else {
                    out0.clone()
                };
                be.sddmm(alpha, l.as_ref(), r.as_ref(), beta, out.as_mut())
                    .unwrap();
                out
            };
            let (got, want) = (run(&gpu), run(&Cpu));
            assert_eq!(got.structure_id(), want.structure_id());
            assert_near(
                &format!("sddmm {m}x{k} inner {n} beta {beta}"),
                got.values(),
                want.values(),
                1e-4,
            );
        }
    }
}

/// One refused call, run on either backend.
type BadCall<'a> = dyn Fn(&dyn Backend) -> rosa::Result<()> + 'a;

#[test]
fn backend_refuses_what_the_cpu_refuses_with_the_same_error() {
    let Some(dev) = device("backend_refuses_what_the_cpu_refuses_with_the_same_error") else {
        return;
    };
    let gpu = CudaBackend::new(dev).unwrap();
    let a = mask(8, 6, 1);
    let other = mask(8, 6, 2).transpose_plan();
    let (b6, b8) = (random::dense::<f32>(6, 3, 3), random::dense::<f32>(8, 3, 4));
    let calls: Vec<(&str, Box<BadCall<'_>>)> = vec![
        (
            "gemm shapes",
            Box::new(|be| {
                let mut c = Dense::zeros(8, 3);
                be.gemm(
                    1.0,
                    b8.as_ref(),
                    Trans::N,
                    b6.as_ref(),
                    Trans::N,
                    0.0,
                    c.as_mut(),
                )
            }),
        ),
        (
            "gemm NaN alpha",
            Box::new(|be| {
                let mut c = Dense::zeros(6, 6);
                be.gemm(
                    f32::NAN,
                    b6.as_ref(),
                    Trans::N,
                    b6.as_ref(),
                    Trans::T,
                    0.0,
                    c.as_mut(),
                )
            }),
        ),
        (
            "spmm shapes",
            Box::new(|be| {
                let mut c = Dense::zeros(8, 3);
                be.spmm(1.0, a.as_ref(), b8.as_ref(), 0.0, c.as_mut())
            }),
        ),
        (
            "spmm_t with another matrix's plan",
            Box::new(|be| {
                let mut c = Dense::zeros(6, 3);
                be.spmm_t(1.0, a.as_ref(), &other, b8.as_ref(), 0.0, c.as_mut())
            }),
        ),
        (
            "sddmm infinite beta",
            Box::new(|be| {
                let mut out = a.clone();
                be.sddmm(1.0, b8.as_ref(), b6.as_ref(), f32::INFINITY, out.as_mut())
            }),
        ),
    ];
    for (what, call) in &calls {
        let (got, want) = (call(&gpu), call(&Cpu));
        let (got, want) = (got.unwrap_err(), want.unwrap_err());
        assert_eq!(got.to_string(), want.to_string(), "{what}");
    }
    assert!(matches!(calls[3].1(&gpu), Err(Error::PlanMismatch { .. })));
}

/// A run small enough for a test that still goes through every product: pretraining and
/// FFT (GEMMs), LoRA, and RoSA (mask generation by SDDMM, SpMM and transposed SpMM).
fn small_run(device: rosa::train::Device) -> TrainConfig {
    TrainConfig {
        tasks: vec![TaskKind::NewFamily],
        methods: vec![Method::Fft, Method::Lora, Method::Rosa],
        steps: 12,
        pretrain_steps: 12,
        batch: 32,
        eval_tokens: 128,
        mlp: MlpConfig {
            inputs: 8,
            hidden: 24,
            outputs: 4,
            blocks: 1,
        },
        budget_rank: 2,
        device,
        ..TrainConfig::default()
    }
}

#[test]
fn a_short_training_run_on_cuda_ends_where_the_cpu_run_does() {
    if device("a_short_training_run_on_cuda_ends_where_the_cpu_run_does").is_none() {
        return;
    }
    let gpu = rosa::train::run(&small_run(rosa::train::Device::Cuda)).unwrap();
    let cpu = rosa::train::run(&small_run(rosa::train::Device::Cpu)).unwrap();
    assert_eq!((gpu.backend, cpu.backend), ("cuda", "cpu"));
    assert!(gpu.table().contains("backend: cuda"), "{}", gpu.table());
    assert_eq!(gpu.rows.len(), cpu.rows.len());
    for (g, c) in gpu.rows.iter().zip(&cpu.rows) {
        assert_eq!((&g.task, &g.method), (&c.task, &c.method));
        let rel = (g.eval_loss - c.eval_loss).abs() / c.eval_loss.abs().max(1e-6);
        assert!(
            rel <= 1e-3,
            "{} {}: eval loss {} on CUDA, {} on the CPU",
            g.task,
            g.method,
            g.eval_loss,
            c.eval_loss
        );
    }
}
