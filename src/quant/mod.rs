//! 4-bit NormalFloat (NF4) storage of frozen weights, as QLoRA keeps them (Dettmers et
//! al., 2023, "QLoRA: Efficient Finetuning of Quantized LLMs", arXiv:2305.14314), for
//! QRoSA: a RoSA layer whose W is 4-bit while its adapters stay in f32 / bf16.
//!
//! A matrix is quantized in blocks of consecutive (row-major) elements, 64 by default:
//! each block keeps its absmax as the scale, and each element the 4-bit index of the
//! nearest of the 16 [`NF4`] values (normal quantiles on `[-1, 1]`), two per byte. With
//! double quantization the scales themselves are stored in 8 bits. The layout and code
//! values are bitsandbytes' (the library behind QLoRA); where rosa differs, the items
//! say so.
//!
//! | file | concept |
//! |---|---|
//! | `code` | the NF4 values, the 8-bit code of the scales, exact nearest-code rounding |
//! | `block` | [`BlockSize`] and the settings [`Nf4Config`] |
//! | `scales` | the block scales: f32, or double-quantized ([`Scales`], [`DoubleQuant`]) |
//! | `matrix` | [`Nf4Matrix`]: quantizing, the stored parts, memory accounting |
//! | `dequant` | the CPU dequantization kernel, whole or by row range, into a workspace |
//! | `store` | safetensors files: [`save_nf4`], [`Nf4File`], [`load_nf4`] |
//!
//! Quantize once, then dequantize a tile of W into a reused workspace before each GEMM:
//!
//! ```
//! use rosa::quant::{Nf4Config, Nf4Matrix};
//! use rosa::{bf16, random, Dense};
//! let w = random::dense::<f32>(128, 96, 1);
//! let q = Nf4Matrix::quantize(w.as_ref(), Nf4Config::qlora()).unwrap();
//! // 128 x 96 = 12288 weights: 6144 bytes of codes, 192 8-bit scales, 1 nested absmax, the offset.
//! assert_eq!(q.stored_bytes(), 6144 + 192 + 4 + 4);
//! let mut workspace = Dense::<bf16>::zeros(32, 96); // one tile of 32 rows, reused
//! for tile in 0..4 {
//!     q.dequantize_into(tile * 32..(tile + 1) * 32, workspace.as_mut()).unwrap();
//!     // ... the GEMM reads `workspace` here ...
//! }
//! let back = q.dequantize::<f32>().unwrap();
//! let err = w.as_slice().iter().zip(back.as_slice()).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
//! assert!(err < 0.152); // |w| <= 1 here, and NF4's largest half-gap is 0.1519
//! ```

mod block;
mod code;
mod dequant;
mod matrix;
mod scales;
mod store;

pub use block::{BlockSize, Nf4Config};
pub use code::{dynamic_code, NF4, NF4_ZERO};
pub use matrix::Nf4Matrix;
pub use scales::{DoubleQuant, Scales};
pub use store::{load_nf4, save_nf4, Nf4File};
