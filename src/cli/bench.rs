//! `rosa bench`: the CPU density sweep of `rosa::bench`, as a table or JSON.

use std::fmt::Write as _;
use std::time::Duration;

use rosa::bench::{self, Report, Sweep};
use rosa::{DType, Error, Op, Result};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Rows of the sparse A.
    #[arg(long, default_value_t = 4096)]
    m: usize,
    /// Columns of the sparse A.
    #[arg(long, default_value_t = 4096)]
    k: usize,
    /// Columns of the dense operands (the inner dimension of SDDMM).
    #[arg(long, default_value_t = 256)]
    n: usize,
    /// Densities of A, comma-separated fractions in (0, 1].
    #[arg(long, value_delimiter = ',', default_value = "0.001,0.003,0.01,0.03")]
    density: Vec<f64>,
    /// Element type of our kernels (baselines always run in f32).
    #[arg(long, default_value = "f32")]
    dtype: DType,
    /// Ops to time, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "spmm,spmm_t,sddmm")]
    ops: Vec<Op>,
    /// Seed of the random operands.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Repeat each measurement for about this many milliseconds.
    #[arg(long, default_value_t = 300)]
    time_ms: u64,
    /// Skip the dense GEMM baseline.
    #[arg(long)]
    no_dense: bool,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

pub fn run(args: &Args) -> Result<()> {
    let sweep = Sweep {
        m: args.m,
        k: args.k,
        n: args.n,
        densities: args.density.clone(),
        dtype: args.dtype,
        ops: args.ops.clone(),
        seed: args.seed,
        target: Duration::from_millis(args.time_ms),
        dense_baseline: !args.no_dense,
        ..Sweep::default()
    };
    let report = bench::run(&sweep, |note| eprintln!("bench: {note}"))?;
    if args.json {
        let json = serde_json::to_string_pretty(&report)
            .map_err(|e| Error::InvalidArgument(format!("could not serialize the report: {e}")))?;
        println!("{json}");
    } else {
        print!("{}", table(&sweep, &report));
    }
    Ok(())
}

fn table(sweep: &Sweep, report: &Report) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "rosa {} bench: A {}x{}, N = {}, ours in {} on {} threads; baselines in f32{}",
        report.version,
        sweep.m,
        sweep.k,
        sweep.n,
        sweep.dtype,
        report.threads,
        if sweep.dtype == DType::F32 {
            ""
        } else {
            " (on f32 copies of the same values)"
        }
    );
    let _ = writeln!(
        s,
        "{:<7} {:>7} {:>9} {:>10} {:>8} {:>7} | {:<34} {:>3} {:>10} {:>8}",
        "op",
        "density",
        "nnz",
        "ours(us)",
        "GFLOP/s",
        "GB/s",
        "baseline",
        "thr",
        "base(us)",
        "speedup"
    );
    for r in &report.rows {
        let _ = writeln!(
            s,
            "{:<7} {:>7} {:>9} {:>10.1} {:>8.2} {:>7.2} | {:<34} {:>3} {:>10.1} {:>7.2}x",
            r.op,
            r.density,
            r.nnz,
            r.ours_us,
            r.gflops,
            r.gbps,
            r.baseline,
            r.baseline_threads,
            r.baseline_us,
            r.speedup
        );
    }
    let _ = writeln!(
        s,
        "GFLOP/s = 2 nnz N / time; GB/s against the DESIGN.md lower bound on bytes moved; \
         speedup = baseline time / ours (the dense GEMM is timed once per op)."
    );
    s
}
