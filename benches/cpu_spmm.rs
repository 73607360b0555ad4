//! CPU SpMM `C = A B` and transposed SpMM `C = A^T B` across densities, against sprs's
//! CSR x dense kernel (one thread, and row blocks over rayon) and a dense GEMM, all in
//! the same group on the same data.

mod common;

use common::*;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use ndarray::Array2;
use rosa::bench::baseline;
use rosa::prelude::*;
use rosa::random;

fn as_array(d: &Dense<f32>) -> Array2<f32> {
    Array2::from_shape_vec((d.rows(), d.cols()), d.as_slice().to_vec()).expect("shape")
}

fn spmm(c: &mut Criterion, transposed: bool) {
    let name = if transposed { "cpu_spmm_t" } else { "cpu_spmm" };
    let mut g = group(c, name);
    let single = one_thread();
    let threads = rayon::current_num_threads();
    // A^T B takes B with A's rows; both products write a (other dim) x N output.
    let (b_rows, out_rows) = if transposed { (M, K) } else { (K, M) };
    let b = random::dense::<f32>(b_rows, N, SEED);
    let b_nd = as_array(&b);
    let mut out = Dense::<f32>::zeros(out_rows, N);
    let mut out_nd = Array2::<f32>::zeros((out_rows, N));

    for density in DENSITIES {
        let a = random::csr::<f32>(M, K, density, SEED).expect("a valid density");
        let plan = a.transpose_plan();
        let s = baseline::to_sprs_f32(&a);
        let st = s.transpose_view().to_csr();
        let rows = if transposed { st.view() } else { s.view() };
        g.throughput(flops(a.nnz(), N));
        let ours = |out: &mut Dense<f32>| {
            if transposed {
                cpu::spmm_t(1.0, a.as_ref(), &plan, b.as_ref(), 0.0, out.as_mut())
            } else {
                cpu::spmm(1.0, a.as_ref(), b.as_ref(), 0.0, out.as_mut())
            }
            .expect("shapes fit")
        };
        let id = |who: &str| BenchmarkId::new(who, label(density));
        g.bench_function(id(&format!("rosa/{threads}t")), |bench| {
            bench.iter(|| ours(&mut out))
        });
        g.bench_function(id("rosa/1t"), |bench| {
            single.install(|| bench.iter(|| ours(&mut out)))
        });
        g.bench_function(id("sprs/1t"), |bench| {
            bench.iter(|| {
                if transposed {
                    baseline::sprs_spmm_t(s.view(), b_nd.view(), out_nd.view_mut())
                } else {
                    baseline::sprs_spmm(s.view(), b_nd.view(), out_nd.view_mut())
                }
                .expect("shapes fit")
            })
        });
        g.bench_function(id(&format!("sprs+rayon/{threads}t")), |bench| {
            bench.iter(|| {
                baseline::sprs_spmm_par(rows, b_nd.view(), out_nd.view_mut()).expect("shapes fit")
            })
        });
    }
    // The dense route ignores sparsity: its time is the crossover line.
    let a_dense = as_array(
        &random::csr::<f32>(M, K, 0.01, SEED)
            .expect("valid")
            .to_dense(),
    );
    let (lhs, rhs) = if transposed {
        (a_dense.t().to_owned(), b_nd.clone())
    } else {
        (a_dense, b_nd.clone())
    };
    g.throughput(flops(M * K, N));
    g.bench_function("dense gemm (matrixmultiply)/1t", |bench| {
        bench.iter(|| baseline::dense_gemm(lhs.view(), rhs.view(), out_nd.view_mut()))
    });
    g.finish();
}

fn forward(c: &mut Criterion) {
    spmm(c, false);
}

fn transposed(c: &mut Criterion) {
    spmm(c, true);
}

criterion_group!(benches, forward, transposed);
criterion_main!(benches);
