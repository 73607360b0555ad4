//! The CUDA kernels against the CPU kernels and a dense float64 reference, on fresh random
//! inputs: every dtype and every compiled tile configuration, empty matrices and empty
//! rows, one row far longer than the rest, odd widths that leave B and C rows unaligned
//! for 16-byte vectors, non-trivial alpha and beta, outputs poisoned with NaN when beta = 0.
//!
//! `ROSA_GPU_CASES` overrides the number of random cases per op (default 48).
//!
//! Without a GPU (or a driver) every GPU test prints a `skipped: no CUDA device (...)`
//! line and passes; the tile-table tests need no GPU and always run.
#![cfg(feature = "cuda")]

use std::io::Write;
use std::sync::OnceLock;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use rosa::cuda::{self, Device, DeviceCsr, DeviceDense, KernelConfig, Op};
use rosa::{bf16, cpu, f16, random, Csr, CsrShape, Dense, Error, Scalar};

/// The shared device, or `None` after printing why the test is skipped.
fn device(test: &str) -> Option<&'static Device> {
    static DEV: OnceLock<Result<Device, String>> = OnceLock::new();
    let dev = DEV.get_or_init(|| {
        Device::new(0).map_err(|e| match e {
            Error::NoDevice(why) => why,
            other => other.to_string(),
        })
    });
    match dev {
        Ok(dev) => Some(dev),
        Err(why) => {
            // Straight to stderr: the test harness captures println!, and a skip must be
            // visible in a plain `cargo test` log.
            let _ = writeln!(std::io::stderr(), "{test}: skipped: no CUDA device ({why})");
            None
        }
    }
}

// ---------------------------------------------------------------- references

/// One expected element: the exact value and the magnitude its rounding error scales with.
#[derive(Clone, Copy, Debug)]
struct Expected {
    value: f64,
    /// |alpha| * sum |terms| + |beta * c0|.
    scale: f64,
    /// f32 additions behind the value.
    terms: usize,
}

fn tolerance<T: Scalar>(w: &Expected) -> f64 {
    let subnormal = match T::DTYPE {
        rosa::DType::F16 => 2f64.powi(-24),
        rosa::DType::Bf16 => 2f64.powi(-133),
        rosa::DType::F32 => 2f64.powi(-149),
    };
    (T::epsilon() as f64 + (w.terms as f64 + 4.0) * f32::EPSILON as f64) * w.scale + subnormal
}

/// GPU output against the f64 reference (within the rounding bound) and against the CPU
/// kernel (within twice it: both err, in different summation orders). NaN never passes.
fn assert_close<T: Scalar>(what: &str, gpu: &[T], cpu: &[T], want: &[Expected]) {
    assert_eq!(gpu.len(), want.len(), "{what}: output length");
    assert_eq!(cpu.len(), want.len(), "{what}: CPU output length");
    for (i, ((g, c), w)) in gpu.iter().zip(cpu).zip(want).enumerate() {
        let (g, c) = (g.to_f32() as f64, c.to_f32() as f64);
        let tol = tolerance::<T>(w);
        assert!(
            (g - w.value).abs() <= tol,
            "{what} ({}): element {i} is {g}, expected {} (error {:e} > {tol:e})",
            T::DTYPE,
            w.value,
            (g - w.value).abs()
        );
        assert!(
            (g - c).abs() <= 2.0 * tol,
            "{what} ({}): element {i} is {g} on the GPU, {c} on the CPU",
            T::DTYPE
        );
    }
}

fn to64<T: Scalar>(v: &[T]) -> Vec<f64> {
    v.iter().map(|x| x.to_f32() as f64).collect()
}

/// alpha * A B + beta * C0 with A (m x k), B (k x n), C0 (m x n) dense row-major.
#[allow(clippy::too_many_arguments)]
fn gemm_ref(
    alpha: f64,
    a: &[f64],
    b: &[f64],
    beta: f64,
    c0: Option<&[f64]>,
    m: usize,
    k: usize,
    n: usize,
) -> Vec<Expected> {
    let mut out = Vec::with_capacity(m * n);
    for i in 0..m {
        for j in 0..n {
            let (mut v, mut s, mut t) = (0.0, 0.0, 0);
            for p in 0..k {
                let x = a[i * k + p] * b[p * n + j];
                t += usize::from(a[i * k + p] != 0.0);
                v += x;
                s += x.abs();
            }
            let c = c0.map_or(0.0, |c| c[i * n + j]);
            out.push(Expected {
                value: alpha * v + beta * c,
                scale: alpha.abs() * s + (beta * c).abs(),
                terms: t,
            });
        }
    }
    out
}

fn transpose(a: &[f64], m: usize, n: usize) -> Vec<f64> {
    let mut t = vec![0.0; a.len()];
    for i in 0..m {
        for j in 0..n {
            t[j * m + i] = a[i * n + j];
        }
    }
    t
}

// ---------------------------------------------------------------- cases

#[derive(Debug, Clone)]
struct Case {
    m: usize,
    k: usize,
    n: usize,
    mean_len: usize,
    long_row: Option<usize>,
    alpha: f32,
    beta: f32,
    seed: u64,
}

/// Small shapes (empty ones included) whose widths cross the vector and tile boundaries
/// of every configuration: up to 80 columns, so one, several and partial 16-byte vectors.
fn case() -> impl Strategy<Value = Case> {
    (0usize..40, 0usize..40, 0usize..80, 0usize..8, any::<u64>())
        .prop_flat_map(|(m, k, n, mean_len, seed)| {
            (
                Just((m, k, n, mean_len, seed)),
                proptest::option::of(0..m.max(1)),
                -2.0f32..2.0,
                prop_oneof![Just(0.0f32), -1.5f32..1.5],
            )
        })
        .prop_map(|((m, k, n, mean_len, seed), long, alpha, beta)| Case {
            m,
            k,
            n,
            mean_len,
            long_row: long.filter(|&r| r < m),
            alpha,
            beta,
            seed,
        })
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

impl Case {
    /// Row lengths with empty rows scattered through and optionally one full row.
    fn sparse<T: Scalar>(&self, rows: usize, cols: usize) -> Csr<T> {
        let lens: Vec<usize> = (0..rows)
            .map(|i| match self.long_row {
                Some(r) if r == i => cols,
                _ if i % 5 == 3 => 0,
                _ => (self.mean_len + i % 3).min(cols),
            })
            .collect();
        random::csr_with_row_lengths(rows, cols, &lens, self.seed).unwrap()
    }

    /// The output's starting value: NaN poison when it must not be read, else random.
    fn output<T: Scalar>(&self, rows: usize, cols: usize) -> Dense<T> {
        if self.beta == 0.0 {
            Dense::filled(rows, cols, T::from_f32(f32::NAN))
        } else {
            random::dense(rows, cols, self.seed ^ 0xC0)
        }
    }

    fn c0(&self, c: &[f64]) -> Option<Vec<f64>> {
        (self.beta != 0.0).then(|| c.to_vec())
    }
}

// ---------------------------------------------------------------- checks

fn check_spmm<T: cuda::CudaScalar>(dev: &Device, c: &Case, config: &KernelConfig) {
    let what = format!("spmm {config} {c:?}");
    let a = c.sparse::<T>(c.m, c.k);
    let b = random::dense::<T>(c.k, c.n, c.seed ^ 0xB);
    let c_init = c.output::<T>(c.m, c.n);

    let mut cpu_c = c_init.clone();
    cpu::spmm(c.alpha, a.as_ref(), b.as_ref(), c.beta, cpu_c.as_mut()).unwrap();

    let da = DeviceCsr::from_host(dev, a.as_ref()).unwrap();
    let db = DeviceDense::from_host(dev, b.as_ref()).unwrap();
    let mut dc = DeviceDense::from_host(dev, c_init.as_ref()).unwrap();
    cuda::spmm_with(dev, config, c.alpha, &da, &db, c.beta, &mut dc).unwrap();
    let gpu_c = dc.to_host().unwrap();

    let want = gemm_ref(
        c.alpha as f64,
        &to64(a.to_dense().as_slice()),
        &to64(b.as_slice()),
        c.beta as f64,
        c.c0(&to64(c_init.as_slice())).as_deref(),
        c.m,
        c.k,
        c.n,
    );
    assert_close(&what, gpu_c.as_slice(), cpu_c.as_slice(), &want);
}

fn check_spmm_t<T: cuda::CudaScalar>(dev: &Device, c: &Case, config: &KernelConfig) {
    let what = format!("spmm_t {config} {c:?}");
    // A is m x k; A^T B with B (m x n) gives C (k x n).
    let a = c.sparse::<T>(c.m, c.k);
    let b = random::dense::<T>(c.m, c.n, c.seed ^ 0xB);
    let c_init = c.output::<T>(c.k, c.n);
    let plan = a.transpose_plan();

    let mut cpu_c = c_init.clone();
    cpu::spmm_t(
        c.alpha,
        a.as_ref(),
        &plan,
        b.as_ref(),
        c.beta,
        cpu_c.as_mut(),
    )
    .unwrap();

    let da = DeviceCsr::from_host(dev, a.as_ref()).unwrap();
    let db = DeviceDense::from_host(dev, b.as_ref()).unwrap();
    let mut dc = DeviceDense::from_host(dev, c_init.as_ref()).unwrap();
    cuda::spmm_t_with(dev, config, c.alpha, &da, &db, c.beta, &mut dc).unwrap();
    let gpu_c = dc.to_host().unwrap();

    let at = transpose(&to64(a.to_dense().as_slice()), c.m, c.k);
    let want = gemm_ref(
        c.alpha as f64,
        &at,
        &to64(b.as_slice()),
        c.beta as f64,
        c.c0(&to64(c_init.as_slice())).as_deref(),
        c.k,
        c.m,
        c.n,
    );
    assert_close(&what, gpu_c.as_slice(), cpu_c.as_slice(), &want);
}

fn check_sddmm<T: cuda::CudaScalar>(dev: &Device, c: &Case, config: &KernelConfig) {
    let what = format!("sddmm {config} {c:?}");
    // Mask m x k (M x N in the op's terms), L (m x n), R (k x n): the dot length is c.n.
    let mut mask = c.sparse::<T>(c.m, c.k);
    if c.beta == 0.0 {
        mask.values_mut().fill(T::from_f32(f32::NAN));
    }
    let l = random::dense::<T>(c.m, c.n, c.seed ^ 0x1);
    let r = random::dense::<T>(c.k, c.n, c.seed ^ 0x2);
    let old = to64(mask.values());

    let mut cpu_out = mask.clone();
    cpu::sddmm(c.alpha, l.as_ref(), r.as_ref(), c.beta, cpu_out.as_mut()).unwrap();

    let mut dout = DeviceCsr::from_host(dev, mask.as_ref()).unwrap();
    let dl = DeviceDense::from_host(dev, l.as_ref()).unwrap();
    let dr = DeviceDense::from_host(dev, r.as_ref()).unwrap();
    cuda::sddmm_with(dev, config, c.alpha, &dl, &dr, c.beta, &mut dout).unwrap();
    let gpu_vals = dout.values_to_host().unwrap();

    let (l64, r64) = (to64(l.as_slice()), to64(r.as_slice()));
    let mut want = Vec::with_capacity(mask.nnz());
    for i in 0..c.m {
        let (cols, _) = mask.row(i);
        let start = mask.row_ptr()[i] as usize;
        for (q, &j) in cols.iter().enumerate() {
            let (mut v, mut s) = (0.0, 0.0);
            for p in 0..c.n {
                let x = l64[i * c.n + p] * r64[j as usize * c.n + p];
                v += x;
                s += x.abs();
            }
            let o = if c.beta != 0.0 { old[start + q] } else { 0.0 };
            want.push(Expected {
                value: c.alpha as f64 * v + c.beta as f64 * o,
                scale: (c.alpha as f64).abs() * s + (c.beta as f64 * o).abs(),
                terms: c.n,
            });
        }
    }
    assert_close(&what, &gpu_vals, cpu_out.values(), &want);
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
    let run_one = |c: &Case| {
        for config in &configs {
            for dtype in rosa::DType::ALL {
                check(dev, c, config, dtype);
            }
        }
    };
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
    for c in big_cases() {
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
        let (mut a64, mut b64) = (to64(a.as_slice()), to64(b.as_slice()));
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

// ---------------------------------------------------------------- no GPU needed

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
