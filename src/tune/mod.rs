//! Per-GPU autotuning: problem keys, device fingerprints and JSON caches of tuned choices.
//!
//! The tuner times every compiled tile configuration on a problem and records the
//! winner under the problem's [`ProblemKey`]. At launch the choice is looked up in a
//! [`TuneTable`] held in memory (exact key, else the nearest bucket, else the heuristic),
//! so a lookup costs a hash, not a file read. Caches are JSON files headed by what they
//! were measured on ([`CacheHeader`]); one for another GPU, build or schema is ignored
//! with a warning, and so is a corrupt one.

mod cache;
mod fingerprint;
mod key;

pub use cache::{user_cache_dir, Source, TuneCache, TuneEntry, TuneTable};
pub use fingerprint::{CacheHeader, DeviceFingerprint, SCHEMA_VERSION};
pub use key::ProblemKey;
