//! The kernels on someone else's memory and stream: a `Device` over a caller's cudarc
//! stream, launchers on borrowed views (row strides above the width, views that start
//! inside a larger buffer, values apart from the structure), and the raw-pointer entry.
//! Each product is checked against the dense float64 reference with the kernel tests'
//! tolerance rule, outputs poisoned with NaN first, padding between rows checked intact.
//!
//! The argument checks of the raw entry run everywhere (they refuse before any CUDA call);
//! the launches skip, saying so, without a GPU.
#![cfg(feature = "cuda")]

mod common;

use std::sync::Arc;

use common::gpu::device;
use common::{assert_close, dense64, gemm_ref, strided, to64, transpose, unstrided, PAD};
use cudarc::driver::{CudaSlice, DevicePtr, DevicePtrMut};
use rosa::cuda::raw::{self, RawCsr, RawDense};
use rosa::cuda::{
    self, DenseView, DenseViewMut, Device, DeviceMask, KernelConfig, Op, SparseView, SparseViewMut,
};
use rosa::{random, CsrShape, DType, Dense, Error};

const POISON: f32 = f32::NAN;
fn upload(dev: &Device, v: &[f32]) -> CudaSlice<f32> {
    dev.stream().clone_htod(v).unwrap()
}

#[test]
fn a_device_over_the_callers_stream_runs_on_views_of_the_callers_buffers() {
    let Some(shared) = device("device over a caller's stream") else {
        return;
    };
    // The caller's own stream on the caller's context.
    let stream = shared.context().new_stream().unwrap();
    let dev = Device::from_stream(stream.clone()).unwrap();
    assert!(Arc::ptr_eq(dev.stream(), &stream), "no second stream");
    assert!(
        Arc::ptr_eq(dev.context(), shared.context()),
        "no second context"
    );

    let (m, k, n) = (37, 29, 13);
    let (ldb, ldc, off_b, off_c) = (n + 3, n + 5, 6, 2);
    let s = random::csr::<f32>(m, k, 0.2, 11).unwrap();
    let b = random::dense::<f32>(k, n, 12);
    let mask = DeviceMask::from_host(&dev, &s).unwrap();
    // The values in a buffer of their own, behind some other data.
    let mut vals_host = vec![PAD; 5];
    vals_host.extend_from_slice(s.values());
    let vals = upload(&dev, &vals_host);
    let bbuf = upload(&dev, &strided(&b, ldb, off_b));

    // C = S B into the middle of a strided buffer.
    let mut cbuf = upload(&dev, &strided(&Dense::filled(m, n, POISON), ldc, off_c));
    {
        let a = SparseView::new(&mask, vals.slice(5..)).unwrap();
        let bv = DenseView::new(bbuf.slice(off_b..), k, n, ldb).unwrap();
        let len = cbuf.len();
        let mut cv = DenseViewMut::new(cbuf.slice_mut(off_c..len), m, n, ldc).unwrap();
        cuda::spmm(&dev, 1.5, &a, &bv, 0.0, &mut cv).unwrap();
    }
    let got = unstrided(&stream.clone_dtoh(&cbuf).unwrap(), m, n, ldc, off_c);
    let want = gemm_ref(1.5, &dense64(&s), &to64(&b), 0.0, None, m, k, n);
    assert_close("spmm on views", &got, &want);

    // C' = S^T X through the mask's plan, X (m x n) packed, C' (k x n) at stride ldc.
    let x = random::dense::<f32>(m, n, 13);
    let xbuf = upload(&dev, x.as_slice());
    let mut ctbuf = upload(&dev, &strided(&Dense::filled(k, n, POISON), ldc, 0));
    {
        let a = SparseView::new(&mask, vals.slice(5..)).unwrap();
        let xv = DenseView::new(xbuf.as_view(), m, n, n).unwrap();
        let mut cv = DenseViewMut::new(ctbuf.as_view_mut(), k, n, ldc).unwrap();
        cuda::spmm_t(&dev, 1.0, &a, &xv, 0.0, &mut cv).unwrap();
    }
    let got = unstrided(&stream.clone_dtoh(&ctbuf).unwrap(), k, n, ldc, 0);
    let st = transpose(&dense64(&s), m, k);
    let want = gemm_ref(1.0, &st, &to64(&x), 0.0, None, k, m, n);
    assert_close("spmm_t on views", &got, &want);

    // dS = (L R^T) at the mask, L (m x r) and R (k x r) at strides above r.
    let r = 9;
    let l = random::dense::<f32>(m, r, 14);
    let rr = random::dense::<f32>(k, r, 15);
    let lbuf = upload(&dev, &strided(&l, r + 1, 0));
    let rbuf = upload(&dev, &strided(&rr, r + 4, 3));
    let mut out = upload(&dev, &vec![POISON; s.nnz() + 1]);
    {
        let lv = DenseView::new(lbuf.as_view(), m, r, r + 1).unwrap();
        let rv = DenseView::new(rbuf.slice(3..), k, r, r + 4).unwrap();
        let mut ov = SparseViewMut::new(&mask, out.as_view_mut()).unwrap();
        cuda::sddmm(&dev, 1.0, &lv, &rv, 0.0, &mut ov).unwrap();
    }
    let got = stream.clone_dtoh(&out).unwrap();
    assert!(got[s.nnz()].is_nan(), "sddmm wrote past nnz");
    let full = gemm_ref(
        1.0,
        &to64(&l),
        &transpose(&to64(&rr), k, r),
        0.0,
        None,
        m,
        r,
        k,
    );
    let mut want = Vec::new();
    for i in 0..m {
        for &j in s.row(i).0 {
            want.push(full[i * k + j as usize]);
        }
    }
    assert_close("sddmm on views", &got[..s.nnz()], &want);
}

#[test]
fn views_that_do_not_hold_their_shape_are_refused() {
    let Some(dev) = device("view checks") else {
        return;
    };
    let buf = upload(dev, &[0.0; 40]);
    // 4 rows of stride 10 need 3 * 10 + 8 = 38 elements: 40 is enough, 37 is not.
    assert!(DenseView::new(buf.as_view(), 4, 8, 10).is_ok());
    let err = DenseView::new(buf.slice(..37), 4, 8, 10).unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
    let err = DenseView::new(buf.as_view(), 4, 8, 7).unwrap_err();
    assert!(err.to_string().contains("leading dimension 7"), "{err}");
    let s = random::csr::<f32>(8, 8, 0.5, 1).unwrap();
    let mask = DeviceMask::from_host(dev, &s).unwrap();
    let short = upload(dev, &vec![0.0; s.nnz() - 1]);
    let err = SparseView::new(&mask, short.as_view()).unwrap_err();
    assert!(matches!(err, Error::ValuesLength { .. }), "{err}");
    // Shapes that do not fit are refused before launching, as with rosa's own types.
    let b = DenseView::new(buf.as_view(), 4, 8, 10).unwrap(); // S is 8 x 8: B needs 8 rows
    let mut cbuf = upload(dev, &[0.0; 64]);
    let mut c = DenseViewMut::new(cbuf.as_view_mut(), 8, 8, 8).unwrap();
    let vals = upload(dev, s.values());
    let a = SparseView::new(&mask, vals.as_view()).unwrap();
    let err = cuda::spmm(dev, 1.0, &a, &b, 0.0, &mut c).unwrap_err();
    assert!(matches!(err, Error::ShapeMismatch { .. }), "{err}");
}

#[test]
fn the_raw_entry_runs_on_device_pointers() {
    let Some(dev) = device("raw entry") else {
        return;
    };
    let (m, k, n) = (23, 31, 17);
    let s = random::csr::<f32>(m, k, 0.25, 21).unwrap();
    let b = random::dense::<f32>(k, n, 22);
    let st = dev.stream();
    let idx = |v: &[i32]| st.clone_htod(v).unwrap();
    let (row_ptr, col_idx, swizzle) = (idx(s.row_ptr()), idx(s.col_idx()), idx(&s.row_swizzle()));
    let vals = upload(dev, s.values());
    let bbuf = upload(dev, b.as_slice());
    let ldc = n + 2;
    let mut cbuf = upload(dev, &strided(&Dense::filled(m, n, POISON), ldc, 0));
    {
        let addr = |p: &CudaSlice<i32>| p.device_ptr(st).0;
        let raw_s = RawCsr {
            rows: m,
            cols: k,
            nnz: s.nnz(),
            row_ptr: addr(&row_ptr),
            col_idx: addr(&col_idx),
            row_swizzle: addr(&swizzle),
            perm: 0,
            long_rows: 0,
        };
        let (v, _g1) = vals.device_ptr(st);
        let (bp, _g2) = bbuf.device_ptr(st);
        let (cp, _g3) = cbuf.device_ptr_mut(st);
        let config = KernelConfig::heuristic(Op::Spmm, DType::F32, n);
        // The raw entry launches into the context current on this thread.
        dev.context().bind_to_thread().unwrap();
        // SAFETY: every address is a live buffer of this context holding what its shape
        // says; the structure is a validated matrix's.
        unsafe {
            raw::spmm(
                DType::F32,
                &config,
                1.0,
                &raw_s,
                v,
                &RawDense {
                    ptr: bp,
                    rows: k,
                    cols: n,
                    ld: n,
                },
                0.0,
                &RawDense {
                    ptr: cp,
                    rows: m,
                    cols: n,
                    ld: ldc,
                },
                st.cu_stream() as *mut std::ffi::c_void,
            )
            .unwrap();
        }
    }
    let got = unstrided(&st.clone_dtoh(&cbuf).unwrap(), m, n, ldc, 0);
    let want = gemm_ref(1.0, &dense64(&s), &to64(&b), 0.0, None, m, k, n);
    assert_close("raw spmm", &got, &want);
}

/// A structure whose addresses are never dereferenced: every call below is refused first.
fn unlaunched(rows: usize, cols: usize, nnz: usize) -> RawCsr {
    RawCsr {
        rows,
        cols,
        nnz,
        row_ptr: 0x1000,
        col_idx: 0x2000,
        row_swizzle: 0x3000,
        perm: 0,
        long_rows: 0,
    }
}

fn dense(rows: usize, cols: usize, ld: usize) -> RawDense {
    RawDense {
        ptr: 0x4000,
        rows,
        cols,
        ld,
    }
}

#[test]
fn the_raw_entry_refuses_what_it_can_check_before_any_cuda_call() {
    let spmm_cfg = KernelConfig::heuristic(Op::Spmm, DType::F32, 8);
    let sddmm_cfg = KernelConfig::heuristic(Op::Sddmm, DType::F32, 8);
    let s = unlaunched(4, 6, 5);
    let null = std::ptr::null_mut();
    let spmm =
        |cfg: &KernelConfig, alpha: f32, s: &RawCsr, values: u64, b: RawDense, c: RawDense| {
            // SAFETY: every case is refused before a pointer is used or CUDA is called
            // (asserted below: each must be an error).
            unsafe { raw::spmm(DType::F32, cfg, alpha, s, values, &b, 0.0, &c, null) }.unwrap_err()
        };
    let e = spmm(&spmm_cfg, 1.0, &s, 0x5000, dense(5, 8, 8), dense(4, 8, 8));
    assert!(matches!(e, Error::ShapeMismatch { .. }), "B rows: {e}");
    let e = spmm(&spmm_cfg, 1.0, &s, 0x5000, dense(6, 8, 7), dense(4, 8, 8));
    assert!(e.to_string().contains("leading dimension 7"), "ldb: {e}");
    let e = spmm(&spmm_cfg, 1.0, &s, 0, dense(6, 8, 8), dense(4, 8, 8));
    assert!(e.to_string().contains("values is a null"), "values: {e}");
    let e = spmm(
        &spmm_cfg,
        f32::INFINITY,
        &s,
        0x5000,
        dense(6, 8, 8),
        dense(4, 8, 8),
    );
    assert!(matches!(e, Error::InvalidArgument(_)), "alpha: {e}");
    let e = spmm(&sddmm_cfg, 1.0, &s, 0x5000, dense(6, 8, 8), dense(4, 8, 8));
    assert!(e.to_string().contains("not for spmm"), "config op: {e}");
    // A plan (perm set) needs a transposed-product configuration.
    let plan = RawCsr { perm: 0x6000, ..s };
    let e = spmm(
        &spmm_cfg,
        1.0,
        &plan,
        0x5000,
        dense(6, 8, 8),
        dense(4, 8, 8),
    );
    assert!(
        matches!(e, Error::InvalidArgument(_)),
        "plan with spmm config: {e}"
    );
    // Long rows: only for a configuration that splits them, and at most the rows.
    let long = RawCsr { long_rows: 1, ..s };
    let e = spmm(
        &spmm_cfg,
        1.0,
        &long,
        0x5000,
        dense(6, 8, 8),
        dense(4, 8, 8),
    );
    assert!(
        e.to_string().contains("does not split"),
        "long_rows unsplit: {e}"
    );
    let split_cfg = KernelConfig::all(Op::Spmm)
        .into_iter()
        .find(|c| c.split > 0)
        .expect("the table has a splitting SpMM configuration");
    let e = spmm(
        &split_cfg,
        1.0,
        &RawCsr { long_rows: 5, ..s },
        0x5000,
        dense(6, 8, 8),
        dense(4, 8, 8),
    );
    assert!(e.to_string().contains("exceeds"), "long_rows > rows: {e}");
    let big = unlaunched(1 << 31, 6, 5);
    let e = spmm(
        &spmm_cfg,
        1.0,
        &big,
        0x5000,
        dense(6, 8, 8),
        dense(1 << 31, 8, 8),
    );
    assert!(
        matches!(e, Error::IndexOverflow { .. }),
        "rows over i32: {e}"
    );

    // SDDMM: L (4 x k), R (6 x k).
    let sddmm = |s: &RawCsr, out: u64, l: RawDense, r: RawDense| {
        // SAFETY: as above.
        unsafe { raw::sddmm(DType::F32, &sddmm_cfg, 1.0, &l, &r, 0.0, s, out, null) }.unwrap_err()
    };
    let e = sddmm(&s, 0x5000, dense(4, 8, 8), dense(6, 7, 8));
    assert!(matches!(e, Error::ShapeMismatch { .. }), "k differs: {e}");
    let e = sddmm(&s, 0, dense(4, 8, 8), dense(6, 8, 8));
    assert!(e.to_string().contains("out is a null"), "out: {e}");
    let e = sddmm(&plan, 0x5000, dense(4, 8, 8), dense(6, 8, 8));
    assert!(e.to_string().contains("perm must be 0"), "plan: {e}");
    let e = sddmm(&long, 0x5000, dense(4, 8, 8), dense(6, 8, 8));
    assert!(
        e.to_string().contains("does not split"),
        "sddmm long_rows: {e}"
    );
    let e = sddmm(&s, 0x5000, dense(4, 8, 8), dense(6, 8, 5));
    assert!(e.to_string().contains("leading dimension 5"), "ldr: {e}");
}
