//! Tuning caches: JSON files of tuned choices, read once and looked up in memory.
//!
//! A file is written whole to a temporary name beside it and renamed into place, under
//! an advisory lock that serializes read-merge-write, so two processes tuning at once
//! never leave a torn file and never drop each other's entries.

use std::collections::HashMap;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{CacheHeader, ProblemKey};
use crate::{Error, Op, Result};

/// One tuned choice: the fastest compiled configuration for a problem key, with the
/// times that made it the winner.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TuneEntry {
    pub key: ProblemKey,
    /// Index into the op's configuration table.
    pub config: usize,
    /// The configuration's name, for people reading the file.
    pub config_name: String,
    /// Median time of the winner, microseconds.
    pub tuned_us: f64,
    /// Median time of the heuristic default on the same problem, microseconds.
    pub heuristic_us: f64,
}

/// A tuning cache: a header naming what it was measured on, and its entries.
///
/// ```
/// use rosa::tune::{CacheHeader, DeviceFingerprint, ProblemKey, TuneCache, TuneEntry};
/// use rosa::{DType, Op};
/// # let device = DeviceFingerprint { name: "GPU".into(), compute_capability: (9, 0),
/// #     sm_count: 132, memory_bytes: 1 << 36, driver_version: 13000 };
/// let header = CacheHeader::new("build-1", device);
/// let mut cache = TuneCache::new(header.clone());
/// let key = ProblemKey::new(Op::Spmm, DType::F32, 4096, 4096, 512, 0.01, 0.1);
/// cache.insert(TuneEntry { key, config: 3, config_name: "sw8_br16_v1".into(),
///     tuned_us: 40.0, heuristic_us: 55.0 });
/// let path = std::env::temp_dir().join(format!("rosa-doc-cache-{}.json", std::process::id()));
/// cache.save(&path).unwrap();
/// let back = TuneCache::load(&path, &header, |_, i| i < 8).unwrap();
/// assert_eq!(back.entries().len(), 1);
/// # std::fs::remove_file(&path).ok();
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TuneCache {
    header: CacheHeader,
    entries: Vec<TuneEntry>,
}

impl TuneCache {
    /// An empty cache for `header`.
    pub fn new(header: CacheHeader) -> Self {
        TuneCache {
            header,
            entries: Vec::new(),
        }
    }

    /// What the cache was measured on.
    pub fn header(&self) -> &CacheHeader {
        &self.header
    }

    /// The entries, sorted by key.
    pub fn entries(&self) -> &[TuneEntry] {
        &self.entries
    }

    /// Adds an entry, replacing any with the same key.
    pub fn insert(&mut self, entry: TuneEntry) {
        match self.entries.binary_search_by(|e| e.key.cmp(&entry.key)) {
            Ok(i) => self.entries[i] = entry,
            Err(i) => self.entries.insert(i, entry),
        }
    }

    /// Parses a cache from JSON, checking every entry: a known configuration index for
    /// its op (`config_exists`), positive finite times, no repeated key.
    pub fn from_json(
        text: &str,
        path: &Path,
        config_exists: impl Fn(Op, usize) -> bool,
    ) -> Result<Self> {
        let format = |reason: String| Error::Format {
            path: path.to_path_buf(),
            reason,
        };
        let mut cache: TuneCache =
            serde_json::from_str(text).map_err(|e| format(format!("not a tuning cache: {e}")))?;
        cache.entries.sort_by_key(|e| e.key);
        for (i, e) in cache.entries.iter().enumerate() {
            let ok_time = |t: f64| t.is_finite() && t > 0.0;
            if !config_exists(e.key.op, e.config) {
                return Err(format(format!(
                    "entry {i} names configuration {} of {}, which this build does not have",
                    e.config, e.key.op
                )));
            }
            if !ok_time(e.tuned_us) || !ok_time(e.heuristic_us) {
                return Err(format(format!("entry {i} has a time that is not positive")));
            }
            if i > 0 && cache.entries[i - 1].key == e.key {
                return Err(format(format!("entry {i} repeats a key")));
            }
        }
        Ok(cache)
    }

    /// Reads a cache that must match `expected`; a cache for another device, build or
    /// schema is an error naming the difference.
    pub fn load(
        path: &Path,
        expected: &CacheHeader,
        config_exists: impl Fn(Op, usize) -> bool,
    ) -> Result<Self> {
        let text = fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse_for(&text, path, expected, config_exists)
    }

    /// [`TuneCache::load`] on text already read (`path` names it in errors): the shipped
    /// caches are compiled in, not read from disk.
    ///
    /// ```
    /// use rosa::tune::{CacheHeader, DeviceFingerprint, TuneCache};
    /// # let d = DeviceFingerprint { name: "GPU".into(), compute_capability: (9, 0),
    /// #     sm_count: 132, memory_bytes: 1 << 36, driver_version: 13000 };
    /// let text = serde_json::to_string(&TuneCache::new(CacheHeader::new("b1", d.clone()))).unwrap();
    /// let path = std::path::Path::new("tuning/gpu-sm90.json");
    /// assert!(TuneCache::parse_for(&text, path, &CacheHeader::new("b1", d.clone()), |_, _| true).is_ok());
    /// let err = TuneCache::parse_for(&text, path, &CacheHeader::new("b2", d), |_, _| true).unwrap_err();
    /// assert!(err.to_string().contains("kernel build b1"));
    /// ```
    pub fn parse_for(
        text: &str,
        path: &Path,
        expected: &CacheHeader,
        config_exists: impl Fn(Op, usize) -> bool,
    ) -> Result<Self> {
        let cache = Self::from_json(text, path, config_exists)?;
        match expected.mismatch(&cache.header) {
            None => Ok(cache),
            Some(why) => Err(Error::Format {
                path: path.to_path_buf(),
                reason: format!("tuning cache for another {why}"),
            }),
        }
    }

    /// Writes the cache atomically: a temporary file in the same directory, synced, then
    /// renamed over `path`.
    pub fn save(&self, path: &Path) -> Result<()> {
        let io = |source| Error::Io {
            path: path.to_path_buf(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir).map_err(io)?;
        }
        let text = serde_json::to_string_pretty(self).map_err(|e| Error::Format {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        crate::io::write_atomically(path, |out| {
            out.write_all(text.as_bytes())?;
            out.write_all(b"\n")
        })
    }

    /// Merges `entries` into the cache file at `path` (created if missing; replaced if
    /// unreadable or for another header, with a warning), holding an advisory lock so
    /// concurrent tuners serialize their updates.
    pub fn merge_into_file(
        path: &Path,
        header: &CacheHeader,
        entries: &[TuneEntry],
        config_exists: impl Fn(Op, usize) -> bool,
    ) -> Result<TuneCache> {
        let io = |source| Error::Io {
            path: path.to_path_buf(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir).map_err(io)?;
        }
        let lock_path = path.with_extension("lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io)?;
        lock.lock().map_err(io)?;
        let mut cache = if path.exists() {
            Self::load(path, header, &config_exists).unwrap_or_else(|e| {
                log::warn!("replacing tuning cache: {e}");
                TuneCache::new(header.clone())
            })
        } else {
            TuneCache::new(header.clone())
        };
        for e in entries {
            cache.insert(e.clone());
        }
        let saved = cache.save(path);
        // Unlocked when `lock` drops, also on error.
        drop(lock);
        saved.map(|()| cache)
    }
}

/// Where a choice came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A cache entry with exactly this key.
    Exact,
    /// The nearest cached key of the same op and dtype.
    Nearest,
    /// No usable entry: the caller's heuristic default.
    Heuristic,
}

impl Source {
    /// `exact`, `nearest` or `heuristic`, as the bench reports it.
    ///
    /// ```
    /// assert_eq!(rosa::tune::Source::Nearest.name(), "nearest");
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            Source::Exact => "exact",
            Source::Nearest => "nearest",
            Source::Heuristic => "heuristic",
        }
    }
}

/// The in-memory lookup built from caches: exact key, else the nearest key within
/// `max_distance`, else `None` (the caller's heuristic).
///
/// ```
/// use rosa::tune::{ProblemKey, Source, TuneTable};
/// use rosa::{DType, Op};
/// let key = ProblemKey::new(Op::Sddmm, DType::Bf16, 4096, 4096, 16, 0.01, 0.0);
/// let table = TuneTable::from_pairs([(key, 2)]);
/// assert_eq!(table.lookup(&key), Some((2, Source::Exact)));
/// let near = ProblemKey::new(Op::Sddmm, DType::Bf16, 4096, 4096, 32, 0.01, 0.0);
/// assert_eq!(table.lookup(&near), Some((2, Source::Nearest)));
/// let other_dtype = ProblemKey::new(Op::Sddmm, DType::F32, 4096, 4096, 16, 0.01, 0.0);
/// assert_eq!(table.lookup(&other_dtype), None);
/// ```
#[derive(Debug, Clone, Default)]
pub struct TuneTable {
    exact: HashMap<ProblemKey, usize>,
    by_op: HashMap<(Op, crate::DType), Vec<(ProblemKey, usize)>>,
}

impl TuneTable {
    /// How far (see [`ProblemKey::distance`]) a cached choice may be carried.
    pub const MAX_DISTANCE: u32 = 6;

    /// A table from (key, configuration) pairs; later pairs win.
    pub fn from_pairs(pairs: impl IntoIterator<Item = (ProblemKey, usize)>) -> Self {
        let mut t = TuneTable::default();
        for (k, c) in pairs {
            t.exact.insert(k, c);
        }
        for (k, &c) in &t.exact {
            t.by_op.entry((k.op, k.dtype)).or_default().push((*k, c));
        }
        for v in t.by_op.values_mut() {
            v.sort();
        }
        t
    }

    /// A table from caches, later caches overriding earlier ones (shipped, then user).
    pub fn from_caches<'a>(caches: impl IntoIterator<Item = &'a TuneCache>) -> Self {
        Self::from_pairs(
            caches
                .into_iter()
                .flat_map(|c| c.entries.iter().map(|e| (e.key, e.config))),
        )
    }

    /// Number of distinct keys.
    pub fn len(&self) -> usize {
        self.exact.len()
    }

    /// Whether the table holds no entry.
    pub fn is_empty(&self) -> bool {
        self.exact.is_empty()
    }

    /// The configuration for `key` and where it came from, or `None` to use the
    /// heuristic.
    pub fn lookup(&self, key: &ProblemKey) -> Option<(usize, Source)> {
        if let Some(&c) = self.exact.get(key) {
            return Some((c, Source::Exact));
        }
        self.by_op
            .get(&(key.op, key.dtype))?
            .iter()
            .filter_map(|(k, c)| Some((key.distance(k)?, k, *c)))
            .filter(|(d, _, _)| *d <= Self::MAX_DISTANCE)
            .min_by_key(|&(d, k, _)| (d, *k))
            .map(|(_, _, c)| (c, Source::Nearest))
    }

    /// The configuration a launch uses: [`TuneTable::lookup`]'s, else `heuristic()` (only
    /// called when the table has nothing within reach).
    ///
    /// ```
    /// use rosa::tune::{ProblemKey, Source, TuneTable};
    /// use rosa::{DType, Op};
    /// let key = ProblemKey::new(Op::Spmm, DType::F32, 4096, 4096, 512, 0.01, 0.1);
    /// assert_eq!(TuneTable::default().choose(&key, || 4), (4, Source::Heuristic));
    /// assert_eq!(TuneTable::from_pairs([(key, 1)]).choose(&key, || 4), (1, Source::Exact));
    /// ```
    pub fn choose(&self, key: &ProblemKey, heuristic: impl FnOnce() -> usize) -> (usize, Source) {
        self.lookup(key)
            .unwrap_or_else(|| (heuristic(), Source::Heuristic))
    }
}

/// The user's tuning directory: `$ROSA_TUNING_DIR`, else `$XDG_CACHE_HOME/rosa/tuning`,
/// else `~/.cache/rosa/tuning`; `None` when none of these is set.
pub fn user_cache_dir() -> Option<PathBuf> {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    var("ROSA_TUNING_DIR")
        .map(PathBuf::from)
        .or_else(|| var("XDG_CACHE_HOME").map(|d| PathBuf::from(d).join("rosa/tuning")))
        .or_else(|| var("HOME").map(|h| PathBuf::from(h).join(".cache/rosa/tuning")))
}
