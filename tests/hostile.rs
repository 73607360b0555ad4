//! Numerics and shapes at the edges: NaN and infinities through every CPU kernel, f16 and
//! bf16 overflow, skewed and empty matrices, and dimensions at the i32 limit.

use rosa::{bf16, cpu, f16, io, random, Csr, CsrShape, Dense, Error, Scalar};

const NAN: f32 = f32::NAN;
const INF: f32 = f32::INFINITY;

fn csr<T: Scalar>(rows: usize, cols: usize, t: &[(usize, usize, f32)]) -> Csr<T> {
    let t: Vec<_> = t.iter().map(|&(i, j, v)| (i, j, T::from_f32(v))).collect();
    Csr::from_triplets(rows, cols, &t).unwrap()
}

fn dense<T: Scalar>(rows: usize, cols: usize, v: &[f32]) -> Dense<T> {
    Dense::from_vec(rows, cols, v.iter().map(|&x| T::from_f32(x)).collect()).unwrap()
}

fn f32s<T: Scalar>(d: &Dense<T>) -> Vec<f32> {
    d.as_slice().iter().map(|v| v.to_f32()).collect()
}

/// NaN matches NaN; everything else, including the sign of an infinity, exactly.
fn assert_ieee(got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            g == w || (g.is_nan() && w.is_nan()),
            "[{i}]: got {g}, want {w} in {got:?}"
        );
    }
}

fn spmm<T: Scalar>(a: &Csr<T>, b: &Dense<T>) -> Vec<f32> {
    let mut c = Dense::filled(a.rows(), b.cols(), T::from_f32(NAN));
    cpu::spmm(1.0, a.as_ref(), b.as_ref(), 0.0, c.as_mut()).unwrap();
    f32s(&c)
}

fn spmm_t<T: Scalar>(a: &Csr<T>, b: &Dense<T>) -> Vec<f32> {
    let mut c = Dense::filled(a.cols(), b.cols(), T::from_f32(NAN));
    cpu::spmm_t(
        1.0,
        a.as_ref(),
        &a.transpose_plan(),
        b.as_ref(),
        0.0,
        c.as_mut(),
    )
    .unwrap();
    f32s(&c)
}

fn sddmm<T: Scalar>(l: &Dense<T>, r: &Dense<T>, mask: &Csr<T>) -> Vec<f32> {
    let mut out = mask.clone();
    cpu::sddmm(1.0, l.as_ref(), r.as_ref(), 0.0, out.as_mut()).unwrap();
    out.values().iter().map(|v| v.to_f32()).collect()
}

fn non_finite_sparse_values_propagate<T: Scalar>() {
    // Rows (and, transposed, columns) that hold no NaN or infinity must stay finite: the
    // kernels pad with zero rows, never with real rows of B.
    let a = csr::<T>(3, 3, &[(0, 0, NAN), (1, 1, INF), (1, 2, 1.0), (2, 2, -INF)]);
    let b = dense::<T>(3, 2, &[1.0, -1.0, 2.0, 2.0, 3.0, 0.0]);
    assert_ieee(&spmm(&a, &b), &[NAN, NAN, INF, INF, -INF, NAN]);
    assert_ieee(&spmm_t(&a, &b), &[NAN, NAN, INF, INF, -INF, NAN]);
}

fn non_finite_dense_values_propagate<T: Scalar>() {
    // Row 0 reads B's NaN row; row 1 adds +inf and -inf (NaN); row 2 stores an explicit
    // zero against an infinity (0 * inf = NaN); row 3 never touches them.
    let a = csr::<T>(
        4,
        3,
        &[
            (0, 0, 1.0),
            (1, 1, 1.0),
            (1, 2, 1.0),
            (2, 1, 0.0),
            (3, 0, 0.0),
        ],
    );
    let b = dense::<T>(3, 1, &[NAN, INF, -INF]);
    assert_ieee(&spmm(&a, &b), &[NAN, NAN, NAN, NAN]);
    let b = dense::<T>(3, 1, &[2.0, INF, 1.0]);
    assert_ieee(&spmm(&a, &b), &[2.0, INF, NAN, 0.0]);
    let bt = dense::<T>(4, 1, &[1.0, -INF, INF, 1.0]);
    assert_ieee(&spmm_t(&a, &bt), &[1.0, NAN, -INF]);
}

fn non_finite_sddmm<T: Scalar>() {
    let mask = csr::<T>(3, 2, &[(0, 0, 0.0), (0, 1, 0.0), (1, 0, 0.0), (2, 1, 0.0)]);
    let l = dense::<T>(3, 2, &[NAN, 1.0, 1.0, 1.0, 0.0, 1.0]);
    let r = dense::<T>(2, 2, &[INF, 1.0, -INF, 2.0]);
    // (0,*) reads L's NaN; (1,0) = inf + 1; (2,1) = 0 * -inf + 2 = NaN.
    assert_ieee(&sddmm(&l, &r, &mask), &[NAN, NAN, INF, NAN]);
}

#[test]
fn nan_and_inf_propagate_through_every_kernel_and_dtype() {
    non_finite_sparse_values_propagate::<f32>();
    non_finite_sparse_values_propagate::<f16>();
    non_finite_sparse_values_propagate::<bf16>();
    non_finite_dense_values_propagate::<f32>();
    non_finite_dense_values_propagate::<f16>();
    non_finite_dense_values_propagate::<bf16>();
    non_finite_sddmm::<f32>();
    non_finite_sddmm::<f16>();
    non_finite_sddmm::<bf16>();
}

#[test]
fn f16_results_accumulate_in_f32_and_round_once() {
    // 300 * 300 = 90000 overflows f16, but the sum 90000 - 90000 + 1 never leaves f32.
    let a = csr::<f16>(1, 3, &[(0, 0, 300.0), (0, 1, 300.0), (0, 2, 1.0)]);
    let b = dense::<f16>(3, 1, &[300.0, -300.0, 1.0]);
    assert_ieee(&spmm(&a, &b), &[1.0]);
    // Out of range after accumulation: +-inf, never the largest finite f16.
    let b = dense::<f16>(3, 1, &[300.0, 300.0, 1.0]);
    assert_ieee(&spmm(&a, &b), &[INF]);
    let b = dense::<f16>(3, 1, &[-300.0, -300.0, 1.0]);
    assert_ieee(&spmm(&a, &b), &[-INF]);
    let mask = csr::<f16>(1, 1, &[(0, 0, 0.0)]);
    let l = dense::<f16>(1, 2, &[300.0, 300.0]);
    assert_ieee(&sddmm(&l, &l, &mask), &[INF]);
    // The final rounding is to nearest even: 65519 rounds down to f16::MAX (65504),
    // 65520 ties to 65536, which is past the range: +inf.
    let one_a = csr::<f16>(1, 1, &[(0, 0, 1.0)]);
    let one_b = dense::<f16>(1, 1, &[1.0]);
    for (alpha, want) in [(65519.0, 65504.0), (65520.0, INF), (-65520.0, -INF)] {
        let mut c = Dense::<f16>::zeros(1, 1);
        cpu::spmm(alpha, one_a.as_ref(), one_b.as_ref(), 0.0, c.as_mut()).unwrap();
        assert_ieee(&f32s(&c), &[want]);
    }
    assert_eq!(f16::from_f32(65520.0), f16::INFINITY);
}

#[test]
fn bf16_and_f32_overflow_in_the_f32_accumulator() {
    // bf16 shares f32's exponent range, so it overflows where the f32 sum does.
    let big = 3.0e38;
    let a = csr::<bf16>(1, 2, &[(0, 0, big), (0, 1, big)]);
    let b = dense::<bf16>(2, 1, &[1.0, 1.0]);
    assert_ieee(&spmm(&a, &b), &[INF]);
    let a = csr::<f32>(1, 2, &[(0, 0, big), (0, 1, big)]);
    assert_ieee(&spmm(&a, &dense::<f32>(2, 1, &[1.0, -1.0])), &[0.0]);
    assert_ieee(&spmm(&a, &dense::<f32>(2, 1, &[1.0, 1.0])), &[INF]);
}

#[test]
fn one_row_holding_most_nonzeros() {
    // Row 0 holds 6000 of 6003 entries: long enough to be split across threads.
    let cols = 6000;
    let mut lens = vec![1; 4];
    lens[0] = cols;
    let a = random::csr_with_row_lengths::<f32>(4, cols, &lens, 5).unwrap();
    let mut b = random::dense::<f32>(cols, 3, 6);
    let d = a.to_dense();
    let reference = |b: &Dense<f32>| -> Vec<f32> {
        (0..4)
            .flat_map(|i| (0..3).map(move |j| (i, j)))
            .map(|(i, j)| {
                (0..cols)
                    .map(|k| d.get(i, k).unwrap() as f64 * b.get(k, j).unwrap() as f64)
                    .sum::<f64>() as f32
            })
            .collect()
    };
    for (got, want) in spmm(&a, &b).iter().zip(reference(&b)) {
        assert!((got - want).abs() <= 1e-3, "{got} vs {want}");
    }
    // A NaN in the heavy row's last column reaches only outputs that read it.
    b.as_mut_slice()[(cols - 1) * 3 + 1] = NAN;
    let c = spmm(&a, &b);
    assert!(c[1].is_nan() && c[0].is_finite() && c[2].is_finite());
    assert!(c[3..]
        .iter()
        .enumerate()
        .all(|(p, v)| v.is_finite() || a.row(1 + p / 3).0.contains(&(cols as i32 - 1))));
}

#[test]
fn zero_nonzeros_overwrite_the_output_with_beta_zero() {
    let a = Csr::<f32>::empty(3, 4).unwrap();
    let b = dense::<f32>(4, 2, &[NAN; 8]);
    assert_ieee(&spmm(&a, &b), &[0.0; 6]);
    assert_ieee(&spmm_t(&a, &dense::<f32>(3, 2, &[INF; 6])), &[0.0; 8]);
    let l = dense::<f32>(3, 1, &[NAN; 3]);
    assert!(sddmm(&l, &dense::<f32>(4, 1, &[NAN; 4]), &a).is_empty());
    // Empty shapes on every side.
    let none = Csr::<f32>::empty(0, 0).unwrap();
    assert!(spmm(&none, &Dense::zeros(0, 5)).is_empty());
    assert!(spmm(&a, &Dense::zeros(4, 0)).is_empty());
}

fn index_overflow<T: std::fmt::Debug>(r: rosa::Result<T>) -> &'static str {
    match r {
        Err(Error::IndexOverflow { what, .. }) => what,
        other => panic!("expected IndexOverflow, got {other:?}"),
    }
}

#[test]
fn dimensions_past_the_i32_limit_are_errors_not_allocations() {
    let max = i32::MAX as usize;
    // At the limit: an index fits, so a wide matrix is fine and costs nothing per column.
    let wide = Csr::from_parts(1, max, vec![0, 1], vec![i32::MAX - 1], vec![1.0f32]).unwrap();
    assert_eq!(wide.cols(), max);
    assert!(Csr::from_parts(1, max, vec![0, 1], vec![i32::MAX], vec![1.0f32]).is_err());
    // Past it: refused before any buffer is sized from the dimension.
    for big in [max + 1, u32::MAX as usize, usize::MAX] {
        assert_eq!(
            index_overflow(Csr::<f32>::from_parts(big, 1, vec![0], vec![], vec![])),
            "rows"
        );
        assert_eq!(
            index_overflow(Csr::<f32>::from_parts(1, big, vec![0, 0], vec![], vec![])),
            "cols"
        );
        assert_eq!(
            index_overflow(Csr::<f32>::from_triplets(big, 1, &[])),
            "rows"
        );
        assert_eq!(
            index_overflow(Csr::<f32>::from_triplets(1, big, &[])),
            "cols"
        );
        assert_eq!(index_overflow(Csr::<f32>::empty(big, 1)), "rows");
        assert_eq!(index_overflow(random::csr::<f32>(big, 1, 0.0, 1)), "rows");
        assert_eq!(index_overflow(random::csr::<f32>(1, big, 0.0, 1)), "cols");
        assert_eq!(
            index_overflow(random::csr_with_row_lengths::<f32>(1, big, &[0], 1)),
            "cols"
        );
    }
    // A dense length check whose rows * cols overflows reports it without overflowing.
    let err = Dense::<f32>::from_vec(usize::MAX, 2, vec![]).unwrap_err();
    assert!(err
        .to_string()
        .contains(&(usize::MAX as u128 * 2).to_string()));
}

#[test]
fn readers_refuse_huge_declared_sizes() {
    let dir = std::env::temp_dir().join(format!("rosa-hostile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let banner = "%%MatrixMarket matrix coordinate real general\n";
    let max = i32::MAX;
    for size in [
        format!("{} 1 0", max as u64 + 1),
        format!("1 {} 0", max as u64 + 1),
        format!("{max} {max} {max}"),
        "99999999999999999999999 1 0".into(),
        "2 2 5".into(),
    ] {
        let path = dir.join("huge.mtx");
        std::fs::write(&path, format!("{banner}{size}\n1 1 1\n")).unwrap();
        let err = io::read_mtx::<f32>(&path).unwrap_err();
        assert!(matches!(err, Error::Format { .. }), "{size}: {err}");
    }
    let npy = |shape: &str, data: &[u8]| {
        let mut h = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}");
        while (10 + h.len() + 1) % 64 != 0 {
            h.push(' ');
        }
        h.push('\n');
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        bytes.extend((h.len() as u16).to_le_bytes());
        bytes.extend(h.as_bytes());
        bytes.extend(data);
        let path = dir.join("huge.npy");
        std::fs::write(&path, bytes).unwrap();
        io::read_npy::<f32>(&path)
    };
    for shape in [
        format!("({max}, {max})"),
        format!("({}, {})", 1u64 << 40, 1u64 << 40),
        "(18446744073709551615, 2)".into(),
    ] {
        assert!(
            matches!(npy(&shape, &[0; 4]), Err(Error::Format { .. })),
            "{shape}"
        );
    }
    // Zero elements of any declared width are a valid, empty matrix.
    assert_eq!(
        npy(&format!("(0, {})", 1u64 << 62), &[]).unwrap().cols(),
        1 << 62
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn declared_counts_are_checked_against_the_data_before_any_allocation() {
    let dir = std::env::temp_dir().join(format!("rosa-hostile-counts-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("a.mtx");
    let max = i32::MAX;
    // Dense files promising 2^62 values (16 EiB as f32) with two in the file: a
    // truncated file, found before anything is sized from the promise.
    for kind in ["general", "symmetric", "skew-symmetric"] {
        let text = format!("%%MatrixMarket matrix array real {kind}\n{max} {max}\n1\n2\n");
        std::fs::write(&path, text).unwrap();
        for err in [
            io::read_mtx_dense::<f32>(&path).unwrap_err(),
            io::read_mtx::<f32>(&path).map(|_| ()).unwrap_err(),
        ] {
            assert!(matches!(err, Error::Format { .. }), "{kind}: {err}");
            assert!(err.to_string().contains("truncated"), "{kind}: {err}");
        }
    }
    // Two billion entries promised, two given, symmetric storage (which doubles them).
    let text = "%%MatrixMarket matrix coordinate real symmetric\n4 4 2000000000\n1 1 1\n2 1 1\n";
    std::fs::write(&path, text).unwrap();
    let err = io::read_mtx::<f32>(&path).unwrap_err().to_string();
    assert!(
        err.contains("truncated: 2000000000 entries declared, 2 found"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn outputs_sized_from_input_are_allocated_fallibly() {
    // 2^62 f32 values: past what any allocator can give (and past isize::MAX bytes),
    // refused deterministically, naming the output and its size.
    let err = Dense::<f32>::try_zeros(1 << 31, 1 << 31, "output C").unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::Alloc { .. }), "{msg}");
    assert!(
        msg.contains("output C (2147483648 x 2147483648 f32)"),
        "{msg}"
    );
    assert!(msg.contains(&(1u128 << 64).to_string()), "{msg}");
    // Shapes past usize: the byte count is still told, not overflowed.
    let err = Dense::<bf16>::try_zeros(usize::MAX, 3, "C").unwrap_err();
    assert!(err
        .to_string()
        .contains(&(usize::MAX as u128 * 6).to_string()));
    assert_eq!(Dense::<f16>::try_zeros(2, 0, "C").unwrap().rows(), 2);
}
