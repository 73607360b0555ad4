//! Helpers of the `rosa::candle` tests: rosa matrices and candle tensors back and forth.

use candle_core::{DType, Device, Tensor};
use rosa::Dense;

/// An f32 matrix as a 2-D tensor on the CPU.
pub fn tensor(d: &Dense<f32>) -> Tensor {
    Tensor::from_slice(d.as_slice(), (d.rows(), d.cols()), &Device::Cpu).unwrap()
}

/// A random `rows x cols` f32 tensor, entries uniform in [-1, 1).
pub fn random_tensor(rows: usize, cols: usize, seed: u64) -> Tensor {
    tensor(&rosa::random::dense::<f32>(rows, cols, seed))
}

/// Every element widened to f32, in row-major order.
pub fn vec_f32(t: &Tensor) -> Vec<f32> {
    t.to_dtype(DType::F32)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}
