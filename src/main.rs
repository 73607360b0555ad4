//! The `rosa` command: file-based SpMM and SDDMM, a CPU benchmark sweep, and build info.
//! See `rosa --help`.

mod cli;

/// Counts heap bytes so `rosa train` can report each method's peak memory.
#[global_allocator]
static ALLOC: rosa::train::CountingAlloc = rosa::train::CountingAlloc;

fn main() -> std::process::ExitCode {
    cli::main()
}
