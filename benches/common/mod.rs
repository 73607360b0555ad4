//! The shared setup of the CPU criterion benches: one RoSA-like shape, a density sweep,
//! and thread pools so that each kernel is compared at equal thread counts.
#![allow(dead_code)] // each bench file uses its own subset

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, Throughput};
use std::time::Duration;

/// Sparse operand rows and columns, and the dense width: one LLaMA-7B projection with
/// 256 tokens, small enough that a file runs in about a minute on two cores.
pub const M: usize = 4096;
pub const K: usize = 4096;
pub const N: usize = 256;
pub const DENSITIES: [f64; 5] = [0.001, 0.003, 0.01, 0.03, 0.1];
pub const SEED: u64 = 7;

/// GPU 0, or `None` after saying on stderr that `bench` is skipped and why, in the words
/// `scripts/gpu-run.sh` looks for (on its GPU machine a skip is a failure).
#[cfg(feature = "cuda")]
pub fn device_or_skip(bench: &str) -> Option<rosa::cuda::Device> {
    match rosa::cuda::Device::new(0) {
        Ok(dev) => Some(dev),
        Err(e) => {
            let why = match e {
                rosa::Error::NoDevice(why) => why,
                other => other.to_string(),
            };
            eprintln!("{bench}: skipped: no CUDA device ({why})");
            None
        }
    }
}

/// A single-thread pool: our kernels and the baselines both measured on one core.
pub fn one_thread() -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("a one-thread pool")
}

/// A group with short, bounded measurement: benches are for comparisons in one run.
pub fn group<'a>(c: &'a mut Criterion, name: &str) -> BenchmarkGroup<'a, WallTime> {
    let mut g = c.benchmark_group(name);
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1));
    g
}

/// Throughput in multiply-adds times two (flops), so criterion's "elem/s" reads as
/// FLOP/s.
pub fn flops(nnz: usize, width: usize) -> Throughput {
    Throughput::Elements(2 * nnz as u64 * width as u64)
}

/// `density` as a short label: `0.1%`.
pub fn label(density: f64) -> String {
    format!("{}%", density * 100.0)
}
