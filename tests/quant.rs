//! NF4 storage (`rosa::quant`): the code values against their published source and their
//! construction, rounding and its error bound, the packed layout, the CPU dequantizer by
//! row range, and safetensors files, well-formed and not.

mod common;

use common::scratch::Scratch;
use proptest::prelude::*;
use rosa::quant::{
    dynamic_code, load_nf4, save_nf4, BlockSize, Nf4Config, Nf4File, Nf4Matrix, Scales, NF4,
};
use rosa::random::Rng;
use rosa::{bf16, f16, Dense, Error, MatMut, MatRef, Scalar};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};

/// bitsandbytes' NF4 table as it prints it (`get_4bit_type("nf4")` in
/// `bitsandbytes/functional.py`, `nf4_dequantization_lut` in `csrc/kernels.cu`): f64
/// literals, each the exact value of an f32.
#[allow(clippy::excessive_precision)]
const PUBLISHED_NF4: [f64; 16] = [
    -1.0,
    -0.6961928009986877,
    -0.5250730514526367,
    -0.39491748809814453,
    -0.28444138169288635,
    -0.18477343022823334,
    -0.09105003625154495,
    0.0,
    0.07958029955625534,
    0.16093020141124725,
    0.24611230194568634,
    0.33791524171829224,
    0.44070982933044434,
    0.5626170039176941,
    0.7229568362236023,
    1.0,
];

#[test]
fn nf4_values_are_the_published_table() {
    for (k, (&ours, &published)) in NF4.iter().zip(&PUBLISHED_NF4).enumerate() {
        assert_eq!(
            published as f32 as f64, published,
            "entry {k} is not an f32"
        );
        assert_eq!(ours as f64, published, "entry {k}");
    }
    assert_eq!(NF4[rosa::quant::NF4_ZERO as usize], 0.0);
}

/// The standard normal CDF by composite Simpson on the density, to about 1e-15.
fn normal_cdf(x: f64) -> f64 {
    let n = 20_000;
    let h = x / n as f64;
    let pdf = |t: f64| (-t * t / 2.0).exp() / (2.0 * std::f64::consts::PI).sqrt();
    let inner: f64 = (1..n)
        .map(|i| pdf(i as f64 * h) * if i % 2 == 1 { 4.0 } else { 2.0 })
        .sum();
    0.5 + h / 3.0 * (pdf(0.0) + inner + pdf(x))
}

/// `Φ⁻¹(p)` by bisection on `normal_cdf`.
fn normal_ppf(p: f64) -> f64 {
    let (mut lo, mut hi) = (-8.0, 8.0);
    for _ in 0..100 {
        let mid = (lo + hi) / 2.0;
        if normal_cdf(mid) < p {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    (lo + hi) / 2.0
}

/// QLoRA's construction (bitsandbytes' `create_normal_map(0.9677083, True)`), in exact
/// arithmetic: 8 positive quantiles at `p` from the offset towards 0.5 in 8 steps, 7
/// negative ones in 7 steps, zero, divided by the largest. bitsandbytes takes the `p`
/// from a float32 `torch.linspace` (and the offset as an f32) and rounds the result to
/// f32, so its table sits about 1.1e-7 from the exact construction at worst (measured
/// here, 2026-11-30): the tolerance is 3e-7, five f32 steps at 0.7, and far below the
/// 0.08 between neighbouring codes.
#[test]
fn nf4_values_are_normal_quantiles() {
    let offset = 0.9677083;
    assert!((offset - (1.0 - 1.0 / 30.0 + 1.0 - 1.0 / 32.0) / 2.0f64).abs() < 1e-7);
    let quantiles = |steps: usize| {
        (0..steps).map(move |k| normal_ppf(offset + k as f64 * (0.5 - offset) / steps as f64))
    };
    let mut v: Vec<f64> = quantiles(8).chain(quantiles(7).map(|x| -x)).collect();
    v.push(0.0);
    v.sort_by(f64::total_cmp);
    let max = v[15];
    let mut worst = 0f64;
    for (k, (&code, exact)) in NF4.iter().zip(v.iter().map(|x| x / max)).enumerate() {
        let err = (code as f64 - exact).abs();
        assert!(
            err < 3e-7,
            "NF4[{k}] = {code}, the construction gives {exact}"
        );
        worst = worst.max(err);
    }
    // Not vacuous: the exact construction does differ from the float32 table.
    assert!(worst > 0.0);
}

/// The 8-bit code: bitsandbytes' `create_dynamic_map(signed=True)` structure, decade by
/// decade, from the documented definition rather than our own loop.
#[test]
fn dynamic_code_has_the_documented_structure() {
    let code = dynamic_code();
    assert!(code.windows(2).all(|w| w[0] < w[1]), "sorted, distinct");
    assert_eq!(code.iter().filter(|&&v| v < 0.0).count(), 127);
    assert_eq!(code.iter().filter(|&&v| v > 0.0).count(), 128);
    assert_eq!((code[127], code[255]), (0.0, 1.0));
    for i in 0..7 {
        let decade = 10f64.powi(i - 6);
        let n = 1usize << i;
        let inside: Vec<f64> = code
            .iter()
            .map(|&v| v as f64)
            .filter(|&v| v >= 0.1 * decade * (1.0 - 1e-6) && v < decade * (1.0 - 1e-6))
            .collect();
        assert_eq!(inside.len(), n, "decade {i}");
        for (k, &v) in inside.iter().enumerate() {
            let want = decade * (0.1 + 0.9 * (k as f64 + 0.5) / n as f64);
            assert!(
                (v - want).abs() <= want * 2f64.powi(-24),
                "decade {i}, value {k}"
            );
            assert!(code.contains(&(-v as f32)), "-{v} is missing");
        }
    }
}

/// Normal weights whose rows differ in magnitude by up to 10^6.
fn weights(rows: usize, cols: usize, seed: u64) -> Dense<f32> {
    let mut rng = Rng::new(seed);
    let row_scale: Vec<f32> = (0..rows)
        .map(|_| 10f32.powf(rng.uniform(-4.0, 2.0)))
        .collect();
    Dense::from_fn(rows, cols, |i, _| {
        let (u1, u2) = (1.0 - rng.next_f64(), rng.next_f64());
        let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
        z as f32 * row_scale[i]
    })
}

/// Element `i`'s 4-bit code, read by the documented layout: high nibble first.
fn code_of(q: &Nf4Matrix, i: usize) -> u8 {
    let byte = q.codes()[i / 2];
    if i.is_multiple_of(2) {
        byte >> 4
    } else {
        byte & 0x0f
    }
}

/// Half the widest gap between neighbouring NF4 values (the ends are -1 and 1).
fn nf4_half_gap() -> f64 {
    NF4.windows(2)
        .map(|w| (w[1] as f64 - w[0] as f64) / 2.0)
        .fold(0.0, f64::max)
}

/// How far a point of `[-1, 1]` can lie from the nearest 8-bit code value.
fn dynamic_max_error() -> f64 {
    let c = dynamic_code();
    c.windows(2)
        .map(|w| (w[1] as f64 - w[0] as f64) / 2.0)
        .chain([1.0 + c[0] as f64, 1.0 - c[255] as f64])
        .fold(0.0, f64::max)
}

/// Every documented property of `q = quantize(w)` and `back = dequantize(q)` (f32): the
/// code of each element is the nearest to `x / absmax` (ties to the smaller), `back` is
/// `NF4[code] * scale` bit for bit, and the error is within the per-block bound (plus
/// double quantization's scale error when enabled).
fn check_quantized(w: &[f32], q: &Nf4Matrix, back: &[f32]) {
    assert_eq!(w.len(), back.len());
    let b = q.block_size().get();
    let half_gap = nf4_half_gap();
    assert!(
        (half_gap - 0.15190).abs() < 1e-5,
        "the gap from -1 to NF4[1]"
    );
    for (blk, (x, y)) in w.chunks(b).zip(back.chunks(b)).enumerate() {
        let absmax = x.iter().fold(0f32, |m, v| m.max(v.abs())) as f64;
        let scale = q.scales().get(blk).expect("a scale per block");
        let scale_err = match q.scales() {
            Scales::F32(_) => {
                assert_eq!(
                    scale as f64, absmax,
                    "block {blk}: the f32 scale is the absmax"
                );
                0.0
            }
            Scales::Double(d) => {
                let a = d.absmax()[blk / d.block_size().get()] as f64;
                let bound = a * (dynamic_max_error() + 2f64.powi(-23))
                    + (scale as f64).abs() * 2f64.powi(-24);
                let err = (scale as f64 - absmax).abs();
                assert!(
                    err <= bound,
                    "block {blk}: scale {scale} vs absmax {absmax}: {err:e} > {bound:e}"
                );
                bound
            }
        };
        for (k, (&x, &y)) in x.iter().zip(y).enumerate() {
            let i = blk * b + k;
            let code = code_of(q, i);
            assert_eq!(
                y.to_bits(),
                (NF4[code as usize] * scale).to_bits(),
                "element {i}"
            );
            let (x, y) = (x as f64, y as f64);
            if absmax > 0.0 {
                let dist = |c: f32| (x / absmax - c as f64).abs();
                let best = dist(NF4[code as usize]);
                // Up to the rounding of the f64 division (ties: `ties_go_to_the_smaller_code`).
                for (j, &c) in NF4.iter().enumerate() {
                    assert!(
                        best <= dist(c) + 1e-12,
                        "element {i} = {x}: code {code} is not the nearest ({j} is)"
                    );
                }
            } else {
                assert_eq!(NF4[code as usize], 0.0, "element {i} of an all-zero block");
            }
            let bound = absmax * half_gap + scale_err + y.abs() * 2f64.powi(-24);
            assert!(
                (x - y).abs() <= bound,
                "element {i}: {x} came back as {y}, error {:e} > bound {bound:e}",
                (x - y).abs()
            );
        }
    }
}

fn configs() -> Vec<Nf4Config> {
    let mut out = vec![];
    for b in [32, 64, 256, 4096] {
        for dq in [None, Some(32), Some(256)] {
            out.push(Nf4Config {
                block_size: BlockSize::new(b).unwrap(),
                double_quant: dq.map(|d| BlockSize::new(d).unwrap()),
            });
        }
    }
    out
}

const ODD_SHAPES: [(usize, usize); 9] = [
    (1, 1),
    (1, 63),
    (3, 65),
    (7, 129),
    (2, 64),
    (5, 3),
    (64, 65),
    (33, 257),
    (131, 127),
];

#[test]
fn round_trip_within_bound_at_odd_sizes() {
    for (seed, &(rows, cols)) in ODD_SHAPES.iter().enumerate() {
        let w = weights(rows, cols, seed as u64);
        for config in configs() {
            let q = Nf4Matrix::quantize(w.as_ref(), config).unwrap();
            assert_eq!(q.config(), config);
            assert_eq!(q.codes().len(), (rows * cols).div_ceil(2));
            assert_eq!(
                q.scales().len(),
                (rows * cols).div_ceil(config.block_size.get())
            );
            if rows * cols % 2 == 1 {
                assert_eq!(q.codes().last().unwrap() & 0x0f, 0, "pad nibble");
            }
            let back = q.dequantize::<f32>().unwrap();
            check_quantized(w.as_slice(), &q, back.as_slice());
        }
    }
}

/// Exactly halfway between two codes, the smaller wins; one f32 step above, the larger.
#[test]
fn ties_go_to_the_smaller_code() {
    for k in 0..15 {
        // With absmax 1, x is compared with the midpoint itself.
        let mid = (NF4[k] as f64 + NF4[k + 1] as f64) / 2.0;
        let x = mid as f32;
        let want = if (x as f64) > mid { k + 1 } else { k };
        let q = Nf4Matrix::quantize(
            MatRef::new(&[1.0, x, x.next_up(), x.next_down()], 1, 4).unwrap(),
            Nf4Config::default(),
        )
        .unwrap();
        assert_eq!(
            code_of(&q, 1) as usize,
            want,
            "x = {x} between codes {k} and {}",
            k + 1
        );
        assert_eq!(code_of(&q, 2) as usize, k + 1);
        assert_eq!(code_of(&q, 3) as usize, k);
    }
    // An exact tie exists where the midpoint is an f32, e.g. between 0 and NF4[8].
    let x = NF4[8] / 2.0;
    assert_eq!(x as f64, NF4[8] as f64 / 2.0);
    let q =
        Nf4Matrix::quantize(MatRef::new(&[x, 1.0], 1, 2).unwrap(), Nf4Config::default()).unwrap();
    assert_eq!(code_of(&q, 0), 7);
}

#[test]
fn zero_blocks_dequantize_to_zeros() {
    for config in configs() {
        let b = config.block_size.get();
        // Blocks: random, all zero (with negative zeros), random, then a zero tail.
        let mut w = weights(1, 4 * b - 3, 3).into_vec();
        for (k, v) in w[b..2 * b].iter_mut().enumerate() {
            *v = if k % 2 == 0 { 0.0 } else { -0.0 };
        }
        for v in &mut w[3 * b..] {
            *v = 0.0;
        }
        let n = w.len();
        let q = Nf4Matrix::quantize(MatRef::new(&w, 1, n).unwrap(), config).unwrap();
        let back = q.dequantize::<f32>().unwrap();
        assert!(
            back.as_slice()[b..2 * b].iter().all(|&y| y == 0.0),
            "{config:?}"
        );
        assert!(
            back.as_slice()[3 * b..].iter().all(|&y| y == 0.0),
            "{config:?}"
        );
        check_quantized(&w, &q, back.as_slice());
        if let Scales::F32(s) = q.scales() {
            assert_eq!((s[1], s[3]), (0.0, 0.0));
        }
    }
    let zeros = Dense::<f32>::zeros(9, 70);
    let q = Nf4Matrix::quantize(zeros.as_ref(), Nf4Config::qlora()).unwrap();
    assert_eq!(q.dequantize::<bf16>().unwrap(), Dense::zeros(9, 70));
}

#[test]
fn non_finite_input_is_refused_naming_the_element() {
    for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        let mut w = weights(4, 37, 1);
        w.as_mut_slice()[2 * 37 + 5] = bad;
        w.as_mut_slice()[3 * 37 + 1] = bad; // a later one is not the one reported
        let err = Nf4Matrix::quantize(w.as_ref(), Nf4Config::default()).unwrap_err();
        match err {
            Error::NonFinite {
                row, col, value, ..
            } => {
                assert_eq!((row, col), (2, 5));
                assert_eq!(value.to_bits(), bad.to_bits());
            }
            other => panic!("expected NonFinite, got {other:?}"),
        }
    }
    let w = Dense::from_vec(1, 3, vec![bf16::ONE, bf16::NAN, bf16::ONE]).unwrap();
    let err = Nf4Matrix::quantize(w.as_ref(), Nf4Config::qlora()).unwrap_err();
    assert!(
        matches!(err, Error::NonFinite { row: 0, col: 1, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("(0, 1)"), "{err}");
}

/// bf16 and f16 in: the same as quantizing their exact f32 widening. bf16 and f16 out:
/// the f32 result rounded once.
#[test]
fn half_precision_in_and_out() {
    for config in [Nf4Config::default(), Nf4Config::qlora()] {
        let w32 = weights(13, 131, 9);
        let w16 = Dense::from_fn(13, 131, |i, j| bf16::from_f32(w32.get(i, j).unwrap()));
        let widened = Dense::from_fn(13, 131, |i, j| w16.get(i, j).unwrap().to_f32());
        let q = Nf4Matrix::quantize(w16.as_ref(), config).unwrap();
        assert_eq!(q, Nf4Matrix::quantize(widened.as_ref(), config).unwrap());
        let h = Dense::from_fn(13, 131, |i, j| f16::from_f32(widened.get(i, j).unwrap()));
        let hw = Dense::from_fn(13, 131, |i, j| h.get(i, j).unwrap().to_f32());
        assert_eq!(
            Nf4Matrix::quantize(h.as_ref(), config).unwrap(),
            Nf4Matrix::quantize(hw.as_ref(), config).unwrap()
        );

        let back32 = q.dequantize::<f32>().unwrap();
        check_quantized(widened.as_slice(), &q, back32.as_slice());
        let back_bf16 = q.dequantize::<bf16>().unwrap();
        let back_f16 = q.dequantize::<f16>().unwrap();
        for (k, &y) in back32.as_slice().iter().enumerate() {
            assert_eq!(
                back_bf16.as_slice()[k],
                <bf16 as Scalar>::from_f32(y),
                "bf16 {k}"
            );
            assert_eq!(
                back_f16.as_slice()[k].to_bits(),
                <f16 as Scalar>::from_f32(y).to_bits(),
                "f16 {k}"
            );
        }
    }
}

/// Every row range (empty, single rows, tiles starting mid-block and mid-byte, the
/// whole) equals the same rows of the whole, into a poisoned workspace.
fn check_row_ranges<T: Scalar>(q: &Nf4Matrix, ranges: &[std::ops::Range<usize>]) {
    let whole = q.dequantize::<T>().unwrap();
    let cols = q.cols();
    let mut workspace = vec![T::from_f32(f32::NAN); q.rows() * cols];
    for r in ranges {
        let out = &mut workspace[..r.len() * cols];
        out.fill(T::from_f32(f32::NAN));
        q.dequantize_into(r.clone(), MatMut::new(out, r.len(), cols).unwrap())
            .unwrap();
        let want = &whole.as_slice()[r.start * cols..r.end * cols];
        for (k, (g, w)) in out.iter().zip(want).enumerate() {
            assert_eq!(
                g.to_f32().to_bits(),
                w.to_f32().to_bits(),
                "rows {r:?}, element {k}"
            );
        }
    }
}

#[test]
fn row_ranges_equal_the_whole() {
    // Large enough (5 x 16411 elements, odd columns) for several parallel tasks, whose
    // boundaries then fall mid-row.
    for (rows, cols) in [(5, 16411), (40, 129), (7, 1)] {
        for config in [Nf4Config::default(), Nf4Config::qlora()] {
            let q = Nf4Matrix::quantize(weights(rows, cols, 4).as_ref(), config).unwrap();
            let ranges: Vec<_> = [(0, rows), (0, 0), (rows, rows), (1, 2), (rows - 1, rows)]
                .into_iter()
                .chain((0..rows).step_by(3).map(|s| (s, (s + 4).min(rows))))
                .map(|(a, b)| a..b)
                .collect();
            check_row_ranges::<f32>(&q, &ranges);
            check_row_ranges::<bf16>(&q, &ranges);
            check_row_ranges::<f16>(&q, &ranges);
        }
    }
}

#[test]
fn dequantize_into_refuses_mismatched_shapes() {
    let q = Nf4Matrix::quantize(weights(6, 10, 2).as_ref(), Nf4Config::default()).unwrap();
    let mut buf = vec![0f32; 60];
    let cases: [(std::ops::Range<usize>, usize, usize); 5] = [
        (0..7, 6, 10), // past the last row
        (4..7, 3, 10),
        (0..2, 3, 10), // output rows
        (0..2, 2, 9),  // output columns
        (0..6, 5, 12),
    ];
    for (r, rows, cols) in cases {
        let out = MatMut::new(&mut buf[..rows * cols], rows, cols).unwrap();
        let err = q.dequantize_into(r.clone(), out).unwrap_err();
        assert!(matches!(err, Error::ShapeMismatch { .. }), "{r:?}: {err}");
    }
    #[allow(clippy::reversed_empty_ranges)]
    let backwards = 3..2;
    let err = q
        .dequantize_into(backwards, MatMut::new(&mut buf[..0], 0, 10).unwrap())
        .unwrap_err();
    assert!(matches!(err, Error::ShapeMismatch { .. }), "{err}");
}

#[test]
fn stored_bytes_count_codes_scales_and_constants() {
    let w = weights(64, 64, 1); // 4096 weights: 64 blocks of 64
    let plain = Nf4Matrix::quantize(w.as_ref(), Nf4Config::default()).unwrap();
    assert_eq!(plain.stored_bytes(), 2048 + 64 * 4);
    let dq = Nf4Matrix::quantize(w.as_ref(), Nf4Config::qlora()).unwrap();
    // 64 8-bit scales, one nested block of 256 (partial): one f32 absmax, one f32 offset.
    assert_eq!(dq.stored_bytes(), 2048 + 64 + 4 + 4);
    let w = weights(3, 1000, 1); // 3000 weights: 1500 bytes, 47 blocks
    let dq32 = Nf4Config {
        block_size: BlockSize::NF4_DEFAULT,
        double_quant: Some(BlockSize::new(32).unwrap()),
    };
    let q = Nf4Matrix::quantize(w.as_ref(), dq32).unwrap();
    assert_eq!(q.stored_bytes(), 1500 + 47 + 2 * 4 + 4);
}

#[test]
fn empty_matrices() {
    for (rows, cols) in [(0, 0), (0, 5), (5, 0)] {
        for config in [Nf4Config::default(), Nf4Config::qlora()] {
            let w = Dense::<f32>::zeros(rows, cols);
            let q = Nf4Matrix::quantize(w.as_ref(), config).unwrap();
            assert!(q.is_empty() && q.codes().is_empty() && q.scales().is_empty());
            assert_eq!(q.dequantize::<f32>().unwrap(), w);
            let dir = Scratch::new();
            let path = dir.path("empty.safetensors");
            save_nf4(&path, &[("w", &q)]).unwrap();
            assert_eq!(load_nf4(&path, "w").unwrap(), q);
        }
    }
}

#[test]
fn safetensors_round_trip_is_bit_exact() {
    let dir = Scratch::new();
    let path = dir.path("sub/dir/w.safetensors");
    let a = Nf4Matrix::quantize(weights(7, 129, 1).as_ref(), Nf4Config::default()).unwrap();
    let b = Nf4Matrix::quantize(weights(33, 257, 2).as_ref(), Nf4Config::qlora()).unwrap();
    let c_cfg = Nf4Config {
        block_size: BlockSize::new(4096).unwrap(),
        double_quant: Some(BlockSize::new(32).unwrap()),
    };
    let c = Nf4Matrix::quantize(weights(1, 63, 3).as_ref(), c_cfg).unwrap();
    save_nf4(&path, &[("layers.0.w", &a), ("layers.1.w", &b), ("c", &c)]).unwrap();
    let file = Nf4File::open(&path).unwrap();
    assert_eq!(file.names(), ["c", "layers.0.w", "layers.1.w"]);
    for (name, m) in [("layers.0.w", &a), ("layers.1.w", &b), ("c", &c)] {
        let got = file.matrix(name).unwrap();
        assert_eq!(&got, m, "{name}");
        assert_eq!(got.codes(), m.codes());
        assert_eq!(got.config(), m.config());
        let (x, y) = (
            got.dequantize::<f32>().unwrap(),
            m.dequantize::<f32>().unwrap(),
        );
        assert!(x
            .as_slice()
            .iter()
            .zip(y.as_slice())
            .all(|(p, q)| p.to_bits() == q.to_bits()));
    }
    // The file is the stored bytes plus a header, nothing more.
    let size = std::fs::metadata(&path).unwrap().len() as usize;
    let stored = a.stored_bytes() + b.stored_bytes() + c.stored_bytes();
    assert!(
        size > stored && size < stored + 4096,
        "{size} bytes for {stored} stored"
    );

    let err = save_nf4(&path, &[("w", &a), ("w", &b)]).unwrap_err();
    assert!(err.to_string().contains("w.shape"), "{err}");
    // `x` double-quantized writes x.absmax.*, which a matrix named `x.absmax` also would.
    let err = save_nf4(&path, &[("x", &b), ("x.absmax", &a)]).unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
    assert_eq!(
        Nf4File::open(&path).unwrap().matrix("c").unwrap(),
        c,
        "left intact"
    );
}

/// The tensors of a valid file, to edit into malformed ones.
type Tensors = Vec<(String, Dtype, Vec<usize>, Vec<u8>)>;

fn tensors_of(path: &std::path::Path) -> Tensors {
    let bytes = std::fs::read(path).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    st.tensors()
        .into_iter()
        .map(|(n, v)| (n, v.dtype(), v.shape().to_vec(), v.data().to_vec()))
        .collect()
}

fn write_tensors(path: &std::path::Path, t: &Tensors) {
    let views: Vec<_> = t
        .iter()
        .map(|(n, d, s, b)| (n.clone(), TensorView::new(*d, s.clone(), b).unwrap()))
        .collect();
    std::fs::write(path, safetensors::serialize(views, None).unwrap()).unwrap();
}

fn set(t: &mut Tensors, name: &str, dtype: Dtype, bytes: Vec<u8>) {
    let len = bytes.len() * 8 / dtype.bitsize();
    match t.iter_mut().find(|e| e.0 == name) {
        Some(e) => *e = (name.into(), dtype, vec![len], bytes),
        None => t.push((name.into(), dtype, vec![len], bytes)),
    }
}

fn remove(t: &mut Tensors, name: &str) {
    t.retain(|e| e.0 != name);
}

fn i64s(v: &[i64]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn f32s(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

#[test]
fn malformed_files_are_refused_with_clear_errors() {
    let dir = Scratch::new();
    let good = dir.path("good.safetensors");
    // 3 x 65 = 195 elements: 98 bytes of codes (odd: a pad nibble), 4 blocks of 64.
    let plain = Nf4Matrix::quantize(weights(3, 65, 1).as_ref(), Nf4Config::default()).unwrap();
    let dq = Nf4Matrix::quantize(weights(3, 65, 2).as_ref(), Nf4Config::qlora()).unwrap();
    save_nf4(&good, &[("w", &plain), ("d", &dq)]).unwrap();
    let base = tensors_of(&good);
    let mut codes = plain.codes().to_vec();

    type Edit = Box<dyn Fn(&mut Tensors)>;
    let cases: Vec<(&str, &str, Edit)> = vec![
        ("w", "no tensor w.codes", Box::new(|t| remove(t, "w.codes"))),
        ("w", "no tensor w.shape", Box::new(|t| remove(t, "w.shape"))),
        (
            "w",
            "no tensor w.block_size",
            Box::new(|t| remove(t, "w.block_size")),
        ),
        ("w", "has no scales", Box::new(|t| remove(t, "w.absmax"))),
        (
            "d",
            "no tensor d.absmax.offset",
            Box::new(|t| remove(t, "d.absmax.offset")),
        ),
        (
            "d",
            "no tensor d.absmax.absmax",
            Box::new(|t| remove(t, "d.absmax.absmax")),
        ),
        ("w", "w.codes has shape [97], expected [98]", {
            let short = codes[..97].to_vec();
            Box::new(move |t| set(t, "w.codes", Dtype::U8, short.clone()))
        }),
        ("w", "w.codes is F32, expected U8", {
            let as_f32 = vec![0u8; 98 * 4];
            Box::new(move |t| set(t, "w.codes", Dtype::F32, as_f32.clone()))
        }),
        ("w", "w.absmax has shape [3], expected [4]", {
            Box::new(|t| set(t, "w.absmax", Dtype::F32, f32s(&[1.0, 1.0, 1.0])))
        }),
        (
            "w",
            "block size 48",
            Box::new(|t| set(t, "w.block_size", Dtype::I64, i64s(&[48]))),
        ),
        (
            "w",
            "block size 8192",
            Box::new(|t| set(t, "w.block_size", Dtype::I64, i64s(&[8192]))),
        ),
        (
            "w",
            "block size -64",
            Box::new(|t| set(t, "w.block_size", Dtype::I64, i64s(&[-64]))),
        ),
        ("d", "block size 100", {
            Box::new(|t| set(t, "d.absmax.block_size", Dtype::I64, i64s(&[100])))
        }),
        (
            "w",
            "not two sizes >= 0",
            Box::new(|t| set(t, "w.shape", Dtype::I64, i64s(&[-3, 65]))),
        ),
        ("w", "overflows", {
            Box::new(|t| set(t, "w.shape", Dtype::I64, i64s(&[i64::MAX, i64::MAX])))
        }),
        ("w", "w.shape has shape [3], expected [2]", {
            Box::new(|t| set(t, "w.shape", Dtype::I64, i64s(&[3, 65, 1])))
        }),
        ("w", "scale 2 is NaN", {
            Box::new(|t| set(t, "w.absmax", Dtype::F32, f32s(&[1.0, 1.0, f32::NAN, 1.0])))
        }),
        ("w", "scale 1 is -1", {
            Box::new(|t| set(t, "w.absmax", Dtype::F32, f32s(&[1.0, -1.0, 1.0, 1.0])))
        }),
        ("d", "nested absmax 0 is inf", {
            Box::new(|t| set(t, "d.absmax.absmax", Dtype::F32, f32s(&[f32::INFINITY])))
        }),
        (
            "d",
            "offset NaN",
            Box::new(|t| set(t, "d.absmax.offset", Dtype::F32, f32s(&[f32::NAN]))),
        ),
        ("w", "both w.absmax and w.absmax.codes", {
            Box::new(|t| set(t, "w.absmax.codes", Dtype::U8, vec![0; 4]))
        }),
        ("w", "pad nibble", {
            codes[97] |= 0x03;
            let padded = codes.clone();
            Box::new(move |t| set(t, "w.codes", Dtype::U8, padded.clone()))
        }),
        ("x", "no tensor x.shape", Box::new(|_| {})),
    ];
    for (k, (name, want, edit)) in cases.iter().enumerate() {
        let mut t = base.clone();
        edit(&mut t);
        let path = dir.path(&format!("bad{k}.safetensors"));
        write_tensors(&path, &t);
        let err = load_nf4(&path, name).unwrap_err();
        let msg = err.to_string();
        assert!(
            matches!(err, Error::Format { .. })
                && msg.contains(want)
                && msg.contains(&format!("bad{k}")),
            "case {k}: expected a format error about '{want}', got: {msg}"
        );
        // The other matrix of the file still loads: errors are per matrix.
        let other = if *name == "d" { "w" } else { "d" };
        if t.iter().any(|e| e.0 == format!("{other}.codes")) && !want.contains("both") {
            assert!(
                load_nf4(&path, other).is_ok(),
                "case {k}: {other} should load"
            );
        }
    }

    // Not a safetensors file, a truncated one, and no file at all.
    let bytes = std::fs::read(&good).unwrap();
    let cut = dir.path("cut.safetensors");
    std::fs::write(&cut, &bytes[..bytes.len() - 1]).unwrap();
    assert!(matches!(Nf4File::open(&cut), Err(Error::Format { .. })));
    let junk = dir.path("junk.safetensors");
    std::fs::write(&junk, [0xffu8; 64]).unwrap();
    assert!(matches!(Nf4File::open(&junk), Err(Error::Format { .. })));
    assert!(matches!(
        Nf4File::open(dir.path("missing.safetensors")),
        Err(Error::Io { .. })
    ));
    // And the unedited file loads.
    assert_eq!(load_nf4(&good, "w").unwrap(), plain);
    assert_eq!(load_nf4(&good, "d").unwrap(), dq);
}

#[test]
fn from_parts_checks_what_it_is_given() {
    let q = Nf4Matrix::quantize(weights(3, 5, 1).as_ref(), Nf4Config::default()).unwrap();
    let b = q.block_size();
    let rebuilt = Nf4Matrix::from_parts(3, 5, b, q.codes().to_vec(), q.scales().clone()).unwrap();
    assert_eq!(rebuilt, q);
    assert!(Nf4Matrix::from_parts(3, 5, b, vec![0; 7], q.scales().clone()).is_err());
    assert!(Nf4Matrix::from_parts(3, 5, b, q.codes().to_vec(), Scales::F32(vec![])).is_err());
    assert!(Nf4Matrix::from_parts(usize::MAX, 2, b, vec![], Scales::F32(vec![])).is_err());
    assert!(Scales::double_quantize(&[1.0, f32::NAN], BlockSize::DOUBLE_QUANT_DEFAULT).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Random shapes, block sizes and settings: the documented properties, a random row
    /// range against the whole, and bf16 out against f32 out.
    #[test]
    fn random_shapes(
        rows in 0usize..24,
        cols in 0usize..300,
        block in prop::sample::select(vec![32usize, 64, 128, 256, 4096]),
        nested in prop::option::of(prop::sample::select(vec![32usize, 256])),
        seed in any::<u64>(),
        range in (0usize..24, 0usize..24),
    ) {
        let config = Nf4Config {
            block_size: BlockSize::new(block).unwrap(),
            double_quant: nested.map(|n| BlockSize::new(n).unwrap()),
        };
        let w = weights(rows, cols, seed);
        let q = Nf4Matrix::quantize(w.as_ref(), config).unwrap();
        let back = q.dequantize::<f32>().unwrap();
        check_quantized(w.as_slice(), &q, back.as_slice());
        let (a, b) = (range.0.min(rows), range.1.min(rows));
        let r = a.min(b)..a.max(b);
        check_row_ranges::<bf16>(&q, std::slice::from_ref(&r));
        check_row_ranges::<f32>(&q, &[r]);
    }
}
