//! CSR construction: every malformed input rejected with its own error, and the
//! derived structures (transpose plan, swizzle, statistics, conversions) exact.

use proptest::prelude::*;
use rosa::{bf16, random, Csr, CsrMut, CsrRef, CsrShape, Dense, Error};

fn parts(rows: usize, cols: usize, rp: &[i32], ci: &[i32], nv: usize) -> Error {
    let values = vec![1.0f32; nv];
    let owned = Csr::from_parts(rows, cols, rp.to_vec(), ci.to_vec(), values.clone());
    let view = CsrRef::new(rows, cols, rp, ci, &values);
    let mut vals = values.clone();
    let mutable = CsrMut::new(rows, cols, rp, ci, &mut vals);
    // The three constructors share one validator and must agree.
    let (e1, e2, e3) = (owned.unwrap_err(), view.unwrap_err(), mutable.unwrap_err());
    assert_eq!(e1.to_string(), e2.to_string());
    assert_eq!(e1.to_string(), e3.to_string());
    e1
}

#[test]
fn each_malformed_structure_has_its_own_error() {
    use Error::*;
    assert!(matches!(
        parts(2, 3, &[0, 1], &[0], 1),
        RowPtrLength {
            got: 2,
            expected: 3
        }
    ));
    assert!(matches!(
        parts(1, 3, &[1, 1], &[0], 1),
        RowPtrStart { got: 1 }
    ));
    assert!(matches!(
        parts(3, 3, &[0, 2, 1, 2], &[0, 1], 2),
        RowPtrDecreasing {
            row: 1,
            start: 2,
            end: 1
        }
    ));
    assert!(matches!(
        parts(1, 3, &[0, 1], &[0, 1], 2),
        RowPtrEnd { got: 1, nnz: 2 }
    ));
    assert!(matches!(
        parts(1, 3, &[0, 3], &[0, 1], 2),
        RowPtrEnd { got: 3, nnz: 2 }
    ));
    assert!(matches!(
        parts(2, 3, &[0, 1, 2], &[0, 3], 2),
        ColumnOutOfRange {
            row: 1,
            index: 1,
            col: 3,
            cols: 3
        }
    ));
    assert!(matches!(
        parts(1, 3, &[0, 1], &[-1], 1),
        ColumnOutOfRange { col: -1, .. }
    ));
    assert!(matches!(
        parts(1, 4, &[0, 3], &[0, 2, 1], 3),
        ColumnsUnsorted {
            row: 0,
            index: 2,
            prev: 2,
            col: 1
        }
    ));
    assert!(matches!(
        parts(2, 4, &[0, 1, 3], &[0, 2, 2], 3),
        ColumnRepeated {
            row: 1,
            index: 2,
            col: 2
        }
    ));
    assert!(matches!(
        parts(1, 3, &[0, 1], &[0], 2),
        ValuesLength { got: 2, nnz: 1 }
    ));
    let big = i32::MAX as usize + 1;
    assert!(matches!(
        parts(big, 3, &[0], &[], 0),
        IndexOverflow { what: "rows", .. }
    ));
    assert!(matches!(
        parts(1, big, &[0, 0], &[], 0),
        IndexOverflow { what: "cols", .. }
    ));
}

#[test]
fn error_messages_name_the_offending_place() {
    let msg = parts(2, 4, &[0, 1, 3], &[0, 2, 2], 3).to_string();
    assert!(msg.contains("row 1") && msg.contains("index 2"), "{msg}");
}

#[test]
fn triplets_sum_duplicates_and_reject_out_of_range() {
    let a = Csr::from_triplets(
        3,
        3,
        &[(2, 1, 1.0f32), (0, 2, 2.0), (2, 1, 3.0), (0, 0, 0.0)],
    )
    .unwrap();
    assert_eq!(a.row_ptr(), &[0, 2, 2, 3]);
    assert_eq!(a.col_idx(), &[0, 2, 1]);
    assert_eq!(a.values(), &[0.0, 2.0, 4.0]); // the explicit zero stays stored
    let err = Csr::from_triplets(3, 3, &[(0, 0, 1.0f32), (1, 3, 1.0)]).unwrap_err();
    assert!(
        matches!(
            err,
            Error::TripletOutOfRange {
                index: 1,
                col: 3,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn empty_shapes_are_valid() {
    for (r, c) in [(0, 0), (0, 5), (5, 0), (3, 3)] {
        let a = Csr::<f32>::empty(r, c).unwrap();
        assert_eq!((a.rows(), a.cols(), a.nnz(), a.density()), (r, c, 0, 0.0));
        assert_eq!(a.to_dense(), Dense::zeros(r, c));
        assert_eq!(a.transpose_plan().row_ptr().len(), c + 1);
        assert_eq!(a.row_swizzle().len(), r);
    }
}

#[test]
fn row_stats_match_a_direct_computation() {
    let a = random::csr_with_row_lengths::<f32>(4, 10, &[0, 10, 2, 4], 3).unwrap();
    let s = a.row_stats();
    assert_eq!((s.min, s.max, s.mean), (0, 10, 4.0));
    let var = (16.0 + 36.0 + 4.0 + 0.0) / 4.0;
    assert!((s.cv - f64::sqrt(var) / 4.0).abs() < 1e-12);
}

#[test]
fn with_values_checks_the_length() {
    let a = random::csr::<f32>(3, 3, 0.5, 5).unwrap();
    assert!(a.with_values(vec![bf16::ONE; a.nnz() + 1]).is_err());
    let b = a.with_values(vec![bf16::ONE; a.nnz()]).unwrap();
    assert_eq!(b.structure_id(), a.structure_id());
}

#[test]
fn power_law_masks_keep_their_density_and_skew() {
    // The tuner's skewed grid shapes (smaller), including a density where the heaviest
    // rows would exceed the row width and must pass their excess on.
    for (m, k, d) in [(4096, 1024, 0.02), (1024, 4096, 0.003), (2048, 512, 0.05)] {
        let a = random::csr_power_law::<f32>(m, k, d, 1.5, 11).unwrap();
        let s = a.row_stats();
        let want = d * (m * k) as f64;
        assert!(
            (a.nnz() as f64 - want).abs() < 0.02 * want,
            "{m}x{k} at {d}: {} entries, want about {want}",
            a.nnz()
        );
        assert!(s.max <= k && s.cv > 1.5, "{m}x{k} at {d}: {s:?}");
        assert!(s.max as f64 > 15.0 * s.mean, "{m}x{k} at {d}: {s:?}");
        // Same seed, same matrix; the uniform generator's spread is far smaller.
        assert_eq!(random::csr_power_law::<f32>(m, k, d, 1.5, 11).unwrap(), a);
        assert!(random::csr::<f32>(m, k, d, 11).unwrap().row_stats().cv < 0.5);
    }
    // A lighter tail spreads less.
    let light = random::csr_power_law::<f32>(4096, 1024, 0.02, 4.0, 11).unwrap();
    assert!(light.row_stats().cv < 1.0, "{:?}", light.row_stats());
    for (d, e) in [
        (0.01, 0.0),
        (0.01, -1.0),
        (0.01, f64::NAN),
        (0.01, f64::INFINITY),
        (1.5, 1.5),
    ] {
        assert!(
            matches!(
                random::csr_power_law::<f32>(10, 10, d, e, 1),
                Err(Error::InvalidArgument(_))
            ),
            "density {d}, exponent {e}"
        );
    }
    assert_eq!(
        random::csr_power_law::<f32>(0, 10, 0.1, 1.5, 1)
            .unwrap()
            .nnz(),
        0
    );
}

fn matrix() -> impl Strategy<Value = Csr<f32>> {
    (0usize..20, 0usize..20, 0.0f64..0.6, any::<u64>())
        .prop_map(|(r, c, d, seed)| random::csr::<f32>(r, c, d, seed).unwrap())
}

proptest! {
    #[test]
    fn transpose_plan_is_the_transpose(a in matrix()) {
        let plan = a.transpose_plan();
        let (m, k) = (a.rows(), a.cols());
        // Build A^T's dense form through the plan and compare with transposing A's.
        let mut through_plan = vec![0.0f32; k * m];
        for j in 0..k {
            let (s, e) = (plan.row_ptr()[j] as usize, plan.row_ptr()[j + 1] as usize);
            let rows = &plan.col_idx()[s..e];
            prop_assert!(rows.windows(2).all(|w| w[0] < w[1]), "rows of A^T sorted");
            for q in s..e {
                through_plan[j * m + rows[q - s] as usize] = a.values()[plan.perm()[q] as usize];
            }
        }
        let d = a.to_dense();
        for i in 0..m {
            for j in 0..k {
                prop_assert_eq!(through_plan[j * m + i], d.get(i, j).unwrap());
            }
        }
        prop_assert!(plan.check(a.structure_id()).is_ok());
    }

    #[test]
    fn swizzle_orders_rows_longest_first(a in matrix()) {
        let order = a.row_swizzle();
        let mut seen = order.clone();
        seen.sort_unstable();
        prop_assert_eq!(seen, (0..a.rows() as i32).collect::<Vec<_>>());
        for w in order.windows(2) {
            let (x, y) = (a.row_len(w[0] as usize), a.row_len(w[1] as usize));
            prop_assert!(x > y || (x == y && w[0] < w[1]));
        }
    }

    #[test]
    fn dense_sprs_and_triplet_round_trips(a in matrix()) {
        let d = a.to_dense();
        let back = Csr::from_dense(d.as_ref(), |i, j, _| a.row(i).0.contains(&(j as i32))).unwrap();
        prop_assert_eq!(&back, &a);
        prop_assert_eq!(&Csr::from_sprs(a.to_sprs().view()).unwrap(), &a);
        let mut trip = Vec::new();
        for i in (0..a.rows()).rev() {
            let (c, v) = a.row(i);
            trip.extend(c.iter().zip(v).map(|(&j, &x)| (i, j as usize, x)));
        }
        prop_assert_eq!(&Csr::from_triplets(a.rows(), a.cols(), &trip).unwrap(), &a);
        let view = a.as_ref();
        let rebuilt = CsrRef::new(a.rows(), a.cols(), a.row_ptr(), a.col_idx(), a.values()).unwrap();
        prop_assert_eq!(rebuilt.structure_id(), view.structure_id());
    }
}
