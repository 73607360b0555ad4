//! `rosa info`.

use rosa::cpu::Isa;
use rosa::Result;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Also measure GPU 0's ceilings, the roofline's inputs (device-to-device copy, L2
    /// read and f32 FMA rates; about a second), and fail without a usable GPU.
    #[arg(long)]
    ceilings: bool,
}

pub fn run(args: &Args) -> Result<()> {
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
    for line in tuning_lines() {
        println!("{line}");
    }
    if args.ceilings {
        println!("{}", ceilings()?);
    }
    Ok(())
}

/// GPU 0's measured ceilings, on one line.
#[cfg(feature = "cuda")]
fn ceilings() -> Result<String> {
    let dev = rosa::cuda::Device::new(0)?;
    let c = rosa::bench::gpu::measure_ceilings(&dev)?;
    Ok(format!(
        "ceilings: {} copy {:.3} TB/s (read + written), L2 {:.3} TB/s ({} MiB read over \
         and over), f32 FMA {:.2} TFLOP/s",
        dev.info()?,
        c.dram_bytes_per_s / 1e12,
        c.l2_bytes_per_s / 1e12,
        c.l2_probe_bytes >> 20,
        c.fma_flops_per_s / 1e12
    ))
}

#[cfg(not(feature = "cuda"))]
fn ceilings() -> Result<String> {
    Err(rosa::Error::Unsupported(
        "--ceilings: this rosa was built without the cuda feature".into(),
    ))
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

/// The user cache directory and its files, the caches built in, and (with a GPU) which
/// files serve GPU 0, with the reason for any that do not.
fn tuning_lines() -> Vec<String> {
    let dir = match rosa::tune::user_cache_dir() {
        None => "no user cache directory (none of ROSA_TUNING_DIR, XDG_CACHE_HOME, HOME is \
                 set)"
            .to_string(),
        Some(dir) => {
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
            format!("{} ({files})", dir.display())
        }
    };
    let shipped: Vec<&str> = rosa::tune::shipped_caches()
        .iter()
        .map(|(name, _)| *name)
        .collect();
    let (in_use, mut lines) = in_use();
    lines.insert(0, format!("tuning cache: {dir}; {in_use}"));
    lines.insert(
        1,
        format!(
            "tuning shipped: {} built in{}{}",
            shipped.len(),
            if shipped.is_empty() { "" } else { ": " },
            shipped.join(", ")
        ),
    );
    lines
}

#[cfg(not(feature = "cuda"))]
fn in_use() -> (String, Vec<String>) {
    (
        "no tuned entries in use (tuning needs the cuda feature); launches use the heuristic \
         configuration"
            .into(),
        Vec::new(),
    )
}

/// What GPU 0's launches use, and one line per cache file considered for it.
#[cfg(feature = "cuda")]
fn in_use() -> (String, Vec<String>) {
    use rosa::cuda::{Device, KernelConfig};
    use rosa::tune::{self, CacheHeader, FileStatus, Origin};
    let header = match Device::new(0).and_then(|d| CacheHeader::for_device(&d)) {
        Ok(h) => h,
        Err(e) => {
            return (
                format!(
                    "no tuned entries in use (no usable GPU: {e}); launches use the heuristic \
                     configuration"
                ),
                Vec::new(),
            )
        }
    };
    let loaded = tune::load_caches(
        &header,
        tune::shipped_caches(),
        tune::user_cache_dir().as_deref(),
        KernelConfig::exists,
    );
    let files = loaded
        .files
        .iter()
        .map(|f| {
            let origin = match f.origin {
                Origin::Shipped => "shipped",
                Origin::User => "user",
            };
            let status = match &f.status {
                FileStatus::Used { entries } => format!("{entries} entries, in use"),
                FileStatus::Ignored(why) => format!("ignored ({why})"),
            };
            format!("tuning file: {origin} {}: {status}", f.path.display())
        })
        .collect();
    let summary = if loaded.table.is_empty() {
        format!(
            "no tuned entries for {} (build {}); launches use the heuristic configuration",
            tune::cache_file_name(&header.device),
            header.build_id
        )
    } else {
        format!(
            "{} tuned keys for {} (build {}); launches use the exact key, else the nearest, \
             else the heuristic configuration",
            loaded.table.len(),
            tune::cache_file_name(&header.device),
            header.build_id
        )
    };
    (summary, files)
}
