//! What a tuning cache was measured on: the device, the kernel build, the file schema.

use serde::{Deserialize, Serialize};

/// The version of the cache file layout; bumped whenever a field changes meaning.
pub const SCHEMA_VERSION: u32 = 1;

/// The GPU a cache was measured on. Two devices with equal fingerprints are taken to
/// run the kernels at the same relative speeds.
///
/// ```
/// use rosa::tune::DeviceFingerprint;
/// let d = DeviceFingerprint {
///     name: "NVIDIA H100 80GB HBM3".into(),
///     compute_capability: (9, 0),
///     sm_count: 132,
///     memory_bytes: 85_520_809_984,
///     driver_version: 13000,
/// };
/// assert_eq!(d.file_stem(), "nvidia-h100-80gb-hbm3-sm90");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DeviceFingerprint {
    pub name: String,
    pub compute_capability: (u32, u32),
    pub sm_count: u32,
    pub memory_bytes: u64,
    /// As the driver reports it (1000 * major + 10 * minor).
    pub driver_version: u32,
}

impl DeviceFingerprint {
    /// A file-name-safe short name: the lower-cased GPU name and its architecture.
    pub fn file_stem(&self) -> String {
        let mut stem = String::new();
        for ch in self.name.chars() {
            if ch.is_ascii_alphanumeric() {
                stem.push(ch.to_ascii_lowercase());
            } else if !stem.ends_with('-') {
                stem.push('-');
            }
        }
        let (major, minor) = self.compute_capability;
        format!("{}-sm{major}{minor}", stem.trim_matches('-'))
    }
}

/// Everything a cache must match to be used: schema, kernel build and device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheHeader {
    pub schema: u32,
    /// A hash of the kernel sources and their configuration table: another build may
    /// number its configurations differently.
    pub build_id: String,
    pub device: DeviceFingerprint,
}

impl CacheHeader {
    /// The header for this schema, a build and a device.
    pub fn new(build_id: impl Into<String>, device: DeviceFingerprint) -> Self {
        CacheHeader {
            schema: SCHEMA_VERSION,
            build_id: build_id.into(),
            device,
        }
    }

    /// The header a cache must carry to serve `dev` with this build's kernels
    /// ([`super::BUILD_ID`]).
    ///
    /// ```no_run
    /// let dev = rosa::cuda::Device::new(0)?;
    /// let header = rosa::tune::CacheHeader::for_device(&dev)?;
    /// assert_eq!(header.build_id, rosa::tune::BUILD_ID);
    /// # Ok::<(), rosa::Error>(())
    /// ```
    #[cfg(feature = "cuda")]
    pub fn for_device(dev: &crate::cuda::Device) -> crate::Result<Self> {
        Ok(Self::new(super::BUILD_ID, dev.fingerprint()?))
    }

    /// Why a cache with header `found` cannot serve `self`, or `None` if it can.
    pub fn mismatch(&self, found: &CacheHeader) -> Option<String> {
        if found.schema != self.schema {
            Some(format!(
                "schema {} (this build reads {})",
                found.schema, self.schema
            ))
        } else if found.build_id != self.build_id {
            Some(format!(
                "kernel build {} (this build is {})",
                found.build_id, self.build_id
            ))
        } else if found.device != self.device {
            Some(format!(
                "device {} sm{}{} with {} SMs, driver {} (this one is {} sm{}{} with {} SMs, driver {})",
                found.device.name,
                found.device.compute_capability.0,
                found.device.compute_capability.1,
                found.device.sm_count,
                found.device.driver_version,
                self.device.name,
                self.device.compute_capability.0,
                self.device.compute_capability.1,
                self.device.sm_count,
                self.device.driver_version
            ))
        } else {
            None
        }
    }
}
