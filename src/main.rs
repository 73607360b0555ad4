//! The `rosa` command: file-based SpMM and SDDMM, a CPU benchmark sweep, and build info.
//! See `rosa --help`.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
