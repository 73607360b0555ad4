//! The NF4 dequantization kernel of csrc/nf4.cu, run by the CUDA emulator (feature
//! `cuda-emu`) through the C ABI, bit for bit against the CPU dequantizer
//! (`Nf4Matrix::dequantize_into`): f32, f16 and bf16 outputs, f32 and double-quantized
//! scales, block sizes 32 to 4096, odd shapes (one column, odd columns, lengths that are not
//! a multiple of the block), an all-zero block, blocks whose values overflow f16 or land in
//! its subnormals, whole, middle, single and empty row ranges, leading dimensions cols + 0..9
//! whose padding must survive, NaN-poisoned outputs at aligned and misaligned bases, codes
//! at an aligned and a misaligned base (fenced under ASan, so reading past the last code
//! byte fails), grids past the emulated block cap, and the refused arguments.
#![cfg(feature = "cuda-emu")]

mod common;

use std::ffi::c_void;
use std::ops::Range;

use common::xorshift::Rng;
use half::{bf16, f16};
use rosa::emu::{check, sys};
use rosa::quant::{dynamic_code, BlockSize, Nf4Config, Nf4Matrix, Scales, NF4};
use rosa::{Dense, Scalar};

/// Padding and guard bytes; no kernel may change them.
const SENTINEL: u8 = 0xA5;
/// Elements per thread and step of the kernel (`kGroup` in csrc/nf4.cu) and threads per
/// block (`kElemThreads`), to tell when a launch needs more than the emulated cap of
/// `ROSA_MAX_BLOCKS = 4` blocks.
const GROUP: usize = 8;
const THREADS: usize = 256;
const EMU_MAX_BLOCKS: usize = 4;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Dt {
    F32,
    F16,
    Bf16,
}
const DTYPES: [Dt; 3] = [Dt::F32, Dt::F16, Dt::Bf16];

impl Dt {
    fn code(self) -> i32 {
        match self {
            Dt::F32 => sys::rosa_dtype::ROSA_DTYPE_F32 as i32,
            Dt::F16 => sys::rosa_dtype::ROSA_DTYPE_F16 as i32,
            Dt::Bf16 => sys::rosa_dtype::ROSA_DTYPE_BF16 as i32,
        }
    }
    fn size(self) -> usize {
        match self {
            Dt::F32 => 4,
            _ => 2,
        }
    }
    /// A quiet NaN: the poison every output element holds before the launch.
    fn nan(self) -> Vec<u8> {
        match self {
            Dt::F32 => f32::NAN.to_le_bytes().to_vec(),
            Dt::F16 => f16::NAN.to_le_bytes().to_vec(),
            Dt::Bf16 => bf16::NAN.to_le_bytes().to_vec(),
        }
    }
}

/// The CPU dequantizer's output for `rows`, as little-endian bytes of `dt`.
fn cpu_bytes(q: &Nf4Matrix, rows: Range<usize>, dt: Dt) -> Vec<u8> {
    fn run<T: Scalar, const N: usize>(
        q: &Nf4Matrix,
        rows: Range<usize>,
        bytes: impl Fn(T) -> [u8; N],
    ) -> Vec<u8> {
        let mut out = Dense::<T>::zeros(rows.len(), q.cols());
        q.dequantize_into(rows, out.as_mut()).unwrap();
        out.as_slice().iter().flat_map(|&x| bytes(x)).collect()
    }
    match dt {
        Dt::F32 => run(q, rows, f32::to_le_bytes),
        Dt::F16 => run(q, rows, f16::to_le_bytes),
        Dt::Bf16 => run(q, rows, bf16::to_le_bytes),
    }
}

/// Host memory standing in for device memory: `len` bytes at `offset` past a 16-byte
/// aligned base, every other byte SENTINEL and, under ASan (scripts/emu-check.sh),
/// unaddressable to the kernel, so touching a guard fails even inside this allocation.
struct Fenced {
    mem: Vec<u128>,
    offset: usize,
}

impl Fenced {
    fn new(offset: usize, len: usize) -> Fenced {
        let words = (offset + len + 64).div_ceil(16);
        let mem = vec![u128::from_le_bytes([SENTINEL; 16]); words];
        let buf = Fenced { mem, offset };
        let base = buf.mem.as_ptr().cast::<u8>();
        // SAFETY: both ranges lie inside `mem`, which Drop unpoisons before freeing it.
        unsafe {
            rosa::emu::poison(base, offset, true);
            rosa::emu::poison(base.add(offset + len), words * 16 - offset - len, true);
        }
        buf
    }
    fn bytes(&self) -> &[u8] {
        // SAFETY: u128 has no invalid bit patterns and u8 no alignment.
        unsafe { std::slice::from_raw_parts(self.mem.as_ptr().cast(), self.mem.len() * 16) }
    }
    fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: as above.
        unsafe { std::slice::from_raw_parts_mut(self.mem.as_mut_ptr().cast(), self.mem.len() * 16) }
    }
    fn ptr(&mut self) -> *mut c_void {
        let off = self.offset;
        self.bytes_mut()[off..].as_mut_ptr().cast()
    }
}

impl Drop for Fenced {
    fn drop(&mut self) {
        // SAFETY: the whole live allocation.
        unsafe { rosa::emu::poison(self.mem.as_ptr().cast(), self.mem.len() * 16, false) }
    }
}

/// A `rows x cols` output of `dt` with row stride `ld`, `offset` bytes past an aligned
/// base: elements NaN, row padding SENTINEL, guards fenced.
struct Out {
    buf: Fenced,
    dt: Dt,
    rows: usize,
    cols: usize,
    ld: usize,
}

impl Out {
    fn new(dt: Dt, rows: usize, cols: usize, ld: usize, offset: usize) -> Out {
        let span = if rows == 0 {
            0
        } else {
            ((rows - 1) * ld + cols) * dt.size()
        };
        let mut out = Out {
            buf: Fenced::new(offset, span),
            dt,
            rows,
            cols,
            ld,
        };
        let nan = dt.nan();
        for r in 0..rows {
            for c in 0..cols {
                let at = out.at(r, c);
                out.buf.bytes_mut()[at..at + dt.size()].copy_from_slice(&nan);
            }
        }
        out
    }
    fn at(&self, r: usize, c: usize) -> usize {
        self.buf.offset + (r * self.ld + c) * self.dt.size()
    }
    /// Every element holds `want`'s bytes (packed `rows x cols`), every other byte
    /// SENTINEL.
    fn assert_is(&self, want: &[u8], what: &str) {
        let s = self.dt.size();
        let mut inside = vec![false; self.buf.mem.len() * 16];
        for r in 0..self.rows {
            for c in 0..self.cols {
                let (at, w) = (self.at(r, c), (r * self.cols + c) * s);
                let got = &self.buf.bytes()[at..at + s];
                assert_eq!(
                    got,
                    &want[w..w + s],
                    "{what}: element ({r}, {c}) differs from the CPU's"
                );
                inside[at..at + s].iter_mut().for_each(|x| *x = true);
            }
        }
        for (i, (&b, &ins)) in self.buf.bytes().iter().zip(&inside).enumerate() {
            assert!(ins || b == SENTINEL, "{what}: padding byte {i} overwritten");
        }
    }
}

/// Random weights in [-1, 1) with three special blocks of `block` elements where W has
/// them: block 1 all zeros, block 2 scaled by `big` and block 3 by `small`. With f32
/// scales, `big = 1e5` makes f16 outputs overflow to infinity (beyond 65504) and `small =
/// 1e-6` gives f16 subnormals. Double-quantized scales need milder ones: a 1e5 outlier
/// would make the 8-bit codes of every ordinary scale equal, and a wrong block index
/// would then go unnoticed.
fn weights(
    rng: &mut Rng,
    rows: usize,
    cols: usize,
    block: usize,
    big: f32,
    small: f32,
) -> Dense<f32> {
    let mut v: Vec<f32> = (0..rows * cols).map(|_| rng.unit()).collect();
    let n = v.len();
    let mut scale_block = |b: usize, by: f32| {
        for x in &mut v[(b * block).min(n)..((b + 1) * block).min(n)] {
            *x *= by;
        }
    };
    scale_block(1, 0.0);
    scale_block(2, big);
    scale_block(3, small);
    Dense::from_vec(rows, cols, v).unwrap()
}

/// `q`'s codes in fenced memory at `offset` bytes past an aligned base: a read past the
/// last code byte fails under ASan.
fn fenced_codes(q: &Nf4Matrix, offset: usize) -> Fenced {
    let mut codes = Fenced::new(offset, q.codes().len());
    codes.bytes_mut()[offset..offset + q.codes().len()].copy_from_slice(q.codes());
    codes
}

/// The launch parameters for rows `rows` of `q` into `out` (row stride `ld`).
/// `codes`, `nf4` and `q` must outlive the launch.
fn params(
    q: &Nf4Matrix,
    codes: *const u8,
    nf4: &[f32; 16],
    rows: Range<usize>,
    out: *mut c_void,
    ld: usize,
) -> sys::rosa_nf4_params {
    let (absmax, scale_codes, dq_block_size, offset) = match q.scales() {
        Scales::F32(v) => (v.as_ptr(), std::ptr::null(), 0, 0.0),
        Scales::Double(d) => (
            d.absmax().as_ptr(),
            d.codes().as_ptr(),
            d.block_size().get() as i32,
            d.offset(),
        ),
    };
    sys::rosa_nf4_params {
        rows: q.rows() as i64,
        cols: q.cols() as i64,
        row0: rows.start as i64,
        row_count: rows.len() as i64,
        block_size: q.block_size().get() as i32,
        dq_block_size,
        codes,
        nf4: nf4.as_ptr(),
        absmax,
        scale_codes,
        dynamic_code: dynamic_code().as_ptr(),
        offset,
        out,
        ld: ld as i64,
    }
}

fn dequant(p: &sys::rosa_nf4_params, dt: Dt) -> i32 {
    // SAFETY: every pointer in `p` is live host memory of the lengths rosa_kernels.h asks
    // for (the emulator's "device" memory), or null where the test means a refusal.
    unsafe { sys::rosa_nf4_dequant(p, dt.code(), std::ptr::null_mut()) }
}

/// Groups of the kernel a range of `rows x cols` starting at row `row0` touches.
fn groups(row0: usize, rows: usize, cols: usize) -> usize {
    let (start, end) = (row0 * cols, (row0 + rows) * cols);
    end.div_ceil(GROUP) - start / GROUP
}

/// Builds rosa's 8-bit code table (a `LazyLock`, built by the first thread to use it) on
/// the test's own thread. Otherwise a rayon worker of `Nf4Matrix::quantize` builds it, and
/// ThreadSanitizer, which cannot see the synchronization of uninstrumented Rust (rayon's
/// join, `Once`), reports the kernel's reads of the table as a race with that write.
fn build_tables_here() {
    let _ = dynamic_code();
}

struct Case {
    rows: usize,
    cols: usize,
    block: usize,
    double_quant: Option<usize>,
}

#[test]
fn nf4_dequant_bit_for_bit_every_dtype() {
    let cases = [
        // QLoRA's setting, 16637 elements: 260 scales in two nested blocks, and 2080 groups
        // (more than the emulated grid's 4 x 256 threads: a second grid-stride pass).
        Case {
            rows: 131,
            cols: 127,
            block: 64,
            double_quant: Some(256),
        },
        // Blocks of 64, f32 scales, odd columns; 1665 elements, not a multiple of 64.
        Case {
            rows: 37,
            cols: 45,
            block: 64,
            double_quant: None,
        },
        // The smallest blocks, double-quantized in blocks of 32 scales (several nested).
        Case {
            rows: 41,
            cols: 33,
            block: 32,
            double_quant: Some(32),
        },
        // One column: every group of 8 elements spans 8 rows.
        Case {
            rows: 301,
            cols: 1,
            block: 128,
            double_quant: None,
        },
        // Columns a multiple of the group: the 16-byte store path where ld allows it.
        Case {
            rows: 24,
            cols: 64,
            block: 256,
            double_quant: Some(64),
        },
        // The largest block, partial: one scale for the whole matrix.
        Case {
            rows: 13,
            cols: 129,
            block: 4096,
            double_quant: None,
        },
    ];
    build_tables_here();
    let nf4 = NF4;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let (mut launches, mut past_cap) = (0usize, 0usize);
    for (ci, case) in cases.iter().enumerate() {
        let (big, small) = match case.double_quant {
            None => (1e5, 1e-6),
            Some(_) => (8.0, 0.125),
        };
        let w = weights(&mut rng, case.rows, case.cols, case.block, big, small);
        let config = Nf4Config {
            block_size: BlockSize::new(case.block).unwrap(),
            double_quant: case.double_quant.map(|b| BlockSize::new(b).unwrap()),
        };
        let q = Nf4Matrix::quantize(w.as_ref(), config).unwrap();
        // Most neighbouring blocks must differ in scale, or reading the wrong block's
        // scale would pass.
        let blocks = q.scales().len();
        let changes = (1..blocks)
            .filter(|&b| q.scales().get(b) != q.scales().get(b - 1))
            .count();
        assert!(
            2 * changes >= blocks - 1,
            "case {ci}: {changes} scale changes in {blocks} blocks"
        );
        // Aligned codes, and codes one byte off (every group then takes the byte loads).
        let mut codes = fenced_codes(&q, ci % 2);
        let codes_ptr = codes.ptr().cast::<u8>().cast_const();
        let m = case.rows;
        let ranges = [
            0..m,
            m / 3..m / 3 + m / 2,
            m / 2..m / 2 + 1,
            m - 1..m,
            m / 2..m / 2,
        ];
        for dt in DTYPES {
            for (ri, rows) in ranges.iter().cloned().enumerate() {
                let want = cpu_bytes(&q, rows.clone(), dt);
                // ld = cols + 0..9 at an output base 0 to 7 elements past an aligned one;
                // then 16-byte aligned rows (ld a multiple of 8 elements, base aligned),
                // where whole groups take the kernel's 16-byte stores.
                let pad = (ci + ri * 3 + dt as usize) % 10;
                let layouts = [
                    (case.cols + pad, ((ci + ri) % 8) * dt.size()),
                    (case.cols.next_multiple_of(GROUP), 0),
                ];
                for (ld, off) in layouts {
                    let mut out = Out::new(dt, rows.len(), case.cols, ld, off);
                    let p = params(&q, codes_ptr, &nf4, rows.clone(), out.buf.ptr(), ld);
                    let what = format!(
                        "{dt:?} {}x{} block {} dq {:?}, rows {rows:?}, ld {ld}, out +{off} B, \
                         codes +{} B",
                        case.rows,
                        case.cols,
                        case.block,
                        case.double_quant,
                        ci % 2
                    );
                    check(dequant(&p, dt)).unwrap_or_else(|(c, m)| panic!("{what}: {c} {m}"));
                    out.assert_is(&want, &what);
                    launches += 1;
                    if groups(rows.start, rows.len(), case.cols) > EMU_MAX_BLOCKS * THREADS {
                        past_cap += 1;
                    }
                }
            }
        }
        // The kernel must not have written the codes (or their guards) either.
        assert_eq!(&codes.bytes()[ci % 2..ci % 2 + q.codes().len()], q.codes());
    }
    assert!(past_cap >= 3, "no launch took a second grid-stride pass");
    println!("nf4 dequant: {launches} launches bit for bit, {past_cap} past the grid cap");
}

/// A test of the test: the blocks `weights` makes special with f32 scales are where the
/// dequantized values say they are (zeros, f16 infinities, f16 subnormals).
#[test]
fn special_blocks_reach_the_kernel() {
    let mut rng = Rng(7);
    let w = weights(&mut rng, 5, 64, 64, 1e5, 1e-6);
    let q = Nf4Matrix::quantize(w.as_ref(), Nf4Config::default()).unwrap();
    let h = q.dequantize::<f16>().unwrap();
    let row = |r: usize| &h.as_slice()[r * 64..(r + 1) * 64];
    assert!(row(1).iter().all(|x| x.to_f32() == 0.0));
    assert!(row(2).iter().any(|x| x.is_infinite()));
    assert!(row(3).iter().any(|x| *x != f16::ZERO && !x.is_normal()));
}

#[test]
fn nf4_dequant_refusals() {
    build_tables_here();
    let mut rng = Rng(3);
    let w = weights(&mut rng, 9, 11, 32, 8.0, 0.125);
    let config = Nf4Config {
        block_size: BlockSize::new(32).unwrap(),
        double_quant: Some(BlockSize::new(32).unwrap()),
    };
    let q = Nf4Matrix::quantize(w.as_ref(), config).unwrap();
    let nf4 = NF4;
    let mut out = Out::new(Dt::F32, 9, 11, 11, 0);
    let good = params(&q, q.codes().as_ptr(), &nf4, 0..9, out.buf.ptr(), 11);
    check(dequant(&good, Dt::F32)).unwrap();
    out.assert_is(&cpu_bytes(&q, 0..9, Dt::F32), "the unrefused launch");

    let bad_args = sys::rosa_status::ROSA_ERR_BAD_ARGUMENT;
    let bad_dtype = sys::rosa_status::ROSA_ERR_BAD_DTYPE;
    // (what, parameters, out_dtype, status): dtype 0 is f32.
    let refusals: Vec<(&str, sys::rosa_nf4_params, i32, i32)> = vec![
        (
            "null codes",
            sys::rosa_nf4_params {
                codes: std::ptr::null(),
                ..good
            },
            0,
            bad_args,
        ),
        (
            "null nf4",
            sys::rosa_nf4_params {
                nf4: std::ptr::null(),
                ..good
            },
            0,
            bad_args,
        ),
        (
            "null absmax",
            sys::rosa_nf4_params {
                absmax: std::ptr::null(),
                ..good
            },
            0,
            bad_args,
        ),
        (
            "null dynamic code with double quant",
            sys::rosa_nf4_params {
                dynamic_code: std::ptr::null(),
                ..good
            },
            0,
            bad_args,
        ),
        (
            "null out",
            sys::rosa_nf4_params {
                out: std::ptr::null_mut(),
                ..good
            },
            0,
            bad_args,
        ),
        (
            "ld < cols",
            sys::rosa_nf4_params { ld: 10, ..good },
            0,
            bad_args,
        ),
        (
            "rows past the end",
            sys::rosa_nf4_params { row0: 1, ..good },
            0,
            bad_args,
        ),
        (
            "negative row0",
            sys::rosa_nf4_params {
                row0: -1,
                row_count: 1,
                ..good
            },
            0,
            bad_args,
        ),
        (
            "negative row count",
            sys::rosa_nf4_params {
                row_count: -1,
                ..good
            },
            0,
            bad_args,
        ),
        (
            "negative cols",
            sys::rosa_nf4_params { cols: -11, ..good },
            0,
            bad_args,
        ),
        (
            "rows * cols overflows",
            sys::rosa_nf4_params {
                rows: i64::MAX / 4,
                ..good
            },
            0,
            bad_args,
        ),
        (
            "output span overflows",
            sys::rosa_nf4_params {
                rows: 1 << 40,
                row_count: 1 << 40,
                cols: 2,
                ld: 1 << 30,
                ..good
            },
            0,
            bad_args,
        ),
        (
            "block size 48",
            sys::rosa_nf4_params {
                block_size: 48,
                ..good
            },
            0,
            bad_args,
        ),
        (
            "block size 16",
            sys::rosa_nf4_params {
                block_size: 16,
                ..good
            },
            0,
            bad_args,
        ),
        (
            "block size 8192",
            sys::rosa_nf4_params {
                block_size: 8192,
                ..good
            },
            0,
            bad_args,
        ),
        (
            "nested block size 0",
            sys::rosa_nf4_params {
                dq_block_size: 0,
                ..good
            },
            0,
            bad_args,
        ),
        ("dtype 3", good, 3, bad_dtype),
        ("dtype -1", good, -1, bad_dtype),
    ];
    for (what, p, dtype, want) in refusals {
        // SAFETY: as in `dequant`; the launcher must refuse before touching memory.
        let code = unsafe { sys::rosa_nf4_dequant(&p, dtype, std::ptr::null_mut()) };
        assert_eq!(
            code,
            want,
            "{what}: {}",
            check(code).err().map_or(String::new(), |e| e.1)
        );
    }
    // SAFETY: a null parameter pointer is refused before it is read.
    let code = unsafe { sys::rosa_nf4_dequant(std::ptr::null(), 0, std::ptr::null_mut()) };
    assert_eq!(code, bad_args, "null params");

    // Nothing refused wrote anything: the output still holds the first launch's values.
    out.assert_is(&cpu_bytes(&q, 0..9, Dt::F32), "after the refusals");

    // An empty range launches nothing, even with null pointers (there is nothing to read),
    // and an unused nested block size does not matter without double quantization.
    let empty = sys::rosa_nf4_params {
        row0: 4,
        row_count: 0,
        codes: std::ptr::null(),
        out: std::ptr::null_mut(),
        ..good
    };
    check(dequant(&empty, Dt::Bf16)).unwrap();
    let plain = sys::rosa_nf4_params {
        scale_codes: std::ptr::null(),
        dq_block_size: 0,
        ..empty
    };
    check(dequant(&plain, Dt::F16)).unwrap();
}
