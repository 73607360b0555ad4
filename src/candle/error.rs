//! rosa's errors inside candle's: typed, so a caller can still match on them.

/// Wraps a [`crate::Error`] in candle's error type, keeping it as a typed source (candle's
/// `WrappedContext`, whose context is the message), so `?` works in candle code and
/// [`rosa_error`] can get the original back.
impl From<crate::Error> for candle_core::Error {
    fn from(e: crate::Error) -> Self {
        let context = e.to_string();
        candle_core::Error::WrappedContext {
            wrapped: Box::new(e),
            context,
        }
    }
}

/// The [`crate::Error`] inside a candle error, if it came from rosa (looking through
/// candle's backtrace, context and path wrappers).
///
/// ```
/// use candle_core::{Device, Tensor};
/// use rosa::candle::{rosa_error, SparseMask};
/// use rosa::Csr;
/// let mask = SparseMask::from_csr(&Csr::from_triplets(2, 3, &[(0, 1, 1.0f32)]).unwrap());
/// let values = Tensor::zeros(1, candle_core::DType::F32, &Device::Cpu).unwrap();
/// let x = Tensor::zeros((4, 5), candle_core::DType::F32, &Device::Cpu).unwrap(); // 4 rows, not 3
/// let err = mask.spmm(&values, &x).unwrap_err();
/// assert!(matches!(rosa_error(&err), Some(rosa::Error::ShapeMismatch { op: "spmm", .. })));
/// ```
pub fn rosa_error(e: &candle_core::Error) -> Option<&crate::Error> {
    use candle_core::Error as E;
    match e {
        E::WrappedContext { wrapped, .. } => wrapped.downcast_ref(),
        E::WithBacktrace { inner, .. } | E::Context { inner, .. } | E::WithPath { inner, .. } => {
            rosa_error(inner)
        }
        _ => None,
    }
}
