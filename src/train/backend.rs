//! Where the layer's four heavy products run: dense GEMM, SpMM, transposed SpMM, SDDMM.
//!
//! The layer and trainer only ever call these through [`Backend`], so a CUDA backend can
//! slot in beside [`Cpu`] without touching them (`rosa::cuda::CudaBackend` does, with
//! the `cuda` feature); the elementwise work (GELU, bias, Adam) is cheap next to these
//! and stays on the host for now.

use crate::{cpu, CsrMut, CsrRef, Error, MatMut, MatRef, Result, TransposePlan};

/// Whether a GEMM operand is used as stored or transposed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trans {
    /// As stored.
    N,
    /// Transposed.
    T,
}

/// The kernels a training step needs, all `C = alpha * op + beta * C` with `beta == 0`
/// meaning C is not read, like [`crate::cpu`].
pub trait Backend: Send + Sync + std::fmt::Debug {
    /// A short name for reports.
    fn name(&self) -> &'static str;
    /// `C = alpha * op(A) op(B) + beta * C`, dense f32.
    #[allow(clippy::too_many_arguments)]
    fn gemm(
        &self,
        alpha: f32,
        a: MatRef<'_, f32>,
        op_a: Trans,
        b: MatRef<'_, f32>,
        op_b: Trans,
        beta: f32,
        c: MatMut<'_, f32>,
    ) -> Result<()>;
    /// `C = alpha * A B + beta * C`, A sparse.
    fn spmm(
        &self,
        alpha: f32,
        a: CsrRef<'_, f32>,
        b: MatRef<'_, f32>,
        beta: f32,
        c: MatMut<'_, f32>,
    ) -> Result<()>;
    /// `C = alpha * A^T B + beta * C` through a plan built once from A's mask.
    fn spmm_t(
        &self,
        alpha: f32,
        a: CsrRef<'_, f32>,
        plan: &TransposePlan,
        b: MatRef<'_, f32>,
        beta: f32,
        c: MatMut<'_, f32>,
    ) -> Result<()>;
    /// `out = alpha * (L R^T) at out's mask + beta * out`.
    fn sddmm(
        &self,
        alpha: f32,
        l: MatRef<'_, f32>,
        r: MatRef<'_, f32>,
        beta: f32,
        out: CsrMut<'_, f32>,
    ) -> Result<()>;
}

/// `(rows, cols)` of `op(m)`.
fn op_dims(m: &MatRef<'_, f32>, op: Trans) -> (usize, usize) {
    match op {
        Trans::N => (m.rows(), m.cols()),
        Trans::T => (m.cols(), m.rows()),
    }
}

/// The argument checks of [`Backend::gemm`], shared by every backend so that all refuse
/// the same calls with the same errors.
pub(crate) fn check_gemm(
    alpha: f32,
    a: &MatRef<'_, f32>,
    op_a: Trans,
    b: &MatRef<'_, f32>,
    op_b: Trans,
    beta: f32,
    c: &MatMut<'_, f32>,
) -> Result<()> {
    let ((m, k), (kb, n)) = (op_dims(a, op_a), op_dims(b, op_b));
    if k != kb || c.rows() != m || c.cols() != n {
        return Err(Error::ShapeMismatch {
            op: "gemm",
            detail: format!(
                "op(A) is {m} x {k}, op(B) is {kb} x {n}, C is {} x {}",
                c.rows(),
                c.cols()
            ),
        });
    }
    cpu::check_scalars("gemm", alpha, beta)
}

/// The CPU backend: `matrixmultiply` for dense GEMMs, [`crate::cpu`] for the sparse ops.
#[derive(Debug, Clone, Copy, Default)]
pub struct Cpu;

impl Backend for Cpu {
    fn name(&self) -> &'static str {
        "cpu"
    }

    fn gemm(
        &self,
        alpha: f32,
        a: MatRef<'_, f32>,
        op_a: Trans,
        b: MatRef<'_, f32>,
        op_b: Trans,
        beta: f32,
        mut c: MatMut<'_, f32>,
    ) -> Result<()> {
        check_gemm(alpha, &a, op_a, &b, op_b, beta, &c)?;
        // A row-major (r x c) matrix read transposed is the same buffer with its two
        // strides swapped, which is why matrixmultiply's strided sgemm needs no copies.
        let strides = |m: &MatRef<'_, f32>, op: Trans| match op {
            Trans::N => (m.cols() as isize, 1isize),
            Trans::T => (1isize, m.cols() as isize),
        };
        let ((m, k), (_, n)) = (op_dims(&a, op_a), op_dims(&b, op_b));
        let ((rsa, csa), (rsb, csb)) = (strides(&a, op_a), strides(&b, op_b));
        let out = c.as_mut_slice();
        if m * n == 0 {
            return Ok(());
        }
        // SAFETY: the shapes were checked above against the slice lengths that MatRef
        // and MatMut guarantee (rows * cols), so every strided access is in bounds, and
        // C is a unique borrow that cannot alias A or B.
        unsafe {
            matrixmultiply::sgemm(
                m,
                k,
                n,
                alpha,
                a.as_slice().as_ptr(),
                rsa,
                csa,
                b.as_slice().as_ptr(),
                rsb,
                csb,
                beta,
                out.as_mut_ptr(),
                n as isize,
                1,
            );
        }
        Ok(())
    }

    fn spmm(
        &self,
        alpha: f32,
        a: CsrRef<'_, f32>,
        b: MatRef<'_, f32>,
        beta: f32,
        c: MatMut<'_, f32>,
    ) -> Result<()> {
        cpu::spmm(alpha, a, b, beta, c)
    }

    fn spmm_t(
        &self,
        alpha: f32,
        a: CsrRef<'_, f32>,
        plan: &TransposePlan,
        b: MatRef<'_, f32>,
        beta: f32,
        c: MatMut<'_, f32>,
    ) -> Result<()> {
        cpu::spmm_t(alpha, a, plan, b, beta, c)
    }

    fn sddmm(
        &self,
        alpha: f32,
        l: MatRef<'_, f32>,
        r: MatRef<'_, f32>,
        beta: f32,
        out: CsrMut<'_, f32>,
    ) -> Result<()> {
        cpu::sddmm(alpha, l, r, beta, out)
    }
}

/// The device a run asks for; [`Device::backend`] turns it into kernels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Device {
    /// The CPU backend.
    #[default]
    Cpu,
    /// GPU 0 through `rosa::cuda::CudaBackend` (feature `cuda`): the heavy products run
    /// on the GPU with their operands staged through host memory per call, so it checks
    /// the kernels inside the trainer but does not train fast.
    Cuda,
}

impl Device {
    /// The backend for this device: [`Error::NoDevice`] (with the driver's reason) when
    /// CUDA is asked for and there is no usable GPU, [`Error::Unsupported`] when this
    /// rosa was built without the `cuda` feature.
    ///
    /// ```
    /// use rosa::train::Device;
    /// assert_eq!(Device::Cpu.backend().unwrap().name(), "cpu");
    /// match Device::Cuda.backend() {
    ///     Ok(be) => assert_eq!(be.name(), "cuda"),
    ///     Err(e) => println!("no CUDA backend: {e}"),
    /// }
    /// ```
    pub fn backend(self) -> Result<Box<dyn Backend>> {
        match self {
            Device::Cpu => Ok(Box::new(Cpu)),
            Device::Cuda => cuda_backend(),
        }
    }
}

#[cfg(feature = "cuda")]
fn cuda_backend() -> Result<Box<dyn Backend>> {
    let dev = crate::cuda::Device::new(0)?;
    Ok(Box::new(crate::cuda::CudaBackend::new(&dev)?))
}

#[cfg(not(feature = "cuda"))]
fn cuda_backend() -> Result<Box<dyn Backend>> {
    // Never a CPU run labeled CUDA.
    Err(Error::Unsupported(
        "training on CUDA: this rosa was built without the cuda feature (rebuild with \
         --features cuda); use --device cpu"
            .into(),
    ))
}

impl std::str::FromStr for Device {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "cpu" => Ok(Device::Cpu),
            "cuda" | "gpu" => Ok(Device::Cuda),
            _ => Err(Error::InvalidArgument(format!(
                "unknown device '{s}' (expected cpu or cuda)"
            ))),
        }
    }
}
