//! Dense GEMM through cuBLAS, on row-major [`DeviceDense`] operands: the dense baseline
//! the sparse kernels are measured against.

use cudarc::cublas::CudaBlas;
use cudarc::driver::CudaSlice;

use super::result::{self, blas};
use super::{CudaScalar, Device, DeviceDense};
use crate::{Error, Result};

/// An element type cuBLAS multiplies for us: f32 (plain SGEMM, no TF32 unless asked),
/// f16 and bf16 (tensor cores), all accumulated in f32 with f32 alpha and beta.
pub trait BlasScalar: CudaScalar {}

impl<T: CudaScalar> BlasScalar for T {}

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

    /// `C = alpha op(A) op(B) + beta C`, all row-major, accumulated in f32 with alpha and
    /// beta as given (never rounded to `T`); queued on the device's stream.
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
        let g = self.col_major(alpha, a, ta, b, tb, beta, c)?;
        result::gemm(&self.handle, self.dev.stream(), g)
    }

    /// [`Blas::gemm`] with an f32 output whatever the input type, accumulated in f32: for a
    /// bf16 weight times bf16 activations, the product is not rounded back to bf16.
    ///
    /// ```no_run
    /// use rosa::cuda::{Blas, Device, DeviceDense, Transpose};
    /// let dev = Device::new(0)?;
    /// let blas = Blas::new(&dev)?;
    /// let w = DeviceDense::from_host(&dev, rosa::random::dense::<rosa::bf16>(64, 32, 1).as_ref())?;
    /// let x = DeviceDense::from_host(&dev, rosa::random::dense::<rosa::bf16>(32, 16, 2).as_ref())?;
    /// let mut y = DeviceDense::<f32>::zeros(&dev, 64, 16)?;
    /// blas.gemm_f32_out(1.0, &w, Transpose::No, &x, Transpose::No, 0.0, &mut y)?; // Y = W X
    /// # Ok::<(), rosa::Error>(())
    /// ```
    #[allow(clippy::too_many_arguments)]
    pub fn gemm_f32_out<T: BlasScalar>(
        &self,
        alpha: f32,
        a: &DeviceDense<T>,
        ta: Transpose,
        b: &DeviceDense<T>,
        tb: Transpose,
        beta: f32,
        c: &mut DeviceDense<f32>,
    ) -> Result<()> {
        let g = self.col_major(alpha, a, ta, b, tb, beta, c)?;
        result::gemm(&self.handle, self.dev.stream(), g)
    }

    /// Checks the shapes and devices of the row-major `C = alpha op(A) op(B) + beta C` and
    /// restates it as the column-major GEMM cuBLAS runs.
    #[allow(clippy::too_many_arguments)]
    fn col_major<'a, T: CudaScalar, C: CudaScalar>(
        &self,
        alpha: f32,
        a: &'a DeviceDense<T>,
        ta: Transpose,
        b: &'a DeviceDense<T>,
        tb: Transpose,
        beta: f32,
        c: &'a mut DeviceDense<C>,
    ) -> Result<result::Gemm<'a, T, C>> {
        let dims = |rows: usize, cols: usize, t| match t {
            Transpose::No => (rows, cols),
            Transpose::Yes => (cols, rows),
        };
        let ((ar, ac), (br, bc)) = (dims(a.rows(), a.cols(), ta), dims(b.rows(), b.cols(), tb));
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
        let (lda, ldb, ldc) = (b.cols().max(1), a.cols().max(1), c.cols().max(1));
        let (bufa, bufb): (&CudaSlice<T>, &CudaSlice<T>) = (&b.data, &a.data);
        Ok(result::Gemm {
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
        })
    }
}
