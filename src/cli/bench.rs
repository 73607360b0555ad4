//! `rosa bench`: the density sweeps of `rosa::bench`, on the CPU or (feature `cuda`) the
//! GPU, as a table or JSON.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use rosa::bench::{self, mask::Mask, roofline::Ceilings, Report, Sweep};
use rosa::{DType, Error, Op, Result};

/// Where our kernels run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Backend {
    /// The CPU kernels, against Rust baselines.
    Cpu,
    /// The CUDA kernels on GPU 0, against cuSPARSE and cuBLAS (needs a build with
    /// `--features cuda`).
    Cuda,
}

/// One `MxKxN` shape of `--shapes`.
#[derive(Debug, Clone, Copy)]
pub struct Shape(usize, usize, usize);

impl FromStr for Shape {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let dims: Vec<usize> = s
            .split('x')
            .map(|d| d.trim().parse::<usize>())
            .collect::<std::result::Result<_, _>>()
            .map_err(|_| format!("'{s}' is not MxKxN (e.g. 4096x11008x2048)"))?;
        match dims[..] {
            [m, k, n] => Ok(Shape(m, k, n)),
            _ => Err(format!("'{s}' is not MxKxN (e.g. 4096x11008x2048)")),
        }
    }
}

/// `--predict`'s ceilings: `COPY,L2,FMA` in TB/s, TB/s and TFLOP/s.
#[derive(Debug, Clone, Copy)]
pub struct CeilingsArg(Ceilings);

impl FromStr for CeilingsArg {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let usage = || {
            format!(
                "'{s}' is not COPY,L2,FMA: three numbers in TB/s, TB/s, TFLOP/s, each \
                 between 1e-6 and 1e6 (e.g. 4.3,10,67)"
            )
        };
        let v: Vec<f64> = s
            .split(',')
            .map(|x| x.trim().parse::<f64>())
            .collect::<std::result::Result<_, _>>()
            .map_err(|_| usage())?;
        match v[..] {
            // A unit slip by many orders, or an overflow, must not print floors of 0 or 1e300.
            [copy, l2, fma] if v.iter().all(|x| (1e-6..=1e6).contains(x)) => {
                Ok(CeilingsArg(Ceilings {
                    dram_bytes_per_s: copy * 1e12,
                    l2_bytes_per_s: l2 * 1e12,
                    fma_flops_per_s: fma * 1e12,
                    l2_probe_bytes: 0,
                }))
            }
            _ => Err(usage()),
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Run our CPU or CUDA kernels.
    #[arg(long, value_enum, default_value_t = Backend::Cpu)]
    device: Backend,
    /// Rows of the sparse A.
    #[arg(long, default_value_t = 4096)]
    m: usize,
    /// Columns of the sparse A.
    #[arg(long, default_value_t = 4096)]
    k: usize,
    /// Columns of the dense operands (the inner dimension of SDDMM), comma-separated for
    /// several.
    #[arg(long, value_delimiter = ',', default_value = "256")]
    n: Vec<usize>,
    /// Several shapes instead of --m/--k/--n, comma-separated MxKxN.
    #[arg(long, value_delimiter = ',', conflicts_with_all = ["m", "k", "n"])]
    shapes: Vec<Shape>,
    /// Benchmark on these sparsity patterns (Matrix Market files, comma-separated; values
    /// ignored), e.g. the RoSA masks of data/minilm-rosa-masks/, each next to a uniformly
    /// random A of the same shape and density (each row's length the mean, rounded
    /// stochastically, so its nnz is close to the mask's), at every --n.
    #[arg(long, value_name = "FILE.mtx", value_delimiter = ',',
          conflicts_with_all = ["m", "k", "shapes", "grid", "density", "export"])]
    mask: Vec<PathBuf>,
    /// The benchmark grid: (M,K) in {4096x4096, 11008x4096, 4096x11008}, N in {512, 2048,
    /// 8192}, densities 0.1% to 5% (with --shapes: those shapes at the grid's densities).
    #[arg(long, conflicts_with_all = ["m", "k", "n", "density"])]
    grid: bool,
    /// Densities of A, comma-separated fractions in (0, 1].
    #[arg(long, value_delimiter = ',', default_value = "0.001,0.003,0.01,0.03")]
    density: Vec<f64>,
    /// Element type of our kernels (CPU baselines always run in f32; cuBLAS in this type).
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
    /// Measure nothing: print each point's roofline floor at these ceilings, COPY,L2,FMA
    /// in TB/s, TB/s and TFLOP/s (as `rosa info --ceilings` measures them on a GPU).
    #[arg(long, value_name = "COPY,L2,FMA", conflicts_with_all = ["plot", "export", "json_out"])]
    predict: Option<CeilingsArg>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Also write the JSON report to this file (the table still goes to stdout).
    #[arg(long, value_name = "PATH")]
    json_out: Option<PathBuf>,
    /// Also draw time against density (log-log, ours and every baseline, one panel per
    /// op, dtype and shape) into this SVG file.
    #[arg(long, value_name = "FILE.svg")]
    plot: Option<PathBuf>,
    /// Also write the swept matrices and our times into this directory, for
    /// scripts/torch_baseline.py (see rosa::bench::export).
    #[arg(long, value_name = "DIR")]
    export: Option<PathBuf>,
}

impl Args {
    fn sweeps(&self) -> Result<Vec<Sweep>> {
        let base = Sweep {
            m: self.m,
            k: self.k,
            n: self.n[0],
            densities: if self.grid {
                bench::GRID_DENSITIES.to_vec()
            } else {
                self.density.clone()
            },
            dtype: self.dtype,
            ops: self.ops.clone(),
            seed: self.seed,
            target: Duration::from_millis(self.time_ms),
            dense_baseline: !self.no_dense,
            ..Sweep::default()
        };
        let at_each_n = |sweep: &Sweep| -> Vec<Sweep> {
            let at = |&n: &usize| Sweep { n, ..sweep.clone() };
            self.n.iter().map(at).collect()
        };
        Ok(if !self.mask.is_empty() {
            // Files of one name from different folders: named by their paths instead.
            let masks = Mask::read_all(&self.mask)?;
            let mut sweeps: Vec<Sweep> = Vec::new();
            for base in at_each_n(&base) {
                for mask in &masks {
                    sweeps.push(mask.sweep(&base));
                }
                // One uniform twin per shape and density, however many masks share them;
                // none for --predict, whose floors see only shape and nnz.
                for mask in masks.iter().filter(|_| self.predict.is_none()) {
                    let twin = mask.uniform_twin(&base);
                    let same = |s: &Sweep| {
                        s.mask.is_none()
                            && (s.m, s.k, s.n, &s.densities)
                                == (twin.m, twin.k, twin.n, &twin.densities)
                    };
                    if !sweeps.iter().any(same) {
                        sweeps.push(twin);
                    }
                }
            }
            sweeps
        } else if !self.shapes.is_empty() {
            let shape = |&Shape(m, k, n): &Shape| Sweep {
                m,
                k,
                n,
                ..base.clone()
            };
            self.shapes.iter().map(shape).collect()
        } else if self.grid {
            bench::grid(&base)
        } else {
            at_each_n(&base)
        })
    }
}

pub fn run(args: &Args) -> Result<()> {
    let sweeps = args.sweeps()?;
    if let Some(CeilingsArg(c)) = &args.predict {
        return predict(args, &sweeps, c);
    }
    if let Some(path) = &args.plot {
        // Fail before minutes of measuring, not after: the chart is written at the end.
        std::fs::write(path, "").map_err(|source| Error::Io {
            path: path.clone(),
            source,
        })?;
    }
    let report = measure(args, &sweeps);
    if let (Err(_), Some(path)) = (&report, &args.plot) {
        // No empty chart left behind by a failed run.
        let _ = std::fs::remove_file(path);
    }
    let report = report?;
    let json = || {
        serde_json::to_string_pretty(&report)
            .map_err(|e| Error::InvalidArgument(format!("could not serialize the report: {e}")))
    };
    if let Some(path) = &args.json_out {
        std::fs::write(path, json()? + "\n").map_err(|source| Error::Io {
            path: path.clone(),
            source,
        })?;
    }
    if let Some(path) = &args.plot {
        bench::plot::svg(&report, path)?;
    }
    if let Some(dir) = &args.export {
        let index = bench::export::export(&sweeps, &report, dir)?;
        eprintln!(
            "bench: matrices and times exported, index {}",
            index.display()
        );
    }
    if args.json {
        println!("{}", json()?);
    } else {
        print!("{}", table(&sweeps, &report));
    }
    Ok(())
}

/// `--predict`: the floors as JSON or as one line per (op, dtype, shape), densities across.
fn predict(args: &Args, sweeps: &[Sweep], c: &Ceilings) -> Result<()> {
    let per_sweep = sweeps
        .iter()
        .map(|sweep| bench::predict(sweep, c))
        .collect::<Result<Vec<_>>>()?;
    if args.json {
        // Marked as predictions, with their ceilings, so they never pass for a measured
        // report.
        let doc = serde_json::json!({
            "predicted": true,
            "note": "roofline floors at the given ceilings; no kernel ran",
            "ceilings": c,
            "points": per_sweep.concat(),
        });
        let json = serde_json::to_string_pretty(&doc)
            .map_err(|e| Error::InvalidArgument(format!("could not serialize: {e}")))?;
        println!("{json}");
        return Ok(());
    }
    let mut s = String::new();
    let _ = writeln!(
        s,
        "rosa {} roofline floors, nothing run: copy {} TB/s, L2 {} TB/s, FMA {} TFLOP/s; \
         each cell: microseconds and the binding ceiling",
        env!("CARGO_PKG_VERSION"),
        c.dram_bytes_per_s / 1e12,
        c.l2_bytes_per_s / 1e12,
        c.fma_flops_per_s / 1e12
    );
    let mut header: Option<&[f64]> = None;
    for (sweep, points) in sweeps.iter().zip(&per_sweep) {
        // A header wherever the densities (the columns) change.
        if header != Some(&sweep.densities[..]) {
            let _ = write!(s, "{:<7} {:<5} {:<17}", "op", "dtype", "MxKxN");
            for d in &sweep.densities {
                let _ = write!(s, " {:>13}", format!("{:.2}%", d * 100.0));
            }
            let _ = writeln!(s);
            header = Some(&sweep.densities);
        }
        for op in &sweep.ops {
            let _ = write!(
                s,
                "{:<7} {:<5} {:<17}",
                op.name(),
                sweep.dtype.name(),
                format!("{}x{}x{}", sweep.m, sweep.k, sweep.n)
            );
            for p in points.iter().filter(|p| p.op == op.name()) {
                let _ = write!(s, " {:>8.2} {:<4}", p.us, p.bound.name());
            }
            if let Some(mask) = &sweep.mask {
                let _ = write!(s, " mask {}", mask.name());
            }
            let _ = writeln!(s);
        }
    }
    print!("{s}");
    Ok(())
}

fn measure(args: &Args, sweeps: &[Sweep]) -> Result<Report> {
    let progress = |note: &str| eprintln!("bench: {note}");
    Ok(match args.device {
        Backend::Cpu => {
            let mut report: Option<Report> = None;
            for sweep in sweeps {
                let r = bench::run(sweep, progress)?;
                match report.as_mut() {
                    Some(all) => all.rows.extend(r.rows),
                    None => report = Some(r),
                }
            }
            report.expect("there is always at least one sweep")
        }
        Backend::Cuda => gpu(sweeps, progress)?,
    })
}

#[cfg(feature = "cuda")]
fn gpu(sweeps: &[Sweep], progress: impl FnMut(&str)) -> Result<Report> {
    let dev = rosa::cuda::Device::new(0)?;
    bench::gpu::run(&dev, sweeps, progress)
}

#[cfg(not(feature = "cuda"))]
fn gpu(_: &[Sweep], _: impl FnMut(&str)) -> Result<Report> {
    Err(Error::Unsupported(
        "--device cuda: this rosa was built without the cuda feature (rebuild with \
         `cargo build --release --features cuda`, see docs/CUDA.md)"
            .into(),
    ))
}

fn table(sweeps: &[Sweep], report: &Report) -> String {
    let mut s = String::new();
    let first = &sweeps[0];
    // One shape goes in the title; several get a column.
    let one_shape = sweeps
        .iter()
        .all(|w| (w.m, w.k, w.n) == (first.m, first.k, first.n));
    let shape = if one_shape {
        format!("A {}x{}, N = {}", first.m, first.k, first.n)
    } else {
        format!("{} shapes", sweeps.len())
    };
    let _ = match &report.device {
        None => writeln!(
            s,
            "rosa {} bench: {shape}, ours in {} on {} threads; baselines in f32{}",
            report.version,
            first.dtype,
            report.threads,
            if first.dtype == DType::F32 {
                ""
            } else {
                " (on f32 copies of the same values)"
            }
        ),
        Some(device) => writeln!(
            s,
            "rosa {} bench on {device}: {shape}, ours, cuSPARSE and cuBLAS in {}",
            report.version, first.dtype
        ),
    };
    if let Some(g) = &report.gpu {
        let c = &g.ceilings;
        let _ = writeln!(
            s,
            "ceilings measured here: copy {:.2} TB/s, L2 {:.2} TB/s, f32 FMA {:.1} TFLOP/s; \
             cuSPARSE {}; timing: {}",
            c.dram_bytes_per_s / 1e12,
            c.l2_bytes_per_s / 1e12,
            c.fma_flops_per_s / 1e12,
            g.cusparse_version,
            g.timing
        );
    }
    let gpu = report.device.is_some();
    let shape_col = |s: &mut String, text: &str| {
        if !one_shape {
            let _ = write!(s, "{text:<17} ");
        }
    };
    // On masks, which A each row ran on and how its row lengths spread.
    let masks = report.rows.iter().any(|r| r.mask.is_some());
    let mask_col = |s: &mut String, name: &str, spread: &str| {
        if masks {
            let _ = write!(s, "{name:<28} {spread:>11} ");
        }
    };
    shape_col(&mut s, "shape (MxKxN)");
    mask_col(&mut s, "A (mask, or uniform)", "max/mean,cv");
    let _ = write!(
        s,
        "{:<7} {:>7} {:>9} {:>10} {:>8} {:>7} ",
        "op", "density", "nnz", "ours(us)", "GFLOP/s", "GB/s"
    );
    if gpu {
        let _ = writeln!(
            s,
            "{:>6} {:<4} {:>9} {:<22} | baseline us speedup | ...",
            "roof%", "bnd", "max|diff|", "config (source)"
        );
    } else {
        let _ = writeln!(
            s,
            "| {:<34} {:>3} {:>10} {:>8}",
            "baseline", "thr", "base(us)", "speedup"
        );
    }
    for r in &report.rows {
        shape_col(&mut s, &format!("{}x{}x{}", r.m, r.k, r.n));
        mask_col(
            &mut s,
            r.mask.as_deref().unwrap_or("uniform"),
            &format!("{:.1},{:.2}", r.row_max_over_mean, r.row_cv),
        );
        // A mask's density is a ratio of counts: rounded, not its 16 digits.
        let density = match format!("{}", r.density) {
            d if d.len() <= 7 => d,
            _ => format!("{:.5}", r.density),
        };
        let _ = write!(
            s,
            "{:<7} {density:>7} {:>9} {:>10.1} {:>8.2} {:>7.2} ",
            r.op, r.nnz, r.ours_us, r.gflops, r.gbps
        );
        if gpu {
            let config = format!(
                "{} ({}){}",
                r.config.as_deref().unwrap_or("-"),
                r.config_source.unwrap_or("-"),
                if r.launch_bound == Some(true) {
                    " L"
                } else {
                    ""
                }
            );
            let _ = write!(
                s,
                "{:>6.1} {:<4} {:>9.2e} {config:<22} ",
                r.roofline_pct.unwrap_or(0.0),
                r.bound.map_or("-", |b| b.name()),
                r.max_abs_diff,
            );
        }
        if gpu {
            // Every baseline of the row, cuSPARSE first: name, time, our speedup.
            let cells: Vec<String> = r
                .baselines
                .iter()
                .map(|b| match (b.us, b.speedup) {
                    (Some(us), Some(x)) => format!("{} {us:.1} {x:.2}x", b.name),
                    _ => format!("{} n/a", b.name),
                })
                .collect();
            let _ = writeln!(s, "| {}", cells.join(" | "));
        } else {
            let _ = writeln!(
                s,
                "| {:<34} {:>3} {:>10.1} {:>7.2}x",
                r.baseline, r.baseline_threads, r.baseline_us, r.speedup
            );
        }
    }
    for t in report.transpose_ratios() {
        let _ = writeln!(
            s,
            "summary spmm_t/spmm {:<4} time ratio over {} points: median {:.2}, max {:.2} \
             (target <= {})",
            t.dtype,
            t.pairs,
            t.median,
            t.max,
            if gpu {
                "1.15"
            } else {
                "1.3, forward timed in the same rounds"
            }
        );
    }
    for r in report.mask_ratios() {
        let theirs: Vec<String> = r
            .baselines
            .iter()
            .map(|(name, ratio, speedup)| format!("{name} {ratio:.2} (speedup {speedup:.2}x)"))
            .collect();
        let _ = writeln!(
            s,
            "summary mask {} {} {} n={}: time on the mask / on its uniform twin (row cv {:.2} \
             vs {:.2}): ours {:.2}; {}",
            r.mask,
            r.op,
            r.dtype,
            r.n,
            r.cv.0,
            r.cv.1,
            r.ours,
            theirs.join(", ")
        );
    }
    if gpu {
        for o in report.summary() {
            let pct = o
                .median_roofline_pct
                .map_or("-".into(), |p| format!("{p:.1}%"));
            let x = |v: Option<f64>| v.map_or("-".into(), |x| format!("{x:.2}x"));
            let others: Vec<String> = o
                .by_baseline
                .iter()
                .filter(|b| b.name != o.baseline)
                .map(|b| {
                    format!(
                        "{} {} (geomean {})",
                        b.name,
                        x(b.median_speedup),
                        x(b.geomean_speedup)
                    )
                })
                .collect();
            let _ = writeln!(
                s,
                "summary {:<6} {:<4} {:>4} rows: median {pct} of roofline, median speedup \
                 {} (geomean {}) over {}{}",
                o.op,
                o.dtype,
                o.rows,
                x(o.median_speedup),
                x(o.geomean_speedup),
                o.baseline,
                if others.is_empty() {
                    String::new()
                } else {
                    format!("; median over {}", others.join(", "))
                }
            );
        }
        let _ = writeln!(
            s,
            "roof% = floor over our time, floor = max(DRAM bytes / copy bandwidth, gathered \
             bytes / L2 bandwidth, flops / f32 FMA rate) with the ceilings measured above, bnd \
             = which term (dram, l2, fma); config = the tile the default launcher chooses \
             (exact or nearest tuned entry, else heuristic), checked and timed; L = launch-bound \
             (queueing took the host about as long as the GPU's run); max|diff| against the \
             CPU kernels in f32 on sampled outputs; speedup = baseline time / ours; cuSPARSE \
             with setup and preprocessing untimed (n/a: declined), cuBLAS dense GEMMs timed \
             once per op and shape."
        );
    } else {
        let _ = writeln!(
            s,
            "GFLOP/s = 2 nnz N / time; GB/s against the lower bound on bytes moved (rosa::bench::op_bytes); \
             speedup = baseline time / ours (the dense GEMM is timed once per op)."
        );
    }
    s
}
