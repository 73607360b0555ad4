//! `rosa info`.

use rosa::cpu::Isa;
use rosa::Result;

pub fn run() -> Result<()> {
    let backends = if cfg!(feature = "cuda") {
        "cpu, cuda"
    } else {
        "cpu"
    };
    println!("rosa {}", env!("CARGO_PKG_VERSION"));
    println!("backends: {backends}");
    for line in gpus() {
        println!("gpu: {line}");
    }
    println!("cpu threads (rayon): {}", rayon::current_num_threads());
    println!(
        "cpu isa: {}",
        match rosa::cpu::isa() {
            Isa::Avx2Fma => "avx2+fma (chosen at run time)",
            Isa::Baseline => "baseline (no avx2+fma: separate multiply and add)",
        }
    );
    println!("tuning cache: {}", tuning_cache());
    Ok(())
}

/// One line per usable GPU, or one line saying why there is none.
#[cfg(feature = "cuda")]
fn gpus() -> Vec<String> {
    use rosa::cuda::{device_count, Device};
    match device_count() {
        Err(e) => vec![format!("none ({e})")],
        Ok(0) => vec!["none (the driver reports no device)".into()],
        Ok(n) => (0..n)
            .map(|i| match Device::new(i).and_then(|d| d.info()) {
                Ok(info) => info.to_string(),
                Err(e) => format!("cuda:{i} unusable ({e})"),
            })
            .collect(),
    }
}

#[cfg(not(feature = "cuda"))]
fn gpus() -> Vec<String> {
    vec!["none (built without cuda)".into()]
}

/// Where tuned configurations would be read from, and what is there. Nothing reads them
/// yet: every launch uses `KernelConfig::heuristic`.
fn tuning_cache() -> String {
    let Some(dir) = rosa::tune::user_cache_dir() else {
        return "no user cache directory (none of ROSA_TUNING_DIR, XDG_CACHE_HOME, HOME is \
                set); no tuned entries; launches use the heuristic configuration"
            .into();
    };
    let files = match std::fs::read_dir(&dir) {
        Ok(entries) => {
            let n = entries
                .filter_map(|e| e.ok())
                .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
                .count();
            format!("{n} *.json files")
        }
        Err(_) => "not created yet".into(),
    };
    format!(
        "{} ({files}); no tuned entries; launches use the heuristic configuration",
        dir.display()
    )
}
