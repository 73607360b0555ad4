//! One RoSA training step on the GPU against the LoRA-only step, at a LLaMA-MLP shape:
//! W 11008 x 4096 in bf16, 2048 tokens, rank 16, and for RoSA a 0.6% sparse adapter.
//! A step is forward + backward + AdamW (global-norm clipping included, so one read-back
//! of the norm per step, in both methods). Timed with device events, median of the
//! repetitions after warm-up; peak memory is the high-water mark of the device's memory
//! pool over building the layer and running the steps, inputs x and dY included (every
//! buffer of this crate comes from it; cuBLAS's workspace does not, and is the same for
//! both methods).
//!
//! RoSA runs under both of the layer's plans (`rosa::train::plan`): merged (W + S in a
//! bf16 working copy, one GEMM per product) and sparse (SpMM and SpMM^T), and the line
//! `plan model:` says which one the cost model picks for this shape on the measured
//! ceilings, so the measurement can say whether the model is right.
//!
//! QLoRA and QRoSA (issue 18) run the same step with W in NF4 (double-quantized scales),
//! dequantized into the device's bf16 workspace for each product; QRoSA has the sparse
//! plan only.
//!
//! Target (issue 5): RoSA step <= 1.25x the LoRA-only step, with the plan the model picks.
//! The last line reads `summary step: ...` for scripts/gpu-run.sh. `--quick` runs a small shape (a smoke
//! test); without a GPU it prints `skipped: no CUDA device (...)` and exits 0.
//!
//!     cargo bench --features cuda --bench gpu_step [-- --quick]

mod common;

use common::device_or_skip;
use rosa::cuda::{Device, DeviceAdamW, DeviceDense, DeviceRosaLinear};
use rosa::quant::Nf4Config;
use rosa::train::plan::{LayerPlan, PlanChoice, PlanModel};
use rosa::train::{AdamConfig, LoraConfig, RosaLinear, Scaling};
use rosa::{random, CsrShape, Result};

struct Shape {
    out: usize,
    inp: usize,
    tokens: usize,
    rank: usize,
    density: f64,
    warmup: usize,
    reps: usize,
}

struct Measured {
    median_ms: f32,
    min_ms: f32,
    peak_mib: Option<f64>,
    trainable: usize,
}

/// The layer: W in bf16, or in NF4 (QLoRA's format with double quantization) for `nf4`.
fn host_layer(s: &Shape, sparse: bool, nf4: bool) -> Result<RosaLinear> {
    let mut layer = RosaLinear::new(random::dense::<f32>(s.out, s.inp, 1), None);
    if nf4 {
        layer.quantize_weight_nf4(Nf4Config::qlora())?;
    } else {
        layer.store_weight_bf16()?;
    }
    let cfg = LoraConfig {
        rank: s.rank,
        alpha: 2.0 * s.rank as f32,
        scaling: Scaling::Standard,
        dropout: 0.0,
    };
    layer.add_lora(cfg, &mut random::Rng::new(2));
    if sparse {
        let mask = random::csr::<f32>(s.out, s.inp, s.density, 3)?;
        layer.set_sparse_mask(&mask)?;
    }
    Ok(layer)
}

fn measure(dev: &Device, s: &Shape, host: &RosaLinear, plan: LayerPlan) -> Result<Measured> {
    let x = DeviceDense::from_host(dev, random::dense::<f32>(s.inp, s.tokens, 4).as_ref())?;
    let dy = DeviceDense::from_host(dev, random::dense::<f32>(s.out, s.tokens, 5).as_ref())?;
    dev.synchronize()?;
    // The reset restarts the mark at the memory in use now, so the peak counts the inputs
    // (the same for both methods) and everything the layer and the steps allocate.
    dev.pool_high_water(true)?;
    let mut layer = DeviceRosaLinear::from_host(dev, host)?;
    layer.set_plan(plan)?;
    let mut opt = DeviceAdamW::new(AdamConfig::default());
    let mut step = || -> Result<()> {
        drop(layer.forward(&x, true)?);
        drop(layer.backward(&dy)?);
        let mut params: Vec<_> = layer
            .params()
            .into_iter()
            .map(|p| (p.name.to_string(), p))
            .collect();
        opt.step(dev, &mut params, 1.0)?;
        Ok(())
    };
    for _ in 0..s.warmup {
        step()?;
    }
    let mut times = Vec::with_capacity(s.reps);
    for _ in 0..s.reps {
        times.push(dev.time_ms(&mut step)?);
    }
    dev.synchronize()?;
    let peak = dev.pool_high_water(false)?;
    times.sort_by(f32::total_cmp);
    Ok(Measured {
        median_ms: times[times.len() / 2],
        min_ms: times[0],
        peak_mib: peak.map(|b| b as f64 / (1u64 << 20) as f64),
        trainable: host.trainable_params(),
    })
}

fn main() -> Result<()> {
    let quick = std::env::args().any(|a| a == "--quick");
    let s = if quick {
        Shape {
            out: 512,
            inp: 256,
            tokens: 128,
            rank: 16,
            density: 0.006,
            warmup: 2,
            reps: 5,
        }
    } else {
        Shape {
            out: 11008,
            inp: 4096,
            tokens: 2048,
            rank: 16,
            density: 0.006,
            warmup: 3,
            reps: 20,
        }
    };
    let Some(dev) = device_or_skip("gpu_step") else {
        return Ok(());
    };
    println!(
        "gpu_step on {}: W {} x {} bf16, {} tokens, r = {}, d = {}%, {} reps after {} warm-up",
        dev.info()?,
        s.out,
        s.inp,
        s.tokens,
        s.rank,
        s.density * 100.0,
        s.reps,
        s.warmup
    );
    let ceilings = rosa::bench::gpu::measure_ceilings(&dev)?;
    let mut results = Vec::new();
    let mut choice: Option<PlanChoice> = None;
    for (name, sparse, plan, nf4) in [
        ("lora", false, LayerPlan::Sparse, false),
        ("rosa-sparse", true, LayerPlan::Sparse, false),
        ("rosa-merged", true, LayerPlan::Merged, false),
        ("qlora", false, LayerPlan::Sparse, true),
        ("qrosa", true, LayerPlan::Sparse, true),
    ] {
        let host = host_layer(&s, sparse, nf4)?;
        if sparse && !nf4 && choice.is_none() {
            let model = PlanModel {
                ceilings,
                measured: &[],
                memory_budget: None,
            };
            let c = DeviceRosaLinear::from_host(&dev, &host)?.choose_plan(s.tokens, &model)?;
            println!("plan model: {c}");
            choice = Some(c);
        }
        let nnz = host.sparse().map_or(0, |sp| sp.matrix().nnz());
        let m = measure(&dev, &s, &host, plan)?;
        let peak = m.peak_mib.map_or_else(
            || "n/a (no memory pool)".to_string(),
            |p| format!("{p:.1} MiB"),
        );
        println!(
            "step {name:<11} median {:8.3} ms  min {:8.3} ms  peak pool memory {peak}  \
             trainable {} (nnz {nnz})",
            m.median_ms, m.min_ms, m.trainable
        );
        results.push((plan, m));
    }
    let lora = &results[0].1;
    let ratio = |m: &Measured| m.median_ms / lora.median_ms;
    let picked = choice.map_or(LayerPlan::Sparse, |c| c.plan);
    let (sparse, merged) = (&results[1].1, &results[2].1);
    let chosen = if picked == LayerPlan::Merged {
        merged
    } else {
        sparse
    };
    let faster = if merged.median_ms < sparse.median_ms {
        LayerPlan::Merged
    } else {
        LayerPlan::Sparse
    };
    let peak = |m: &Measured| {
        m.peak_mib
            .map_or("n/a".to_string(), |p| format!("{p:.0} MiB"))
    };
    println!(
        "summary step: rosa/lora = {:.3} with the {picked} plan the model picks ({}; target \
         <= 1.25); sparse {:.3}, merged {:.3} ({faster} measured faster{}); {:.3} / {:.3} / \
         {:.3} ms lora / sparse / merged; peak {} / {} / {}",
        ratio(chosen),
        if ratio(chosen) <= 1.25 {
            "met"
        } else {
            "MISSED"
        },
        ratio(sparse),
        ratio(merged),
        if faster == picked {
            ", as predicted"
        } else {
            ", NOT as predicted"
        },
        lora.median_ms,
        sparse.median_ms,
        merged.median_ms,
        peak(lora),
        peak(sparse),
        peak(merged)
    );
    let (qlora, qrosa) = (&results[3].1, &results[4].1);
    println!(
        "summary qrosa: qrosa/qlora = {:.3}, qlora/lora = {:.3} (NF4 W dequantized per \
         product); {:.3} / {:.3} ms qlora / qrosa; peak {} / {}",
        qrosa.median_ms / qlora.median_ms,
        ratio(qlora),
        qlora.median_ms,
        qrosa.median_ms,
        peak(qlora),
        peak(qrosa)
    );
    Ok(())
}
