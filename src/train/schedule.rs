//! When the low-rank and the sparse adapter train: the paper's `lora_only`, `spa_only`
//! and `wlN` schedules.

use crate::{Error, Result};

/// Which adapters train when, and so when the sparse mask is chosen.
///
/// ```
/// use rosa::train::Schedule;
/// let s: Schedule = "wl64".parse().unwrap();
/// assert_eq!(s, Schedule::WarmLora(64));
/// assert_eq!(s.mask_step(), Some(64));
/// assert_eq!(s.to_string(), "wl64");
/// assert_eq!("spa_only".parse::<Schedule>().unwrap().mask_step(), Some(0));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schedule {
    /// Low-rank adapter only (LoRA).
    LoraOnly,
    /// Sparse adapter only, its mask chosen before the first step (SpA).
    SpaOnly,
    /// `N` steps of LoRA alone, then gradient collection for the mask, then both.
    WarmLora(usize),
}

impl Schedule {
    /// Whether the low-rank adapter exists under this schedule.
    pub fn uses_lora(self) -> bool {
        !matches!(self, Schedule::SpaOnly)
    }

    /// The training step before which the mask is generated, if there is a sparse adapter.
    pub fn mask_step(self) -> Option<usize> {
        match self {
            Schedule::LoraOnly => None,
            Schedule::SpaOnly => Some(0),
            Schedule::WarmLora(n) => Some(n),
        }
    }
}

impl std::fmt::Display for Schedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Schedule::LoraOnly => f.write_str("lora_only"),
            Schedule::SpaOnly => f.write_str("spa_only"),
            Schedule::WarmLora(n) => write!(f, "wl{n}"),
        }
    }
}

impl std::str::FromStr for Schedule {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "lora_only" => Ok(Schedule::LoraOnly),
            "spa_only" => Ok(Schedule::SpaOnly),
            _ => s
                .strip_prefix("wl")
                .and_then(|n| n.parse().ok())
                .map(Schedule::WarmLora)
                .ok_or_else(|| {
                    Error::InvalidArgument(format!(
                        "unknown schedule '{s}' (expected lora_only, spa_only or wlN, e.g. wl64)"
                    ))
                }),
        }
    }
}
