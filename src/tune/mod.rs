//! Per-GPU autotuning: problem keys, device fingerprints, JSON caches of tuned choices and
//! the search that fills them.
//!
//! The tuner (`tune` with the `cuda` feature, `rosa tune`) times every compiled tile configuration on a problem
//! and records the winner under the problem's [`ProblemKey`]. At launch the choice is
//! looked up in a [`TuneTable`] held in memory (exact key, else the nearest bucket, else
//! the heuristic), so a lookup costs a hash, not a file read. Caches are JSON files headed
//! by what they were measured on ([`CacheHeader`]); one for another GPU, build or schema
//! is ignored with a warning, and so is a corrupt one ([`load_caches`]).

mod build_id;
mod cache;
mod fingerprint;
mod key;
mod load;
mod search;

pub use build_id::hash_sources;
pub use cache::{user_cache_dir, Source, TuneCache, TuneEntry, TuneTable};
pub use fingerprint::{CacheHeader, DeviceFingerprint, SCHEMA_VERSION};
pub use key::ProblemKey;
#[cfg(feature = "cuda")]
pub(crate) use load::table_for;
pub use load::{
    cache_file_name, load_caches, shipped_caches, CacheFile, FileStatus, Loaded, Origin,
};
pub use search::{grid, mask_problems, Effort, Problem, Progress, RowSkew, GRID_POWER_LAW};
#[cfg(feature = "cuda")]
pub use search::{tune, tune_matrix};

/// This build's kernel id: [`hash_sources`] over `csrc/` as build.rs saw it, in hex. A
/// cache from another build may number or time its configurations differently, so
/// [`CacheHeader`]s carry it and a mismatch makes a cache foreign.
///
/// ```
/// assert_eq!(rosa::tune::BUILD_ID.len(), 16);
/// assert!(rosa::tune::BUILD_ID.chars().all(|c| c.is_ascii_hexdigit()));
/// ```
pub const BUILD_ID: &str = env!("ROSA_BUILD_ID");
