//! Turning a runtime [`DType`](crate::DType) into a compile-time element type, once.

/// Runs `body` with the type alias `T` bound to the element type that a runtime
/// [`DType`](crate::DType) names, so code generic over [`Scalar`](crate::Scalar) is
/// written once and dispatched in one place instead of once per dtype.
///
/// ```
/// use rosa::{with_dtype, DType, Scalar};
/// fn size_of<T: Scalar>() -> usize { std::mem::size_of::<T>() }
/// let dtype: DType = "bf16".parse().unwrap();
/// assert_eq!(with_dtype!(dtype, T => size_of::<T>()), 2);
/// ```
#[macro_export]
macro_rules! with_dtype {
    ($dtype:expr, $T:ident => $body:expr) => {
        match $dtype {
            $crate::DType::F32 => {
                type $T = f32;
                $body
            }
            $crate::DType::F16 => {
                type $T = $crate::f16;
                $body
            }
            $crate::DType::Bf16 => {
                type $T = $crate::bf16;
                $body
            }
        }
    };
}
