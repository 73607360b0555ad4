//! The GPU bench's baselines against the dense f64 reference: cuSPARSE's CSR SpMM (both
//! algorithms, both ways) and SDDMM for every dtype it supports, and cuBLAS's TF32 mode.
//! A case cuSPARSE declines must be declined as `Error::Unsupported`, by the one rule
//! `rosa::cuda::Sparse` documents and the bench reports as "n/a"; any other error fails
//! here. f32 ALG2 on A as stored and f32 SDDMM, the baselines the targets are quoted
//! against, must run: a refusal there is a failure too.
//!
//! Without a GPU every test prints a `skipped: no CUDA device (...)` line and passes.
#![cfg(feature = "cuda")]

mod common;

use common::assert_close;
use common::gpu::device;
use common::kernels::Case;
use rosa::cuda::{
    Blas, CudaScalar, Device, DeviceCsr, DeviceDense, Math, Sparse, SpmmAlg, Transpose,
};
use rosa::{bf16, f16, random, Error, Scalar};

/// Several blocks, one long row, odd widths; beta nonzero so C is read, not poisoned.
fn cases() -> [Case; 2] {
    [
        Case {
            m: 300,
            k: 257,
            n: 131,
            mean_len: 9,
            long_row: Some(17),
            alpha: 0.75,
            beta: 0.5,
            seed: 0xc5,
        },
        Case {
            m: 70,
            k: 1100,
            n: 64,
            mean_len: 40,
            long_row: Some(3),
            alpha: -1.25,
            beta: -1.0,
            seed: 0xc6,
        },
    ]
}

fn sparse(dev: &Device) -> Sparse {
    Sparse::new(dev).expect("cuSPARSE loads on a GPU machine (LD_LIBRARY_PATH)")
}

/// Runs one SpMM plan per algorithm and direction; returns what ran, failing on anything
/// but a clean "not supported".
fn spmm_cases<T: CudaScalar>(dev: &Device, sparse: &Sparse) -> Vec<(SpmmAlg, bool)> {
    let mut ran = Vec::new();
    for c in cases() {
        for transposed in [false, true] {
            let p = c.spmm::<T>(transposed);
            let da = DeviceCsr::from_host(dev, p.a.as_ref()).unwrap();
            let db = DeviceDense::from_host(dev, p.b.as_ref()).unwrap();
            for alg in SpmmAlg::ALL {
                let what = format!("cuSPARSE {} transposed={transposed} {c:?}", alg.name());
                let mut dc = DeviceDense::from_host(dev, p.c0.as_ref()).unwrap();
                let ta = if transposed {
                    Transpose::Yes
                } else {
                    Transpose::No
                };
                match sparse.spmm(alg, c.alpha, &da, ta, &db, c.beta, &mut dc) {
                    Ok(mut plan) => {
                        plan.run().unwrap();
                        drop(plan);
                        assert_close(&what, dc.to_host().unwrap().as_slice(), &p.want);
                        ran.push((alg, transposed));
                    }
                    Err(Error::Unsupported(why)) => eprintln!("{what} ({}): {why}", T::DTYPE),
                    Err(e) => panic!("{what} ({}): {e}", T::DTYPE),
                }
            }
        }
    }
    ran
}

#[test]
fn cusparse_spmm_matches_the_reference_or_declines_cleanly() {
    let Some(dev) = device("cusparse spmm") else {
        return;
    };
    let sparse = sparse(dev);
    let f32_ran = spmm_cases::<f32>(dev, &sparse);
    assert!(
        f32_ran.contains(&(SpmmAlg::Csr2, false)),
        "f32 ALG2 must run: {f32_ran:?}"
    );
    spmm_cases::<f16>(dev, &sparse);
    spmm_cases::<bf16>(dev, &sparse);
}

#[test]
fn a_spmm_plan_runs_again_with_the_same_result() {
    let Some(dev) = device("cusparse plan reuse") else {
        return;
    };
    let sparse = sparse(dev);
    let c = Case {
        beta: 0.0,
        ..cases()[0].clone()
    };
    let p = c.spmm::<f32>(false);
    let da = DeviceCsr::from_host(dev, p.a.as_ref()).unwrap();
    let db = DeviceDense::from_host(dev, p.b.as_ref()).unwrap();
    // Zeros, not the NaN poison: cuSPARSE may scale C by beta = 0 rather than skip it.
    let mut dc = DeviceDense::zeros(dev, c.m, c.n).unwrap();
    let mut plan = sparse
        .spmm(
            SpmmAlg::Csr2,
            c.alpha,
            &da,
            Transpose::No,
            &db,
            0.0,
            &mut dc,
        )
        .unwrap();
    plan.run().unwrap();
    plan.run().unwrap();
    drop(plan);
    assert_close("ALG2 run twice", dc.to_host().unwrap().as_slice(), &p.want);
}

fn sddmm_case<T: CudaScalar>(dev: &Device, sparse: &Sparse) -> bool {
    let mut ran = true;
    for c in cases() {
        let p = c.sddmm::<T>();
        let what = format!("cuSPARSE SDDMM {c:?} ({})", T::DTYPE);
        let mut out = DeviceCsr::from_host(dev, p.mask.as_ref()).unwrap();
        let dl = DeviceDense::from_host(dev, p.l.as_ref()).unwrap();
        let dr = DeviceDense::from_host(dev, p.r.as_ref()).unwrap();
        match sparse.sddmm(c.alpha, &dl, &dr, c.beta, &mut out) {
            Ok(mut plan) => {
                plan.run().unwrap();
                drop(plan);
                assert_close(&what, &out.values_to_host().unwrap(), &p.want);
            }
            Err(Error::Unsupported(why)) => {
                eprintln!("{what}: {why}");
                ran = false;
            }
            Err(e) => panic!("{what}: {e}"),
        }
    }
    ran
}

#[test]
fn cusparse_sddmm_matches_the_reference_or_declines_cleanly() {
    let Some(dev) = device("cusparse sddmm") else {
        return;
    };
    let sparse = sparse(dev);
    assert!(sddmm_case::<f32>(dev, &sparse), "f32 SDDMM must run");
    sddmm_case::<f16>(dev, &sparse);
    sddmm_case::<bf16>(dev, &sparse);
}

#[test]
fn cusparse_refuses_mismatched_shapes_before_calling_the_library() {
    let Some(dev) = device("cusparse shapes") else {
        return;
    };
    let sparse = sparse(dev);
    let a = random::csr::<f32>(8, 6, 0.5, 1).unwrap();
    let da = DeviceCsr::from_host(dev, a.as_ref()).unwrap();
    let b = DeviceDense::<f32>::zeros(dev, 8, 4).unwrap(); // A B needs 6 rows
    let mut c = DeviceDense::<f32>::zeros(dev, 8, 4).unwrap();
    let err = sparse
        .spmm(SpmmAlg::Csr2, 1.0, &da, Transpose::No, &b, 0.0, &mut c)
        .err()
        .unwrap();
    assert!(matches!(err, Error::ShapeMismatch { .. }), "{err}");
    let mut mask = DeviceCsr::from_host(dev, a.as_ref()).unwrap();
    let l = DeviceDense::<f32>::zeros(dev, 8, 3).unwrap();
    let r = DeviceDense::<f32>::zeros(dev, 6, 2).unwrap(); // inner 3 vs 2
    let err = sparse.sddmm(1.0, &l, &r, 0.0, &mut mask).err().unwrap();
    assert!(matches!(err, Error::ShapeMismatch { .. }), "{err}");
}

#[test]
fn cublas_tf32_stays_within_tf32_rounding_of_f32() {
    let Some(dev) = device("cublas tf32") else {
        return;
    };
    let (m, k, n) = (192, 512, 96);
    let a = random::dense::<f32>(m, k, 1);
    let b = random::dense::<f32>(k, n, 2);
    let (da, db) = (
        DeviceDense::from_host(dev, a.as_ref()).unwrap(),
        DeviceDense::from_host(dev, b.as_ref()).unwrap(),
    );
    let mut out = Vec::new();
    for math in [Math::F32, Math::Tf32] {
        let blas = Blas::with_math(dev, math).expect("cuBLAS loads");
        assert_eq!(blas.math(), math);
        let mut dc = DeviceDense::zeros(dev, m, n).unwrap();
        blas.gemm(1.0, &da, Transpose::No, &db, Transpose::No, 0.0, &mut dc)
            .unwrap();
        out.push(dc.to_host().unwrap());
    }
    // TF32 keeps 10 mantissa bits: each product errs by about 2^-10 of |a b|, so the
    // difference stays far under 2^-9 of sum |a| |b| (random values are in [-1, 1]).
    let bound = 2f64.powi(-9) * k as f64;
    for (i, (x, y)) in out[0].as_slice().iter().zip(out[1].as_slice()).enumerate() {
        let d = (x.to_f32() as f64 - y.to_f32() as f64).abs();
        assert!(d <= bound, "element {i}: f32 {x}, TF32 {y}");
    }
}
