//! The autotuner and the launch-time lookup on a GPU: a user cache steering the default
//! launchers (exact, nearest, heuristic), and searches whose winners are never slower than
//! the heuristic they were timed against.
//!
//! One test, run in order: the tuning table is loaded once per process, so the cache
//! directory must be set before the first default launch, and nothing else in this binary
//! may launch first. Without a GPU it prints `skipped: no CUDA device (...)` and passes.
#![cfg(feature = "cuda")]

mod common;

use rosa::bench::mask::Mask;
use rosa::cuda::{self, DeviceCsr, DeviceDense, KernelConfig, Op};
use rosa::tune::{
    self, cache_file_name, CacheHeader, Effort, Problem, ProblemKey, RowSkew, Source, TuneCache,
    TuneEntry,
};
use rosa::{cpu, random, DType, Dense, Error};

#[test]
fn tuned_caches_steer_the_default_launchers_and_searches_beat_or_match_the_heuristic() {
    let dir = std::env::temp_dir().join(format!("rosa-gpu-tune-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    // Before any device exists: the only thread of this binary reading the environment.
    std::env::set_var("ROSA_TUNING_DIR", &dir);
    let Some(dev) = common::gpu::device("gpu tune") else {
        return;
    };

    // A user cache that names, for one key, a configuration the heuristic would not pick.
    let (m, k, n) = (2048, 1024, 64);
    let a = random::csr::<f32>(m, k, 0.01, 3).unwrap();
    let da = DeviceCsr::from_host(dev, a.as_ref()).unwrap();
    let key = da.problem_key(Op::Spmm, n);
    assert_eq!(key, ProblemKey::for_matrix(Op::Spmm, DType::F32, &a, n));
    let heuristic = KernelConfig::heuristic(Op::Spmm, DType::F32, n);
    let count = KernelConfig::all(Op::Spmm).len();
    let tuned = KernelConfig::get(Op::Spmm, (heuristic.index + 1) % count).unwrap();
    let header = CacheHeader::for_device(dev).unwrap();
    let mut cache = TuneCache::new(header.clone());
    cache.insert(TuneEntry {
        key,
        config: tuned.index,
        config_name: tuned.name(),
        tuned_us: 1.0,
        heuristic_us: 2.0,
    });
    cache
        .save(&dir.join(cache_file_name(&header.device)))
        .unwrap();

    assert_eq!(dev.choose_config(key, n), (tuned, Source::Exact));
    let near = da.problem_key(Op::Spmm, 2 * n);
    assert_eq!(dev.choose_config(near, 2 * n), (tuned, Source::Nearest));
    let other_op = da.problem_key(Op::Sddmm, n);
    let sddmm_default = KernelConfig::heuristic(Op::Sddmm, DType::F32, n);
    assert_eq!(
        dev.choose_config(other_op, n),
        (sddmm_default, Source::Heuristic)
    );

    // The default launcher, now on the tuned configuration, still computes A B.
    let b = random::dense::<f32>(k, n, 4);
    let mut want = Dense::zeros(m, n);
    cpu::spmm(1.0, a.as_ref(), b.as_ref(), 0.0, want.as_mut()).unwrap();
    let db = DeviceDense::from_host(dev, b.as_ref()).unwrap();
    let mut dc = DeviceDense::filled(dev, m, n, f32::NAN).unwrap();
    cuda::spmm(dev, 1.0, &da, &db, 0.0, &mut dc).unwrap();
    for (g, w) in dc.to_host().unwrap().as_slice().iter().zip(want.as_slice()) {
        assert!((g - w).abs() <= 1e-4 * (1.0 + w.abs()), "{g} vs {w}");
    }

    // A search on a concrete matrix: the winner is the fastest of all, the heuristic's
    // time one of those measured.
    let entry = tune::tune_matrix(dev, Op::SpmmT, &a, n, Effort::Quick).unwrap();
    assert_eq!(
        entry.key,
        ProblemKey::for_matrix(Op::SpmmT, DType::F32, &a, n)
    );
    assert!(KernelConfig::exists(Op::SpmmT, entry.config));
    assert!(
        entry.tuned_us > 0.0 && entry.tuned_us <= entry.heuristic_us,
        "{entry:?}"
    );

    // A search over problems: one entry and one progress call per problem, in order; the
    // last on a given mask (as `rosa tune --mask`), whose entry has the key its launches
    // look up.
    let pattern = random::csr_power_law::<f32>(384, 384, 0.0156, 1.5, 5).unwrap();
    let mask = Mask::new("skewed", pattern.clone());
    let on_mask = tune::mask_problems(&[mask], &[Op::SpmmT], &[DType::F32], Effort::Quick);
    assert_eq!(on_mask.len(), 1);
    let mut problems: Vec<Problem> = [(Op::Sddmm, DType::Bf16, 0.02), (Op::Spmm, DType::F32, 0.05)]
        .iter()
        .map(|&(op, dtype, density)| Problem {
            op,
            dtype,
            m: 1024,
            k: 512,
            n: 32,
            density,
            skew: if op == Op::Spmm {
                RowSkew::PowerLaw(1.5)
            } else {
                RowSkew::Uniform
            },
        })
        .collect();
    problems.extend(on_mask.iter().cloned());
    let mut seen = Vec::new();
    let entries = tune::tune(dev, &problems, Effort::Quick, |p| {
        seen.push((p.done, p.total, p.problem.op, p.entry.key));
    })
    .unwrap();
    assert_eq!(entries.len(), 3);
    for (i, (e, p)) in entries.iter().zip(&problems).enumerate() {
        assert_eq!(seen[i], (i + 1, 3, p.op, e.key));
        assert_eq!((e.key.op, e.key.dtype), (p.op, p.dtype));
        assert!(e.tuned_us <= e.heuristic_us, "{e:?}");
    }
    let d_mask = DeviceCsr::from_host(dev, pattern.as_ref()).unwrap();
    assert_eq!(Some(entries[2].key), problems[2].key());
    assert_eq!(entries[2].key, d_mask.problem_key(Op::SpmmT, 512));
    let bad = Problem {
        density: 0.0,
        ..problems[0].clone()
    };
    let wrong_shape = Problem {
        k: 383,
        ..problems[2].clone()
    };
    for bad in [bad, wrong_shape] {
        assert!(matches!(
            tune::tune(dev, &[bad], Effort::Quick, |_| {}),
            Err(Error::InvalidArgument(_))
        ));
    }
    let empty = rosa::Csr::<f32>::empty(4, 4).unwrap();
    assert!(matches!(
        tune::tune_matrix(dev, Op::Spmm, &empty, 8, Effort::Quick),
        Err(Error::InvalidArgument(_))
    ));
    let _ = std::fs::remove_dir_all(&dir);
}
