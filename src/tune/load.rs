//! Which caches a device uses: the one shipped for it (compiled in from `tuning/`), then
//! the user's (overriding it), both named `<fingerprint file stem>.json`. Read once per
//! process and device, so a launch costs a hash lookup and a foreign or corrupt file costs
//! one warning, not one per call.

use std::path::{Path, PathBuf};

use super::{CacheHeader, DeviceFingerprint, TuneCache, TuneTable};
use crate::{Error, Op};

/// The caches compiled in from `tuning/*.json` by build.rs: (file name, contents).
const SHIPPED: &[(&str, &str)] = include!(concat!(env!("OUT_DIR"), "/shipped_tuning.rs"));

/// The tuning caches shipped in this build, as (file name, JSON text).
///
/// ```
/// for (name, text) in rosa::tune::shipped_caches() {
///     assert!(name.ends_with(".json") && !text.is_empty());
/// }
/// ```
pub fn shipped_caches() -> &'static [(&'static str, &'static str)] {
    SHIPPED
}

/// The name of a device's cache file, in `tuning/` and in the user directory alike.
///
/// ```
/// use rosa::tune::{cache_file_name, DeviceFingerprint};
/// let d = DeviceFingerprint { name: "NVIDIA H200".into(), compute_capability: (9, 0),
///     sm_count: 132, memory_bytes: 150_000_000_000, driver_version: 13000 };
/// assert_eq!(cache_file_name(&d), "nvidia-h200-sm90.json");
/// ```
pub fn cache_file_name(device: &DeviceFingerprint) -> String {
    format!("{}.json", device.file_stem())
}

/// Where a cache file came from.
///
/// ```
/// use rosa::tune::{load_caches, CacheHeader, DeviceFingerprint, Origin};
/// # let d = DeviceFingerprint { name: "GPU".into(), compute_capability: (9, 0),
/// #     sm_count: 132, memory_bytes: 1 << 36, driver_version: 13000 };
/// let loaded = load_caches(&CacheHeader::new("b", d), &[("gpu-sm90.json", "{")], None, |_, _| true);
/// assert_eq!(loaded.files[0].origin, Origin::Shipped);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Compiled in from the repository's `tuning/`.
    Shipped,
    /// The user cache directory ([`super::user_cache_dir`]).
    User,
}

/// What became of one cache file.
///
/// ```
/// use rosa::tune::FileStatus;
/// let describe = |s: &FileStatus| match s {
///     FileStatus::Used { entries } => format!("{entries} entries"),
///     FileStatus::Ignored(why) => format!("ignored: {why}"),
/// };
/// assert_eq!(describe(&FileStatus::Used { entries: 3 }), "3 entries");
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum FileStatus {
    /// Matched the device and build; this many entries went into the table.
    Used { entries: usize },
    /// Not used, and why (corrupt, or measured on another device, build or schema).
    Ignored(String),
}

/// One cache file looked at by [`load_caches`].
///
/// ```
/// use rosa::tune::{load_caches, CacheHeader, DeviceFingerprint};
/// # let d = DeviceFingerprint { name: "GPU".into(), compute_capability: (9, 0),
/// #     sm_count: 132, memory_bytes: 1 << 36, driver_version: 13000 };
/// let loaded = load_caches(&CacheHeader::new("b", d), &[("gpu-sm90.json", "{")], None, |_, _| true);
/// assert_eq!(loaded.files[0].path, std::path::Path::new("tuning/gpu-sm90.json"));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct CacheFile {
    pub origin: Origin,
    pub path: PathBuf,
    pub status: FileStatus,
}

/// The lookup table built from the caches that matched, and what became of each file.
///
/// ```
/// use rosa::tune::{load_caches, CacheHeader, DeviceFingerprint};
/// # let d = DeviceFingerprint { name: "GPU".into(), compute_capability: (9, 0),
/// #     sm_count: 132, memory_bytes: 1 << 36, driver_version: 13000 };
/// // No shipped cache, no user directory: an empty table, the heuristic everywhere.
/// let loaded = load_caches(&CacheHeader::new("b", d), &[], None, |_, _| true);
/// assert!(loaded.table.is_empty() && loaded.files.is_empty());
/// ```
#[derive(Debug, Clone, Default)]
pub struct Loaded {
    pub table: TuneTable,
    pub files: Vec<CacheFile>,
}

/// Loads the caches that can serve `expected`: the shipped one named for its device, then
/// the one in `user_dir` (its entries override). A missing file is skipped silently; a
/// corrupt or foreign one is ignored with one `log` warning and listed with the reason.
///
/// ```
/// use rosa::tune::{load_caches, CacheHeader, DeviceFingerprint, FileStatus};
/// let d = DeviceFingerprint { name: "GPU".into(), compute_capability: (9, 0),
///     sm_count: 132, memory_bytes: 1 << 36, driver_version: 13000 };
/// let header = CacheHeader::new("build-1", d);
/// let loaded = load_caches(&header, &[("gpu-sm90.json", "not json")], None, |_, _| true);
/// assert!(loaded.table.is_empty());
/// assert!(matches!(loaded.files[0].status, FileStatus::Ignored(_)));
/// ```
pub fn load_caches(
    expected: &CacheHeader,
    shipped: &[(&str, &str)],
    user_dir: Option<&Path>,
    config_exists: impl Fn(Op, usize) -> bool,
) -> Loaded {
    let name = cache_file_name(&expected.device);
    let mut found: Vec<(Origin, PathBuf, crate::Result<String>)> = shipped
        .iter()
        .filter(|(n, _)| *n == name)
        .map(|(n, text)| {
            (
                Origin::Shipped,
                Path::new("tuning").join(n),
                Ok(text.to_string()),
            )
        })
        .collect();
    if let Some(path) = user_dir.map(|d| d.join(&name)).filter(|p| p.exists()) {
        let text = std::fs::read_to_string(&path).map_err(|source| Error::Io {
            path: path.clone(),
            source,
        });
        found.push((Origin::User, path, text));
    }
    let mut caches = Vec::new();
    let mut files = Vec::new();
    for (origin, path, text) in found {
        let status =
            match text.and_then(|t| TuneCache::parse_for(&t, &path, expected, &config_exists)) {
                Ok(cache) => {
                    let entries = cache.entries().len();
                    caches.push(cache);
                    FileStatus::Used { entries }
                }
                Err(e) => {
                    log::warn!("ignoring a tuning cache: {e}");
                    FileStatus::Ignored(e.to_string())
                }
            };
        files.push(CacheFile {
            origin,
            path,
            status,
        });
    }
    Loaded {
        table: TuneTable::from_caches(&caches),
        files,
    }
}

/// The table a device's default launchers use, loaded on the first call for each device
/// ordinal in the process and shared after that. Without a fingerprint (a failed driver
/// query) the table is empty, with one warning: launches fall back to the heuristic.
#[cfg(feature = "cuda")]
pub(crate) fn table_for(dev: &crate::cuda::Device) -> std::sync::Arc<TuneTable> {
    use std::sync::{Arc, Mutex, PoisonError};
    static TABLES: Mutex<Vec<(usize, Arc<TuneTable>)>> = Mutex::new(Vec::new());
    let mut tables = TABLES.lock().unwrap_or_else(PoisonError::into_inner);
    let ordinal = dev.ordinal();
    if let Some((_, t)) = tables.iter().find(|(o, _)| *o == ordinal) {
        return Arc::clone(t);
    }
    let table = match CacheHeader::for_device(dev) {
        Ok(header) => {
            load_caches(
                &header,
                shipped_caches(),
                super::user_cache_dir().as_deref(),
                crate::cuda::KernelConfig::exists,
            )
            .table
        }
        Err(e) => {
            log::warn!("no tuning caches for cuda:{ordinal} (launches use the heuristic): {e}");
            TuneTable::default()
        }
    };
    let table = Arc::new(table);
    tables.push((ordinal, Arc::clone(&table)));
    table
}
