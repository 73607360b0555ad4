//! Command-line parsing and the one place errors become an exit status.
//!
//! Every failure prints exactly one line, `error: ...`, on stderr and exits nonzero;
//! commands write their output file only once the result is complete.

mod bench;
mod info;
mod sddmm;
mod spmm;
mod tune;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Sparse kernels for RoSA fine-tuning: CSR SpMM, transposed SpMM and SDDMM.
#[derive(Debug, Parser)]
#[command(name = "rosa", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the version, compiled-in backends, GPU, thread count and tuning cache.
    Info(info::Args),
    /// C = A B (or A^T B) from a Matrix Market A and an NPY B, written as NPY.
    Spmm(spmm::Args),
    /// out = (L R^T) at a mask's nonzeros, written as Matrix Market.
    Sddmm(sddmm::Args),
    /// Time the CPU kernels against Rust baselines (or, with --device cuda, the CUDA
    /// kernels against cuBLAS) over a density sweep.
    Bench(bench::Args),
    /// Autotune the CUDA kernels on GPU 0 (needs `cuda`) over the benchmark grid or on
    /// given masks (--mask), and merge the winners into the tuning cache.
    Tune(tune::Args),
    /// Fine-tune with FFT, LoRA, SpA, RoSA and random subspace adaptation at matched
    /// budgets on the built-in tasks; one comparison table.
    Train(rosa::train::cli::TrainArgs),
}

/// Exit status for a command line that could not be parsed (as clap uses).
const USAGE: u8 = 2;

pub fn main() -> ExitCode {
    quiet_panics();
    log::set_logger(&STDERR_LOGGER)
        .map(|()| log::set_max_level(log::LevelFilter::Warn))
        .ok();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    let result = match cli.command {
        Command::Info(args) => info::run(&args),
        Command::Spmm(args) => spmm::run(&args),
        Command::Sddmm(args) => sddmm::run(&args),
        Command::Bench(args) => bench::run(&args),
        Command::Tune(args) => tune::run(&args),
        Command::Train(args) => rosa::train::cli::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", one_line(&e.to_string()));
            ExitCode::FAILURE
        }
    }
}

/// Help and version go out as clap renders them; a usage error is cut to its message
/// so that scripts see one `error:` line, as for every other failure.
fn usage_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    match e.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            if e.use_stderr() {
                ExitCode::from(USAGE)
            } else {
                ExitCode::SUCCESS
            }
        }
        _ => {
            // The first paragraph is the message (with, e.g., the missing arguments);
            // tips and usage follow it.
            let text = e.to_string();
            let message = text
                .split("\n\n")
                .next()
                .unwrap_or("error: invalid command line");
            eprintln!("{} (see --help)", one_line(message));
            ExitCode::from(USAGE)
        }
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A panic is a bug, but the user should still get one `error:` line rather than a
/// backtrace prompt.
fn quiet_panics() {
    std::panic::set_hook(Box::new(|info| {
        let what = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        eprintln!(
            "error: internal error{at}: {} (please report this)",
            one_line(&what)
        );
    }));
}

/// Refuses outputs that could not sensibly be allocated, with a message instead of an
/// allocation failure: sizes come from files, which may declare anything.
fn check_output_size(what: &str, rows: usize, cols: usize, bytes_per: usize) -> rosa::Result<()> {
    const LIMIT: u128 = 16 << 30;
    let bytes = rows as u128 * cols as u128 * bytes_per as u128;
    if bytes > LIMIT {
        return Err(rosa::Error::InvalidArgument(format!(
            "the {rows} x {cols} {what} would need {:.1} GiB (limit {} GiB)",
            bytes as f64 / (1u64 << 30) as f64,
            LIMIT >> 30
        )));
    }
    Ok(())
}

/// The library reports recoverable trouble (an ignored tuning cache, say) through `log`;
/// the command shows warnings and errors on stderr, one line each.
struct StderrLogger;

static STDERR_LOGGER: StderrLogger = StderrLogger;

impl log::Log for StderrLogger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::Level::Warn
    }

    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            let level = record.level().as_str().to_ascii_lowercase();
            eprintln!("{level}: {}", one_line(&record.args().to_string()));
        }
    }

    fn flush(&self) {}
}
