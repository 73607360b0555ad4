//! GPU SpMM, transposed SpMM and SDDMM across the benchmark grid (`rosa::bench::grid`, f32
//! and bf16): our kernels, cuSPARSE (CSR ALG2 and ALG3, SDDMM) and cuBLAS's dense GEMMs
//! in one criterion group per op, dtype and shape, on the same operands.
//!
//! Each sample is timed with CUDA events around `iters` calls (`iter_custom`), rotating
//! over enough copies of the operands that the L2 is not what is measured
//! (`rosa::bench::gpu::rotation_sets`); cuSPARSE's setup and preprocessing happen before
//! the timing. Without a GPU it prints `skipped: no CUDA device (...)` and measures
//! nothing. Filter as usual: `cargo bench --features cuda --bench gpu_spmm -- 'spmm/bf16'`.

mod common;

use std::time::Duration;

use common::{device_or_skip, flops, group, label};
use criterion::measurement::WallTime;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, BenchmarkId, Criterion};
use rosa::bench::{self, gpu::rotation_sets, Sweep};
use rosa::cuda::{
    self, Blas, BlasScalar, Device, DeviceCsr, DeviceDense, Math, Sparse, SpmmAlg, Transpose,
};
use rosa::{random, with_dtype, CsrShape, DType, Op, Result};

/// Share of the GPU's memory the rotated copies may fill.
const MEMORY_SHARE: f64 = 0.5;

/// Everything one process needs on the GPU, made once.
struct Gpu {
    dev: Device,
    sparse: Sparse,
    blas: Blas,
    tf32: Blas,
    l2: usize,
    memory: usize,
}

impl Gpu {
    fn new(dev: Device) -> Result<Self> {
        Ok(Gpu {
            sparse: Sparse::new(&dev)?,
            blas: Blas::new(&dev)?,
            tf32: Blas::with_math(&dev, Math::Tf32)?,
            l2: dev.l2_cache_bytes()?.max(1),
            memory: (dev.info()?.total_memory as f64 * MEMORY_SHARE) as usize,
            dev,
        })
    }

    /// Device time of `iters` calls of `call(i % sets)`, after one untimed pass.
    fn time(&self, iters: u64, sets: usize, mut call: impl FnMut(usize) -> Result<()>) -> Duration {
        (0..sets).try_for_each(&mut call).expect("warm-up pass");
        let ms = self
            .dev
            .time_ms(|| (0..iters as usize).try_for_each(|i| call(i % sets)))
            .expect("timed calls");
        Duration::from_secs_f64(ms as f64 * 1e-3)
    }
}

/// One copy of every operand of one op at one density.
struct Set<T> {
    a: DeviceCsr<T>,
    /// B of A B (K x N), B of A^T B (M x N), or L (M x N) of SDDMM.
    b: DeviceDense<T>,
    /// R (K x N) of SDDMM.
    r: Option<DeviceDense<T>>,
    /// The dense output of SpMM (M x N) or A^T B (K x N).
    c: Option<DeviceDense<T>>,
}

fn sets<T: BlasScalar>(gpu: &Gpu, op: Op, sweep: &Sweep, a: &rosa::Csr<T>) -> Result<Vec<Set<T>>> {
    let (m, k, n) = (sweep.m, sweep.k, sweep.n);
    let s = T::DTYPE.size();
    let call = bench::op_bytes(op, m, k, n, a.nnz(), s) as usize;
    let alloc = a.nnz() * (s + 12) + 8 * (m + k + 2) + s * (m + k) * n * 2;
    let count = rotation_sets(call, gpu.l2, alloc, gpu.memory);
    let b_rows = if op == Op::Spmm { k } else { m };
    let b = random::dense::<T>(b_rows, n, sweep.seed ^ 1);
    let r = random::dense::<T>(k, n, sweep.seed ^ 2);
    (0..count)
        .map(|_| {
            Ok(Set {
                a: DeviceCsr::from_host(&gpu.dev, a.as_ref())?,
                b: DeviceDense::from_host(&gpu.dev, b.as_ref())?,
                r: (op == Op::Sddmm)
                    .then(|| DeviceDense::from_host(&gpu.dev, r.as_ref()))
                    .transpose()?,
                c: match op {
                    Op::Spmm => Some(DeviceDense::zeros(&gpu.dev, m, n)?),
                    Op::SpmmT => Some(DeviceDense::zeros(&gpu.dev, k, n)?),
                    Op::Sddmm => None,
                },
            })
        })
        .collect()
}

/// Ours and cuSPARSE at each grid density, then the dense GEMMs once (their time does not
/// depend on the density).
fn op_group<T: BlasScalar>(
    g: &mut BenchmarkGroup<'_, WallTime>,
    gpu: &Gpu,
    op: Op,
    sweep: &Sweep,
) -> Result<()> {
    let (m, k, n) = (sweep.m, sweep.k, sweep.n);
    for (di, &density) in sweep.densities.iter().enumerate() {
        let a = random::csr::<T>(m, k, density, sweep.seed.wrapping_add(di as u64))?;
        let mut sets = sets(gpu, op, sweep, &a)?;
        let count = sets.len();
        let id = |who: &str| BenchmarkId::new(who, label(density));
        g.throughput(flops(a.nnz(), n));
        g.bench_function(id("rosa"), |bench| {
            bench.iter_custom(|iters| {
                gpu.time(iters, count, |i| {
                    let Set { a, b, r, c } = &mut sets[i];
                    match (op, c.as_mut(), r.as_ref()) {
                        (Op::Spmm, Some(c), _) => cuda::spmm(&gpu.dev, 1.0, a, b, 0.0, c),
                        (Op::SpmmT, Some(c), _) => cuda::spmm_t(&gpu.dev, 1.0, a, b, 0.0, c),
                        (Op::Sddmm, _, Some(r)) => cuda::sddmm(&gpu.dev, 1.0, b, r, 0.0, a),
                        _ => unreachable!("sets() makes C for SpMM and R for SDDMM"),
                    }
                })
            })
        });
        if op == Op::Sddmm {
            let plans = sets
                .iter_mut()
                .map(|s| {
                    let r = s.r.as_ref().expect("made for sddmm");
                    gpu.sparse.sddmm(1.0, &s.b, r, 0.0, &mut s.a)
                })
                .collect::<Result<Vec<_>>>();
            bench_plans(g, gpu, "cusparse", density, plans, |p| p.run());
        } else {
            let ta = if op == Op::SpmmT {
                Transpose::Yes
            } else {
                Transpose::No
            };
            for alg in SpmmAlg::ALL {
                let plans = sets
                    .iter_mut()
                    .map(|s| {
                        let c = s.c.as_mut().expect("made for spmm");
                        gpu.sparse.spmm(alg, 1.0, &s.a, ta, &s.b, 0.0, c)
                    })
                    .collect::<Result<Vec<_>>>();
                let who = format!("cusparse_{}", alg.name().to_lowercase());
                bench_plans(g, gpu, &who, density, plans, |p| p.run());
            }
        }
    }
    dense_gemms::<T>(g, gpu, op, sweep)
}

/// Benches planned cuSPARSE calls, one plan per copy; a case cuSPARSE declines is a note.
fn bench_plans<P>(
    g: &mut BenchmarkGroup<'_, WallTime>,
    gpu: &Gpu,
    who: &str,
    density: f64,
    plans: Result<Vec<P>>,
    mut run: impl FnMut(&mut P) -> Result<()>,
) {
    match plans {
        Ok(mut plans) => {
            let count = plans.len();
            g.bench_function(BenchmarkId::new(who, label(density)), |bench| {
                bench.iter_custom(|iters| gpu.time(iters, count, |i| run(&mut plans[i])))
            });
        }
        Err(e) => eprintln!("{who} at density {density}: not measured: {e}"),
    }
}

/// The dense route: A densified (random, as zeros run faster on tensor cores) times B, or
/// L R^T in full, in each cuBLAS mode of the dtype.
fn dense_gemms<T: BlasScalar>(
    g: &mut BenchmarkGroup<'_, WallTime>,
    gpu: &Gpu,
    op: Op,
    sweep: &Sweep,
) -> Result<()> {
    let (m, k, n) = (sweep.m, sweep.k, sweep.n);
    let dev = &gpu.dev;
    let up = |r, c, seed| DeviceDense::from_host(dev, random::dense::<T>(r, c, seed).as_ref());
    let (yes, no) = (Transpose::Yes, Transpose::No);
    // (left, its op, right, its op, output rows, output cols)
    let (l, tl, r, tr, rows, cols) = match op {
        Op::Spmm => (up(m, k, 3)?, no, up(k, n, 4)?, no, m, n),
        Op::SpmmT => (up(m, k, 3)?, yes, up(m, n, 4)?, no, k, n),
        Op::Sddmm => (up(m, n, 3)?, no, up(k, n, 4)?, yes, m, k),
    };
    let mut out = DeviceDense::<T>::zeros(dev, rows, cols)?;
    let modes: Vec<(&str, &Blas)> = match T::DTYPE {
        DType::F32 => vec![("cublas_f32", &gpu.blas), ("cublas_tf32", &gpu.tf32)],
        d => vec![(
            if d == DType::Bf16 {
                "cublas_bf16"
            } else {
                "cublas_f16"
            },
            &gpu.blas,
        )],
    };
    g.throughput(flops(m * k, n));
    for (who, blas) in modes {
        g.bench_function(who, |bench| {
            bench.iter_custom(|iters| {
                gpu.time(iters, 1, |_| blas.gemm(1.0, &l, tl, &r, tr, 0.0, &mut out))
            })
        });
    }
    Ok(())
}

fn grid(c: &mut Criterion) {
    let Some(dev) = device_or_skip("gpu_spmm") else {
        return;
    };
    // With a GPU, missing cuSPARSE or cuBLAS is a broken setup, not a skip.
    let gpu = Gpu::new(dev).expect("cuSPARSE and cuBLAS load");
    for dtype in [DType::F32, DType::Bf16] {
        for sweep in bench::grid(&Sweep {
            dtype,
            ..Sweep::default()
        }) {
            for op in Op::ALL {
                let name = format!("gpu_{op}/{dtype}/{}x{}x{}", sweep.m, sweep.k, sweep.n);
                let mut g = group(c, &name);
                with_dtype!(dtype, T => op_group::<T>(&mut g, &gpu, op, &sweep))
                    .expect("the grid fits on the GPU");
                g.finish();
            }
        }
    }
}

criterion_group!(benches, grid);
criterion_main!(benches);
