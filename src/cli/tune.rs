//! `rosa tune`: the autotuner over the benchmark grid (or over given masks, `--mask`) on
//! GPU 0, merged into the user's tuning cache (or `--out`), with a progress bar on stderr
//! and a summary table on stdout.

use std::path::PathBuf;

use rosa::bench::mask::Mask;
use rosa::tune::{self, Effort, Problem};
use rosa::{CsrShape, DType, Op, Result};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// A short search: the 4096x4096 shape, N 512, every other density, shorter
    /// measurements (with --mask: N 512, shorter measurements).
    #[arg(long)]
    quick: bool,
    /// Tune on these sparsity patterns instead of the grid (Matrix Market files,
    /// comma-separated; values ignored), e.g. the RoSA masks of data/minilm-rosa-masks/:
    /// each mask's own shape and density at N 512, 2048 and 8192 (--quick: 512), with
    /// random values. The winners go under each mask's own key (its shape, density and
    /// row-length spread buckets), the one its launches look up; masks whose keys an
    /// earlier mask already has are tuned once.
    #[arg(long, value_name = "FILE.mtx", value_delimiter = ',')]
    mask: Vec<PathBuf>,
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

impl Args {
    fn effort(&self) -> Effort {
        if self.quick {
            Effort::Quick
        } else {
            Effort::Full
        }
    }

    /// The problems to tune and, per mask, a line saying what it adds; the masks are read
    /// (and refused: missing, unreadable, empty) before any GPU is looked for.
    fn problems(&self) -> Result<(Vec<Problem>, Vec<String>)> {
        let effort = self.effort();
        if self.mask.is_empty() {
            return Ok((tune::grid(&self.ops, &self.dtype, effort), Vec::new()));
        }
        let masks = Mask::read_all(&self.mask)?;
        let problems = tune::mask_problems(&masks, &self.ops, &self.dtype, effort);
        let notes = masks
            .iter()
            .map(|m| {
                let a = m.pattern();
                let own = |p: &&Problem| matches!(&p.skew, tune::RowSkew::Mask(x) if x == m);
                let count = problems.iter().filter(own).count();
                let stats = a.row_stats();
                let spread = problems
                    .iter()
                    .find(own)
                    .and_then(|p| p.key())
                    .map_or(String::new(), |k| format!(" (spread bucket {})", k.spread));
                let adds = if count == 0 {
                    "no new keys (an earlier mask has them all)".to_string()
                } else {
                    format!("{count} problems")
                };
                format!(
                    "mask {}: {}x{}, {} nonzeros ({:.3}%), row cv {:.2}{spread}: {adds}",
                    m.name(),
                    a.rows(),
                    a.cols(),
                    a.nnz(),
                    100.0 * a.density(),
                    stats.cv,
                )
            })
            .collect();
        Ok((problems, notes))
    }
}

#[cfg(not(feature = "cuda"))]
pub fn run(args: &Args) -> rosa::Result<()> {
    // A bad mask is reported first: it is wrong on any machine.
    args.problems()?;
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
    use rosa::tune::{self, CacheHeader, Problem, Progress, TuneCache, TuneEntry};
    use rosa::{Error, Result};

    use super::Args;

    pub fn run(args: &Args) -> Result<()> {
        let (problems, notes) = args.problems()?;
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
        let effort = args.effort();
        eprintln!(
            "tune: {} problems on {} (build {})",
            problems.len(),
            dev.info()?,
            header.build_id
        );
        for note in &notes {
            eprintln!("tune: {note}");
        }
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
        let skew = match &p.skew {
            tune::RowSkew::Uniform => String::new(),
            tune::RowSkew::PowerLaw(e) => format!(" power-law {e}"),
            tune::RowSkew::Mask(m) => format!(" mask {}", m.name()),
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
