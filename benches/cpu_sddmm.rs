//! CPU SDDMM `out = (L R^T)` at a mask's nonzeros across densities, against a per-nonzero
//! ndarray dot product over rayon and the dense GEMM that computes every entry.

mod common;

use common::*;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use ndarray::Array2;
use rosa::bench::baseline;
use rosa::prelude::*;
use rosa::random;

fn sddmm(c: &mut Criterion) {
    let mut g = group(c, "cpu_sddmm");
    let single = one_thread();
    let threads = rayon::current_num_threads();
    // RoSA's dS = (dY X^T) at the mask: L = dY (M x N tokens), R = X (K x N tokens).
    let l = random::dense::<f32>(M, N, SEED);
    let r = random::dense::<f32>(K, N, SEED + 1);
    let to_nd = |d: &Dense<f32>| {
        Array2::from_shape_vec((d.rows(), d.cols()), d.as_slice().to_vec()).expect("shape")
    };
    let (l_nd, r_nd) = (to_nd(&l), to_nd(&r));
    for density in DENSITIES {
        let mut mask = random::csr::<f32>(M, K, density, SEED).expect("a valid density");
        let s = baseline::to_sprs_f32(&mask);
        let mut out = vec![0.0f32; mask.nnz()];
        g.throughput(flops(mask.nnz(), N));
        let id = |who: &str| BenchmarkId::new(who, label(density));
        let mut ours =
            || cpu::sddmm(1.0, l.as_ref(), r.as_ref(), 0.0, mask.as_mut()).expect("shapes fit");
        g.bench_function(id(&format!("rosa/{threads}t")), |bench| {
            bench.iter(&mut ours)
        });
        g.bench_function(id("rosa/1t"), |bench| {
            single.install(|| bench.iter(&mut ours))
        });
        g.bench_function(id(&format!("ndarray dot+rayon/{threads}t")), |bench| {
            bench.iter(|| {
                baseline::ndarray_sddmm(s.view(), l_nd.view(), r_nd.view(), &mut out)
                    .expect("shapes fit")
            })
        });
    }
    let rt = r_nd.t().to_owned();
    let mut full = Array2::<f32>::zeros((M, K));
    g.throughput(flops(M * K, N));
    g.bench_function("dense gemm (matrixmultiply)/1t", |bench| {
        bench.iter(|| baseline::dense_gemm(l_nd.view(), rt.view(), full.view_mut()))
    });
    g.finish();
}

criterion_group!(benches, sddmm);
criterion_main!(benches);
