//! The training layer: gradients against finite differences, masks, storage round
//! trips, merging, and a short run that learns.

use rosa::random::{self, Rng};
use rosa::train::*;
use rosa::{Csr, CsrShape, Dense};

const IN: usize = 7;
const OUT: usize = 5;
const RANK: usize = 3;
const TOKENS: usize = 6;

/// A layer with every adapter present and nonzero, so each gradient path is exercised.
fn full_layer(dropout: f32, train_w: bool) -> RosaLinear {
    let mut layer = RosaLinear::new(
        random::dense(OUT, IN, 1),
        Some(random::dense::<f32>(1, OUT, 2).into_vec()),
    );
    layer
        .set_lora(Some(Lora {
            a: random::dense(RANK, IN, 3),
            b: random::dense(OUT, RANK, 4),
            scale: 0.7,
            dropout,
        }))
        .unwrap();
    layer
        .set_sparse(random::csr(OUT, IN, 0.3, 5).unwrap())
        .unwrap();
    layer.set_train_weight(train_w).unwrap();
    layer
}

/// `L = sum(Y ⊙ R)` in f64, so `dY = R`; the dropout stream is re-seeded so every
/// evaluation draws the same mask.
fn objective(layer: &mut RosaLinear, x: &Dense<f32>, r: &Dense<f32>) -> f64 {
    layer.set_seed(99);
    let y = layer.forward(&Cpu, x.as_ref(), true).unwrap();
    y.as_slice()
        .iter()
        .zip(r.as_slice())
        .map(|(&a, &b)| a as f64 * b as f64)
        .sum()
}

/// Central differences of `objective` along each entry `get_set` exposes. The layer is
/// linear in each tensor, so the difference is exact up to f32 rounding of the outputs.
fn check(name: &str, analytic: &[f32], mut eval_at: impl FnMut(usize, f32) -> f64) {
    let eps = 1e-2f32;
    for (i, &g) in analytic.iter().enumerate() {
        let fd = (eval_at(i, eps) - eval_at(i, -eps)) / (2.0 * eps as f64);
        let tol = 2e-3 * (1.0 + fd.abs());
        assert!(
            (fd - g as f64).abs() <= tol,
            "{name}[{i}]: analytic {g}, finite difference {fd}"
        );
    }
}

fn layer_grads(dropout: f32) {
    let x = random::dense::<f32>(IN, TOKENS, 6);
    let r = random::dense::<f32>(OUT, TOKENS, 7);
    let mut layer = full_layer(dropout, true);
    objective(&mut layer, &x, &r);
    let dx = layer.backward(&Cpu, r.as_ref()).unwrap();
    let grads: std::collections::HashMap<&str, Vec<f32>> = layer
        .params()
        .into_iter()
        .map(|p| (p.name, p.grad.to_vec()))
        .collect();
    assert_eq!(grads.len(), 5, "lora_a, lora_b, sparse, weight, bias");

    check("x", dx.as_slice(), |i, e| {
        let mut xp = x.clone();
        xp.as_mut_slice()[i] += e;
        objective(&mut layer.clone(), &xp, &r)
    });
    for name in ["lora_a", "lora_b", "sparse", "weight", "bias"] {
        check(name, &grads[name], |i, e| {
            let mut l = layer.clone();
            l.params()
                .into_iter()
                .find(|p| p.name == name)
                .unwrap()
                .value[i] += e;
            objective(&mut l, &x, &r)
        });
    }
}

#[test]
fn layer_gradients_match_finite_differences() {
    layer_grads(0.0);
}

#[test]
fn layer_gradients_with_dropout_match_finite_differences() {
    layer_grads(0.4);
}

#[test]
fn frozen_layer_trains_only_its_adapters() {
    let mut layer = full_layer(0.0, false);
    let x = random::dense::<f32>(IN, TOKENS, 6);
    layer.forward(&Cpu, x.as_ref(), true).unwrap();
    layer
        .backward(&Cpu, random::dense::<f32>(OUT, TOKENS, 7).as_ref())
        .unwrap();
    let names: Vec<_> = layer.params().iter().map(|p| p.name).collect();
    assert_eq!(names, ["lora_a", "lora_b", "sparse"]);
    assert_eq!(
        layer.trainable_params(),
        RANK * (IN + OUT) + layer.sparse().unwrap().matrix().nnz()
    );
}

#[test]
fn model_gradients_match_finite_differences() {
    let cfg = MlpConfig {
        inputs: 4,
        hidden: 6,
        outputs: 3,
        blocks: 1,
    };
    let mut model = Mlp::new(cfg, 3);
    for l in model.layers_mut() {
        l.set_train_weight(true).unwrap();
    }
    let x = random::dense::<f32>(4, 5, 8);
    let targets = Targets::Labels(vec![0, 2, 1, 1, 0]);
    let eval = |m: &mut Mlp| {
        loss(&m.forward(&Cpu, x.as_ref(), true).unwrap(), &targets)
            .unwrap()
            .loss as f64
    };
    let l = loss(&model.forward(&Cpu, x.as_ref(), true).unwrap(), &targets).unwrap();
    model.backward(&Cpu, l.grad.as_ref(), None).unwrap();
    let grads: Vec<(String, Vec<f32>)> = model
        .params()
        .into_iter()
        .map(|(k, p)| (k, p.grad.to_vec()))
        .collect();
    let eps = 1e-2f32;
    for (key, g) in &grads {
        for i in (0..g.len()).step_by(3) {
            let at = |e: f32| {
                let mut m = model.clone();
                m.params()
                    .into_iter()
                    .find(|(k, _)| k == key)
                    .unwrap()
                    .1
                    .value[i] += e;
                eval(&mut m)
            };
            let fd = (at(eps) - at(-eps)) / (2.0 * eps as f64);
            // Curvature of GELU and softmax makes the difference O(eps^2) off.
            assert!(
                (fd - g[i] as f64).abs() <= 2e-3 + 2e-2 * fd.abs(),
                "{key}[{i}]: analytic {}, fd {fd}",
                g[i]
            );
        }
    }
}

#[test]
fn mask_is_exactly_the_top_k_with_deterministic_ties() {
    let mut rng = Rng::new(11);
    // Few distinct magnitudes, so ties are everywhere.
    let scores = Dense::from_fn(9, 13, |_, _| (rng.below(7) as f32 - 3.0) * 0.5);
    for k in [0, 1, 10, 50, 117] {
        let mask = top_k_mask(scores.as_ref(), k).unwrap();
        let mut order: Vec<usize> = (0..117).collect();
        order.sort_by(|&a, &b| {
            scores.as_slice()[b]
                .abs()
                .total_cmp(&scores.as_slice()[a].abs())
                .then(a.cmp(&b))
        });
        let mut want: Vec<usize> = order[..k].to_vec();
        want.sort_unstable();
        let got: Vec<usize> = (0..9)
            .flat_map(|i| {
                mask.row(i)
                    .0
                    .iter()
                    .map(move |&j| i * 13 + j as usize)
                    .collect::<Vec<_>>()
            })
            .collect();
        assert_eq!(got, want, "k = {k}");
    }
}

#[test]
fn accumulator_means_gradients_or_their_squares() {
    let g1 = Dense::from_vec(1, 2, vec![2.0f32, -4.0]).unwrap();
    let g2 = Dense::from_vec(1, 2, vec![4.0f32, 0.0]).unwrap();
    for (kind, want) in [
        (Accumulation::Mean, [3.0, -2.0]),
        (Accumulation::MeanSquared, [10.0, 8.0]),
    ] {
        let mut acc = GradAccumulator::new(kind, 2);
        acc.add(1, &g1).unwrap();
        acc.add(1, &g2).unwrap();
        assert_eq!(acc.get(1).unwrap().as_slice(), &want);
        assert!(acc.get(0).is_none());
    }
}

fn temp(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("rosa-train-test-{}-{name}", std::process::id()))
}

#[test]
fn masks_round_trip_bit_for_bit() {
    let masks: Vec<Csr<f32>> = (0..3)
        .map(|i| random::csr(10 + i, 7, 0.2, i as u64).unwrap())
        .collect();
    let masks: Vec<Csr<f32>> = masks
        .iter()
        .map(|m| m.with_values(vec![1.0; m.nnz()]).unwrap())
        .collect();
    let path = temp("masks.safetensors");
    save_masks(&path, &masks).unwrap();
    assert_eq!(load_masks(&path).unwrap(), masks);
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn adapters_round_trip_bit_for_bit() {
    let cfg = MlpConfig {
        inputs: 4,
        hidden: 6,
        outputs: 3,
        blocks: 1,
    };
    let mut model = Mlp::new(cfg, 1);
    let mut rng = Rng::new(2);
    for (i, l) in model.layers_mut().iter_mut().enumerate() {
        let (o, n) = (l.out_features(), l.in_features());
        // Values that exercise every bit pattern class: tiny, negative zero, large.
        let mut b = random::dense::<f32>(o, 2, i as u64);
        b.as_mut_slice()[0] = -0.0;
        b.as_mut_slice()[1] = 1e-40;
        l.set_lora(Some(Lora {
            a: Dense::from_fn(2, n, |_, _| rng.uniform(-1.0, 1.0)),
            b,
            scale: 0.3,
            dropout: 0.0,
        }))
        .unwrap();
        l.set_sparse(random::csr(o, n, 0.3, 7 + i as u64).unwrap())
            .unwrap();
    }
    let path = temp("adapters.safetensors");
    model.save_adapters(&path, true).unwrap();
    let mut loaded = Mlp::new(cfg, 9);
    loaded.load_adapters(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    let bits = |d: &[f32]| d.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    for (a, b) in model.layers().iter().zip(loaded.layers()) {
        let (la, lb) = (a.lora().unwrap(), b.lora().unwrap());
        assert_eq!(bits(la.a.as_slice()), bits(lb.a.as_slice()));
        assert_eq!(bits(la.b.as_slice()), bits(lb.b.as_slice()));
        assert_eq!(la.scale.to_bits(), lb.scale.to_bits());
        assert_eq!(a.sparse().unwrap().matrix(), b.sparse().unwrap().matrix());
        assert_eq!(
            bits(a.weight().to_f32().as_slice()),
            bits(b.weight().to_f32().as_slice())
        );
        assert_eq!(a.bias(), b.bias());
    }
}

#[test]
fn merge_matches_the_adapted_forward_and_unmerge_restores_w() {
    for weight in [
        Weight::F32(random::dense(OUT, IN, 1)),
        Weight::Bf16(random::dense(OUT, IN, 1)),
    ] {
        let mut layer = full_layer(0.0, false);
        let bf16 = matches!(weight, Weight::Bf16(_));
        let before = weight.to_f32();
        let mut l = RosaLinear::from_weight(weight, None);
        l.set_lora(layer.lora().cloned()).unwrap();
        l.set_sparse(layer.sparse().unwrap().matrix().clone())
            .unwrap();
        layer = l;
        let x = random::dense::<f32>(IN, TOKENS, 6);
        let adapted = layer.forward(&Cpu, x.as_ref(), false).unwrap();
        layer.merge(&Cpu).unwrap();
        let merged = layer.forward(&Cpu, x.as_ref(), false).unwrap();
        // bf16 storage rounds the merged W once; f32 only reorders the sums.
        let tol = if bf16 { 5e-2 } else { 1e-5 };
        for (a, b) in adapted.as_slice().iter().zip(merged.as_slice()) {
            assert!((a - b).abs() <= tol * (1.0 + a.abs()), "{a} vs {b}");
        }
        layer.unmerge(&Cpu).unwrap();
        let after = layer.weight().to_f32();
        let tol = if bf16 { 2e-2 } else { 1e-6 };
        for (a, b) in before.as_slice().iter().zip(after.as_slice()) {
            assert!((a - b).abs() <= tol * (1.0 + a.abs()), "{a} vs {b}");
        }
    }
}

#[test]
fn budget_pairs_spend_the_same_parameters() {
    let shapes = [(64, 32), (64, 64), (16, 64)];
    let budget = Budget::LoraRank(6);
    let want = budget.params(&shapes);
    let pairs = budget.pairs(&shapes);
    assert_eq!(pairs.len(), 7);
    for p in pairs {
        let got = lora_params(&shapes, p.rank) + sparse_params(&shapes, p.density);
        // Per-layer rounding of the mask sizes moves the count by under one per layer.
        assert!(got.abs_diff(want) <= shapes.len(), "{p:?}: {got} vs {want}");
    }
}

#[test]
fn a_short_run_decreases_the_loss() {
    let cfg = TrainConfig {
        methods: vec![Method::Rosa, Method::RandomSubspace],
        steps: 60,
        pretrain_steps: 30,
        batch: 32,
        eval_tokens: 256,
        mlp: MlpConfig {
            inputs: 8,
            hidden: 16,
            outputs: 4,
            blocks: 1,
        },
        budget_rank: 4,
        resplit_every: 25,
        ..TrainConfig::default()
    };
    let report = run(&cfg).unwrap();
    for task in ["lowrank_sparse", "new_family"] {
        let rows: Vec<&Row> = report.rows.iter().filter(|r| r.task == task).collect();
        assert_eq!(rows.len(), 3);
        for r in &rows[1..] {
            assert!(
                r.eval_loss < rows[0].eval_loss,
                "{task} {}: {} is not below the base's {}",
                r.method,
                r.eval_loss,
                rows[0].eval_loss
            );
            assert!(r.trainable > 0);
        }
    }
    let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
    assert_eq!(json["rows"].as_array().unwrap().len(), report.rows.len());
    assert_eq!(json["rows"][1]["method"], "rosa");
}

#[test]
fn a_run_restarts_from_saved_masks() {
    let dir = temp("save");
    let base = TrainConfig {
        tasks: vec![TaskKind::NewFamily],
        methods: vec![Method::Rosa],
        steps: 10,
        pretrain_steps: 5,
        batch: 16,
        eval_tokens: 32,
        mlp: MlpConfig {
            inputs: 4,
            hidden: 8,
            outputs: 3,
            blocks: 1,
        },
        budget_rank: 2,
        schedule: Some(Schedule::WarmLora(2)),
        save: Some(dir.clone()),
        ..TrainConfig::default()
    };
    let first = run(&base).unwrap();
    let masks_path = dir.join("new_family/rosa/masks.safetensors");
    let masks = load_masks(&masks_path).unwrap();
    let again = run(&TrainConfig {
        masks: Some(masks_path),
        save: None,
        ..base
    })
    .unwrap();
    // Same masks, same data, same seed: the same run.
    assert_eq!(
        first.rows[1].eval_loss.to_bits(),
        again.rows[1].eval_loss.to_bits()
    );
    assert_eq!(masks.len(), 4);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_settings_and_missing_devices_are_errors() {
    let tiny = TrainConfig {
        steps: 1,
        pretrain_steps: 1,
        ..TrainConfig::default()
    };
    assert!(run(&TrainConfig {
        lora_dropout: 1.0,
        ..tiny.clone()
    })
    .is_err());
    assert!(run(&TrainConfig {
        density: Some(1.5),
        ..tiny.clone()
    })
    .is_err());
    let on_cuda = run(&TrainConfig {
        device: Device::Cuda,
        ..tiny
    });
    if cfg!(feature = "cuda") {
        // Runs where there is a GPU (tests/gpu_train.rs checks what it computes), and
        // names the missing device where there is none.
        assert!(
            matches!(on_cuda, Ok(_) | Err(rosa::Error::NoDevice(_))),
            "{on_cuda:?}"
        );
    } else {
        assert!(
            matches!(on_cuda, Err(rosa::Error::Unsupported(_))),
            "{on_cuda:?}"
        );
    }
}

#[test]
fn bf16_weights_train_too() {
    let cfg = TrainConfig {
        tasks: vec![TaskKind::LowRankSparse],
        methods: vec![Method::Rosa],
        steps: 30,
        pretrain_steps: 10,
        batch: 16,
        eval_tokens: 64,
        mlp: MlpConfig {
            inputs: 4,
            hidden: 8,
            outputs: 3,
            blocks: 1,
        },
        budget_rank: 2,
        bf16_weights: true,
        ..TrainConfig::default()
    };
    let report = run(&cfg).unwrap();
    assert!(report.rows[1].eval_loss < report.rows[0].eval_loss);
}
