//! rosa's candle ops against candle's dense reference (densified S, candle matmul, candle
//! autograd), a finite-difference check of their gradients, and their errors.
#![cfg(feature = "candle")]

mod common;

use candle_core::{DType, Device, Tensor, Var, WithDType};
use common::candle::{random_tensor as dense, vec_f32};
use common::{row_lengths, Expected};
use rosa::candle::{rosa_error, SparseMask};
use rosa::{bf16, f16, random, Csr, CsrShape, Error, Scalar};

const CPU: Device = Device::Cpu;

/// A `rows x cols` mask with the kernel tests' row lengths: empty rows scattered
/// through, one full row (the middle one, far longer than the rest), short rows
/// elsewhere.
fn skewed_mask(rows: usize, cols: usize, seed: u64) -> Csr<f32> {
    let lens = row_lengths(rows, cols, cols / 4, Some(rows / 2));
    random::csr_with_row_lengths(rows, cols, &lens, seed).unwrap()
}

fn var(t: &Tensor) -> Var {
    Var::from_tensor(&t.detach()).unwrap()
}

/// Each element of `got` (computed in `T`, summed in f32 and rounded once) against the
/// f32 reference `want`, by the kernel tests' rule (`common::tolerance`) with the f32
/// sums of both sides counted: `bound` holds each element's sum of |terms|, `inner` the
/// most terms any sum has.
fn assert_close<T: Scalar + WithDType>(
    what: &str,
    got: &Tensor,
    want: &Tensor,
    bound: &Tensor,
    inner: usize,
) {
    assert_eq!(got.dims(), want.dims(), "{what}: shapes");
    assert_eq!(got.dtype(), <T as WithDType>::DTYPE, "{what}: dtype");
    let got: Vec<T> = got.flatten_all().unwrap().to_vec1().unwrap();
    let want: Vec<Expected> = vec_f32(want)
        .iter()
        .zip(vec_f32(bound))
        .map(|(&value, scale)| Expected {
            value: value as f64,
            scale: scale as f64,
            terms: 2 * inner,
        })
        .collect();
    common::assert_close(what, &got, &want);
}

/// Checks one product against candle's dense reference, values and gradients:
/// `C = op(S) X` with `op(S) = S` or `S^T`, loss `sum(C * G)` for a random `G`.
fn check_spmm<T: Scalar + WithDType>(
    rows: usize,
    cols: usize,
    n: usize,
    transposed: bool,
    seed: u64,
) {
    let dtype = <T as WithDType>::DTYPE;
    let csr = skewed_mask(rows, cols, seed);
    let mask = SparseMask::from_csr(&csr);
    let (inner_rows, out_rows) = if transposed {
        (rows, cols)
    } else {
        (cols, rows)
    };
    // The inputs, rounded to `dtype` once; the reference reads the same values in f32.
    let v32 = Tensor::from_slice(csr.values(), csr.nnz(), &CPU)
        .unwrap()
        .to_dtype(dtype)
        .unwrap()
        .to_dtype(DType::F32)
        .unwrap();
    let x32 = dense(inner_rows, n, seed + 1)
        .to_dtype(dtype)
        .unwrap()
        .to_dtype(DType::F32)
        .unwrap();
    let g32 = dense(out_rows, n, seed + 2)
        .to_dtype(dtype)
        .unwrap()
        .to_dtype(DType::F32)
        .unwrap();

    let values = var(&v32.to_dtype(dtype).unwrap());
    let x = var(&x32.to_dtype(dtype).unwrap());
    let g = g32.to_dtype(dtype).unwrap();
    let c = if transposed {
        mask.spmm_t(&values, &x)
    } else {
        mask.spmm(&values, &x)
    }
    .unwrap();
    let grads = (&c * &g).unwrap().sum_all().unwrap().backward().unwrap();
    let (dv, dx) = (grads.get(&values).unwrap(), grads.get(&x).unwrap());

    let (rv, rx) = (var(&v32), var(&x32));
    let s = mask.to_dense(&rv).unwrap();
    let op_s = if transposed { s.t().unwrap() } else { s };
    let c_ref = op_s.matmul(&rx).unwrap();
    let ref_grads = (&c_ref * &g32)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    let (dv_ref, dx_ref) = (ref_grads.get(&rv).unwrap(), ref_grads.get(&rx).unwrap());

    // sum |terms| of every output: |op(S)| |X|, |op(S)|^T |G|, and (|G| |X|^T) at the
    // mask (or its transpose's).
    let abs_s = mask.to_dense(&v32.abs().unwrap()).unwrap();
    let abs_op = if transposed {
        abs_s.t().unwrap()
    } else {
        abs_s
    };
    let (ax, ag) = (x32.abs().unwrap(), g32.abs().unwrap());
    let c_bound = abs_op.matmul(&ax).unwrap();
    let dx_bound = abs_op.t().unwrap().matmul(&ag).unwrap();
    let outer = if transposed {
        ax.matmul(&ag.t().unwrap()).unwrap()
    } else {
        ag.matmul(&ax.t().unwrap()).unwrap()
    };
    let dv_bound = at_mask(&csr, &outer);

    let inner = rows.max(cols).max(n);
    let what = format!(
        "{} {rows}x{cols} N={n}",
        if transposed { "spmm_t" } else { "spmm" }
    );
    assert_close::<T>(&format!("{what} C"), &c, &c_ref, &c_bound, inner);
    assert_close::<T>(&format!("{what} dValues"), dv, dv_ref, &dv_bound, inner);
    assert_close::<T>(&format!("{what} dX"), dx, dx_ref, &dx_bound, inner);
}

/// The entries of a dense `rows x cols` tensor at `mask`'s stored positions, in order.
fn at_mask(mask: &Csr<f32>, dense: &Tensor) -> Tensor {
    let d = dense.to_vec2::<f32>().unwrap();
    let v: Vec<f32> = (0..mask.rows())
        .flat_map(|i| {
            mask.row(i)
                .0
                .iter()
                .map(|&j| d[i][j as usize])
                .collect::<Vec<_>>()
        })
        .collect();
    Tensor::from_vec(v, mask.nnz(), &CPU).unwrap()
}

/// SDDMM `out = (L R^T)` at the mask against the dense product sampled there, values and
/// gradients, for the loss `sum(out * G)`.
fn check_sddmm<T: Scalar + WithDType>(rows: usize, cols: usize, k: usize, seed: u64) {
    let dtype = <T as WithDType>::DTYPE;
    let csr = skewed_mask(rows, cols, seed);
    let mask = SparseMask::from_csr(&csr);
    let round = |t: Tensor| t.to_dtype(dtype).unwrap().to_dtype(DType::F32).unwrap();
    let l32 = round(dense(rows, k, seed + 1));
    let r32 = round(dense(cols, k, seed + 2));
    let g32 = round(
        Tensor::from_vec(
            random::dense::<f32>(1, csr.nnz(), seed + 3).into_vec(),
            csr.nnz(),
            &CPU,
        )
        .unwrap(),
    );

    let (l, r) = (
        var(&l32.to_dtype(dtype).unwrap()),
        var(&r32.to_dtype(dtype).unwrap()),
    );
    let out = mask.sddmm(&l, &r).unwrap();
    let g = g32.to_dtype(dtype).unwrap();
    let grads = (&out * &g).unwrap().sum_all().unwrap().backward().unwrap();

    // Reference: the full product, then the mask's entries; G densified on the mask.
    let (rl, rr) = (var(&l32), var(&r32));
    let full = rl.matmul(&rr.t().unwrap()).unwrap();
    let gd = mask.to_dense(&g32).unwrap();
    let out_ref = at_mask(&csr, &full);
    let ref_grads = (&full * &gd)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();

    let (al, ar, ag) = (l32.abs().unwrap(), r32.abs().unwrap(), gd.abs().unwrap());
    let out_bound = at_mask(&csr, &al.matmul(&ar.t().unwrap()).unwrap());
    let dl_bound = ag.matmul(&ar).unwrap();
    let dr_bound = ag.t().unwrap().matmul(&al).unwrap();

    let inner = rows.max(cols).max(k);
    let what = format!("sddmm {rows}x{cols} k={k}");
    assert_close::<T>(&format!("{what} out"), &out, &out_ref, &out_bound, inner);
    let (dl, dr) = (grads.get(&l).unwrap(), grads.get(&r).unwrap());
    let (dl_ref, dr_ref) = (ref_grads.get(&rl).unwrap(), ref_grads.get(&rr).unwrap());
    assert_close::<T>(&format!("{what} dL"), dl, dl_ref, &dl_bound, inner);
    assert_close::<T>(&format!("{what} dR"), dr, dr_ref, &dr_bound, inner);
}

/// Ragged shapes, a single element, and matrices with no rows, columns or right-hand
/// columns.
const SHAPES: [(usize, usize, usize); 6] = [
    (9, 17, 5),
    (24, 7, 13),
    (1, 1, 1),
    (0, 4, 3),
    (5, 0, 2),
    (6, 11, 0),
];

#[test]
fn spmm_matches_dense_reference() {
    for (i, &(m, k, n)) in SHAPES.iter().enumerate() {
        let seed = 10 + i as u64;
        check_spmm::<f32>(m, k, n, false, seed);
        check_spmm::<f16>(m, k, n, false, seed);
        check_spmm::<bf16>(m, k, n, false, seed);
    }
}

#[test]
fn spmm_t_matches_dense_reference() {
    for (i, &(m, k, n)) in SHAPES.iter().enumerate() {
        let seed = 20 + i as u64;
        check_spmm::<f32>(m, k, n, true, seed);
        check_spmm::<f16>(m, k, n, true, seed);
        check_spmm::<bf16>(m, k, n, true, seed);
    }
}

#[test]
fn sddmm_matches_dense_reference() {
    for (i, &(m, n, k)) in SHAPES.iter().enumerate() {
        let seed = 30 + i as u64;
        check_sddmm::<f32>(m, n, k, seed);
        check_sddmm::<f16>(m, n, k, seed);
        check_sddmm::<bf16>(m, n, k, seed);
    }
}

/// `sum(out * G)` in f64 from the f32 output.
fn weighted_sum(out: &Tensor, g: &[f32]) -> f64 {
    vec_f32(out)
        .iter()
        .zip(g)
        .map(|(&o, &w)| o as f64 * w as f64)
        .sum()
}

/// Central differences of `loss(inputs)` at a few coordinates of input `which`, against
/// the gradient autograd gave. Every op is linear in each input, so the difference
/// quotient is exact but for f32 rounding, which a large step keeps small: the loss is
/// off by at most about `inner u(f32)` times `scale`, the loss's sum of |terms|.
#[allow(clippy::too_many_arguments)]
fn check_fd(
    what: &str,
    inputs: &[Tensor; 2],
    grad: &Tensor,
    which: usize,
    coords: &[usize],
    loss: &dyn Fn(&Tensor, &Tensor) -> f64,
    scale: f64,
    inner: usize,
) {
    const H: f32 = 0.5;
    let base = vec_f32(&inputs[which]);
    let shape = inputs[which].shape().clone();
    let analytic = vec_f32(grad);
    for &p in coords {
        let bumped = |delta: f32| {
            let mut v = base.clone();
            v[p] += delta;
            let t = Tensor::from_vec(v, shape.clone(), &CPU).unwrap();
            if which == 0 {
                loss(&t, &inputs[1])
            } else {
                loss(&inputs[0], &t)
            }
        };
        let fd = (bumped(H) - bumped(-H)) / (2.0 * H as f64);
        // Two loss evaluations, each off by up to (inner + 1) u(f32) scale, over 2H.
        let tol = 2.0 * (inner as f64 + 1.0) * f32::EPSILON as f64 / 2.0 * scale / (2.0 * H as f64);
        assert!(
            (fd - analytic[p] as f64).abs() <= tol,
            "{what}: input {which} coordinate {p}: finite difference {fd}, autograd {} (tolerance {tol})",
            analytic[p]
        );
    }
}

#[test]
fn gradients_match_finite_differences() {
    let (rows, cols, n) = (9, 12, 4);
    let csr = skewed_mask(rows, cols, 41);
    let mask = SparseMask::from_csr(&csr);
    let long_row = csr.row_ptr()[rows / 2] as usize; // an entry of the full row
    let v_coords = [0, long_row, long_row + cols - 1, csr.nnz() - 1];
    let values = var(&Tensor::from_slice(csr.values(), csr.nnz(), &CPU).unwrap());
    for transposed in [false, true] {
        let (in_rows, out_rows) = if transposed {
            (rows, cols)
        } else {
            (cols, rows)
        };
        let x = var(&dense(in_rows, n, 42));
        let g = random::dense::<f32>(out_rows, n, 43).into_vec();
        let product = |v: &Tensor, x: &Tensor| {
            if transposed {
                mask.spmm_t(v, x)
            } else {
                mask.spmm(v, x)
            }
            .unwrap()
        };
        let apply = |v: &Tensor, x: &Tensor| weighted_sum(&product(v, x), &g);
        let g_abs: Vec<f32> = g.iter().map(|v| v.abs()).collect();
        let scale = weighted_sum(&product(&values.abs().unwrap(), &x.abs().unwrap()), &g_abs);
        let gt = Tensor::from_slice(&g, (out_rows, n), &CPU).unwrap();
        let c = if transposed {
            mask.spmm_t(&values, &x)
        } else {
            mask.spmm(&values, &x)
        }
        .unwrap();
        let grads = (c * gt).unwrap().sum_all().unwrap().backward().unwrap();
        let inputs = [values.as_tensor().clone(), x.as_tensor().clone()];
        let what = if transposed { "spmm_t" } else { "spmm" };
        let inner = rows.max(cols);
        let dv = grads.get(&values).unwrap();
        check_fd(what, &inputs, dv, 0, &v_coords, &apply, scale, inner);
        let x_coords = [0, n + 1, in_rows * n - 1];
        let dx = grads.get(&x).unwrap();
        check_fd(what, &inputs, dx, 1, &x_coords, &apply, scale, inner);
    }
    let (l, r) = (var(&dense(rows, n, 44)), var(&dense(cols, n, 45)));
    let g = random::dense::<f32>(1, csr.nnz(), 46).into_vec();
    let apply = |l: &Tensor, r: &Tensor| weighted_sum(&mask.sddmm(l, r).unwrap(), &g);
    let g_abs: Vec<f32> = g.iter().map(|v| v.abs()).collect();
    let scale = weighted_sum(
        &mask.sddmm(&l.abs().unwrap(), &r.abs().unwrap()).unwrap(),
        &g_abs,
    );
    let gt = Tensor::from_slice(&g, csr.nnz(), &CPU).unwrap();
    let grads = (mask.sddmm(&l, &r).unwrap() * gt)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    let inputs = [l.as_tensor().clone(), r.as_tensor().clone()];
    // Row `rows / 2` of L meets every column of the mask, row 3 none (an empty row).
    let l_coords = [(rows / 2) * n, (rows / 2) * n + n - 1, 3 * n];
    let (dl, dr) = (grads.get(&l).unwrap(), grads.get(&r).unwrap());
    check_fd("sddmm", &inputs, dl, 0, &l_coords, &apply, scale, n);
    check_fd(
        "sddmm",
        &inputs,
        dr,
        1,
        &[0, cols * n - 1],
        &apply,
        scale,
        n,
    );
}

#[test]
fn strided_operands_give_the_contiguous_result() {
    let csr = skewed_mask(8, 10, 50);
    let mask = SparseMask::from_csr(&csr);
    let values = Tensor::from_slice(csr.values(), csr.nnz(), &CPU).unwrap();
    let xt = dense(6, 10, 51); // X^T, so X = xt.t() is a strided view
    let x = xt.t().unwrap();
    assert!(!x.is_contiguous());
    let strided = mask.spmm(&values, &x).unwrap();
    let contiguous = mask.spmm(&values, &x.contiguous().unwrap()).unwrap();
    assert_eq!(vec_f32(&strided), vec_f32(&contiguous));
    // A strided values vector (every other element of a longer one).
    let doubled = Tensor::stack(&[&values, &values], 1)
        .unwrap()
        .flatten_all()
        .unwrap();
    let every_other = doubled
        .reshape((csr.nnz(), 2))
        .unwrap()
        .narrow(1, 0, 1)
        .unwrap()
        .squeeze(1)
        .unwrap();
    assert!(!every_other.is_contiguous());
    let c = mask.spmm(&every_other, &x).unwrap();
    assert_eq!(vec_f32(&c), vec_f32(&contiguous));
}

fn rosa_err(e: &candle_core::Error) -> &Error {
    rosa_error(e).unwrap_or_else(|| panic!("not a rosa error: {e}"))
}

#[test]
fn bad_operands_are_errors() {
    let csr = skewed_mask(4, 6, 60);
    let mask = SparseMask::from_csr(&csr);
    let values = Tensor::from_slice(csr.values(), csr.nnz(), &CPU).unwrap();
    let x = dense(6, 3, 61);

    // X with the wrong number of rows, for S X and for S^T X.
    let e = mask.spmm(&values, &dense(5, 3, 62)).unwrap_err();
    assert!(
        matches!(rosa_err(&e), Error::ShapeMismatch { op: "spmm", .. }),
        "{e}"
    );
    let e = mask.spmm_t(&values, &x).unwrap_err();
    assert!(
        matches!(rosa_err(&e), Error::ShapeMismatch { op: "spmm_t", .. }),
        "{e}"
    );
    // Values of the wrong length.
    let short = values.narrow(0, 0, csr.nnz() - 1).unwrap();
    let e = mask.spmm(&short, &x).unwrap_err();
    assert!(matches!(rosa_err(&e), Error::ValuesLength { .. }), "{e}");
    assert!(rosa_error(&mask.to_dense(&short).unwrap_err()).is_some());
    // SDDMM with L and R of different inner sizes, or R with the wrong row count.
    let e = mask.sddmm(&dense(4, 3, 63), &dense(6, 2, 64)).unwrap_err();
    assert!(
        matches!(rosa_err(&e), Error::ShapeMismatch { op: "sddmm", .. }),
        "{e}"
    );
    let e = mask.sddmm(&dense(4, 3, 63), &dense(5, 3, 64)).unwrap_err();
    assert!(
        matches!(rosa_err(&e), Error::ShapeMismatch { op: "sddmm", .. }),
        "{e}"
    );

    // Dtypes: mixed, or not one the kernels have.
    let e = mask
        .spmm(&values, &x.to_dtype(DType::F16).unwrap())
        .unwrap_err();
    assert!(
        matches!(e, candle_core::Error::DTypeMismatchBinaryOp { .. }),
        "{e}"
    );
    let e = mask
        .spmm(
            &values.to_dtype(DType::F64).unwrap(),
            &x.to_dtype(DType::F64).unwrap(),
        )
        .unwrap_err();
    assert!(
        matches!(e, candle_core::Error::UnsupportedDTypeForOp(DType::F64, _)),
        "{e}"
    );
    // Ranks.
    assert!(mask.spmm(&values, &x.reshape((2, 3, 3)).unwrap()).is_err());
    assert!(mask
        .spmm(&values.reshape((1, csr.nnz())).unwrap(), &x)
        .is_err());
    assert!(mask
        .sddmm(&dense(4, 3, 63).reshape(12).unwrap(), &dense(6, 3, 64))
        .is_err());
}

#[test]
fn values_must_come_from_the_masks_structure() {
    let csr = skewed_mask(4, 6, 70);
    let mask = SparseMask::from_csr(&csr);
    assert_eq!(mask.structure_id(), csr.structure_id());
    let other = skewed_mask(4, 6, 71);
    assert_ne!(other.structure_id(), csr.structure_id());
    let e = mask.values(&other, &CPU).unwrap_err();
    assert!(matches!(rosa_err(&e), Error::InvalidArgument(_)), "{e}");
    let ok = mask.values(&csr, &CPU).unwrap();
    assert_eq!(vec_f32(&ok), csr.values());
}
