//! The raw-pointer entry, `rosa::emu::raw` (the same source as `rosa::cuda::raw`), on the
//! emulated kernels (feature `cuda-emu`): host addresses as `u64`s and a null stream, the
//! structure of a `rosa::Csr` (or its `TransposePlan` for `A^T B`) as the caller would
//! upload it. Each product is checked against the dense float64 reference with the kernel
//! tests' tolerance rule (tests/common), f32, bf16 and f16, every tile configuration:
//! operands at row strides above their width and at offsets inside larger buffers, whose
//! padding must survive, outputs NaN-poisoned when beta = 0, empty rows and a row longer
//! than any sub-warp batch, the splitting tiles with `KernelConfig::long_rows` and with
//! every row long; `raw::spmm_f32_out` the same way, bf16 operands into an f32 C checked
//! at f32's precision. Then the refusals, each a typed error, and a launch the C side
//! refuses as `Error::Cuda`.
//!
//! Under AddressSanitizer (scripts/emu-check.sh) the guard elements before and after each
//! operand are unaddressable to the kernels, as in tests/emu_kernels.rs.
#![cfg(feature = "cuda-emu")]

mod common;

use std::ffi::c_void;
use std::ptr::null_mut;

use common::kernels::Case;
use common::{assert_close, strided, unstrided, PAD};
use rosa::emu::raw::{self, RawCsr, RawDense};
use rosa::emu::KernelConfig;
use rosa::{bf16, f16, CsrShape, DType, Dense, Error, Op, Scalar};

/// A host buffer standing in for device memory. Under ASan its elements before `lo` and
/// from `hi` on are poisoned (fenced) until [`Fenced::open`] or drop.
struct Fenced<T> {
    v: Vec<T>,
    lo: usize,
}

impl<T: Scalar> Fenced<T> {
    fn new(v: Vec<T>, lo: usize, hi: usize) -> Fenced<T> {
        let size = std::mem::size_of::<T>();
        let base = v.as_ptr().cast::<u8>();
        // SAFETY: both ranges lie inside `v`'s allocation; they are unpoisoned before `v`
        // is read by Rust (open) or freed (drop).
        unsafe {
            rosa::emu::poison(base, lo * size, true);
            rosa::emu::poison(base.add(hi * size), (v.len() - hi) * size, true);
        }
        Fenced { v, lo }
    }

    /// `m` at row stride `ld` after `offset` elements, with four more after its end.
    fn strided(m: &Dense<T>, ld: usize, offset: usize) -> Fenced<T> {
        let mut v = strided(m, ld, offset);
        v.extend([T::from_f32(PAD); 4]);
        let hi = if m.rows() == 0 {
            offset
        } else {
            offset + (m.rows() - 1) * ld + m.cols()
        };
        Fenced::new(v, offset, hi)
    }

    /// `x` between `before` and `after` elements of `PAD`.
    fn around(x: &[T], before: usize, after: usize) -> Fenced<T> {
        let mut v = vec![T::from_f32(PAD); before];
        v.extend_from_slice(x);
        v.extend(vec![T::from_f32(PAD); after]);
        Fenced::new(v, before, before + x.len())
    }

    /// The "device" address of element `lo`.
    fn addr(&mut self) -> u64 {
        self.v[self.lo..].as_mut_ptr() as usize as u64
    }

    /// The whole buffer, readable again.
    fn open(mut self) -> Vec<T> {
        self.unpoison();
        std::mem::take(&mut self.v)
    }
}

impl<T> Fenced<T> {
    fn unpoison(&self) {
        let bytes = std::mem::size_of_val(self.v.as_slice());
        if bytes > 0 {
            // SAFETY: the whole live allocation.
            unsafe { rosa::emu::poison(self.v.as_ptr().cast(), bytes, false) }
        }
    }
}

impl<T> Drop for Fenced<T> {
    fn drop(&mut self) {
        self.unpoison();
    }
}

fn addr<T>(v: &[T]) -> u64 {
    v.as_ptr() as usize as u64
}

/// The launch's `long_rows`.
#[derive(Clone, Copy, Debug)]
enum Long {
    /// [`KernelConfig::long_rows`] of the host arrays (0 for a tile that does not split).
    Rule,
    /// Every row, empty ones too, for a splitting tile (any count is correct).
    All,
}

impl Long {
    fn count(self, config: &KernelConfig, row_ptr: &[i32], swizzle: &[i32]) -> usize {
        match self {
            Long::Rule => config.long_rows(row_ptr, swizzle),
            Long::All if config.split > 0 => swizzle.len(),
            Long::All => 0,
        }
    }
}

/// Extra row stride and base offset, in elements, of the two dense operands (B and C, or
/// L and R).
#[derive(Clone, Copy, Debug)]
struct Layout {
    pad: [usize; 2],
    off: [usize; 2],
}

impl Layout {
    /// Strides n+1..n+4 and n+2..n+6, offsets 1..3 and 0..3 elements, from `i`.
    fn ragged(i: usize) -> Layout {
        Layout {
            pad: [1 + i % 4, 2 + i % 5],
            off: [1 + i % 3, i % 4],
        }
    }
}

/// The case every tile runs: 23 x 41 with empty rows (every fifth), short rows and row 1
/// holding all 41 columns (longer than the widest sub-warp, and long for the split rule);
/// the dense dimension 19 is no multiple of any vector width.
fn case(seed: u64, beta: f32) -> Case {
    Case {
        m: 23,
        k: 41,
        n: 19,
        mean_len: 3,
        long_row: Some(1),
        alpha: 0.75,
        beta,
        seed,
    }
}

/// A raw SpMM entry: `raw::spmm` or `raw::spmm_f32_out`.
type Entry = unsafe fn(
    DType,
    &KernelConfig,
    f32,
    &RawCsr,
    u64,
    &RawDense,
    f32,
    &RawDense,
    *mut c_void,
) -> rosa::Result<()>;

/// [`spmm_into`] with C in the operands' type, through `raw::spmm`.
fn spmm_case<T: Scalar>(
    c: &Case,
    transposed: bool,
    config: &KernelConfig,
    lay: Layout,
    long: Long,
) -> usize {
    spmm_into::<T, T>(c, transposed, config, lay, long, raw::spmm)
}

/// `C = alpha op(A) B + beta C` through `entry`, operands of `T` and C of `O`, checked
/// against f64 at `O`'s precision; returns the launch's `long_rows`.
fn spmm_into<T: Scalar, O: Scalar>(
    c: &Case,
    transposed: bool,
    config: &KernelConfig,
    lay: Layout,
    long: Long,
    entry: Entry,
) -> usize {
    let p = c.spmm::<T>(transposed);
    // Widening is exact (bf16 into f32), so `p.want` still holds; NaN stays NaN.
    let c0 = p.c0.as_slice().iter().map(|x| O::from_f32(x.to_f32()));
    let c0 = Dense::from_vec(p.c0.rows(), p.c0.cols(), c0.collect()).unwrap();
    let plan = p.a.transpose_plan();
    let (rows, cols, row_ptr, col_idx, swizzle) = if transposed {
        (c.k, c.m, plan.row_ptr(), plan.col_idx(), plan.row_swizzle())
    } else {
        (c.m, c.k, p.a.row_ptr(), p.a.col_idx(), p.a.row_swizzle())
    };
    let long_rows = long.count(config, row_ptr, &swizzle);
    let s = RawCsr {
        rows,
        cols,
        nnz: p.a.nnz(),
        row_ptr: addr(row_ptr),
        col_idx: addr(col_idx),
        row_swizzle: addr(&swizzle),
        perm: if transposed { addr(plan.perm()) } else { 0 },
        long_rows,
    };
    let n = c.n;
    let (ldb, ldc) = (n + lay.pad[0], n + lay.pad[1]);
    let mut values = Fenced::around(p.a.values(), 3, 2);
    let mut b = Fenced::strided(&p.b, ldb, lay.off[0]);
    // C's offset and stride count `O` elements, so an f32 C stays 4-byte aligned.
    let mut out = Fenced::strided(&c0, ldc, lay.off[1]);
    let what = format!(
        "raw spmm t={transposed} {} C {} {config} {rows}x{cols} n={n} ldb={ldb} ldc={ldc} \
         offsets {:?} beta={} long_rows={long_rows}",
        T::DTYPE,
        O::DTYPE,
        lay.off,
        c.beta
    );
    let bd = RawDense {
        ptr: b.addr(),
        rows: cols,
        cols: n,
        ld: ldb,
    };
    let cd = RawDense {
        ptr: out.addr(),
        rows,
        cols: n,
        ld: ldc,
    };
    // SAFETY: every address is a live host buffer holding what its shape and stride say
    // (the emulator's "device" memory); the index arrays are a validated matrix's or its
    // plan's; nothing else touches C until the call returns (the emulated launch has
    // finished by then).
    unsafe {
        entry(
            T::DTYPE,
            config,
            c.alpha,
            &s,
            values.addr(),
            &bd,
            c.beta,
            &cd,
            null_mut(),
        )
    }
    .unwrap_or_else(|e| panic!("{what}: {e}"));
    let got = unstrided(&out.open(), rows, n, ldc, lay.off[1]);
    assert_close(&what, &got, &p.want);
    // The read-only operands and their guards are untouched too.
    assert_eq!(
        unstrided(&b.open(), cols, n, ldb, lay.off[0]),
        p.b.as_slice()
    );
    assert_eq!(&values.open()[3..3 + p.a.nnz()], p.a.values());
    long_rows
}

/// `out = alpha (L R^T) at the mask + beta out` through `raw::sddmm`, checked against f64;
/// returns the launch's `long_rows`.
fn sddmm_case<T: Scalar>(c: &Case, config: &KernelConfig, lay: Layout, long: Long) -> usize {
    let p = c.sddmm::<T>();
    let swizzle = p.mask.row_swizzle();
    let long_rows = long.count(config, p.mask.row_ptr(), &swizzle);
    let nnz = p.mask.nnz();
    let s = RawCsr {
        rows: c.m,
        cols: c.k,
        nnz,
        row_ptr: addr(p.mask.row_ptr()),
        col_idx: addr(p.mask.col_idx()),
        row_swizzle: addr(&swizzle),
        perm: 0,
        long_rows,
    };
    let kd = c.n;
    let (ldl, ldr) = (kd + lay.pad[0], kd + lay.pad[1]);
    let mut l = Fenced::strided(&p.l, ldl, lay.off[0]);
    let mut r = Fenced::strided(&p.r, ldr, lay.off[1]);
    // The old values (NaN when beta = 0) inside a larger buffer.
    let mut out = Fenced::around(p.mask.values(), 5, 3);
    let what = format!(
        "raw sddmm {} {config} {}x{} k={kd} ldl={ldl} ldr={ldr} offsets {:?} beta={} \
         long_rows={long_rows}",
        T::DTYPE,
        c.m,
        c.k,
        lay.off,
        c.beta
    );
    let ld = RawDense {
        ptr: l.addr(),
        rows: c.m,
        cols: kd,
        ld: ldl,
    };
    let rd = RawDense {
        ptr: r.addr(),
        rows: c.k,
        cols: kd,
        ld: ldr,
    };
    // SAFETY: as in spmm_case, with `out` holding the mask's nnz values.
    unsafe {
        raw::sddmm(
            T::DTYPE,
            config,
            c.alpha,
            &ld,
            &rd,
            c.beta,
            &s,
            out.addr(),
            null_mut(),
        )
    }
    .unwrap_or_else(|e| panic!("{what}: {e}"));
    let got = out.open();
    let pad = T::from_f32(PAD);
    assert!(
        got[..5].iter().chain(&got[5 + nnz..]).all(|&x| x == pad),
        "{what}: a guard around out was written"
    );
    assert_close(&what, &got[5..5 + nnz], &p.want);
    assert_eq!(
        unstrided(&l.open(), c.m, kd, ldl, lay.off[0]),
        p.l.as_slice()
    );
    assert_eq!(
        unstrided(&r.open(), c.k, kd, ldr, lay.off[1]),
        p.r.as_slice()
    );
    long_rows
}

fn for_each_dtype(mut f: impl FnMut(DType)) {
    for dt in [DType::F32, DType::Bf16, DType::F16] {
        f(dt);
    }
}

macro_rules! typed {
    ($dt:expr, $f:ident ( $($arg:expr),* )) => {
        match $dt {
            DType::F32 => $f::<f32>($($arg),*),
            DType::Bf16 => $f::<bf16>($($arg),*),
            DType::F16 => $f::<f16>($($arg),*),
        }
    };
}

#[test]
fn spmm_and_spmm_t_every_tile_and_dtype_on_strided_offset_views() {
    let mut i = 0;
    for (op, transposed) in [(Op::Spmm, false), (Op::SpmmT, true)] {
        for config in KernelConfig::all(op) {
            for_each_dtype(|dt| {
                i += 1;
                let beta = [0.0, -0.5][i % 2];
                let c = case(100 + i as u64, beta);
                let long = typed!(
                    dt,
                    spmm_case(&c, transposed, &config, Layout::ragged(i), Long::Rule)
                );
                // Row 1 of A is long for the rule; A^T's rows (A's columns) are not.
                if config.split > 0 && !transposed {
                    assert_eq!(long, 1, "{config}: the long row is counted");
                }
            });
            // B and C 16-byte aligned (f32, no offset) at strides a multiple of the vector
            // width: the fast path of the unroll > 1 tiles.
            let c = case(7, 1.0);
            let lay = Layout {
                pad: [32 - c.n, 40 - c.n],
                off: [0, 0],
            };
            spmm_case::<f32>(&c, transposed, &config, lay, Long::Rule);
        }
    }
}

/// `raw::spmm_f32_out`: bf16 operands into an f32 C on every SpMM and SpMM^T tile, the
/// splitting ones with every row long too, checked at f32's precision (a C rounded to
/// bf16 fails); and f32 operands, the plain product.
#[test]
fn spmm_f32_out_every_tile_on_strided_offset_views() {
    let mut i = 0;
    for (op, transposed) in [(Op::Spmm, false), (Op::SpmmT, true)] {
        for config in KernelConfig::all(op) {
            let longs: &[Long] = if config.split > 0 {
                &[Long::Rule, Long::All]
            } else {
                &[Long::Rule]
            };
            for &long in longs {
                for beta in [0.0, -0.5] {
                    i += 1;
                    let c = case(500 + i as u64, beta);
                    let lay = Layout::ragged(i);
                    spmm_into::<bf16, f32>(&c, transposed, &config, lay, long, raw::spmm_f32_out);
                }
            }
            i += 1;
            let c = case(500 + i as u64, 1.0);
            let lay = Layout::ragged(i);
            spmm_into::<f32, f32>(&c, transposed, &config, lay, Long::Rule, raw::spmm_f32_out);
        }
    }
}

#[test]
fn split_tiles_with_a_row_longer_than_a_block_and_with_every_row_long() {
    // A 150-entry row: more batches than a splitting block has sub-warps.
    let c = Case {
        m: 31,
        k: 150,
        n: 21,
        mean_len: 2,
        long_row: Some(4),
        alpha: -1.25,
        beta: 0.0,
        seed: 77,
    };
    let mut i = 0;
    for (op, transposed) in [(Op::Spmm, false), (Op::SpmmT, true)] {
        for config in KernelConfig::all(op).into_iter().filter(|c| c.split > 0) {
            for long in [Long::Rule, Long::All] {
                for dt in [DType::F32, DType::Bf16] {
                    i += 1;
                    let got = typed!(
                        dt,
                        spmm_case(&c, transposed, &config, Layout::ragged(i), long)
                    );
                    if matches!(long, Long::All) {
                        assert_eq!(got, if transposed { c.k } else { c.m });
                    } else if !transposed {
                        assert_eq!(got, 1, "{config}: the 150-entry row is long");
                    }
                }
            }
        }
    }
    for config in KernelConfig::all(Op::Sddmm)
        .into_iter()
        .filter(|c| c.split > 0)
    {
        for long in [Long::Rule, Long::All] {
            for dt in [DType::F32, DType::Bf16] {
                i += 1;
                let got = typed!(dt, sddmm_case(&c, &config, Layout::ragged(i), long));
                assert_eq!(got, if matches!(long, Long::All) { c.m } else { 1 });
            }
        }
    }
}

#[test]
fn sddmm_every_tile_and_dtype_on_strided_offset_views() {
    let mut i = 0;
    for config in KernelConfig::all(Op::Sddmm) {
        for_each_dtype(|dt| {
            i += 1;
            let beta = [0.0, 0.5][i % 2];
            let c = case(300 + i as u64, beta);
            let long = typed!(dt, sddmm_case(&c, &config, Layout::ragged(i), Long::Rule));
            if config.split > 0 {
                assert_eq!(long, 1, "{config}: the long row is counted");
            }
        });
    }
}

#[test]
fn empty_structures_and_dense_dimensions_run_with_null_operands() {
    let spmm_cfg = KernelConfig::heuristic(Op::Spmm, DType::F32, 8);
    let sddmm_cfg = KernelConfig::heuristic(Op::Sddmm, DType::F32, 8);
    // Three empty rows: no values, no columns and no B are needed, and C becomes zero
    // (beta = 0 never reads its NaN).
    let (row_ptr, swizzle) = ([0i32; 4], [0i32, 1, 2]);
    let s = RawCsr {
        rows: 3,
        cols: 4,
        nnz: 0,
        row_ptr: addr(&row_ptr),
        col_idx: 0,
        row_swizzle: addr(&swizzle),
        perm: 0,
        long_rows: 0,
    };
    let mut c = vec![f32::NAN; 3 * 8];
    let cd = RawDense {
        ptr: c.as_mut_ptr() as usize as u64,
        rows: 3,
        cols: 8,
        ld: 8,
    };
    let b = RawDense {
        ptr: 0,
        rows: 4,
        cols: 8,
        ld: 8,
    };
    // SAFETY: the kernel reads the offsets and the swizzle and writes C, all live.
    unsafe { raw::spmm(DType::F32, &spmm_cfg, 1.0, &s, 0, &b, 0.0, &cd, null_mut()) }.unwrap();
    assert!(c.iter().all(|&x| x == 0.0), "empty rows give zero: {c:?}");
    // N = 0: nothing to write, so C may be null too.
    let none = |rows| RawDense {
        ptr: 0,
        rows,
        cols: 0,
        ld: 0,
    };
    // SAFETY: nothing is read or written.
    unsafe {
        raw::spmm(
            DType::F32,
            &spmm_cfg,
            1.0,
            &s,
            0,
            &none(4),
            0.0,
            &none(3),
            null_mut(),
        )
    }
    .unwrap();
    // An empty mask: SDDMM writes nothing, so out, L and R may all be null.
    let l = RawDense {
        ptr: 0,
        rows: 3,
        cols: 8,
        ld: 8,
    };
    let r = RawDense { rows: 4, ..l };
    // SAFETY: as above.
    unsafe { raw::sddmm(DType::F32, &sddmm_cfg, 1.0, &l, &r, 0.0, &s, 0, null_mut()) }.unwrap();
}

#[test]
fn refusals_are_typed_errors_and_a_refused_launch_is_error_cuda() {
    let spmm_cfg = KernelConfig::heuristic(Op::Spmm, DType::F32, 8);
    let spmm_t_cfg = KernelConfig::heuristic(Op::SpmmT, DType::F32, 8);
    let sddmm_cfg = KernelConfig::heuristic(Op::Sddmm, DType::F32, 8);
    // A real 4 x 6 problem in live buffers, so that a check that failed to refuse would
    // launch on valid memory and be caught by the assertions, not by a crash.
    let a = rosa::random::csr::<f32>(4, 6, 0.5, 5).unwrap();
    let plan = a.transpose_plan();
    let swizzle = a.row_swizzle();
    let s = RawCsr {
        rows: 4,
        cols: 6,
        nnz: a.nnz(),
        row_ptr: addr(a.row_ptr()),
        col_idx: addr(a.col_idx()),
        row_swizzle: addr(&swizzle),
        perm: 0,
        long_rows: 0,
    };
    assert!(a.nnz() > 0);
    let values = addr(a.values());
    let mut mem = vec![0f32; 64];
    let ptr = mem.as_mut_ptr() as usize as u64;
    let dense = |rows, cols, ld| RawDense {
        ptr,
        rows,
        cols,
        ld,
    };
    let (b, c) = (dense(6, 8, 8), dense(4, 8, 8));
    let spmm =
        |cfg: &KernelConfig, alpha: f32, s: &RawCsr, values: u64, b: RawDense, c: RawDense| {
            // SAFETY: every case is refused before a launch (or by the launcher itself,
            // before the kernel runs), asserted below; every address is live besides.
            unsafe { raw::spmm(DType::F32, cfg, alpha, s, values, &b, 0.0, &c, null_mut()) }
                .unwrap_err()
        };
    // The configuration's op.
    let e = spmm(&sddmm_cfg, 1.0, &s, values, b, c);
    assert!(e.to_string().ends_with("not for spmm"), "sddmm config: {e}");
    let e = spmm(&spmm_t_cfg, 1.0, &s, values, b, c);
    assert!(
        e.to_string().ends_with("not for spmm"),
        "spmm_t config, no plan: {e}"
    );
    let t = RawCsr {
        rows: 6,
        cols: 4,
        nnz: a.nnz(),
        row_ptr: addr(plan.row_ptr()),
        col_idx: addr(plan.col_idx()),
        row_swizzle: addr(&plan.row_swizzle()),
        perm: addr(plan.perm()),
        long_rows: 0,
    };
    let (bt, ct) = (dense(4, 8, 8), dense(6, 8, 8));
    let e = spmm(&spmm_cfg, 1.0, &t, values, bt, ct);
    assert!(
        e.to_string().ends_with("not for spmm_t"),
        "plan, spmm config: {e}"
    );
    // Scalars, shapes, strides.
    let e = spmm(&spmm_cfg, f32::NAN, &s, values, b, c);
    assert!(matches!(e, Error::InvalidArgument(_)), "alpha: {e}");
    let e = spmm(&spmm_cfg, 1.0, &s, values, dense(5, 8, 8), c);
    assert!(matches!(e, Error::ShapeMismatch { .. }), "B rows: {e}");
    let e = spmm(&spmm_cfg, 1.0, &s, values, b, dense(4, 7, 8));
    assert!(matches!(e, Error::ShapeMismatch { .. }), "C cols: {e}");
    let e = spmm(&spmm_t_cfg, 1.0, &t, values, b, c);
    assert!(
        matches!(e, Error::ShapeMismatch { .. }),
        "A^T with A's shapes: {e}"
    );
    let e = spmm(&spmm_cfg, 1.0, &s, values, dense(6, 8, 7), c);
    assert!(e.to_string().contains("leading dimension 7"), "ldb: {e}");
    // Null pointers the launch would follow.
    let e = spmm(&spmm_cfg, 1.0, &s, 0, b, c);
    assert!(e.to_string().contains("values is a null"), "values: {e}");
    let e = spmm(&spmm_cfg, 1.0, &s, values, RawDense { ptr: 0, ..b }, c);
    assert!(e.to_string().contains("b is a null"), "b: {e}");
    let e = spmm(&spmm_cfg, 1.0, &s, values, b, RawDense { ptr: 0, ..c });
    assert!(e.to_string().contains("c is a null"), "c: {e}");
    for (what, bad) in [
        ("row_ptr", RawCsr { row_ptr: 0, ..s }),
        ("col_idx", RawCsr { col_idx: 0, ..s }),
        (
            "row_swizzle",
            RawCsr {
                row_swizzle: 0,
                ..s
            },
        ),
    ] {
        let e = spmm(&spmm_cfg, 1.0, &bad, values, b, c);
        let want = format!("{what} is a null");
        assert!(e.to_string().contains(&want), "{what}: {e}");
    }
    // Long rows: only for a tile that splits them, and at most the rows.
    let e = spmm(&spmm_cfg, 1.0, &RawCsr { long_rows: 1, ..s }, values, b, c);
    assert!(e.to_string().contains("does not split"), "long_rows: {e}");
    let split = KernelConfig::all(Op::Spmm)
        .into_iter()
        .find(|c| c.split > 0)
        .expect("a splitting SpMM tile");
    let e = spmm(&split, 1.0, &RawCsr { long_rows: 5, ..s }, values, b, c);
    assert!(e.to_string().contains("exceeds"), "long_rows > rows: {e}");
    // 32-bit limits.
    let e = spmm(
        &spmm_cfg,
        1.0,
        &RawCsr { cols: 1 << 31, ..s },
        values,
        dense(1 << 31, 8, 8),
        c,
    );
    assert!(
        matches!(e, Error::IndexOverflow { .. }),
        "cols over i32: {e}"
    );

    // SDDMM: L (4 x 8), R (6 x 8), out (nnz).
    let out = ptr;
    let (l, r) = (dense(4, 8, 8), dense(6, 8, 8));
    let sddmm = |cfg: &KernelConfig, s: &RawCsr, out: u64, l: RawDense, r: RawDense| {
        // SAFETY: as above.
        unsafe { raw::sddmm(DType::F32, cfg, 1.0, &l, &r, 0.0, s, out, null_mut()) }.unwrap_err()
    };
    let e = sddmm(&spmm_cfg, &s, out, l, r);
    assert!(e.to_string().contains("not for sddmm"), "spmm config: {e}");
    let e = sddmm(
        &sddmm_cfg,
        &RawCsr {
            perm: addr(plan.perm()),
            ..s
        },
        out,
        l,
        r,
    );
    assert!(e.to_string().contains("perm must be 0"), "plan: {e}");
    let e = sddmm(&sddmm_cfg, &s, out, l, dense(6, 7, 8));
    assert!(matches!(e, Error::ShapeMismatch { .. }), "k differs: {e}");
    let e = sddmm(&sddmm_cfg, &s, out, dense(5, 8, 8), r);
    assert!(matches!(e, Error::ShapeMismatch { .. }), "L rows: {e}");
    let e = sddmm(&sddmm_cfg, &s, 0, l, r);
    assert!(e.to_string().contains("out is a null"), "out: {e}");
    let e = sddmm(&sddmm_cfg, &s, out, RawDense { ptr: 0, ..l }, r);
    assert!(e.to_string().contains("l is a null"), "l: {e}");
    let e = sddmm(&sddmm_cfg, &s, out, l, RawDense { ptr: 0, ..r });
    assert!(e.to_string().contains("r is a null"), "r: {e}");
    let e = sddmm(&sddmm_cfg, &s, out, l, dense(6, 8, 5));
    assert!(e.to_string().contains("leading dimension 5"), "ldr: {e}");
    let e = sddmm(&sddmm_cfg, &RawCsr { long_rows: 1, ..s }, out, l, r);
    assert!(e.to_string().contains("does not split"), "long_rows: {e}");

    // A configuration index past the table passes every Rust-side check; the C launcher
    // refuses it, and the status comes back as Error::Cuda naming the call.
    let past = |cfg: KernelConfig| KernelConfig {
        index: KernelConfig::all(cfg.op).len(),
        ..cfg
    };
    for (call, e) in [
        ("rosa_spmm", spmm(&past(spmm_cfg), 1.0, &s, values, b, c)),
        (
            "rosa_spmm_t",
            spmm(&past(spmm_t_cfg), 1.0, &t, values, bt, ct),
        ),
        ("rosa_sddmm", sddmm(&past(sddmm_cfg), &s, out, l, r)),
    ] {
        match e {
            Error::Cuda {
                call: got,
                code,
                ref message,
            } => {
                assert_eq!(got, call);
                assert!(code < 0, "{call}: a refused argument is negative: {code}");
                assert!(!message.is_empty(), "{call}: the status has a text");
            }
            other => panic!("{call}: want Error::Cuda, got {other}"),
        }
    }
    // An f32 C of f16 operands is not compiled: refused before a launch, plan or not.
    for (cfg, s, b, c) in [(&spmm_cfg, &s, b, c), (&spmm_t_cfg, &t, bt, ct)] {
        // SAFETY: refused before a launch, asserted; every address is live besides.
        let e =
            unsafe { raw::spmm_f32_out(DType::F16, cfg, 1.0, s, values, &b, 0.0, &c, null_mut()) }
                .unwrap_err();
        assert!(matches!(e, Error::Unsupported(_)), "f16 into f32: {e}");
    }
    assert!(mem.iter().all(|&x| x == 0.0), "no refused call wrote");
}
