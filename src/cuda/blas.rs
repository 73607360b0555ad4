//! Dense GEMM through cuBLAS, on row-major [`DeviceDense`] operands: the dense baseline
//! the sparse kernels are measured against.

use cudarc::cublas::CudaBlas;
use cudarc::driver::CudaSlice;

use super::result::{self, blas};
use super::{CudaScalar, Device, DeviceDense};
use crate::{Error, Result};

/// An element type cuBLAS multiplies for us: f32 (plain SGEMM, no TF32), f16 and bf16
/// (tensor cores, f32 accumulation).
pub trait BlasScalar: CudaScalar {
    #[doc(hidden)]
    fn gemm(handle: &CudaBlas, g: result::Gemm<'_, Self>) -> Result<()>;
}

macro_rules! blas_scalar {
    ($($t:ty),*) => {$(
        impl BlasScalar for $t {
            fn gemm(handle: &CudaBlas, g: result::Gemm<'_, Self>) -> Result<()> {
                result::gemm(handle, g)
            }
        }
    )*};
}
blas_scalar!(f32, crate::f16, crate::bf16);

/// Whether an operand enters the product as stored or transposed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transpose {
    /// As stored.
    No,
    /// Transposed (read in place, never copied).
    Yes,
}

/// How cuBLAS may run f32 GEMMs (f16 and bf16 use tensor cores with f32 accumulation
/// either way).
///
/// ```
/// assert_eq!(rosa::cuda::Math::default(), rosa::cuda::Math::F32);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Math {
    /// cuBLAS's default math mode: f32 GEMMs in full f32 on the CUDA cores, never TF32.
    #[default]
    F32,
    /// f32 GEMMs on tensor cores with operands rounded to TF32 (10-bit mantissa).
    Tf32,
}

/// A cuBLAS handle on a [`Device`]'s stream, in the default math mode (f32 GEMMs run in
/// full f32, never TF32) unless made [`Blas::with_math`].
///
/// ```no_run
/// use rosa::cuda::{Blas, Device, DeviceDense, Transpose};
/// let dev = Device::new(0)?;
/// let blas = Blas::new(&dev)?;
/// let a = DeviceDense::from_host(&dev, rosa::random::dense::<f32>(64, 32, 1).as_ref())?;
/// let b = DeviceDense::from_host(&dev, rosa::random::dense::<f32>(64, 16, 2).as_ref())?;
/// let mut c = DeviceDense::zeros(&dev, 32, 16)?;
/// blas.gemm(1.0, &a, Transpose::Yes, &b, Transpose::No, 0.0, &mut c)?; // C = A^T B
/// # Ok::<(), rosa::Error>(())
/// ```
#[derive(Debug)]
pub struct Blas {
    handle: CudaBlas,
    dev: Device,
    math: Math,
}

impl Blas {
    /// Loads cuBLAS (`libcublas.so.13`, found through the loader path) and binds a handle
    /// to `dev`'s stream; a missing library is an `Err`, not a panic.
    pub fn new(dev: &Device) -> Result<Self> {
        Self::with_math(dev, Math::F32)
    }

    /// [`Blas::new`], with f32 GEMMs in `math` mode.
    ///
    /// ```no_run
    /// use rosa::cuda::{Blas, Device, Math};
    /// let tf32 = Blas::with_math(&Device::new(0)?, Math::Tf32)?;
    /// assert_eq!(tf32.math(), Math::Tf32);
    /// # Ok::<(), rosa::Error>(())
    /// ```
    pub fn with_math(dev: &Device, math: Math) -> Result<Self> {
        if !result::cublas_present() {
            return Err(Error::Unsupported(
                "cuBLAS (libcublas.so.13) is not on the loader path; add its directory to \
                 LD_LIBRARY_PATH (CUDA toolkit lib64, or the nvidia/cu13/lib folder of the \
                 nvidia-cublas wheel)"
                    .into(),
            ));
        }
        let handle = CudaBlas::new(dev.stream().clone()).map_err(blas("cublasCreate"))?;
        result::cublas_math(&handle, math == Math::Tf32)?;
        Ok(Blas {
            handle,
            dev: dev.clone(),
            math,
        })
    }

    /// The math mode of f32 GEMMs (see [`Blas::with_math`]).
    pub fn math(&self) -> Math {
        self.math
    }

    /// `C = alpha op(A) op(B) + beta C`, all row-major; queued on the device's stream.
    #[allow(clippy::too_many_arguments)]
    pub fn gemm<T: BlasScalar>(
        &self,
        alpha: f32,
        a: &DeviceDense<T>,
        ta: Transpose,
        b: &DeviceDense<T>,
        tb: Transpose,
        beta: f32,
        c: &mut DeviceDense<T>,
    ) -> Result<()> {
        let dims = |m: &DeviceDense<T>, t| match t {
            Transpose::No => (m.rows(), m.cols()),
            Transpose::Yes => (m.cols(), m.rows()),
        };
        let ((ar, ac), (br, bc)) = (dims(a, ta), dims(b, tb));
        if ac != br || c.rows() != ar || c.cols() != bc {
            return Err(Error::ShapeMismatch {
                op: "gemm",
                detail: format!(
                    "op(A) {ar} x {ac} times op(B) {br} x {bc} into C {}",
                    c.shape()
                ),
            });
        }
        self.dev.check_same(a.data.stream(), "A")?;
        self.dev.check_same(b.data.stream(), "B")?;
        self.dev.check_same(c.data.stream(), "C")?;
        // cuBLAS is column-major, and a row-major X is a column-major X^T: so compute
        // C^T = op(B)^T op(A)^T, which swaps the operands and keeps each one's flag.
        let ld = |m: &DeviceDense<T>| m.cols().max(1);
        let (lda, ldb, ldc) = (ld(b), ld(a), ld(c));
        let (bufa, bufb): (&CudaSlice<T>, &CudaSlice<T>) = (&b.data, &a.data);
        T::gemm(
            &self.handle,
            result::Gemm {
                trans_a: tb == Transpose::Yes,
                trans_b: ta == Transpose::Yes,
                m: bc,
                n: ar,
                k: ac,
                a: bufa,
                lda,
                b: bufb,
                ldb,
                c: &mut c.data,
                ldc,
                alpha,
                beta,
            },
        )
    }
}
