//! The real csrc/ kernels, run by the CUDA emulator (feature `cuda-emu`), through the C ABI
//! of csrc/rosa_kernels.h, against a float64 dense reference: every dtype, every tile
//! configuration, odd shapes, misaligned bases, padded leading dimensions whose padding
//! must survive, NaN-poisoned outputs with beta = 0, and sorted and shuffled row orders;
//! SpMM and SDDMM also against rosa::cpu's kernels on the same inputs. The tiles that split
//! long rows also on skewed masks with long rows (the library's count, then every row),
//! each launch rerun and compared bit for bit. SpMM and SpMM^T also from bf16 operands into
//! an f32 C (c_f32), every tile and the long rows of the splitting ones, checked at f32's
//! precision.
#![cfg(feature = "cuda-emu")]
// Index loops read clearer where the same index addresses several parallel arrays.
#![allow(clippy::needless_range_loop)]

mod common;

use std::ffi::c_void;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::xorshift::Rng;
use half::{bf16, f16};
use rosa::emu::{check, sys};
use rosa::{CsrShape, Scalar};

static LAUNCHES: AtomicUsize = AtomicUsize::new(0);
static CHECKS: AtomicUsize = AtomicUsize::new(0);

fn launched(code: i32) {
    LAUNCHES.fetch_add(1, Ordering::Relaxed);
    check(code).unwrap_or_else(|(c, m)| panic!("launch failed: {c} {m}"));
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Dt {
    F32,
    F16,
    Bf16,
}
const DTYPES: [Dt; 3] = [Dt::F32, Dt::F16, Dt::Bf16];
const SENTINEL: u8 = 0xA5;

impl Dt {
    fn code(self) -> i32 {
        self as i32
    }
    fn size(self) -> usize {
        match self {
            Dt::F32 => 4,
            _ => 2,
        }
    }
    /// Unit roundoff of a stored value.
    fn unit(self) -> f64 {
        match self {
            Dt::F32 => 2f64.powi(-23),
            Dt::F16 => 2f64.powi(-10),
            Dt::Bf16 => 2f64.powi(-7),
        }
    }
    fn round(self, x: f32) -> f32 {
        match self {
            Dt::F32 => x,
            Dt::F16 => f16::from_f32(x).to_f32(),
            Dt::Bf16 => bf16::from_f32(x).to_f32(),
        }
    }
    fn encode(self, x: f32, out: &mut [u8]) {
        match self {
            Dt::F32 => out.copy_from_slice(&x.to_le_bytes()),
            Dt::F16 => out.copy_from_slice(&f16::from_f32(x).to_le_bytes()),
            Dt::Bf16 => out.copy_from_slice(&bf16::from_f32(x).to_le_bytes()),
        }
    }
    /// `x` rounded by rosa's own conversion, [`Scalar::from_f32`], as bytes.
    fn encode_scalar(self, x: f32) -> Vec<u8> {
        match self {
            Dt::F32 => <f32 as Scalar>::from_f32(x).to_le_bytes().to_vec(),
            Dt::F16 => <f16 as Scalar>::from_f32(x).to_le_bytes().to_vec(),
            Dt::Bf16 => <bf16 as Scalar>::from_f32(x).to_le_bytes().to_vec(),
        }
    }
    fn decode(self, b: &[u8]) -> f32 {
        match self {
            Dt::F32 => f32::from_le_bytes(b.try_into().unwrap()),
            Dt::F16 => f16::from_le_bytes(b.try_into().unwrap()).to_f32(),
            Dt::Bf16 => bf16::from_le_bytes(b.try_into().unwrap()).to_f32(),
        }
    }
}

/// A "device" buffer: `len` elements at `offset` bytes past a 16-byte-aligned allocation,
/// rows of `cols` elements `ld` apart, everything else (guards, row padding) SENTINEL.
struct Buf {
    mem: Vec<u128>,
    offset: usize,
    dt: Dt,
    rows: usize,
    cols: usize,
    ld: usize,
}

impl Buf {
    fn new(dt: Dt, rows: usize, cols: usize, ld: usize, offset: usize) -> Buf {
        let bytes = offset + rows.max(1) * ld * dt.size() + 64;
        let mut mem = vec![0u128; bytes.div_ceil(16)];
        bytemuck_fill(&mut mem, SENTINEL);
        let buf = Buf {
            mem,
            offset,
            dt,
            rows,
            cols,
            ld,
        };
        // Under ASan (scripts/emu-check.sh) the guards before the first element and after
        // the last row are unaddressable to the kernels: a read below the operand's start
        // (the two-vector load without its lower-bound test) or a write past its end fails.
        let end = if rows == 0 {
            offset
        } else {
            buf.at(rows - 1, cols)
        };
        let base = buf.mem.as_ptr().cast::<u8>();
        // SAFETY: both ranges lie inside `mem`, which Drop unpoisons before freeing it.
        unsafe {
            rosa::emu::poison(base, offset, true);
            rosa::emu::poison(base.add(end), buf.mem.len() * 16 - end, true);
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
    fn at(&self, r: usize, c: usize) -> usize {
        self.offset + (r * self.ld + c) * self.dt.size()
    }
    fn set(&mut self, r: usize, c: usize, x: f32) {
        let (i, s, dt) = (self.at(r, c), self.dt.size(), self.dt);
        dt.encode(x, &mut self.bytes_mut()[i..i + s]);
    }
    fn get(&self, r: usize, c: usize) -> f32 {
        let (i, s) = (self.at(r, c), self.dt.size());
        self.dt.decode(&self.bytes()[i..i + s])
    }
    fn ptr(&mut self) -> *mut c_void {
        let off = self.offset;
        self.bytes_mut()[off..].as_mut_ptr().cast()
    }
    /// Every byte outside the rows' `cols` elements still holds SENTINEL.
    fn assert_padding(&self, what: &str) {
        let s = self.dt.size();
        let mut inside = vec![false; self.mem.len() * 16];
        for r in 0..self.rows {
            let i = self.at(r, 0);
            inside[i..i + self.cols * s]
                .iter_mut()
                .for_each(|x| *x = true);
        }
        for (i, (&b, &ins)) in self.bytes().iter().zip(&inside).enumerate() {
            assert!(ins || b == SENTINEL, "{what}: padding byte {i} overwritten");
        }
        CHECKS.fetch_add(1, Ordering::Relaxed);
    }
}

impl Drop for Buf {
    fn drop(&mut self) {
        // SAFETY: the whole live allocation.
        unsafe { rosa::emu::poison(self.mem.as_ptr().cast(), self.mem.len() * 16, false) }
    }
}

fn bytemuck_fill(mem: &mut [u128], b: u8) {
    let w = u128::from_le_bytes([b; 16]);
    mem.iter_mut().for_each(|x| *x = w);
}

/// A random CSR matrix with empty rows and one row longer than any sub-warp batch (> 32).
struct Csr {
    rows: usize,
    cols: usize,
    row_ptr: Vec<i32>,
    col_idx: Vec<i32>,
    values: Vec<f32>,
}

fn random_csr(rng: &mut Rng, rows: usize, cols: usize) -> Csr {
    let len = |r: usize, rng: &mut Rng| match r % 5 {
        0 => 0,
        1 if r == 1 => cols.min(70),
        _ => rng.below(cols.min(12) + 1),
    };
    csr_of_lengths(rng, rows, cols, len, 0)
}

/// A power-law-like mask for the long-row split: empty rows, short rows, three rows of
/// about `cols` entries (more batches than a block has sub-warps when cols > 128), and a
/// hot column 0 in most rows, so that A^T has a long row too.
fn skewed_csr(rng: &mut Rng, rows: usize, cols: usize) -> Csr {
    let len = |r: usize, rng: &mut Rng| match r {
        _ if r.is_multiple_of(5) => 0,
        1..=3 => cols - rng.below(cols.min(8)),
        _ => 1 + rng.below(cols.min(6)),
    };
    // Column 0 first whenever the row has an entry: the hot column.
    csr_of_lengths(rng, rows, cols, len, 1)
}

/// Row `r` gets `len(r)` distinct sorted columns: the first `keep` columns (when the row
/// has that many entries) and the rest by a partial Fisher-Yates shuffle; values uniform.
fn csr_of_lengths(
    rng: &mut Rng,
    rows: usize,
    cols: usize,
    mut len: impl FnMut(usize, &mut Rng) -> usize,
    keep: usize,
) -> Csr {
    let mut row_ptr = vec![0i32];
    let mut col_idx = Vec::new();
    for r in 0..rows {
        let len = len(r, rng);
        let mut cs: Vec<i32> = (0..cols as i32).collect();
        for i in keep..len {
            let j = i + rng.below(cols - i);
            cs.swap(i, j);
        }
        let mut chosen = cs[..len].to_vec();
        chosen.sort_unstable();
        col_idx.extend(chosen);
        row_ptr.push(col_idx.len() as i32);
    }
    let values = (0..col_idx.len()).map(|_| rng.unit()).collect();
    Csr {
        rows,
        cols,
        row_ptr,
        col_idx,
        values,
    }
}

/// The launch's `long_rows` and the matrix it runs on.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Long {
    /// 0, on random_csr: the existing cases, every configuration.
    Off,
    /// The library's count (rosa::csr::long_rows) on skewed_csr, a splitting tile only.
    Rule,
    /// Every row long, empty ones too, on skewed_csr, a splitting tile only.
    All,
}

impl Long {
    fn matrix(self, rng: &mut Rng, rows: usize, cols: usize) -> Csr {
        match self {
            Long::Off => random_csr(rng, rows, cols),
            Long::Rule | Long::All => skewed_csr(rng, rows, cols),
        }
    }
    /// The count for `config` of `op` over a walked structure in `sw` order.
    fn count(self, op: i32, config: i32, row_ptr: &[i32], sw: &[i32]) -> i32 {
        let t = tile(op, config);
        match self {
            Long::Off => 0,
            Long::Rule => {
                let n = rosa::csr::long_rows(row_ptr, sw, t.split as u32, t.subwarp as usize);
                n as i32
            }
            Long::All => sw.len() as i32,
        }
    }
}

/// Row order: longest first (as the library builds it), or shuffled.
fn swizzle(rng: &mut Rng, row_ptr: &[i32], shuffled: bool) -> Vec<i32> {
    let rows = row_ptr.len() - 1;
    let mut order: Vec<i32> = (0..rows as i32).collect();
    if shuffled {
        for i in (1..rows).rev() {
            order.swap(i, rng.below(i + 1));
        }
    } else {
        order.sort_by_key(|&r| -(row_ptr[r as usize + 1] - row_ptr[r as usize]));
    }
    order
}

fn config_count(op: i32) -> i32 {
    // SAFETY: a table lookup with no pointer argument.
    unsafe { sys::rosa_config_count(op) }
}

fn tile(op: i32, config: i32) -> sys::rosa_config {
    let mut t = sys::rosa_config::default();
    // SAFETY: `t` is a valid, writable rosa_config.
    check(unsafe { sys::rosa_config_get(op, config, &mut t) }).expect("a table entry");
    t
}

/// The configurations of `op` that split long rows.
fn split_configs(op: i32) -> Vec<i32> {
    (0..config_count(op))
        .filter(|&c| tile(op, c).split > 0)
        .collect()
}

/// The transpose plan of `a`: row_ptr/col_idx of A^T and, per entry, its index in A.
fn transpose(a: &Csr) -> (Vec<i32>, Vec<i32>, Vec<i32>) {
    let mut count = vec![0i32; a.cols + 1];
    for &c in &a.col_idx {
        count[c as usize + 1] += 1;
    }
    for i in 0..a.cols {
        count[i + 1] += count[i];
    }
    let row_ptr = count.clone();
    let mut next = count;
    let nnz = a.col_idx.len();
    let (mut col_idx, mut perm) = (vec![0i32; nnz], vec![0i32; nnz]);
    for r in 0..a.rows {
        for q in a.row_ptr[r] as usize..a.row_ptr[r + 1] as usize {
            let c = a.col_idx[q] as usize;
            let dst = next[c] as usize;
            next[c] += 1;
            col_idx[dst] = r as i32;
            perm[dst] = q as i32;
        }
    }
    (row_ptr, col_idx, perm)
}

fn assert_close(got: f32, want: f64, scale: f64, dt: Dt, what: &str) {
    // f16 results below 2^-14 are subnormal: their spacing is 2^-24 whatever their size.
    let subnormal = if matches!(dt, Dt::F16) {
        2f64.powi(-24)
    } else {
        0.0
    };
    let tol = dt.unit() * want.abs() + 1e-5 * scale + subnormal + 1e-30;
    assert!(
        (got as f64 - want).abs() <= tol,
        "{what}: got {got}, want {want} (tol {tol})"
    );
    CHECKS.fetch_add(1, Ordering::Relaxed);
}

/// The emulated result `got` against the CPU kernel's `cpu` for the same inputs: both are
/// within assert_close's tolerance of the f64 `want`, so they agree within twice that.
fn assert_agree(got: f32, cpu: f32, want: f64, scale: f64, dt: Dt, what: &str) {
    let subnormal = if matches!(dt, Dt::F16) {
        2f64.powi(-24)
    } else {
        0.0
    };
    let tol = 2.0 * (dt.unit() * want.abs() + 1e-5 * scale) + subnormal + 1e-30;
    assert!(
        (got as f64 - cpu as f64).abs() <= tol,
        "{what}: emulated {got}, rosa::cpu {cpu} (tol {tol})"
    );
    CHECKS.fetch_add(1, Ordering::Relaxed);
}

fn to_t<T: Scalar>(v: &[f32]) -> Vec<T> {
    v.iter().map(|&x| T::from_f32(x)).collect()
}

fn from_t<T: Scalar>(v: &[T]) -> Vec<f32> {
    v.iter().map(|x| x.to_f32()).collect()
}

/// rosa::cpu's SpMM (transposed when `t`) of A (m x k, values `vals`), B (`b`, row-major,
/// n columns) and C (`c0`), in T: the CPU kernel the emulated one must agree with.
#[allow(clippy::too_many_arguments)]
fn cpu_spmm<T: Scalar>(
    a: &Csr,
    vals: &[f32],
    t: bool,
    b: &[f32],
    n: usize,
    c0: &[f32],
    alpha: f32,
    beta: f32,
) -> Vec<f32> {
    let csr = rosa::Csr::from_parts(
        a.rows,
        a.cols,
        a.row_ptr.clone(),
        a.col_idx.clone(),
        to_t::<T>(vals),
    )
    .unwrap();
    let bm = rosa::Dense::from_vec(b.len() / n, n, to_t::<T>(b)).unwrap();
    let mut cm = rosa::Dense::from_vec(c0.len() / n, n, to_t::<T>(c0)).unwrap();
    if t {
        let plan = csr.transpose_plan();
        rosa::cpu::spmm_t(alpha, csr.as_ref(), &plan, bm.as_ref(), beta, cm.as_mut()).unwrap();
    } else {
        rosa::cpu::spmm(alpha, csr.as_ref(), bm.as_ref(), beta, cm.as_mut()).unwrap();
    }
    from_t(cm.as_slice())
}

/// rosa::cpu's SDDMM over the mask `a` with old values `old`, L (m x k) and R (cols x k).
#[allow(clippy::too_many_arguments)]
fn cpu_sddmm<T: Scalar>(
    a: &Csr,
    old: &[f32],
    l: &[f32],
    r: &[f32],
    k: usize,
    alpha: f32,
    beta: f32,
) -> Vec<f32> {
    let mut mask = rosa::Csr::from_parts(
        a.rows,
        a.cols,
        a.row_ptr.clone(),
        a.col_idx.clone(),
        to_t::<T>(old),
    )
    .unwrap();
    let lm = rosa::Dense::from_vec(a.rows, k, to_t::<T>(l)).unwrap();
    let rm = rosa::Dense::from_vec(a.cols, k, to_t::<T>(r)).unwrap();
    rosa::cpu::sddmm(alpha, lm.as_ref(), rm.as_ref(), beta, mask.as_mut()).unwrap();
    from_t(mask.values())
}

/// One SpMM problem of the tables below, (m, k, n, beta, shuffled, aligned, long): A is
/// m x k (its transpose walked for SpMM^T), B and C have n columns; beta 0 on NaN-poisoned
/// C; rows shuffled or longest first; B and C aligned (16-byte bases, leading dimensions a
/// multiple of the vector width: the fast path) or at any base offset and padding; the
/// long-row count and its matrix.
#[derive(Clone, Copy, Debug)]
struct Shape(usize, usize, usize, f32, bool, bool, Long);

/// Every tile's cases: N = 37 (not a multiple of any vector width), 1, and wide enough for
/// several column tiles (grid.y > 1); then aligned B, the fast path of the unroll > 1
/// configurations, on whole column tiles only (N = 256) and with a partial last tile
/// (N = 37, 300).
const SHAPES: [Shape; 7] = [
    Shape(40, 80, 37, 0.0, false, false, Long::Off),
    Shape(23, 75, 1, 0.5, true, false, Long::Off),
    Shape(9, 71, 300, 0.0, true, false, Long::Off),
    Shape(12, 72, 64, -1.0, false, false, Long::Off),
    Shape(40, 80, 256, 0.0, false, true, Long::Off),
    Shape(23, 75, 37, 0.5, true, true, Long::Off),
    Shape(9, 71, 300, -1.0, true, true, Long::Off),
];

/// The splitting tiles' long rows: the library's count on skewed masks, then every row long
/// (empty rows too); ragged and whole column tiles, aligned and misaligned B, both row
/// orders.
const LONG_SHAPES: [Shape; 5] = [
    Shape(40, 80, 37, 0.0, false, false, Long::Rule),
    Shape(33, 300, 64, 0.5, false, true, Long::Rule),
    Shape(31, 290, 256, 0.0, true, true, Long::Rule),
    Shape(9, 300, 300, -1.0, true, false, Long::All),
    Shape(23, 75, 1, 0.0, false, true, Long::All),
];

/// One SpMM (transposed when `t`) of `dt` operands into a C of `c_dt` (`dt`, or f32 for bf16
/// operands), checked element by element against f64 and against rosa::cpu's SpMM.
fn spmm_case(rng: &mut Rng, dt: Dt, c_dt: Dt, t: bool, config: i32, s: Shape) {
    let Shape(m, k, n, beta, shuffled, aligned, long) = s;
    let a = long.matrix(rng, m, k);
    let vals: Vec<f32> = a.values.iter().map(|&v| dt.round(v)).collect();
    let (walk_rows, b_rows, row_ptr, col_idx, perm) = if t {
        let (rp, ci, p) = transpose(&a);
        (k, m, rp, ci, Some(p))
    } else {
        (m, k, a.row_ptr.clone(), a.col_idx.clone(), None)
    };
    let (es, c_es) = (dt.size(), c_dt.size());
    // `aligned`: B and C 16-byte aligned with leading dimensions a multiple of their vector
    // widths, the operands of the fast path; otherwise any padding and base offset, in
    // whole elements (a misaligned element is undefined behaviour, which UBSan reports).
    let pad = |rng: &mut Rng, es: usize| {
        let vec = 16 / es;
        n.next_multiple_of(vec) - n + vec * rng.below(2)
    };
    let (pad_b, pad_c, off_b, off_c) = if aligned {
        (pad(rng, es), pad(rng, c_es), 0, 0)
    } else {
        (
            1 + rng.below(9),
            1 + rng.below(9),
            es * (1 + rng.below(14 / es)),
            c_es * (1 + rng.below(14 / c_es)),
        )
    };
    let mut b = Buf::new(dt, b_rows, n, n + pad_b, off_b);
    let mut bh = vec![0f32; b_rows * n];
    for r in 0..b_rows {
        for c in 0..n {
            let x = dt.round(rng.unit());
            b.set(r, c, x);
            bh[r * n + c] = x;
        }
    }
    let mut c = Buf::new(c_dt, walk_rows, n, n + pad_c, off_c);
    let mut ch = vec![0f32; walk_rows * n];
    for r in 0..walk_rows {
        for j in 0..n {
            let x = if beta == 0.0 {
                f32::NAN
            } else {
                c_dt.round(rng.unit())
            };
            c.set(r, j, x);
            ch[r * n + j] = x;
        }
    }
    let mut values = vec![0u8; vals.len() * es + 16];
    for (i, &v) in vals.iter().enumerate() {
        dt.encode(v, &mut values[i * es..(i + 1) * es]);
    }
    let sw = swizzle(rng, &row_ptr, shuffled);
    let long_rows = long.count(i32::from(t), config, &row_ptr, &sw);
    let alpha = 0.75f32;
    let p = sys::rosa_spmm_params {
        dtype: dt.code(),
        c_f32: i32::from(c_dt != dt),
        rows: walk_rows as i32,
        n: n as i32,
        b_rows: b_rows as i32,
        long_rows,
        row_ptr: row_ptr.as_ptr(),
        col_idx: col_idx.as_ptr(),
        perm: perm.as_ref().map_or(std::ptr::null(), |p| p.as_ptr()),
        row_swizzle: sw.as_ptr(),
        values: values.as_ptr().cast(),
        b: b.ptr(),
        c: c.ptr(),
        ldb: b.ld as i64,
        ldc: c.ld as i64,
        alpha,
        beta,
    };
    let launch = || {
        // SAFETY: every pointer covers what the header says the kernel reads or writes.
        let code = unsafe {
            if t {
                sys::rosa_spmm_t(&p, config, std::ptr::null_mut())
            } else {
                sys::rosa_spmm(&p, config, std::ptr::null_mut())
            }
        };
        launched(code);
    };
    launch();
    let what = format!(
        "spmm t={t} {dt:?} C {c_dt:?} config {config} m={m} k={k} n={n} beta={beta} \
         long_rows={long_rows}"
    );
    if long != Long::Off {
        // Bitwise reproducible: the same inputs again (C restored) give the same bits.
        let first: Vec<u32> = (0..walk_rows * n)
            .map(|i| c.get(i / n, i % n).to_bits())
            .collect();
        for i in 0..walk_rows * n {
            c.set(i / n, i % n, ch[i]);
        }
        launch();
        for i in 0..walk_rows * n {
            let again = c.get(i / n, i % n).to_bits();
            assert_eq!(again, first[i], "{what}: rerun differs at C[{i}]");
        }
        CHECKS.fetch_add(1, Ordering::Relaxed);
    }
    // In C's type: bf16 operands are exact in f32, so an f32 C is the f32 CPU SpMM's.
    let cpu = match c_dt {
        Dt::F32 => cpu_spmm::<f32>(&a, &vals, t, &bh, n, &ch, alpha, beta),
        Dt::F16 => cpu_spmm::<f16>(&a, &vals, t, &bh, n, &ch, alpha, beta),
        Dt::Bf16 => cpu_spmm::<bf16>(&a, &vals, t, &bh, n, &ch, alpha, beta),
    };
    for r in 0..walk_rows {
        for j in 0..n {
            let (mut want, mut scale) = (0f64, 0f64);
            for q in row_ptr[r] as usize..row_ptr[r + 1] as usize {
                let v = vals[perm.as_ref().map_or(q, |p| p[q] as usize)] as f64;
                let x = bh[col_idx[q] as usize * n + j] as f64;
                want += v * x;
                scale += (v * x).abs();
            }
            want *= alpha as f64;
            if beta != 0.0 {
                want += beta as f64 * ch[r * n + j] as f64;
                scale += (beta * ch[r * n + j]).abs() as f64;
            }
            let at = format!("{what} C[{r},{j}]");
            // At C's precision: an f32 C rounded to bf16 on the way out fails.
            assert_close(c.get(r, j), want, scale, c_dt, &at);
            assert_agree(c.get(r, j), cpu[r * n + j], want, scale, c_dt, &at);
        }
    }
    c.assert_padding(&what);
    b.assert_padding(&what);
}

#[test]
fn spmm_and_spmm_t_every_dtype_and_tile() {
    let mut rng = Rng(0x5eed_0001);
    for op in [0, 1] {
        for config in 0..config_count(op) {
            for dt in DTYPES {
                for s in SHAPES {
                    spmm_case(&mut rng, dt, dt, op == 1, config, s);
                }
            }
        }
    }
    report();
}

/// bf16 operands into an f32 C (c_f32 = 1), the output of the bf16 sparse terms: every
/// tile, both paths, direct and gathered (SpMM^T) values, and the splitting tiles on long
/// rows too, each of those rerun and compared bit for bit. C is checked at f32's precision,
/// so a result rounded to bf16 (or an f32 vector left unstored) fails.
#[test]
fn spmm_f32_out_every_tile() {
    let mut rng = Rng(0x5eed_0007);
    for op in [0, 1] {
        let split = split_configs(op);
        for config in 0..config_count(op) {
            let long: &[Shape] = if split.contains(&config) {
                &LONG_SHAPES
            } else {
                &[]
            };
            for &s in SHAPES.iter().chain(long) {
                spmm_case(&mut rng, Dt::Bf16, Dt::F32, op == 1, config, s);
            }
        }
    }
    report();
}

#[allow(clippy::too_many_arguments)]
fn sddmm_case(
    rng: &mut Rng,
    dt: Dt,
    config: i32,
    m: usize,
    cols: usize,
    k: usize,
    beta: f32,
    shuffled: bool,
    long: Long,
) {
    let a = long.matrix(rng, m, cols);
    let es = dt.size();
    let mut l = Buf::new(
        dt,
        m,
        k,
        k + 1 + rng.below(9),
        es * (1 + rng.below(14 / es)),
    );
    let mut r = Buf::new(
        dt,
        cols,
        k,
        k + 1 + rng.below(9),
        es * (1 + rng.below(14 / es)),
    );
    let mut lh = vec![0f32; m * k];
    let mut rh = vec![0f32; cols * k];
    for i in 0..m {
        for j in 0..k {
            lh[i * k + j] = dt.round(rng.unit());
            l.set(i, j, lh[i * k + j]);
        }
    }
    for i in 0..cols {
        for j in 0..k {
            rh[i * k + j] = dt.round(rng.unit());
            r.set(i, j, rh[i * k + j]);
        }
    }
    let nnz = a.col_idx.len();
    let mut out = Buf::new(dt, 1, nnz, nnz, es * (1 + rng.below(14 / es)));
    let mut old = vec![0f32; nnz];
    for q in 0..nnz {
        old[q] = if beta == 0.0 {
            f32::NAN
        } else {
            dt.round(rng.unit())
        };
        out.set(0, q, old[q]);
    }
    let sw = swizzle(rng, &a.row_ptr, shuffled);
    let long_rows = long.count(2, config, &a.row_ptr, &sw);
    let alpha = 1.25f32;
    let p = sys::rosa_sddmm_params {
        dtype: dt.code(),
        rows: m as i32,
        cols: cols as i32,
        k: k as i32,
        long_rows,
        row_ptr: a.row_ptr.as_ptr(),
        col_idx: a.col_idx.as_ptr(),
        row_swizzle: sw.as_ptr(),
        l: l.ptr(),
        r: r.ptr(),
        out: out.ptr(),
        ldl: l.ld as i64,
        ldr: r.ld as i64,
        alpha,
        beta,
    };
    // SAFETY: every pointer covers what the header says the kernel reads or writes.
    let launch = || launched(unsafe { sys::rosa_sddmm(&p, config, std::ptr::null_mut()) });
    launch();
    let what = format!(
        "sddmm {dt:?} config {config} m={m} cols={cols} k={k} beta={beta} long_rows={long_rows}"
    );
    if long != Long::Off {
        // Bitwise reproducible: the same inputs again (out restored) give the same bits.
        let first: Vec<u32> = (0..nnz).map(|q| out.get(0, q).to_bits()).collect();
        for q in 0..nnz {
            out.set(0, q, old[q]);
        }
        launch();
        for q in 0..nnz {
            assert_eq!(
                out.get(0, q).to_bits(),
                first[q],
                "{what}: rerun differs at out[{q}]"
            );
        }
        CHECKS.fetch_add(1, Ordering::Relaxed);
    }
    let cpu = match dt {
        Dt::F32 => cpu_sddmm::<f32>(&a, &old, &lh, &rh, k, alpha, beta),
        Dt::F16 => cpu_sddmm::<f16>(&a, &old, &lh, &rh, k, alpha, beta),
        Dt::Bf16 => cpu_sddmm::<bf16>(&a, &old, &lh, &rh, k, alpha, beta),
    };
    for i in 0..m {
        for q in a.row_ptr[i] as usize..a.row_ptr[i + 1] as usize {
            let j = a.col_idx[q] as usize;
            let (mut want, mut scale) = (0f64, 0f64);
            for t in 0..k {
                let x = lh[i * k + t] as f64 * rh[j * k + t] as f64;
                want += x;
                scale += x.abs();
            }
            want *= alpha as f64;
            if beta != 0.0 {
                want += beta as f64 * old[q] as f64;
                scale += (beta * old[q]).abs() as f64;
            }
            let at = format!("{what} out[{q}]");
            assert_close(out.get(0, q), want, scale, dt, &at);
            assert_agree(out.get(0, q), cpu[q], want, scale, dt, &at);
        }
    }
    out.assert_padding(&what);
}

#[test]
fn sddmm_every_dtype_and_tile() {
    let mut rng = Rng(0x5eed_0002);
    for config in 0..config_count(2) {
        for dt in DTYPES {
            sddmm_case(&mut rng, dt, config, 30, 75, 37, 0.0, false, Long::Off);
            sddmm_case(&mut rng, dt, config, 11, 71, 1, 0.5, true, Long::Off);
            sddmm_case(&mut rng, dt, config, 7, 72, 600, 0.0, true, Long::Off);
        }
    }
    report();
}

/// The long-row split of the splitting tiles: the library's long-row count on skewed
/// masks, then every row long (empty rows too); ragged and whole column tiles, aligned
/// (fast path) and misaligned B, sorted and shuffled row orders, beta 0 on NaN-poisoned C;
/// each case also rerun and compared bit for bit.
#[test]
fn split_long_rows_every_dtype_and_split_tile() {
    let mut rng = Rng(0x5eed_0005);
    for op in [0, 1] {
        let configs = split_configs(op);
        assert!(!configs.is_empty(), "no splitting tile for op {op}");
        for config in configs {
            for dt in DTYPES {
                for s in LONG_SHAPES {
                    spmm_case(&mut rng, dt, dt, op == 1, config, s);
                }
            }
        }
    }
    let configs = split_configs(2);
    assert!(!configs.is_empty(), "no splitting SDDMM tile");
    for config in configs {
        for dt in DTYPES {
            sddmm_case(&mut rng, dt, config, 40, 300, 37, 0.0, false, Long::Rule);
            sddmm_case(&mut rng, dt, config, 21, 290, 600, 0.5, true, Long::Rule);
            sddmm_case(&mut rng, dt, config, 9, 300, 1, -1.0, false, Long::All);
        }
    }
    report();
}

/// The library's count finds the long rows of a skewed mask, so the tests above run the
/// split path (not only the ordinary one behind zero long rows).
#[test]
fn long_row_rule_finds_the_skewed_rows() {
    let mut rng = Rng(0x5eed_0006);
    let a = skewed_csr(&mut rng, 60, 300);
    let sw = swizzle(&mut rng, &a.row_ptr, false);
    for op in [0, 2] {
        for config in split_configs(op) {
            let got = Long::Rule.count(op, config, &a.row_ptr, &sw);
            assert_eq!(got, 3, "op {op} config {config}: the three long rows");
        }
    }
    let (t_row_ptr, _, _) = transpose(&a);
    let t_sw = swizzle(&mut rng, &t_row_ptr, false);
    for config in split_configs(1) {
        assert!(
            Long::Rule.count(1, config, &t_row_ptr, &t_sw) >= 1,
            "hot column"
        );
    }
}

/// Refused before anything runs: a long-row count by an unsplit tile (its kernel has no
/// long-row blocks) and above the rows by any; an f32 C of f16 operands (not compiled) and a
/// c_f32 other than 0 or 1, by SpMM and SpMM^T alike.
#[test]
fn spmm_and_sddmm_refusals() {
    let bad = sys::rosa_status::ROSA_ERR_BAD_ARGUMENT;
    let (row_ptr, sw, col_idx) = ([0i32, 1, 1], [0i32, 1], [0i32]);
    let values = [0u8; 16];
    let (b, mut c) = ([0u8; 64], [0u8; 64]);
    let mut p = sys::rosa_spmm_params {
        dtype: Dt::F32.code(),
        c_f32: 0,
        rows: 2,
        n: 1,
        b_rows: 1,
        long_rows: 1,
        row_ptr: row_ptr.as_ptr(),
        col_idx: col_idx.as_ptr(),
        perm: std::ptr::null(),
        row_swizzle: sw.as_ptr(),
        values: values.as_ptr().cast(),
        b: b.as_ptr().cast(),
        c: c.as_mut_ptr().cast(),
        ldb: 1,
        ldc: 1,
        alpha: 1.0,
        beta: 0.0,
    };
    let split = split_configs(0)[0];
    let unsplit = (0..config_count(0))
        .find(|&i| tile(0, i).split == 0)
        .expect("an unsplit tile");
    // SAFETY: every call is refused before a pointer is read.
    unsafe {
        assert_eq!(sys::rosa_spmm(&p, unsplit, std::ptr::null_mut()), bad);
        p.long_rows = 3;
        assert_eq!(sys::rosa_spmm(&p, split, std::ptr::null_mut()), bad);
        p.long_rows = -1;
        assert_eq!(sys::rosa_spmm(&p, split, std::ptr::null_mut()), bad);
    }
    p.long_rows = 0;
    let perm = [0i32];
    let bad_dtype = sys::rosa_status::ROSA_ERR_BAD_DTYPE;
    for (dtype, c_f32, want) in [(Dt::F16, 1, bad_dtype), (Dt::Bf16, 2, bad)] {
        p.dtype = dtype.code();
        p.c_f32 = c_f32;
        for t in [false, true] {
            // SAFETY: refused before a pointer is read.
            let got = unsafe {
                if t {
                    let q = sys::rosa_spmm_params {
                        perm: perm.as_ptr(),
                        ..p
                    };
                    sys::rosa_spmm_t(&q, split, std::ptr::null_mut())
                } else {
                    sys::rosa_spmm(&p, split, std::ptr::null_mut())
                }
            };
            assert_eq!(got, want, "{dtype:?} c_f32 = {c_f32} t={t}");
            CHECKS.fetch_add(1, Ordering::Relaxed);
        }
    }
    let mut out = [0u8; 16];
    let q = sys::rosa_sddmm_params {
        dtype: Dt::F32.code(),
        rows: 2,
        cols: 1,
        k: 1,
        long_rows: 1,
        row_ptr: row_ptr.as_ptr(),
        col_idx: col_idx.as_ptr(),
        row_swizzle: sw.as_ptr(),
        l: b.as_ptr().cast(),
        r: b.as_ptr().cast(),
        out: out.as_mut_ptr().cast(),
        ldl: 1,
        ldr: 1,
        alpha: 1.0,
        beta: 0.0,
    };
    let unsplit = (0..config_count(2))
        .find(|&i| tile(2, i).split == 0)
        .expect("an unsplit tile");
    // SAFETY: refused before a pointer is read.
    assert_eq!(
        unsafe { sys::rosa_sddmm(&q, unsplit, std::ptr::null_mut()) },
        bad
    );
}

/// Counts are process-wide and tests run in parallel: each prints the total so far, and
/// the last line printed is the suite's.
fn report() {
    eprintln!(
        "emu_kernels: {} launches, {} checks so far",
        LAUNCHES.load(Ordering::Relaxed),
        CHECKS.load(Ordering::Relaxed)
    );
}

/// Lengths around the emulated build's block cap of 4 x 256 threads (ROSA_MAX_BLOCKS=4 in
/// build.rs): one partial block, exactly the cap, and past it (a second grid-stride pass).
const LENGTHS: [usize; 4] = [1, 300, 1024, 2500];

fn values(rng: &mut Rng, n: usize) -> Vec<f32> {
    (0..n).map(|_| rng.unit() * 4.0).collect()
}

#[test]
fn axpby_bias_add_row_sum_sum_squares() {
    let mut rng = Rng(0x5eed_0003);
    let null = std::ptr::null_mut();
    for n in LENGTHS {
        let x = values(&mut rng, n);
        for beta in [0.0f32, 0.5] {
            let mut y = if beta == 0.0 {
                vec![f32::NAN; n]
            } else {
                values(&mut rng, n)
            };
            let y0 = y.clone();
            // SAFETY: x and y hold n elements.
            launched(unsafe {
                sys::rosa_axpby(n as i64, 1.5, x.as_ptr(), beta, y.as_mut_ptr(), null)
            });
            for i in 0..n {
                let want = 1.5 * x[i] as f64
                    + if beta == 0.0 {
                        0.0
                    } else {
                        beta as f64 * y0[i] as f64
                    };
                assert_close(y[i], want, want.abs() + 1.0, Dt::F32, "axpby");
            }
        }
        let mut acc = 0.25f64;
        // SAFETY: x holds n elements, acc is one f64.
        launched(unsafe { sys::rosa_sum_squares(n as i64, x.as_ptr(), &mut acc, null) });
        let want: f64 = 0.25 + x.iter().map(|&v| v as f64 * v as f64).sum::<f64>();
        assert!(
            (acc - want).abs() <= 1e-12 * want,
            "sum_squares {acc} {want}"
        );
        CHECKS.fetch_add(1, Ordering::Relaxed);
    }
    for (rows, cols) in [(1, 1), (3, 700), (1100, 3), (5, 0)] {
        let x = values(&mut rng, rows * cols);
        let bias = values(&mut rng, rows);
        let mut y = x.clone();
        if cols > 0 {
            // SAFETY: bias holds rows, y rows * cols elements.
            launched(unsafe {
                sys::rosa_bias_add(
                    rows as i64,
                    cols as i64,
                    bias.as_ptr(),
                    y.as_mut_ptr(),
                    null,
                )
            });
            for i in 0..rows * cols {
                let want = x[i] as f64 + bias[i / cols] as f64;
                assert_close(y[i], want, want.abs(), Dt::F32, "bias_add");
            }
        }
        let mut out = vec![f32::NAN; rows];
        // SAFETY: x holds rows * cols elements, out rows.
        launched(unsafe {
            sys::rosa_row_sum(rows as i64, cols as i64, x.as_ptr(), out.as_mut_ptr(), null)
        });
        for r in 0..rows {
            let row = &x[r * cols..(r + 1) * cols];
            let want: f64 = row.iter().map(|&v| v as f64).sum();
            let scale: f64 = row.iter().map(|&v| v.abs() as f64).sum();
            assert_close(out[r], want, scale, Dt::F32, "row_sum");
        }
    }
    report();
}

/// `rosa_csr_add` in every dtype, in place (`base` null) and from a separate base with its
/// own stride and offset: the mask's entries become `base + alpha S` rounded once, every
/// other entry and all padding stay as they were.
#[test]
fn csr_add_keeps_padding() {
    let mut rng = Rng(0x5eed_0004);
    let alpha = -0.5f32;
    for dt in DTYPES {
        for (rows, cols) in [(0, 7), (1, 5), (40, 80), (70, 75)] {
            for separate in [false, true] {
                let a = random_csr(&mut rng, rows, cols);
                let ld = cols + 1 + rng.below(9);
                let mut dense = Buf::new(dt, rows, cols, ld, dt.size() * rng.below(4));
                let base_ld = cols + rng.below(5);
                let mut base = Buf::new(dt, rows, cols, base_ld, dt.size() * rng.below(4));
                let mut before = vec![0f32; rows * cols];
                let mut from = vec![0f32; rows * cols];
                for r in 0..rows {
                    for c in 0..cols {
                        dense.set(r, c, rng.unit());
                        base.set(r, c, rng.unit());
                        before[r * cols + c] = dense.get(r, c);
                        from[r * cols + c] = if separate {
                            base.get(r, c)
                        } else {
                            before[r * cols + c]
                        };
                    }
                }
                let p = sys::rosa_csr_add_params {
                    rows: rows as i32,
                    cols: cols as i32,
                    row_ptr: a.row_ptr.as_ptr(),
                    col_idx: a.col_idx.as_ptr(),
                    values: a.values.as_ptr(),
                    dtype: dt.code(),
                    base: if separate {
                        base.ptr().cast_const()
                    } else {
                        std::ptr::null()
                    },
                    base_ld: base_ld as i64,
                    dense: dense.ptr(),
                    ld: ld as i64,
                    alpha,
                };
                // SAFETY: the CSR arrays and the dense and base buffers match the params.
                launched(unsafe { sys::rosa_csr_add(&p, std::ptr::null_mut()) });
                let what = format!("csr_add {dt:?} {rows} x {cols} separate base {separate}");
                let mut in_mask = vec![false; rows * cols];
                for r in 0..rows {
                    for q in a.row_ptr[r] as usize..a.row_ptr[r + 1] as usize {
                        let c = a.col_idx[q] as usize;
                        in_mask[r * cols + c] = true;
                        let want = from[r * cols + c] as f64 + alpha as f64 * a.values[q] as f64;
                        assert_close(dense.get(r, c), want, 2.0, dt, &what);
                    }
                }
                for (i, (&m, &b)) in in_mask.iter().zip(&before).enumerate() {
                    if !m {
                        let got = dense.get(i / cols, i % cols);
                        assert_eq!(got.to_bits(), b.to_bits(), "{what}: untouched entry {i}");
                    }
                }
                dense.assert_padding(&what);
                base.assert_padding(&what);
            }
        }
    }
    // Refused: a bad dtype, a base stride below the width, a stride below the width.
    let a = random_csr(&mut rng, 3, 4);
    let mut dense = vec![0f32; 12];
    let good = sys::rosa_csr_add_params {
        rows: 3,
        cols: 4,
        row_ptr: a.row_ptr.as_ptr(),
        col_idx: a.col_idx.as_ptr(),
        values: a.values.as_ptr(),
        dtype: Dt::F32.code(),
        base: dense.as_ptr().cast(),
        base_ld: 4,
        dense: dense.as_mut_ptr().cast(),
        ld: 4,
        alpha: 1.0,
    };
    let bad = [
        sys::rosa_csr_add_params { dtype: 7, ..good },
        sys::rosa_csr_add_params { base_ld: 3, ..good },
        sys::rosa_csr_add_params { ld: 3, ..good },
        sys::rosa_csr_add_params {
            dense: std::ptr::null_mut(),
            ..good
        },
    ];
    for p in bad {
        // SAFETY: refused before any pointer is read.
        let code = unsafe { sys::rosa_csr_add(&p, std::ptr::null_mut()) };
        assert!(code < 0, "csr_add refused arguments: got {code}");
        CHECKS.fetch_add(1, Ordering::Relaxed);
    }
    report();
}

#[test]
fn adamw_matches_f64() {
    let mut rng = Rng(0x5eed_0005);
    for n in LENGTHS {
        let (mut w, g, mut m, mut v) = (
            values(&mut rng, n),
            values(&mut rng, n),
            values(&mut rng, n),
            values(&mut rng, n),
        );
        v.iter_mut().for_each(|x| *x = x.abs());
        let (w0, m0, v0) = (w.clone(), m.clone(), v.clone());
        let p = sys::rosa_adamw_params {
            n: n as i64,
            param: w.as_mut_ptr(),
            grad: g.as_ptr(),
            m: m.as_mut_ptr(),
            v: v.as_mut_ptr(),
            lr: 1e-2,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.01,
            bias_correction1: 1.0 - 0.9f32.powi(3),
            bias_correction2: 1.0 - 0.999f32.powi(3),
            grad_scale: 0.5,
        };
        // SAFETY: four buffers of n elements.
        launched(unsafe { sys::rosa_adamw(&p, std::ptr::null_mut()) });
        for i in 0..n {
            let gi = g[i] as f64 * 0.5;
            let mi = 0.9 * m0[i] as f64 + 0.1 * gi;
            let vi = 0.999 * v0[i] as f64 + 0.001 * gi * gi;
            let upd =
                (mi / p.bias_correction1 as f64) / ((vi / p.bias_correction2 as f64).sqrt() + 1e-8);
            let wi = w0[i] as f64 - 1e-2 * (upd + 0.01 * w0[i] as f64);
            assert_close(m[i], mi, mi.abs() + 1.0, Dt::F32, "adamw m");
            assert_close(v[i], vi, vi.abs() + 1.0, Dt::F32, "adamw v");
            assert_close(w[i], wi, wi.abs() + 1.0, Dt::F32, "adamw param");
        }
    }
    report();
}

/// Every cast pair, bit for bit against the `half` crate's round-to-nearest-even and
/// rosa's own `Scalar::from_f32`, on
/// NaN, +-inf, +-0, ties, subnormals, and values that overflow the narrower type.
#[test]
fn casts_bit_for_bit() {
    let mut special: Vec<f32> = vec![
        f32::NAN,
        f32::INFINITY,
        f32::NEG_INFINITY,
        0.0,
        -0.0,
        65504.0,
        65520.0,
        65519.99,
        1e5,
        -1e5,
        f32::MAX,
        f32::MIN_POSITIVE,
        1e-8,
        5.960_464_5e-8,
        2.980_232_2e-8,
        1.0 + 2f32.powi(-11),
        1.0 + 3.0 * 2f32.powi(-11),
        1.0 + 2f32.powi(-8),
        1.0 + 3.0 * 2f32.powi(-8),
        3.389_531_4e38,
        -3.4e38,
    ];
    let mut rng = Rng(0x5eed_0006);
    special.extend((0..2000).map(|_| f32::from_bits(rng.next() as u32)));
    let n = special.len();
    for src in DTYPES {
        let mut sbuf = vec![0u8; n * src.size()];
        for (i, &x) in special.iter().enumerate() {
            src.encode(x, &mut sbuf[i * src.size()..(i + 1) * src.size()]);
        }
        for dst in DTYPES {
            let mut dbuf = vec![0xA5u8; n * dst.size()];
            // SAFETY: both buffers hold n elements of their dtype.
            launched(unsafe {
                sys::rosa_cast(
                    n as i64,
                    src.code(),
                    sbuf.as_ptr().cast(),
                    dst.code(),
                    dbuf.as_mut_ptr().cast(),
                    std::ptr::null_mut(),
                )
            });
            for i in 0..n {
                let x = src.decode(&sbuf[i * src.size()..(i + 1) * src.size()]);
                let mut want = vec![0u8; dst.size()];
                dst.encode(x, &mut want);
                let got = &dbuf[i * dst.size()..(i + 1) * dst.size()];
                if x.is_nan() {
                    assert!(dst.decode(got).is_nan(), "cast {src:?}->{dst:?} of NaN");
                } else {
                    assert_eq!(
                        got,
                        &want[..],
                        "cast {src:?}->{dst:?} of {x:e} ({:#x})",
                        x.to_bits()
                    );
                    // The CPU side's own conversion (rosa::Scalar, which the CPU kernels
                    // store through) must agree too.
                    assert_eq!(
                        got,
                        &dst.encode_scalar(x)[..],
                        "cast {src:?}->{dst:?} of {x:e} against rosa::Scalar::from_f32"
                    );
                }
                CHECKS.fetch_add(2, Ordering::Relaxed);
            }
        }
    }
    report();
}

/// Status texts come from the emulated runtime's cudaGetErrorString, as the launchers'
/// positive codes would from cudart.
#[test]
fn status_strings() {
    check(0).unwrap();
    let (code, text) = check(9).unwrap_err();
    assert_eq!((code, text.as_str()), (9, "invalid configuration argument"));
    let (code, _) = check(-4).unwrap_err();
    assert_eq!(code, -4);
}
