//! `rosa tune`: the autotuner over the benchmark grid on GPU 0, merged into the user's
//! tuning cache (or `--out`), with a progress bar on stderr and a summary table on stdout.

use std::path::PathBuf;

use rosa::{DType, Op};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// A short search: the 4096x4096 shape, N 512 and 2048, every other density, shorter
    /// measurements.
    #[arg(long)]
    quick: bool,
    /// Ops to tune, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "spmm,spmm_t,sddmm")]
    ops: Vec<Op>,
    /// Element types to tune, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "f32,bf16")]
    dtype: Vec<DType>,
    /// Merge the results into this cache file instead of the user cache
    /// ($ROSA_TUNING_DIR, else $XDG_CACHE_HOME/rosa/tuning, else ~/.cache/rosa/tuning)
    /// file named for the GPU.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

#[cfg(not(feature = "cuda"))]
pub fn run(_: &Args) -> rosa::Result<()> {
    Err(rosa::Error::Unsupported(
        "rosa tune needs a GPU and this rosa was built without the cuda feature (rebuild \
         with `cargo build --release --features cuda`, see docs/CUDA.md)"
            .into(),
    ))
}

#[cfg(feature = "cuda")]
pub use gpu::run;

#[cfg(feature = "cuda")]
mod gpu {
    use std::fmt::Write as _;
    use std::io::{IsTerminal, Write as _};
    use std::time::{Duration, Instant};

    use rosa::cuda::{Device, KernelConfig};
    use rosa::tune::{self, CacheHeader, Effort, Problem, Progress, TuneCache, TuneEntry};
    use rosa::{Error, Result};

    use super::Args;

    pub fn run(args: &Args) -> Result<()> {
        let dev = Device::new(0)?;
        let header = CacheHeader::for_device(&dev)?;
        // Settled before the search, so that a missing directory fails in a second, not
        // after a minute of measurements.
        let path = match &args.out {
            Some(p) => p.clone(),
            None => tune::user_cache_dir()
                .ok_or_else(|| {
                    Error::InvalidArgument(
                        "no user cache directory: set ROSA_TUNING_DIR (or HOME), or pass --out"
                            .into(),
                    )
                })?
                .join(tune::cache_file_name(&header.device)),
        };
        let effort = if args.quick {
            Effort::Quick
        } else {
            Effort::Full
        };
        let problems = tune::grid(&args.ops, &args.dtype, effort);
        eprintln!(
            "tune: {} problems on {} (build {})",
            problems.len(),
            dev.info()?,
            header.build_id
        );
        let start = Instant::now();
        let terminal = std::io::stderr().is_terminal();
        let entries = tune::tune(&dev, &problems, effort, |p| {
            show_progress(&p, start.elapsed(), terminal)
        })?;
        if terminal {
            eprintln!();
        }
        let elapsed = start.elapsed();
        let cache = TuneCache::merge_into_file(&path, &header, &entries, KernelConfig::exists)?;
        print!("{}", summary(&problems, &entries, elapsed));
        println!(
            "wrote {} entries to {} ({} in the file)",
            entries.len(),
            path.display(),
            cache.entries().len()
        );
        Ok(())
    }

    fn label(p: &Problem) -> String {
        let skew = match p.skew {
            tune::RowSkew::Uniform => String::new(),
            tune::RowSkew::PowerLaw(e) => format!(" power-law {e}"),
        };
        format!(
            "{} {} {}x{}x{} d={}%{skew}",
            p.op,
            p.dtype,
            p.m,
            p.k,
            p.n,
            p.density * 100.0
        )
    }

    /// A bar redrawn in place on a terminal; one line per problem in a log.
    fn show_progress(p: &Progress<'_>, elapsed: Duration, terminal: bool) {
        const WIDTH: usize = 30;
        let filled = WIDTH * p.done / p.total.max(1);
        let line = format!(
            "[{}{}] {}/{} {:.0} s  {}: {}",
            "#".repeat(filled),
            "-".repeat(WIDTH - filled),
            p.done,
            p.total,
            elapsed.as_secs_f64(),
            label(p.problem),
            p.entry.config_name
        );
        let mut err = std::io::stderr().lock();
        // A lost progress line is harmless: the summary still follows.
        let _ = if terminal {
            write!(err, "\r{line}\x1b[K").and_then(|()| err.flush())
        } else {
            writeln!(err, "tune: {line}")
        };
    }

    /// One row per problem (tuned against heuristic), the geometric mean speedup and the
    /// total time.
    fn summary(problems: &[Problem], entries: &[TuneEntry], elapsed: Duration) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{:<36} {:<13} {:>10} {:>10} {:>8}",
            "problem", "best config", "tuned(us)", "heur.(us)", "speedup"
        );
        let mut log_sum = 0.0;
        for (p, e) in problems.iter().zip(entries) {
            let speedup = e.heuristic_us / e.tuned_us;
            log_sum += speedup.ln();
            let _ = writeln!(
                s,
                "{:<36} {:<13} {:>10.1} {:>10.1} {:>7.2}x",
                label(p),
                e.config_name,
                e.tuned_us,
                e.heuristic_us,
                speedup
            );
        }
        let geomean = (log_sum / entries.len().max(1) as f64).exp();
        let _ = writeln!(
            s,
            "summary tune: {} keys, geomean speedup {geomean:.2}x over the heuristic, {:.1} s",
            entries.len(),
            elapsed.as_secs_f64()
        );
        s
    }
}
