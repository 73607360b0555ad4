//! The trainer's [`Backend`] on the GPU, staging every operand through host memory.

use super::{Blas, Device, DeviceCsr, DeviceDense, Transpose};
use crate::train::backend::check_gemm;
use crate::train::{Backend, Trans};
use crate::{cpu, CsrMut, CsrRef, MatMut, MatRef, Result, TransposePlan};

/// [`Backend`] on a GPU: our SpMM, transposed SpMM and SDDMM kernels ([`super::spmm`],
/// [`super::spmm_t`], [`super::sddmm`]) and cuBLAS's f32 GEMM ([`Blas`], full f32, never
/// TF32), so results match [`crate::train::Cpu`] to f32 rounding.
///
/// Every call uploads its operands (and C too when `beta != 0`), runs one product and
/// waits for the result to come back into the caller's host buffer; each sparse upload
/// also rebuilds the swizzle and transpose plan on the host. So this backend proves the kernels inside
/// the trainer, not training speed: the step time it reports is dominated by copies.
/// [`super::DeviceRosaLinear`] is the device-resident path. It refuses the same
/// arguments as the CPU backend with the same errors, checked before anything is copied.
///
/// ```no_run
/// use rosa::cuda::{CudaBackend, Device};
/// use rosa::train::{Backend, Trans};
/// use rosa::Dense;
/// let be = CudaBackend::new(&Device::new(0)?)?;
/// let a = rosa::random::dense::<f32>(4, 3, 1);
/// let b = rosa::random::dense::<f32>(4, 2, 2);
/// let mut c = Dense::zeros(3, 2);
/// be.gemm(1.0, a.as_ref(), Trans::T, b.as_ref(), Trans::N, 0.0, c.as_mut())?; // C = A^T B
/// assert_eq!(be.name(), "cuda");
/// # Ok::<(), rosa::Error>(())
/// ```
#[derive(Debug)]
pub struct CudaBackend {
    dev: Device,
    blas: Blas,
}

impl CudaBackend {
    /// A backend on `dev`'s stream; an `Err` if cuBLAS cannot be loaded.
    pub fn new(dev: &Device) -> Result<Self> {
        Ok(CudaBackend {
            dev: dev.clone(),
            blas: Blas::new(dev)?,
        })
    }

    /// C on the device: uploaded when `beta != 0`, else zeros, since no product reads C
    /// then and the copy would be wasted.
    fn stage_out(&self, c: &MatMut<'_, f32>, beta: f32) -> Result<DeviceDense<f32>> {
        if beta == 0.0 {
            DeviceDense::zeros(&self.dev, c.rows(), c.cols())
        } else {
            DeviceDense::from_host(&self.dev, c.as_ref())
        }
    }

    fn up(&self, m: MatRef<'_, f32>) -> Result<DeviceDense<f32>> {
        DeviceDense::from_host(&self.dev, m)
    }
}

/// Copies the device result back into the caller's C (the download waits for the product).
fn download(d: &DeviceDense<f32>, mut c: MatMut<'_, f32>) -> Result<()> {
    c.as_mut_slice().copy_from_slice(d.to_host()?.as_slice());
    Ok(())
}

impl Backend for CudaBackend {
    fn name(&self) -> &'static str {
        "cuda"
    }

    fn gemm(
        &self,
        alpha: f32,
        a: MatRef<'_, f32>,
        op_a: Trans,
        b: MatRef<'_, f32>,
        op_b: Trans,
        beta: f32,
        c: MatMut<'_, f32>,
    ) -> Result<()> {
        check_gemm(alpha, &a, op_a, &b, op_b, beta, &c)?;
        let t = |op| match op {
            Trans::N => Transpose::No,
            Trans::T => Transpose::Yes,
        };
        let mut dc = self.stage_out(&c, beta)?;
        self.blas.gemm(
            alpha,
            &self.up(a)?,
            t(op_a),
            &self.up(b)?,
            t(op_b),
            beta,
            &mut dc,
        )?;
        download(&dc, c)
    }

    fn spmm(
        &self,
        alpha: f32,
        a: CsrRef<'_, f32>,
        b: MatRef<'_, f32>,
        beta: f32,
        c: MatMut<'_, f32>,
    ) -> Result<()> {
        cpu::check_spmm(alpha, &a, &b, beta, &c)?;
        let mut dc = self.stage_out(&c, beta)?;
        let da = DeviceCsr::from_host(&self.dev, a)?;
        super::spmm(&self.dev, alpha, &da, &self.up(b)?, beta, &mut dc)?;
        download(&dc, c)
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
        // The upload builds the device's own plan from A; `plan` is still checked, so a
        // plan from another matrix is refused here exactly as on the CPU.
        cpu::check_spmm_t(alpha, &a, plan, &b, beta, &c)?;
        let mut dc = self.stage_out(&c, beta)?;
        let da = DeviceCsr::from_host(&self.dev, a)?;
        super::spmm_t(&self.dev, alpha, &da, &self.up(b)?, beta, &mut dc)?;
        download(&dc, c)
    }

    fn sddmm(
        &self,
        alpha: f32,
        l: MatRef<'_, f32>,
        r: MatRef<'_, f32>,
        beta: f32,
        mut out: CsrMut<'_, f32>,
    ) -> Result<()> {
        cpu::check_sddmm(alpha, &l, &r, beta, &out)?;
        // The mask's structure has to go up anyway; its old values ride along and are
        // only read when beta != 0.
        let mut dout = DeviceCsr::from_host(&self.dev, out.as_ref())?;
        super::sddmm(
            &self.dev,
            alpha,
            &self.up(l)?,
            &self.up(r)?,
            beta,
            &mut dout,
        )?;
        out.values_mut().copy_from_slice(&dout.values_to_host()?);
        Ok(())
    }
}
