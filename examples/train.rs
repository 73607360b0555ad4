//! `rosa train` without the main binary: `cargo run --release --example train -- --help`.

use clap::Parser;

#[global_allocator]
static ALLOC: rosa::train::CountingAlloc = rosa::train::CountingAlloc;

#[derive(Parser)]
#[command(about = "Fine-tune with FFT, LoRA, SpA, RoSA and random subspace adaptation")]
struct Cli {
    #[command(flatten)]
    args: rosa::train::cli::TrainArgs,
}

fn main() {
    if let Err(e) = rosa::train::cli::run(&Cli::parse().args) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
