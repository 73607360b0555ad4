//! CPU NF4 dequantization of one LLaMA-7B projection (4096 x 4096) into a reused f32 or
//! bf16 workspace, whole and by a tile of rows, against writing the same output with
//! nothing to compute: the write bandwidth that bounds a kernel writing 8 (f32) or 4
//! (bf16) bytes per packed byte it reads.
//!
//! Throughput is in bytes of output; bytes of packed input (codes and scales) are
//! `stored_bytes / output bytes` of that (0.129 for f32 out, 0.258 for bf16, with
//! QLoRA's double quantization).

mod common;

use common::{group, one_thread, K, M};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rayon::prelude::*;
use rosa::quant::{Nf4Config, Nf4Matrix};
use rosa::{bf16, random, Dense, Scalar};

/// Rows of the tile case: a slice of output features, as a tiled GEMM would take, and a
/// workspace that stays in cache (2 MiB in f32) when it is reused.
const TILE: usize = 128;

fn dequant(c: &mut Criterion) {
    let mut g = group(c, "cpu_nf4_dequant");
    let single = one_thread();
    let threads = rayon::current_num_threads();
    let w = random::dense::<f32>(M, K, 1);
    for (label, config) in [
        ("qlora", Nf4Config::qlora()),
        ("f32 scales", Nf4Config::default()),
    ] {
        let q = Nf4Matrix::quantize(w.as_ref(), config).expect("finite weights");
        eprintln!(
            "{label}: {} stored bytes for {} weights",
            q.stored_bytes(),
            q.len()
        );
        run::<f32>(&mut g, &q, label, threads, &single);
        if label == "qlora" {
            run::<bf16>(&mut g, &q, label, threads, &single);
        }
    }
    // The rooflines: writing the same f32 output with nothing to compute, by memset
    // (which streams past the caches on large buffers) and by a store loop (plain
    // stores, as the kernel's, which first read each cache line they write).
    let mut out = Dense::<f32>::zeros(M, K);
    g.throughput(Throughput::Bytes((M * K * 4) as u64));
    g.bench_function(format!("memset f32/{threads}t"), |b| {
        b.iter(|| {
            out.as_mut_slice()
                .par_chunks_mut(1 << 16)
                .for_each(|c| c.fill(1.0))
        })
    });
    g.bench_function("memset f32/1t", |b| b.iter(|| out.as_mut_slice().fill(1.0)));
    g.bench_function("store loop f32/1t", |b| {
        b.iter(|| {
            for (i, o) in out.as_mut_slice().iter_mut().enumerate() {
                *o = i as f32;
            }
        })
    });
}

fn run<T: Scalar>(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    q: &Nf4Matrix,
    label: &str,
    threads: usize,
    single: &rayon::ThreadPool,
) {
    let dtype = T::DTYPE;
    let mut whole = Dense::<T>::zeros(M, K);
    g.throughput(Throughput::Bytes((M * K * dtype.size()) as u64));
    g.bench_function(format!("{label} -> {dtype}/whole/{threads}t"), |b| {
        b.iter(|| q.dequantize_into(0..M, whole.as_mut()).expect("shapes fit"))
    });
    g.bench_function(format!("{label} -> {dtype}/whole/1t"), |b| {
        single.install(|| b.iter(|| q.dequantize_into(0..M, whole.as_mut()).expect("shapes fit")))
    });
    // One workspace for every tile, as a layer loop would reuse it.
    let mut tile = Dense::<T>::zeros(TILE, K);
    g.throughput(Throughput::Bytes((TILE * K * dtype.size()) as u64));
    g.bench_function(
        format!("{label} -> {dtype}/tile {TILE} rows/{threads}t"),
        |b| {
            let mut at = 0;
            b.iter(|| {
                q.dequantize_into(at..at + TILE, tile.as_mut())
                    .expect("shapes fit");
                at = (at + TILE) % M;
            })
        },
    );
}

criterion_group!(benches, dequant);
criterion_main!(benches);
