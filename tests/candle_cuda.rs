//! rosa's candle ops on candle's CUDA device (feature `candle-cuda`): each op's forward
//! and backward on the GPU against the same op on candle's CPU device, on strided and
//! offset operands too, the same errors, `RosaLinear` on the GPU against the CPU layer,
//! and the ops timed against candle's dense matmul (printed, not asserted).
//!
//! Skips, saying so on stderr, where candle finds no CUDA device. (A `candle-cuda` build
//! links libcuda, so its test binaries need the driver library just to start; see
//! docs/CANDLE.md.)
#![cfg(feature = "candle-cuda")]

mod common;

use std::io::Write;
use std::time::Instant;

use candle_core::{DType, Device, Module, Tensor, Var};
use common::candle::{random_tensor, vec_f32};
use common::row_lengths;
use rosa::candle::{rosa_error, RosaLinear, SparseMask};
use rosa::quant::Nf4Config;
use rosa::{random, Csr, CsrShape, Error};

const CPU: Device = Device::Cpu;

/// candle's CUDA device 0, or `None` after printing why the test is skipped.
fn gpu(test: &str) -> Option<Device> {
    match Device::new_cuda(0) {
        Ok(dev) => Some(dev),
        Err(e) => {
            // Straight to stderr: the harness captures println!.
            let _ = writeln!(std::io::stderr(), "{test}: skipped: no CUDA device ({e})");
            None
        }
    }
}

/// A mask with empty rows and one long row (the middle one, full), as the CPU tests use.
fn skewed_mask(rows: usize, cols: usize, seed: u64) -> Csr<f32> {
    let lens = row_lengths(rows, cols, cols / 4, Some(rows / 2));
    random::csr_with_row_lengths(rows, cols, &lens, seed).unwrap()
}

/// Relative tolerance of one product in `dtype` (f32 sums on both sides, one rounding
/// each), against the sum of the absolute terms.
fn tolerance(dtype: DType) -> f32 {
    match dtype {
        DType::F32 => 1e-5,
        DType::F16 => 2e-3,
        _ => 1.6e-2,
    }
}

/// Each element of the GPU result `got` within `tolerance * bound` of the CPU result
/// `want`, `bound` being the same product on the absolute values (f32, CPU).
fn assert_close(what: &str, got: &Tensor, want: &Tensor, bound: &Tensor) {
    assert_eq!(got.dims(), want.dims(), "{what}: shapes");
    assert_eq!(got.dtype(), want.dtype(), "{what}: dtype");
    assert!(got.device().is_cuda(), "{what}: computed on the GPU");
    let tol = tolerance(want.dtype());
    let (got, want, bound) = (vec_f32(got), vec_f32(want), vec_f32(bound));
    for (p, ((g, w), b)) in got.iter().zip(&want).zip(&bound).enumerate() {
        assert!(
            (g - w).abs() <= tol * b + 1e-6,
            "{what}: element {p}: GPU {g}, CPU {w} (bound {b})"
        );
    }
}

/// One op on both devices, forward and backward, with loss `sum(out * G)`.
fn check_op(
    name: &str,
    dev: &Device,
    dtype: DType,
    op: impl Fn(&Tensor, &Tensor) -> Tensor,
    a: &Tensor,
    b: &Tensor,
) {
    let cast = |t: &Tensor, d: &Device| t.to_dtype(dtype).unwrap().to_device(d).unwrap();
    let run = |d: &Device| {
        let (va, vb) = (
            Var::from_tensor(&cast(a, d)).unwrap(),
            Var::from_tensor(&cast(b, d)).unwrap(),
        );
        let out = op(va.as_tensor(), vb.as_tensor());
        let g = cast(&random_tensor(1, out.elem_count(), 99), d)
            .reshape(out.shape())
            .unwrap();
        let grads = (&out * &g).unwrap().sum_all().unwrap().backward().unwrap();
        let (ga, gb) = (
            grads.get(&va).unwrap().clone(),
            grads.get(&vb).unwrap().clone(),
        );
        (out, ga, gb)
    };
    let (out_c, ga_c, gb_c) = run(&CPU);
    let (out_g, ga_g, gb_g) = run(dev);
    // Bounds: the same products on |inputs| in f32 on the CPU.
    let abs = |t: &Tensor| t.to_dtype(DType::F32).unwrap().abs().unwrap();
    let (aa, ab) = (abs(a), abs(b));
    let bound = op(&aa, &ab);
    assert_close(&format!("{name} {dtype:?} forward"), &out_g, &out_c, &bound);
    // Gradient bounds: the CPU backward of the absolute inputs with G = 1.
    let (va, vb) = (
        Var::from_tensor(&aa).unwrap(),
        Var::from_tensor(&ab).unwrap(),
    );
    let grads = op(va.as_tensor(), vb.as_tensor())
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    let ones = |t: &Tensor| (t.clone() + 1e-3).unwrap();
    let (ba, bb) = (ones(grads.get(&va).unwrap()), ones(grads.get(&vb).unwrap()));
    assert_close(&format!("{name} {dtype:?} d(first)"), &ga_g, &ga_c, &ba);
    assert_close(&format!("{name} {dtype:?} d(second)"), &gb_g, &gb_c, &bb);
}

#[test]
fn the_ops_on_the_gpu_match_the_cpu_forward_and_backward() {
    let Some(dev) = gpu("candle ops on the GPU") else {
        return;
    };
    let (rows, cols, n, k) = (67, 45, 19, 11);
    let csr = skewed_mask(rows, cols, 1);
    let mask = SparseMask::from_csr(&csr);
    let values = Tensor::from_slice(csr.values(), csr.nnz(), &CPU).unwrap();
    for dtype in [DType::F32, DType::F16, DType::BF16] {
        let m = mask.clone();
        check_op(
            "spmm",
            &dev,
            dtype,
            |v, x| m.spmm(v, x).unwrap(),
            &values,
            &random_tensor(cols, n, 2),
        );
        let m = mask.clone();
        check_op(
            "spmm_t",
            &dev,
            dtype,
            |v, x| m.spmm_t(v, x).unwrap(),
            &values,
            &random_tensor(rows, n, 3),
        );
        let m = mask.clone();
        check_op(
            "sddmm",
            &dev,
            dtype,
            |l, r| m.sddmm(l, r).unwrap(),
            &random_tensor(rows, k, 4),
            &random_tensor(cols, k, 5),
        );
    }
}

#[test]
fn strided_and_offset_operands_are_read_as_their_layout_says() {
    let Some(dev) = gpu("candle ops on strided operands") else {
        return;
    };
    let (rows, cols, n) = (40, 33, 9);
    let csr = skewed_mask(rows, cols, 7);
    let mask = SparseMask::from_csr(&csr);
    let on = |t: &Tensor| t.to_device(&dev).unwrap();
    let values = Tensor::from_slice(csr.values(), csr.nnz(), &CPU).unwrap();
    // X as a transposed view (a copy on the GPU), a column block (a view with a row stride
    // above its width and an offset) and a row block (an offset).
    let xt = random_tensor(n, cols, 8);
    let wide = random_tensor(cols, n + 6, 9);
    let tall = random_tensor(cols + 5, n, 10);
    type View<'a> = Box<dyn Fn(&Tensor) -> Tensor + 'a>;
    let cases: [(&str, View); 3] = [
        ("transposed", Box::new(|t: &Tensor| t.t().unwrap())),
        (
            "column block",
            Box::new(|t: &Tensor| t.narrow(1, 4, n).unwrap()),
        ),
        (
            "row block",
            Box::new(|t: &Tensor| t.narrow(0, 5, cols).unwrap()),
        ),
    ];
    for ((what, view), src) in cases.iter().zip([&xt, &wide, &tall]) {
        let want = mask.spmm(&values, &view(src)).unwrap();
        let got = mask.spmm(&on(&values), &view(&on(src))).unwrap();
        let bound = mask
            .spmm(&values.abs().unwrap(), &view(&src.abs().unwrap()))
            .unwrap();
        assert_close(&format!("spmm, X a {what}"), &got, &want, &bound);
    }
    // Values as a strided view (every other element of a longer vector) and at an offset.
    let long = random_tensor(1, 2 * csr.nnz() + 3, 11)
        .flatten_all()
        .unwrap();
    let strided = |t: &Tensor| {
        t.narrow(0, 3, 2 * csr.nnz())
            .unwrap()
            .reshape((csr.nnz(), 2))
            .unwrap()
            .narrow(1, 0, 1)
            .unwrap()
            .squeeze(1) // keeps the stride of 2 (flatten_all would copy)
            .unwrap()
    };
    let x = random_tensor(cols, n, 12);
    let want = mask.spmm(&strided(&long), &x).unwrap();
    let got = mask.spmm(&strided(&on(&long)), &on(&x)).unwrap();
    let bound = mask
        .spmm(&strided(&long).abs().unwrap(), &x.abs().unwrap())
        .unwrap();
    assert_close("spmm, strided values", &got, &want, &bound);
}

#[test]
fn the_gpu_ops_refuse_what_the_cpu_ops_refuse() {
    let Some(dev) = gpu("candle op errors on the GPU") else {
        return;
    };
    let mask = SparseMask::from_csr(&skewed_mask(12, 10, 13));
    let values = mask.zeros(DType::F32, &dev).unwrap();
    let zeros = |shape: (usize, usize), dtype| Tensor::zeros(shape, dtype, &dev).unwrap();
    let err = mask.spmm(&values, &zeros((11, 4), DType::F32)).unwrap_err();
    assert!(
        matches!(
            rosa_error(&err),
            Some(Error::ShapeMismatch { op: "spmm", .. })
        ),
        "{err}"
    );
    let short = Tensor::zeros(mask.nnz() - 1, DType::F32, &dev).unwrap();
    let err = mask.spmm(&short, &zeros((10, 4), DType::F32)).unwrap_err();
    assert!(
        matches!(rosa_error(&err), Some(Error::ValuesLength { .. })),
        "{err}"
    );
    let err = mask.spmm(&values, &zeros((10, 4), DType::F16)).unwrap_err();
    assert!(
        matches!(err, candle_core::Error::DTypeMismatchBinaryOp { .. }),
        "{err}"
    );
    let err = mask
        .sddmm(&zeros((12, 3), DType::F32), &zeros((10, 4), DType::F32))
        .unwrap_err();
    assert!(
        matches!(
            rosa_error(&err),
            Some(Error::ShapeMismatch { op: "sddmm", .. })
        ),
        "{err}"
    );
    // One operand on the CPU: candle's own device check.
    assert!(mask
        .spmm(&values, &Tensor::zeros((10, 4), DType::F32, &CPU).unwrap())
        .is_err());
}

#[test]
fn rosa_linear_on_the_gpu_matches_the_cpu_layer() {
    let Some(dev) = gpu("RosaLinear on the GPU") else {
        return;
    };
    let (out, inp, r) = (24, 32, 4);
    let w = random_tensor(out, inp, 20);
    let bias = random_tensor(1, out, 21).flatten_all().unwrap();
    let (a, b) = (random_tensor(r, inp, 22), random_tensor(out, r, 23));
    let csr = skewed_mask(out, inp, 24);
    let mask = SparseMask::from_csr(&csr);
    let values = Tensor::from_slice(csr.values(), csr.nnz(), &CPU).unwrap();
    let x = random_tensor(2 * 5, inp, 25).reshape((2, 5, inp)).unwrap();
    let layer = |d: &Device| {
        let on = |t: &Tensor| t.to_device(d).unwrap();
        let mut l = RosaLinear::new(on(&w), Some(on(&bias))).unwrap();
        l.set_lora(&on(&a), &on(&b), 0.5, 0.0).unwrap();
        l.set_sparse(mask.clone(), &on(&values)).unwrap();
        l
    };
    let (cpu, gpu_layer) = (layer(&CPU), layer(&dev));
    let run = |l: &RosaLinear, d: &Device| {
        let y = l.forward(&x.to_device(d).unwrap()).unwrap();
        let grads = y.sqr().unwrap().sum_all().unwrap().backward().unwrap();
        let gs = grads.get(l.sparse().unwrap().values()).unwrap().clone();
        (y, gs)
    };
    let (y_c, gs_c) = run(&cpu, &CPU);
    let (y_g, gs_g) = run(&gpu_layer, &dev);
    // The dense terms are candle's own matmuls (cuBLAS against gemm, in other orders):
    // each element within 10 f32 tolerances of the largest one.
    let loose = |t: &Tensor| {
        let max = vec_f32(&t.abs().unwrap())
            .into_iter()
            .fold(1.0f32, f32::max);
        (t.ones_like().unwrap() * f64::from(10.0 * max)).unwrap()
    };
    assert_close("RosaLinear forward", &y_g, &y_c, &loose(&y_c));
    assert_close("RosaLinear dS", &gs_g, &gs_c, &loose(&gs_c));
    // Merged for inference on the GPU, as on the CPU.
    let merged = gpu_layer.to_linear().unwrap();
    let y_m = merged.forward(&x.to_device(&dev).unwrap()).unwrap();
    assert_close("merged forward", &y_m, &y_c, &loose(&y_c));
}

/// QRoSA on candle's GPU: an NF4 W (QLoRA's double-quantized setting), LoRA and a sparse
/// adapter; the forward pass and the gradients of x, A and S against the same layers on
/// the CPU; merging refused on both; two layers of different
/// sizes in one graph (each product dequantizes its own W into a pooled buffer).
#[test]
fn an_nf4_rosa_linear_on_the_gpu_matches_the_cpu_layer() {
    let Some(dev) = gpu("NF4 RosaLinear on the GPU") else {
        return;
    };
    let (out, inp, r) = (24, 64, 4);
    let mask = SparseMask::from_csr(&skewed_mask(out, inp, 34));
    let values = Tensor::from_slice(
        &vec_f32(&random_tensor(1, mask.nnz(), 35)),
        mask.nnz(),
        &CPU,
    )
    .unwrap();
    let (w1, w2) = (random_tensor(out, inp, 30), random_tensor(40, out, 31));
    let (a, b) = (random_tensor(r, inp, 32), random_tensor(out, r, 33));
    let x = random_tensor(2 * 3, inp, 36).reshape((2, 3, inp)).unwrap();
    let layers = |d: &Device| {
        let on = |t: &Tensor| t.to_device(d).unwrap();
        let mut first = RosaLinear::new(on(&w1), None).unwrap();
        first.quantize_weight_nf4(Nf4Config::qlora()).unwrap();
        first.set_lora(&on(&a), &on(&b), 0.5, 0.0).unwrap();
        first.set_sparse(mask.clone(), &on(&values)).unwrap();
        let mut second = RosaLinear::new(on(&w2), None).unwrap();
        second.quantize_weight_nf4(Nf4Config::qlora()).unwrap();
        (first, second)
    };
    let (cpu, gpu_layers) = (layers(&CPU), layers(&dev));
    let run = |(l1, l2): &(RosaLinear, RosaLinear), d: &Device| {
        let xv = Var::from_tensor(&x.to_device(d).unwrap()).unwrap();
        let y = l2.forward(&l1.forward(xv.as_tensor()).unwrap()).unwrap();
        let grads = y.sqr().unwrap().sum_all().unwrap().backward().unwrap();
        let g = |t: &Tensor| grads.get(t).unwrap().clone();
        let lora = l1.lora().unwrap();
        (
            y.clone(),
            g(xv.as_tensor()),
            g(lora.a().as_tensor()),
            g(l1.sparse().unwrap().values()),
        )
    };
    let (c, g) = (run(&cpu, &CPU), run(&gpu_layers, &dev));
    // Both sides multiply the same dequantized W in f32 (cuBLAS against gemm, in other
    // orders): each element within 10 f32 tolerances of the largest one.
    let loose = |t: &Tensor| {
        let max = vec_f32(&t.abs().unwrap())
            .into_iter()
            .fold(1.0f32, f32::max);
        (t.ones_like().unwrap() * f64::from(10.0 * max)).unwrap()
    };
    assert_close("NF4 forward", &g.0, &c.0, &loose(&c.0));
    assert_close("NF4 dX", &g.1, &c.1, &loose(&c.1));
    assert_close("NF4 dA", &g.2, &c.2, &loose(&c.2));
    assert_close("NF4 dS", &g.3, &c.3, &loose(&c.3));
    assert!(gpu_layers.0.clone().merge().is_err() && cpu.0.clone().merge().is_err());
}

/// Mean milliseconds of `f` over `reps` runs after one warm-up, the device synchronized
/// around them.
fn time_ms(dev: &Device, reps: usize, f: impl Fn() -> Tensor) -> f64 {
    f();
    dev.synchronize().unwrap();
    let t = Instant::now();
    for _ in 0..reps {
        f();
    }
    dev.synchronize().unwrap();
    t.elapsed().as_secs_f64() * 1e3 / reps as f64
}

#[test]
fn the_gpu_ops_timed_against_candles_dense_matmul() {
    let Some(dev) = gpu("candle op timing") else {
        return;
    };
    // A 4096 x 4096 adapter at 1% density times a (4096 x 2048) token block.
    let (m, k, n, density) = (4096, 4096, 2048, 0.01);
    let csr = random::csr::<f32>(m, k, density, 30).unwrap();
    let mask = SparseMask::from_csr(&csr);
    for dtype in [DType::F32, DType::BF16] {
        let values = Tensor::from_slice(csr.values(), csr.nnz(), &CPU)
            .unwrap()
            .to_dtype(dtype)
            .unwrap()
            .to_device(&dev)
            .unwrap();
        let x = random_tensor(k, n, 31)
            .to_dtype(dtype)
            .unwrap()
            .to_device(&dev)
            .unwrap();
        let dense = mask.to_dense(&values).unwrap();
        let sparse_ms = time_ms(&dev, 20, || mask.spmm(&values, &x).unwrap());
        let dense_ms = time_ms(&dev, 20, || dense.matmul(&x).unwrap());
        // The two products agree (so the timings are of the same result).
        let bound = mask
            .to_dense(&values.abs().unwrap())
            .unwrap()
            .matmul(&x.abs().unwrap())
            .unwrap();
        let got = mask.spmm(&values, &x).unwrap();
        assert_close("timed spmm", &got, &dense.matmul(&x).unwrap(), &bound);
        let _ = writeln!(
            std::io::stderr(),
            "{m} x {k} at density {density}, N = {n}, {dtype:?}: rosa spmm {sparse_ms:.3} ms, \
             candle dense matmul {dense_ms:.3} ms"
        );
    }
}
