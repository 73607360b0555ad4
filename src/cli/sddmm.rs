//! `rosa sddmm`: out = (L R^T) sampled at a mask, from files.

use std::path::PathBuf;

use rosa::{cpu, io, with_dtype, CsrShape, DType, Error, Result, Scalar};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The mask (M x N), Matrix Market (coordinate, or array for its nonzeros); its
    /// values are ignored.
    #[arg(long, value_name = "M.mtx")]
    mask: PathBuf,
    /// Dense L (M x k), NPY or Matrix Market array.
    #[arg(long, value_name = "L.npy")]
    lhs: PathBuf,
    /// Dense R (N x k), NPY or Matrix Market array.
    #[arg(long, value_name = "R.npy")]
    rhs: PathBuf,
    /// Where to write the result (Matrix Market, the mask's structure).
    #[arg(long, value_name = "O.mtx")]
    out: PathBuf,
    /// Element type of the computation (accumulation is always f32).
    #[arg(long, default_value = "f32")]
    dtype: DType,
}

pub fn run(args: &Args) -> Result<()> {
    with_dtype!(args.dtype, T => run_typed::<T>(args))
}

fn run_typed<T: Scalar>(args: &Args) -> Result<()> {
    let mut mask = io::read_mtx_pattern::<T>(&args.mask)?;
    let l = io::read_dense::<T>(&args.lhs)?;
    let r = io::read_dense::<T>(&args.rhs)?;
    if l.rows() != mask.rows() || r.rows() != mask.cols() || l.cols() != r.cols() {
        return Err(Error::ShapeMismatch {
            op: "sddmm",
            detail: format!(
                "{} is {} x {}, {} is {} x {}, {} is {} x {}: need mask M x N, L M x k, R N x k",
                args.mask.display(),
                mask.rows(),
                mask.cols(),
                args.lhs.display(),
                l.rows(),
                l.cols(),
                args.rhs.display(),
                r.rows(),
                r.cols()
            ),
        });
    }
    cpu::sddmm(1.0, l.as_ref(), r.as_ref(), 0.0, mask.as_mut())?;
    io::write_mtx(&args.out, &mask)
}
