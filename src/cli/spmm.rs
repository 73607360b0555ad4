//! `rosa spmm`: C = A B or A^T B from files.

use std::path::{Path, PathBuf};

use rosa::{cpu, io, with_dtype, CsrShape, DType, Dense, Error, Result, Scalar};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Sparse A (M x K), Matrix Market (coordinate, or array for its nonzeros).
    #[arg(long, value_name = "A.mtx")]
    sparse: PathBuf,
    /// Dense B, NPY or Matrix Market array: K x N, or M x N with --transpose.
    #[arg(long, value_name = "B.npy")]
    dense: PathBuf,
    /// Where to write C (NPY): M x N, or K x N with --transpose.
    #[arg(long, value_name = "C.npy")]
    out: PathBuf,
    /// Compute A^T B (through A's transpose plan) instead of A B.
    #[arg(long)]
    transpose: bool,
    /// Element type of the computation (accumulation is always f32).
    #[arg(long, default_value = "f32")]
    dtype: DType,
}

pub fn run(args: &Args) -> Result<()> {
    with_dtype!(args.dtype, T => run_typed::<T>(args))
}

fn name(p: &Path) -> String {
    p.display().to_string()
}

fn run_typed<T: Scalar>(args: &Args) -> Result<()> {
    let a = io::read_mtx::<T>(&args.sparse)?;
    let b = io::read_dense::<T>(&args.dense)?;
    let (inner, out_rows, need) = if args.transpose {
        (a.rows(), a.cols(), "A's rows (A^T B)")
    } else {
        (a.cols(), a.rows(), "A's columns (A B)")
    };
    if b.rows() != inner {
        return Err(Error::ShapeMismatch {
            op: if args.transpose {
                "spmm --transpose"
            } else {
                "spmm"
            },
            detail: format!(
                "{} is {} x {} but {} is {} x {}: B's rows must equal {need}",
                name(&args.sparse),
                a.rows(),
                a.cols(),
                name(&args.dense),
                b.rows(),
                b.cols()
            ),
        });
    }
    super::check_output_size("output C", out_rows, b.cols(), T::DTYPE.size())?;
    let mut c = Dense::<T>::try_zeros(out_rows, b.cols(), "output C")?;
    if c.as_slice().is_empty() {
        // Nothing to compute: an empty C needs no transpose plan (O(K) memory).
    } else if args.transpose {
        let plan = a.try_transpose_plan()?;
        cpu::spmm_t(1.0, a.as_ref(), &plan, b.as_ref(), 0.0, c.as_mut())?;
    } else {
        cpu::spmm(1.0, a.as_ref(), b.as_ref(), 0.0, c.as_mut())?;
    }
    io::write_npy(&args.out, c.as_ref())
}
