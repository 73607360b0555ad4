//! QRoSA: the RoSA layer with a 4-bit NF4 W against the same layer with W dequantized to
//! f32, merge refused, the trainer's --quant.

use rosa::quant::{Nf4Config, Nf4Matrix};
use rosa::random::{self, Rng};
use rosa::train::{Cpu, LoraConfig, RosaLinear, Scaling, Weight};
use rosa::{Csr, Dense, Error};

fn layers(seed: u64) -> (RosaLinear, RosaLinear) {
    let w = random::dense::<f32>(24, 40, seed);
    let q = Nf4Matrix::quantize(w.as_ref(), Nf4Config::qlora()).unwrap();
    let wd = q.dequantize::<f32>().unwrap();
    let mut a = RosaLinear::from_weight(Weight::Nf4(q), Some(vec![0.25; 24]));
    let mut b = RosaLinear::new(wd, Some(vec![0.25; 24]));
    let cfg = LoraConfig {
        rank: 3,
        alpha: 6.0,
        scaling: Scaling::Standard,
        dropout: 0.0,
    };
    a.add_lora(cfg, &mut Rng::new(seed));
    b.add_lora(cfg, &mut Rng::new(seed));
    let s = Csr::from_triplets(24, 40, &[(0, 1, 0.5f32), (3, 7, -1.0), (23, 39, 2.0)]).unwrap();
    a.set_sparse(s.clone()).unwrap();
    b.set_sparse(s).unwrap();
    (a, b)
}

#[test]
fn nf4_layer_matches_dequantized_dense_layer() {
    for seed in [1u64, 2, 3] {
        let (mut a, mut b) = layers(seed);
        let x = random::dense::<f32>(40, 9, seed + 100);
        let ya = a.forward(&Cpu, x.as_ref(), true).unwrap();
        let yb = b.forward(&Cpu, x.as_ref(), true).unwrap();
        assert_eq!(ya.as_slice(), yb.as_slice());
        let dy = random::dense::<f32>(24, 9, seed + 200);
        let dxa = a.backward(&Cpu, dy.as_ref()).unwrap();
        let dxb = b.backward(&Cpu, dy.as_ref()).unwrap();
        assert_eq!(dxa.as_slice(), dxb.as_slice());
        let ga: Vec<Vec<f32>> = a.params().iter().map(|p| p.grad.to_vec()).collect();
        let gb: Vec<Vec<f32>> = b.params().iter().map(|p| p.grad.to_vec()).collect();
        assert_eq!(ga.len(), 3); // lora_a, lora_b, sparse: W is frozen
        assert_eq!(ga, gb);
    }
}

#[test]
fn nf4_merge_and_weight_training_are_refused() {
    let (mut a, _) = layers(4);
    match a.merge(&Cpu) {
        Err(Error::Unsupported(m)) => assert!(m.contains("export the adapters instead")),
        other => panic!("{other:?}"),
    }
    assert!(!a.is_merged());
    assert!(matches!(
        a.set_train_weight(true),
        Err(Error::Unsupported(_))
    ));
    assert!(a.set_weight(Dense::zeros(24, 40)).is_err());
}

#[test]
fn nf4_weight_stored_bytes() {
    let mut l = RosaLinear::new(random::dense::<f32>(128, 96, 5), None);
    assert_eq!(l.weight().stored_bytes(), 128 * 96 * 4);
    l.quantize_weight_nf4(Nf4Config::qlora()).unwrap();
    assert_eq!(l.weight().stored_bytes(), 6144 + 192 + 4 + 4);
}

fn small(methods: Vec<rosa::train::Method>, quant: bool) -> rosa::train::TrainConfig {
    rosa::train::TrainConfig {
        methods,
        steps: 40,
        pretrain_steps: 30,
        batch: 32,
        eval_tokens: 256,
        mlp: rosa::train::MlpConfig {
            inputs: 8,
            hidden: 16,
            outputs: 4,
            blocks: 1,
        },
        budget_rank: 4,
        quant: quant.then(Nf4Config::qlora),
        ..rosa::train::TrainConfig::default()
    }
}

#[test]
fn trainer_runs_qlora_and_qrosa_with_4bit_w_bytes() {
    use rosa::train::{run, Method};
    let q = run(&small(vec![Method::Lora, Method::Rosa], true)).unwrap();
    let f = run(&small(vec![Method::Lora, Method::Rosa], false)).unwrap();
    let names: Vec<&str> = q.rows.iter().map(|r| r.method.as_str()).collect();
    assert!(
        names.contains(&"qlora") && names.contains(&"qrosa"),
        "{names:?}"
    );
    for (a, b) in q
        .rows
        .iter()
        .zip(&f.rows)
        .filter(|(a, _)| a.method != "base")
    {
        assert!(a.eval_loss.is_finite());
        // f32 W: 4 bytes a weight; NF4 with double-quantized scales: about 0.52.
        assert!(a.w_bytes * 7 < b.w_bytes, "{} vs {}", a.w_bytes, b.w_bytes);
    }
}

#[test]
fn trainer_refuses_quant_for_methods_that_rewrite_w() {
    use rosa::train::{run, Method};
    for m in [Method::Fft, Method::RandomSubspace] {
        assert!(matches!(
            run(&small(vec![m], true)),
            Err(Error::Unsupported(_))
        ));
    }
}
