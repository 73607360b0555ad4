//! The sparse operations, named once for the kernels, the tuner and the command line.

use std::fmt;
use std::str::FromStr;

use crate::Error;

/// One of the three sparse products.
///
/// ```
/// use rosa::Op;
/// assert_eq!("spmm_t".parse::<Op>().unwrap(), Op::SpmmT);
/// assert_eq!(Op::Sddmm.to_string(), "sddmm");
/// ```
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    /// `C = alpha A B + beta C`.
    Spmm,
    /// `C = alpha A^T B + beta C`, through the transpose plan.
    SpmmT,
    /// `out = alpha (L R^T) at the mask + beta out`.
    Sddmm,
}

impl Op {
    /// Every op, in a fixed order.
    pub const ALL: [Op; 3] = [Op::Spmm, Op::SpmmT, Op::Sddmm];

    /// Lower-case name: `spmm`, `spmm_t`, `sddmm`.
    pub const fn name(self) -> &'static str {
        match self {
            Op::Spmm => "spmm",
            Op::SpmmT => "spmm_t",
            Op::Sddmm => "sddmm",
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Op {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Op::ALL
            .into_iter()
            .find(|op| op.name() == s)
            .ok_or_else(|| {
                Error::InvalidArgument(format!("unknown op '{s}' (expected spmm, spmm_t or sddmm)"))
            })
    }
}
