//! The CUDA kernels against the CPU kernels and a dense float64 reference, on fresh random
//! inputs: every dtype and every compiled tile configuration, empty matrices and empty
//! rows, one row far longer than the rest, odd widths that leave B and C rows unaligned
//! for 16-byte vectors, non-trivial alpha and beta, outputs poisoned with NaN when beta = 0.
//!
//! `ROSA_GPU_CASES` overrides the number of random cases per op (default 48), and
//! `ROSA_GPU_BIG_CASES` the number of large fixed cases (default all 4).
//!
//! Without a GPU (or a driver) every GPU test prints a `skipped: no CUDA device (...)`
//! line and passes; the tile-table tests need no GPU and always run.
#![cfg(feature = "cuda")]

mod common;

use common::gpu::device;
use common::kernels::{case_up_to, cpu_sddmm, cpu_spmm, Case};
use common::{assert_close, gemm_ref, to64, tolerance, transpose, Expected};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use rosa::cuda::{self, Device, DeviceCsr, DeviceDense, KernelConfig, Op};
use rosa::{bf16, cpu, f16, random, CsrShape, Dense, Error, Scalar};

// ---------------------------------------------------------------- checks

/// GPU output against the f64 reference (within the rounding bound) and against the CPU
/// kernel (within twice it: both err, in different summation orders). NaN never passes.
fn assert_agree<T: Scalar>(what: &str, gpu: &[T], cpu: &[T], want: &[Expected]) {
    assert_close(what, gpu, want);
    for (i, ((g, c), w)) in gpu.iter().zip(cpu).zip(want).enumerate() {
        let (g, c) = (g.to_f32() as f64, c.to_f32() as f64);
        assert!(
            (g - c).abs() <= 2.0 * tolerance::<T>(w),
            "{what} ({}): element {i} is {g} on the GPU, {c} on the CPU",
            T::DTYPE
        );
    }
}

/// Small shapes (empty ones included) whose widths cross the vector and tile boundaries
/// of every configuration: up to 80 columns, so one, several and partial 16-byte vectors.
fn case() -> impl Strategy<Value = Case> {
    case_up_to(40, 40, 80, 8)
}

/// Larger fixed cases: several blocks, N past one column tile of the widest configuration
/// (grid.y > 1), one row holding a whole row of columns, odd widths.
fn big_cases() -> Vec<Case> {
    let base = Case {
        m: 300,
        k: 257,
        n: 131,
        mean_len: 9,
        long_row: Some(17),
        alpha: 0.75,
        beta: 0.0,
        seed: 0x5eed,
    };
    vec![
        base.clone(),
        Case {
            beta: -0.5,
            seed: 1,
            ..base.clone()
        },
        Case {
            m: 70,
            k: 1100,
            n: 1030,
            mean_len: 40,
            long_row: Some(3),
            alpha: -1.25,
            beta: 0.5,
            seed: 2,
        },
        Case {
            m: 1,
            k: 5000,
            n: 3,
            mean_len: 2000,
            long_row: Some(0),
            alpha: 1.0,
            beta: 0.0,
            seed: 3,
        },
    ]
}

fn check_spmm_op<T: cuda::CudaScalar>(
    dev: &Device,
    c: &Case,
    config: &KernelConfig,
    transposed: bool,
) {
    let what = format!("{} {config} {c:?}", config.op);
    let p = c.spmm::<T>(transposed);
    let cpu_c = cpu_spmm(c, &p, transposed);
    let da = DeviceCsr::from_host(dev, p.a.as_ref()).unwrap();
    let db = DeviceDense::from_host(dev, p.b.as_ref()).unwrap();
    let mut dc = DeviceDense::from_host(dev, p.c0.as_ref()).unwrap();
    if transposed {
        cuda::spmm_t_with(dev, config, c.alpha, &da, &db, c.beta, &mut dc)
    } else {
        cuda::spmm_with(dev, config, c.alpha, &da, &db, c.beta, &mut dc)
    }
    .unwrap();
    let gpu_c = dc.to_host().unwrap();
    assert_agree(&what, gpu_c.as_slice(), cpu_c.as_slice(), &p.want);
}

fn check_spmm<T: cuda::CudaScalar>(dev: &Device, c: &Case, config: &KernelConfig) {
    check_spmm_op::<T>(dev, c, config, false);
}

fn check_spmm_t<T: cuda::CudaScalar>(dev: &Device, c: &Case, config: &KernelConfig) {
    check_spmm_op::<T>(dev, c, config, true);
}

fn check_sddmm<T: cuda::CudaScalar>(dev: &Device, c: &Case, config: &KernelConfig) {
    let what = format!("sddmm {config} {c:?}");
    let p = c.sddmm::<T>();
    let cpu_out = cpu_sddmm(c, &p);
    let mut dout = DeviceCsr::from_host(dev, p.mask.as_ref()).unwrap();
    let dl = DeviceDense::from_host(dev, p.l.as_ref()).unwrap();
    let dr = DeviceDense::from_host(dev, p.r.as_ref()).unwrap();
    cuda::sddmm_with(dev, config, c.alpha, &dl, &dr, c.beta, &mut dout).unwrap();
    let gpu_vals = dout.values_to_host().unwrap();
    assert_agree(&what, &gpu_vals, cpu_out.values(), &p.want);
}

/// Runs `check` for every dtype and every configuration of `op`: on `cases` random cases
/// and then on the big fixed ones.
fn every_config(
    dev: &Device,
    op: Op,
    cases: u32,
    check: &dyn Fn(&Device, &Case, &KernelConfig, rosa::DType),
) {
    let configs = KernelConfig::all(op);
    assert!(!configs.is_empty(), "{op}: no compiled configuration");
    each_case(cases, |c| {
        for config in &configs {
            for dtype in rosa::DType::ALL {
                check(dev, c, config, dtype);
            }
        }
    });
}

/// Runs `run_one` on `cases` random cases, then on the big fixed ones.
fn each_case(cases: u32, run_one: impl Fn(&Case)) {
    // The GPU runner lowers the count under compute-sanitizer, where each launch is slow.
    let cases = std::env::var("ROSA_GPU_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(cases);
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&case(), |c| {
            run_one(&c);
            Ok(())
        })
        .unwrap();
    // The runner keeps one big case under the sanitizers (ROSA_GPU_BIG_CASES=1): it still
    // spans several blocks, a long row and an odd width.
    let big = std::env::var("ROSA_GPU_BIG_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(usize::MAX);
    for c in big_cases().into_iter().take(big) {
        run_one(&c);
    }
}

fn dispatch(
    f32_: fn(&Device, &Case, &KernelConfig),
    f16_: fn(&Device, &Case, &KernelConfig),
    bf16_: fn(&Device, &Case, &KernelConfig),
) -> impl Fn(&Device, &Case, &KernelConfig, rosa::DType) {
    move |dev, c, cfg, dtype| match dtype {
        rosa::DType::F32 => f32_(dev, c, cfg),
        rosa::DType::F16 => f16_(dev, c, cfg),
        rosa::DType::Bf16 => bf16_(dev, c, cfg),
    }
}

// ---------------------------------------------------------------- tests

#[test]
fn spmm_matches_references_for_every_dtype_and_config() {
    let Some(dev) = device("spmm") else { return };
    let check = dispatch(check_spmm::<f32>, check_spmm::<f16>, check_spmm::<bf16>);
    every_config(dev, Op::Spmm, 48, &check);
}

#[test]
fn spmm_t_matches_references_for_every_dtype_and_config() {
    let Some(dev) = device("spmm_t") else { return };
    let check = dispatch(
        check_spmm_t::<f32>,
        check_spmm_t::<f16>,
        check_spmm_t::<bf16>,
    );
    every_config(dev, Op::SpmmT, 48, &check);
}

#[test]
fn sddmm_matches_references_for_every_dtype_and_config() {
    let Some(dev) = device("sddmm") else { return };
    let check = dispatch(check_sddmm::<f32>, check_sddmm::<f16>, check_sddmm::<bf16>);
    every_config(dev, Op::Sddmm, 48, &check);
}

#[test]
fn default_launchers_match_the_cpu() {
    let Some(dev) = device("default launchers") else {
        return;
    };
    let c = &big_cases()[1];
    let a = c.sparse::<f32>(c.m, c.k);
    let b = random::dense::<f32>(c.k, c.n, 7);
    let mut want = Dense::zeros(c.m, c.n);
    cpu::spmm(1.0, a.as_ref(), b.as_ref(), 0.0, want.as_mut()).unwrap();
    let da = DeviceCsr::from_host(dev, a.as_ref()).unwrap();
    let db = DeviceDense::from_host(dev, b.as_ref()).unwrap();
    let mut dc = DeviceDense::filled(dev, c.m, c.n, f32::NAN).unwrap();
    cuda::spmm(dev, 1.0, &da, &db, 0.0, &mut dc).unwrap();
    let got = dc.to_host().unwrap();
    for (g, w) in got.as_slice().iter().zip(want.as_slice()) {
        assert!((g - w).abs() <= 1e-4 * (1.0 + w.abs()), "{g} vs {w}");
    }
    assert_eq!(da.to_host().unwrap(), a, "round trip of the CSR");
}

/// bf16 operands into an f32 C (`spmm_f32_out`, `spmm_t_f32_out`, the sparse terms of a
/// bf16 RoSA layer): held to f32's tolerance, so a result rounded to bf16 on the way fails.
/// Every tile of this variant runs on the emulator (tests/emu_kernels.rs); here the
/// launchers' own choice, on the random and big cases.
#[test]
fn f32_output_launchers_match_the_f64_reference() {
    let Some(dev) = device("f32-output SpMM") else {
        return;
    };
    let widen = |m: &Dense<bf16>| {
        Dense::from_vec(
            m.rows(),
            m.cols(),
            m.as_slice().iter().map(|v| v.to_f32()).collect(),
        )
        .unwrap()
    };
    let check = |c: &Case| {
        for transposed in [false, true] {
            let what = format!("f32-output spmm transposed={transposed} {c:?}");
            let p = c.spmm::<bf16>(transposed);
            // The bf16 inputs are exact in f32, so the f32 CPU kernel and the f64 reference
            // see the same values as the GPU.
            let a32 =
                p.a.with_values(p.a.values().iter().map(|v| v.to_f32()).collect())
                    .unwrap();
            let (b32, mut cpu_c) = (widen(&p.b), widen(&p.c0));
            if transposed {
                let plan = a32.transpose_plan();
                cpu::spmm_t(
                    c.alpha,
                    a32.as_ref(),
                    &plan,
                    b32.as_ref(),
                    c.beta,
                    cpu_c.as_mut(),
                )
            } else {
                cpu::spmm(c.alpha, a32.as_ref(), b32.as_ref(), c.beta, cpu_c.as_mut())
            }
            .unwrap();
            let da = DeviceCsr::from_host(dev, p.a.as_ref()).unwrap();
            let db = DeviceDense::from_host(dev, p.b.as_ref()).unwrap();
            let mut dc = DeviceDense::from_host(dev, widen(&p.c0).as_ref()).unwrap();
            if transposed {
                cuda::spmm_t_f32_out(dev, c.alpha, &da, &db, c.beta, &mut dc)
            } else {
                cuda::spmm_f32_out(dev, c.alpha, &da, &db, c.beta, &mut dc)
            }
            .unwrap();
            let gpu_c = dc.to_host().unwrap();
            assert_agree(&what, gpu_c.as_slice(), cpu_c.as_slice(), &p.want);
        }
    };
    each_case(24, check);
    // f16 operands have no f32-output kernel: a typed refusal, nothing launched.
    let a = DeviceCsr::from_host(dev, random::csr::<f16>(8, 6, 0.5, 1).unwrap().as_ref()).unwrap();
    let b = DeviceDense::<f16>::zeros(dev, 6, 4).unwrap();
    let mut c = DeviceDense::<f32>::zeros(dev, 8, 4).unwrap();
    let err = cuda::spmm_f32_out(dev, 1.0, &a, &b, 0.0, &mut c).unwrap_err();
    assert!(matches!(err, Error::Unsupported(_)), "{err}");
}

#[test]
fn launchers_refuse_bad_shapes_and_configs_before_launching() {
    let Some(dev) = device("argument checks") else {
        return;
    };
    let a = random::csr::<f32>(8, 6, 0.5, 1).unwrap();
    let da = DeviceCsr::from_host(dev, a.as_ref()).unwrap();
    let b = DeviceDense::<f32>::zeros(dev, 5, 4).unwrap(); // should be 6 x 4
    let mut c = DeviceDense::<f32>::zeros(dev, 8, 4).unwrap();
    let err = cuda::spmm(dev, 1.0, &da, &b, 0.0, &mut c).unwrap_err();
    assert!(matches!(err, Error::ShapeMismatch { .. }), "{err}");
    let b = DeviceDense::<f32>::zeros(dev, 6, 4).unwrap();
    let wrong_op = KernelConfig::get(Op::Sddmm, 0).unwrap();
    let err = cuda::spmm_with(dev, &wrong_op, 1.0, &da, &b, 0.0, &mut c).unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
    let err = cuda::spmm(dev, f32::NAN, &da, &b, 0.0, &mut c).unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
    let mut c_t = DeviceDense::<f32>::zeros(dev, 6, 4).unwrap();
    let err = cuda::spmm_t(dev, 1.0, &da, &b, 0.0, &mut c_t).unwrap_err(); // B must be 8 x 4
    assert!(matches!(err, Error::ShapeMismatch { .. }), "{err}");
    let mut out = DeviceCsr::from_host(dev, a.as_ref()).unwrap();
    let l = DeviceDense::<f32>::zeros(dev, 8, 3).unwrap();
    let r = DeviceDense::<f32>::zeros(dev, 6, 2).unwrap(); // k differs
    let err = cuda::sddmm(dev, 1.0, &l, &r, 0.0, &mut out).unwrap_err();
    assert!(matches!(err, Error::ShapeMismatch { .. }), "{err}");
    dev.synchronize().unwrap();
}

#[test]
fn event_timer_measures_a_launch() {
    let Some(dev) = device("event timer") else {
        return;
    };
    let a = random::csr::<f32>(2048, 2048, 0.01, 1).unwrap();
    let da = DeviceCsr::from_host(dev, a.as_ref()).unwrap();
    let db = DeviceDense::from_host(dev, random::dense::<f32>(2048, 256, 2).as_ref()).unwrap();
    let mut dc = DeviceDense::zeros(dev, 2048, 256).unwrap();
    let ms = dev
        .time_ms(|| cuda::spmm(dev, 1.0, &da, &db, 0.0, &mut dc))
        .unwrap();
    assert!(ms.is_finite() && ms >= 0.0, "{ms}");
    println!(
        "{}: spmm 2048x2048 1% x 256 in {ms:.3} ms",
        dev.info().unwrap()
    );
}

fn check_blas_gemm<T: cuda::BlasScalar>(dev: &Device, blas: &cuda::Blas) {
    use cuda::Transpose;
    let (m, k, n) = (37, 23, 19);
    for (ta, tb) in [
        (Transpose::No, Transpose::No),
        (Transpose::Yes, Transpose::No),
        (Transpose::No, Transpose::Yes),
        (Transpose::Yes, Transpose::Yes),
    ] {
        // Stored shapes, so that op(A) is m x k and op(B) is k x n.
        let (ar, ac) = if ta == Transpose::Yes { (k, m) } else { (m, k) };
        let (br, bc) = if tb == Transpose::Yes { (n, k) } else { (k, n) };
        let a = random::dense::<T>(ar, ac, 5);
        let b = random::dense::<T>(br, bc, 6);
        let (mut a64, mut b64) = (to64(&a), to64(&b));
        if ta == Transpose::Yes {
            a64 = transpose(&a64, ar, ac);
        }
        if tb == Transpose::Yes {
            b64 = transpose(&b64, br, bc);
        }
        let want = gemm_ref(1.0, &a64, &b64, 0.0, None, m, k, n);
        let da = DeviceDense::from_host(dev, a.as_ref()).unwrap();
        let db = DeviceDense::from_host(dev, b.as_ref()).unwrap();
        let mut dc = DeviceDense::filled(dev, m, n, T::from_f32(f32::NAN)).unwrap();
        blas.gemm(1.0, &da, ta, &db, tb, 0.0, &mut dc).unwrap();
        let got = dc.to_host().unwrap();
        for (i, (g, w)) in got.as_slice().iter().zip(&want).enumerate() {
            let g = g.to_f32() as f64;
            // Within f32 rounding for f32 (TF32 would miss this by far), output rounding
            // for f16/bf16.
            assert!(
                (g - w.value).abs() <= tolerance::<T>(w),
                "cuBLAS {} {ta:?} {tb:?}: element {i} is {g}, expected {}",
                T::DTYPE,
                w.value
            );
        }
    }
    let mut wrong = DeviceDense::<T>::zeros(dev, m + 1, n).unwrap();
    let a = DeviceDense::<T>::zeros(dev, m, k).unwrap();
    let b = DeviceDense::<T>::zeros(dev, k, n).unwrap();
    let err = blas
        .gemm(1.0, &a, Transpose::No, &b, Transpose::No, 0.0, &mut wrong)
        .unwrap_err();
    assert!(matches!(err, Error::ShapeMismatch { .. }), "{err}");
}

/// The GPU bench's baseline: row-major GEMM through cuBLAS, every transpose combination.
#[test]
fn cublas_gemm_matches_the_f64_reference() {
    let Some(dev) = device("cublas gemm") else {
        return;
    };
    let blas = cuda::Blas::new(dev).expect("cuBLAS loads on a GPU machine (LD_LIBRARY_PATH)");
    check_blas_gemm::<f32>(dev, &blas);
    check_blas_gemm::<f16>(dev, &blas);
    check_blas_gemm::<bf16>(dev, &blas);
}

/// `alpha` and `beta` reach cuBLAS as f32 whatever the dtype: with C = A B on entry,
/// `alpha A B + beta C` is `(alpha + beta) A B`, and alpha = 0.3, beta = -0.29 make that
/// 0.01 A B. Rounded to bf16 (0.30078125 and -0.2890625) they would give 0.0117 A B, 17%
/// off, far beyond the output's rounding. A and B hold small integers, so A B is exact in
/// every dtype.
fn check_gemm_scalars<T: cuda::BlasScalar>(dev: &Device, blas: &cuda::Blas) {
    use cuda::Transpose::No;
    let (m, k, n) = (24, 8, 16);
    let int = |r: usize, c: usize, seed: usize| {
        Dense::from_fn(r, c, |i, j| {
            T::from_f32(((i * 7 + j * 3 + seed) % 5) as f32 - 2.0)
        })
    };
    let (a, b) = (int(m, k, 1), int(k, n, 2));
    let ab: Vec<f64> = (0..m * n)
        .map(|p| {
            let (i, j) = (p / n, p % n);
            (0..k)
                .map(|l| {
                    a.as_slice()[i * k + l].to_f32() as f64
                        * b.as_slice()[l * n + j].to_f32() as f64
                })
                .sum()
        })
        .collect();
    let c0 = Dense::from_fn(m, n, |i, j| T::from_f32(ab[i * n + j] as f32));
    let (da, db) = (
        DeviceDense::from_host(dev, a.as_ref()).unwrap(),
        DeviceDense::from_host(dev, b.as_ref()).unwrap(),
    );
    let mut dc = DeviceDense::from_host(dev, c0.as_ref()).unwrap();
    blas.gemm(0.3, &da, No, &db, No, -0.29, &mut dc).unwrap();
    let got = dc.to_host().unwrap();
    for (i, (g, x)) in got.as_slice().iter().zip(&ab).enumerate() {
        let want = (0.3f64 - 0.29) * x;
        // The output's own rounding (2^-8 relative for bf16) plus f32 arithmetic.
        let tol = want.abs() * 2f64.powi(-7) + 1e-5;
        let g = g.to_f32() as f64;
        assert!(
            (g - want).abs() <= tol,
            "cuBLAS {} alpha 0.3, beta -0.29: element {i} is {g}, expected {want}",
            T::DTYPE
        );
    }
}

#[test]
fn cublas_gemm_takes_alpha_and_beta_unrounded() {
    let Some(dev) = device("cublas gemm scalars") else {
        return;
    };
    let blas = cuda::Blas::new(dev).expect("cuBLAS loads on a GPU machine (LD_LIBRARY_PATH)");
    check_gemm_scalars::<f32>(dev, &blas);
    check_gemm_scalars::<f16>(dev, &blas);
    check_gemm_scalars::<bf16>(dev, &blas);
}

/// One GPU driven from several threads at once, each `Device` with its own stream, gives
/// the bits one serial run gives: launches on different streams share no state.
#[test]
fn several_threads_and_streams_match_serial_use() {
    let Some(dev) = device("threads and streams") else {
        return;
    };
    let a = random::csr::<f32>(512, 384, 0.05, 11).unwrap();
    let b = random::dense::<f32>(384, 96, 12);
    let y = random::dense::<f32>(512, 96, 13);
    let run = |dev: &Device| {
        let da = DeviceCsr::from_host(dev, a.as_ref()).unwrap();
        let (db, dy) = (
            DeviceDense::from_host(dev, b.as_ref()).unwrap(),
            DeviceDense::from_host(dev, y.as_ref()).unwrap(),
        );
        let mut c = DeviceDense::filled(dev, 512, 96, f32::NAN).unwrap();
        let mut g = DeviceDense::filled(dev, 384, 96, f32::NAN).unwrap();
        for _ in 0..8 {
            cuda::spmm(dev, 1.0, &da, &db, 0.0, &mut c).unwrap();
            cuda::spmm_t(dev, 1.0, &da, &dy, 0.0, &mut g).unwrap();
        }
        (c.to_host().unwrap(), g.to_host().unwrap())
    };
    let serial = run(dev);
    let ordinal = dev.ordinal();
    let parallel: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| s.spawn(|| run(&Device::new(ordinal).unwrap())))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (c, g) in parallel {
        assert_eq!(c, serial.0, "SpMM on a second stream");
        assert_eq!(g, serial.1, "transposed SpMM on a second stream");
    }
}

// ---------------------------------------------------------------- no GPU needed

/// The splitting tiles on a power-law mask (rows far above the mean, so the long-row
/// blocks run): two runs of each product on the same inputs give the same bits, since the
/// partial sums meet in a fixed order and nothing is atomic (their values are checked by
/// the every-configuration tests above, whose long rows the splitting tiles split).
#[test]
fn split_tiles_are_bitwise_reproducible() {
    let Some(dev) = device("split determinism") else {
        return;
    };
    let (m, k, n) = (700, 900, 96);
    let a = random::csr_power_law::<f32>(m, k, 0.02, 1.2, 41).unwrap();
    let da = DeviceCsr::from_host(dev, a.as_ref()).unwrap();
    let b = DeviceDense::from_host(dev, random::dense::<f32>(k, n, 42).as_ref()).unwrap();
    let bt = DeviceDense::from_host(dev, random::dense::<f32>(m, n, 43).as_ref()).unwrap();
    let l = DeviceDense::from_host(dev, random::dense::<f32>(m, n, 44).as_ref()).unwrap();
    let r = DeviceDense::from_host(dev, random::dense::<f32>(k, n, 45).as_ref()).unwrap();
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<u32>>();
    for op in Op::ALL {
        for config in KernelConfig::all(op).iter().filter(|c| c.split > 0) {
            let run = || -> Vec<u32> {
                match op {
                    Op::Spmm | Op::SpmmT => {
                        let rows = if op == Op::Spmm { m } else { k };
                        let mut c = DeviceDense::<f32>::zeros(dev, rows, n).unwrap();
                        if op == Op::Spmm {
                            cuda::spmm_with(dev, config, 1.0, &da, &b, 0.0, &mut c).unwrap();
                        } else {
                            cuda::spmm_t_with(dev, config, 1.0, &da, &bt, 0.0, &mut c).unwrap();
                        }
                        bits(c.to_host().unwrap().as_slice())
                    }
                    Op::Sddmm => {
                        let mut out = DeviceCsr::from_host(dev, a.as_ref()).unwrap();
                        cuda::sddmm_with(dev, config, 1.0, &l, &r, 0.0, &mut out).unwrap();
                        bits(&out.values_to_host().unwrap())
                    }
                }
            };
            assert_eq!(run(), run(), "{config}: two runs differ");
        }
    }
    // The split did run: the mask has long rows for every splitting tile.
    let plain: Vec<usize> = KernelConfig::all(Op::Spmm)
        .iter()
        .filter(|c| c.split > 0)
        .map(|c| c.long_rows(a.row_ptr(), &a.row_swizzle()))
        .collect();
    assert!(plain.iter().all(|&l| l > 0), "{plain:?}");
}

#[test]
fn the_tile_table_is_enumerable_without_a_gpu() {
    for op in Op::ALL {
        let all = KernelConfig::all(op);
        assert!(all.len() >= 3, "{op}: {} configurations", all.len());
        for (i, c) in all.iter().enumerate() {
            assert_eq!((c.op, c.index), (op, i));
            assert!([4, 8, 16, 32].contains(&c.subwarp), "{c}");
            assert_eq!(c.threads, c.subwarp * c.block_rows, "{c}");
            assert!(c.threads <= 1024 && c.vectors >= 1, "{c}");
            assert_eq!(KernelConfig::get(op, i).unwrap(), *c);
        }
        assert!(KernelConfig::get(op, all.len()).is_err());
        for dim in [0, 1, 7, 64, 513, 100_000] {
            for dtype in rosa::DType::ALL {
                let h = KernelConfig::heuristic(op, dtype, dim);
                assert_eq!(h.op, op);
                assert!(all.contains(&h));
            }
        }
    }
    // SpMM and its transpose share one kernel template and hence one table.
    let shape = |c: &KernelConfig| (c.subwarp, c.block_rows, c.vectors);
    let spmm: Vec<_> = KernelConfig::all(Op::Spmm).iter().map(shape).collect();
    let spmm_t: Vec<_> = KernelConfig::all(Op::SpmmT).iter().map(shape).collect();
    assert_eq!(spmm, spmm_t);
    // Every op has a splitting tile, and names tell the tiles apart.
    for op in Op::ALL {
        let all = KernelConfig::all(op);
        assert!(all.iter().any(|c| c.split > 0), "{op}: no splitting tile");
        let names: std::collections::HashSet<String> = all.iter().map(|c| c.name()).collect();
        assert_eq!(names.len(), all.len(), "{op}: duplicate names");
    }
}

#[test]
fn no_gpu_is_an_error_not_a_panic() {
    match cuda::device_count() {
        Ok(n) => {
            let err = Device::new(n).unwrap_err();
            assert!(matches!(err, Error::NoDevice(_)), "{err}");
        }
        Err(e) => {
            assert!(matches!(e, Error::NoDevice(_)), "{e}");
            let err = Device::new(0).unwrap_err();
            assert!(matches!(err, Error::NoDevice(_)), "{err}");
            println!("no GPU here, as expected by this check: {err}");
        }
    }
}
