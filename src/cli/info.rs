//! `rosa info`.

use rosa::Result;

pub fn run() -> Result<()> {
    let backends = if cfg!(feature = "cuda") {
        "cpu, cuda"
    } else {
        "cpu"
    };
    let gpu = if cfg!(feature = "cuda") {
        "not queried yet (device discovery is part of the CUDA backend)"
    } else {
        "none (built without cuda)"
    };
    println!("rosa {}", env!("CARGO_PKG_VERSION"));
    println!("backends: {backends}");
    println!("gpu: {gpu}");
    println!("cpu threads (rayon): {}", rayon::current_num_threads());
    println!("tuning cache: none");
    Ok(())
}
