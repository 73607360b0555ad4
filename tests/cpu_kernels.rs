//! The CPU kernels against a dense float64 reference on fresh random inputs: every dtype,
//! empty and one-column shapes, empty rows, one row far longer than the rest, non-trivial
//! alpha and beta, outputs poisoned with NaN when beta = 0.

mod common;

use common::kernels::*;
use proptest::prelude::*;
use rosa::{bf16, cpu, f16, random, Csr, CsrShape, Dense};

macro_rules! kernel_props {
    ($($name:ident: $check:ident::<$t:ty>;)*) => {
        proptest! {
            #![proptest_config(ProptestConfig::with_cases(96))]
            $(
                #[test]
                fn $name(c in case()) {
                    $check::<$t>(&c);
                }
            )*
        }
    };
}

kernel_props! {
    spmm_f32: check_spmm::<f32>;
    spmm_f16: check_spmm::<f16>;
    spmm_bf16: check_spmm::<bf16>;
    spmm_t_f32: check_spmm_t::<f32>;
    spmm_t_f16: check_spmm_t::<f16>;
    spmm_t_bf16: check_spmm_t::<bf16>;
    sddmm_f32: check_sddmm::<f32>;
    sddmm_f16: check_sddmm::<f16>;
    sddmm_bf16: check_sddmm::<bf16>;
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]
    /// Rows wide enough for every register block width of the AVX2 kernel (64, 32 and 8
    /// columns) and the columns left over.
    #[test]
    fn spmm_wide_rows(c in case_up_to(24, 24, 200, 6)) {
        check_spmm::<f32>(&c);
        check_spmm_t::<f32>(&c);
        check_spmm::<bf16>(&c);
    }
}

/// Many rows of the full register-block width (n = 256) and with every narrower block and
/// a scalar tail (n = 250), several thousand rows over B's rows, with beta = 0 and not.
#[test]
fn large_outputs_match_the_reference() {
    for (n, beta) in [(256, 0.0), (250, 0.0), (256, 0.5)] {
        let c = Case {
            m: 2100,
            k: 60,
            n,
            mean_len: 5,
            long_row: None,
            alpha: 1.25,
            beta,
            seed: 7 + n as u64,
        };
        check_spmm::<f32>(&c);
        check_spmm_t::<f32>(&Case {
            m: 60,
            k: 2100,
            ..c
        });
    }
}

/// Large enough that the work is cut into many tasks and one row is split by its
/// nonzeros over several threads, which small property cases never reach.
#[test]
fn parallel_split_of_a_skewed_matrix_matches_the_reference() {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(4)
        .build()
        .unwrap();
    pool.install(|| {
        for (m, k, n, long) in [(300, 3000, 64, Some(7)), (2000, 60, 8, None)] {
            let c = Case {
                m,
                k,
                n,
                mean_len: 9,
                long_row: long,
                alpha: 0.75,
                beta: 0.0,
                seed: 42 + m as u64,
            };
            check_spmm::<f32>(&c);
            check_spmm_t::<f32>(&c);
            check_spmm::<bf16>(&c);
            check_sddmm::<f32>(&Case { n: 40, ..c.clone() });
            let c = Case { beta: -0.5, ..c };
            check_spmm::<f16>(&c);
            check_spmm_t::<bf16>(&c);
        }
    });
}

#[test]
fn shape_mismatches_are_errors_naming_both_shapes() {
    let a = random::csr::<f32>(4, 5, 0.5, 1).unwrap();
    let b = Dense::<f32>::zeros(6, 3);
    let mut c = Dense::<f32>::zeros(4, 3);
    let err = cpu::spmm(1.0, a.as_ref(), b.as_ref(), 0.0, c.as_mut()).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("4 x 5") && msg.contains("6 x 3"), "{msg}");

    let plan = a.transpose_plan();
    let mut wrong = Dense::<f32>::zeros(4, 3);
    let b = Dense::<f32>::zeros(4, 3);
    let err = cpu::spmm_t(1.0, a.as_ref(), &plan, b.as_ref(), 0.0, wrong.as_mut()).unwrap_err();
    assert!(err.to_string().contains("4 x 3"), "{err}");

    let mut mask = a.clone();
    let (l, r) = (Dense::<f32>::zeros(4, 2), Dense::<f32>::zeros(5, 3));
    assert!(cpu::sddmm(1.0, l.as_ref(), r.as_ref(), 0.0, mask.as_mut()).is_err());
}

#[test]
fn a_plan_from_another_structure_is_refused() {
    let a = random::csr::<f32>(6, 6, 0.4, 1).unwrap();
    let other = random::csr::<f32>(6, 6, 0.4, 2).unwrap();
    let b = Dense::<f32>::zeros(6, 2);
    let mut c = Dense::<f32>::zeros(6, 2);
    let err = cpu::spmm_t(
        1.0,
        a.as_ref(),
        &other.transpose_plan(),
        b.as_ref(),
        0.0,
        c.as_mut(),
    )
    .unwrap_err();
    assert!(matches!(err, rosa::Error::PlanMismatch { .. }), "{err}");
    // New values on the same structure keep the plan valid.
    let scaled = a
        .with_values(a.values().iter().map(|v| v * 2.0).collect())
        .unwrap();
    cpu::spmm_t(
        1.0,
        scaled.as_ref(),
        &a.transpose_plan(),
        b.as_ref(),
        0.0,
        c.as_mut(),
    )
    .unwrap();
}

#[test]
fn non_finite_scaling_factors_are_rejected() {
    let a = random::csr::<f32>(3, 3, 0.5, 1).unwrap();
    let b = Dense::<f32>::zeros(3, 2);
    let mut c = Dense::<f32>::zeros(3, 2);
    for (alpha, beta) in [(f32::NAN, 0.0), (1.0, f32::INFINITY)] {
        let err = cpu::spmm(alpha, a.as_ref(), b.as_ref(), beta, c.as_mut()).unwrap_err();
        assert!(matches!(err, rosa::Error::InvalidArgument(_)), "{err}");
    }
}

#[test]
fn nan_and_inf_in_operands_propagate() {
    let a = Csr::from_parts(2, 2, vec![0, 1, 2], vec![0, 1], vec![f32::NAN, 1.0]).unwrap();
    let b = Dense::from_vec(2, 2, vec![1.0f32, 1.0, f32::INFINITY, 0.0]).unwrap();
    let mut c = Dense::zeros(2, 2);
    cpu::spmm(1.0, a.as_ref(), b.as_ref(), 0.0, c.as_mut()).unwrap();
    let c = c.as_slice();
    assert!(c[0].is_nan() && c[1].is_nan());
    assert_eq!((c[2], c[3]), (f32::INFINITY, 0.0));
}
