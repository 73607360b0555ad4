//! The invariants every fuzz target asserts, shared by the libFuzzer targets and the
//! stable replay in `tests/fuzz_corpus.rs` (both `#[path]`-include this one file, so a
//! corpus file that passes here passes under the fuzzer too).
//!
//! Each check takes untrusted bytes, returns whether the library accepted them, and
//! panics when an accepted input breaks an invariant (or when the library panics).

#![allow(dead_code)]

use std::path::PathBuf;

use rosa::train::{load_masks, save_masks, Mlp, MlpConfig};
use rosa::tune::TuneCache;
use rosa::{bf16, cpu, f16, io, Csr, CsrShape, Dense, Error, Scalar};

/// A check: `true` when the library accepted the bytes.
pub type Check = fn(&[u8]) -> bool;

/// Every target by name, in the order of `fuzz/corpus/`.
pub const TARGETS: &[(&str, Check)] = &[
    ("csr_parts", csr_parts),
    ("mtx", mtx),
    ("npy", npy),
    ("tune_cache", tune_cache),
    ("safetensors_masks", safetensors_masks),
    ("cli_files", cli_files),
];

/// A file path private to this thread: the replay test runs targets on several threads.
fn scratch(name: &str) -> PathBuf {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local!(static DIR: PathBuf = {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("rosa-fuzz-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    });
    DIR.with(|d| d.join(name))
}

/// Removes this thread's scratch files (the fuzzers reuse theirs until they exit).
pub fn remove_scratch() {
    let _ = std::fs::remove_dir_all(scratch("x").parent().unwrap());
}

fn write(name: &str, bytes: &[u8]) -> PathBuf {
    let path = scratch(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// Equal as stored values: bit-identical, except that any NaN matches any NaN (text
/// formats print every NaN as `NaN`, dropping sign and payload).
fn same<T: Scalar>(a: &[T], b: &[T]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            let (x, y) = (x.to_f32(), y.to_f32());
            (x.is_nan() && y.is_nan()) || x.to_bits() == y.to_bits()
        })
}

fn same_csr<T: Scalar>(a: &Csr<T>, b: &Csr<T>) -> bool {
    a.rows() == b.rows()
        && a.cols() == b.cols()
        && a.row_ptr() == b.row_ptr()
        && a.col_idx() == b.col_idx()
        && same(a.values(), b.values())
}

/// Reads a dimension byte: mostly small, sometimes one of the sizes at the i32 edge.
fn dim(b: u8) -> usize {
    match b {
        250 => i32::MAX as usize - 1,
        251 => i32::MAX as usize,
        252 => i32::MAX as usize + 1,
        253 => u32::MAX as usize,
        254 => usize::MAX,
        b => (b % 48) as usize,
    }
}

/// Raw CSR parts from bytes: `rows cols len(row_ptr) len(col_idx) len(values)` as
/// bytes, then little-endian i32 indices and f32 values (missing bytes read as 0).
pub fn csr_parts(data: &[u8]) -> bool {
    let byte = |i: usize| data.get(i).copied().unwrap_or(0);
    let (rows, cols) = (dim(byte(0)), dim(byte(1)));
    let (n_rp, n_ci, n_v) = (byte(2) as usize, byte(3) as usize, byte(4) as usize);
    let mut words = data.get(5..).unwrap_or(&[]).chunks(4).map(|c| {
        let mut w = [0u8; 4];
        w[..c.len()].copy_from_slice(c);
        w
    });
    let mut next = || words.next().unwrap_or([0; 4]);
    let row_ptr: Vec<i32> = (0..n_rp).map(|_| i32::from_le_bytes(next())).collect();
    let col_idx: Vec<i32> = (0..n_ci).map(|_| i32::from_le_bytes(next())).collect();
    let values: Vec<f32> = (0..n_v).map(|_| f32::from_le_bytes(next())).collect();
    let Ok(a) = Csr::from_parts(rows, cols, row_ptr.clone(), col_idx.clone(), values) else {
        return false;
    };
    assert_eq!((a.rows(), a.cols(), a.nnz()), (rows, cols, col_idx.len()));
    assert_eq!((a.row_ptr(), a.col_idx()), (&row_ptr[..], &col_idx[..]));

    let path = scratch("parts.mtx");
    io::write_mtx(&path, &a).unwrap();
    let back = io::read_mtx::<f32>(&path).unwrap();
    assert!(
        same_csr(&a, &back),
        "Matrix Market round trip changed {a:?} into {back:?}"
    );

    if cols > 1 << 16 {
        // The plan's row_ptr has cols + 1 entries: 8 GiB at the i32 limit, by design.
        return true;
    }
    let t = transpose(&a);
    let tt = transpose(&t);
    assert!(
        same_csr(&a, &tt),
        "transposing twice changed {a:?} into {tt:?}"
    );

    if a.values().iter().all(|v| v.is_finite()) {
        let eye = Dense::from_fn(cols, cols, |i, j| f32::from(u8::from(i == j)));
        let mut c = Dense::zeros(rows, cols);
        cpu::spmm(1.0, a.as_ref(), eye.as_ref(), 0.0, c.as_mut()).unwrap();
        assert_eq!(c, a.to_dense(), "A times the identity is not A");
    }
    true
}

/// A^T through the transpose plan, which must itself be a valid CSR matrix.
fn transpose(a: &Csr<f32>) -> Csr<f32> {
    a.transpose()
        .expect("a transpose plan is a valid CSR structure")
}

/// CSR needs `4 (rows + 1)` bytes of `row_ptr` whatever the file holds, so a valid
/// 30-byte file declaring 2^31 - 1 empty rows costs 8 GiB by design (see
/// BENCHMARKS.md, Reliability); such files are left to `tests/hostile.rs` and
/// `tests/cli.rs` (which cap the memory), not fuzzed.
fn too_many_rows(mtx: &[u8]) -> bool {
    let text = String::from_utf8_lossy(mtx);
    let size = text
        .lines()
        .skip(1)
        .find(|l| !(l.trim().is_empty() || l.starts_with('%')));
    let rows = size.and_then(|l| l.split_whitespace().next()?.parse::<u64>().ok());
    rows.is_some_and(|r| r > 1 << 20)
}

/// Whether a read took the file's structure: it succeeded, or refused only a value the
/// dtype cannot hold (which f16 may do where f32 does not).
fn structural<T>(r: &rosa::Result<T>) -> bool {
    r.is_ok() || matches!(r, Err(Error::Unrepresentable { .. }))
}

/// Equal as numbers: NaN matches NaN, and -0 matches 0.
fn same_numbers<T: Scalar>(a: &[T], b: &[T]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            let (x, y) = (x.to_f32(), y.to_f32());
            (x.is_nan() && y.is_nan()) || x == y
        })
}

/// A Matrix Market file: every dtype, and the value-free mask read, take the same
/// structure (a dtype may refuse only a value it cannot hold); what is accepted
/// survives `write_mtx` then `read_mtx` unchanged; an `array` file reads as the same
/// matrix dense and sparse. `true` when f32 accepts it.
pub fn mtx(data: &[u8]) -> bool {
    if too_many_rows(data) {
        return false;
    }
    let path = write("in.mtx", data);
    let a = io::read_mtx::<f32>(&path);
    let h = io::read_mtx::<f16>(&path);
    let b = io::read_mtx::<bf16>(&path);
    let mask = io::read_mtx_pattern::<f32>(&path);
    assert_eq!(
        structural(&a),
        structural(&h),
        "f32 and f16 disagree on {path:?}"
    );
    assert_eq!(
        structural(&a),
        structural(&b),
        "f32 and bf16 disagree on {path:?}"
    );
    assert_eq!(
        structural(&a),
        mask.is_ok(),
        "the mask read disagrees on {path:?}"
    );
    let Ok(mask) = mask else {
        return false;
    };
    assert!(mask.values().iter().all(|&v| v == 0.0));
    let structure = (mask.row_ptr(), mask.col_idx());
    if let Ok(h) = &h {
        assert_eq!((h.row_ptr(), h.col_idx()), structure);
        mtx_round_trip(h);
    }
    if let Ok(b) = &b {
        assert_eq!((b.row_ptr(), b.col_idx()), structure);
        mtx_round_trip(b);
    }
    let Ok(a) = a else {
        return false;
    };
    assert_eq!((a.row_ptr(), a.col_idx()), structure);
    mtx_round_trip(&a);
    if let Ok(d) = io::read_mtx_dense::<f32>(&path) {
        assert_eq!((d.rows(), d.cols()), (a.rows(), a.cols()));
        assert!(
            same_numbers(d.as_slice(), a.to_dense().as_slice()),
            "dense and sparse reads of {path:?} differ"
        );
        let again = io::read_dense::<f32>(&path).unwrap();
        assert!(same_numbers(again.as_slice(), d.as_slice()));
    }
    true
}

fn mtx_round_trip<T: Scalar>(a: &Csr<T>) {
    let path = scratch("out.mtx");
    io::write_mtx(&path, a).unwrap();
    let back = io::read_mtx::<T>(&path).unwrap();
    assert!(
        same_csr(a, &back),
        "{} round trip changed {a:?} into {back:?}",
        T::DTYPE
    );
}

/// An NPY file: f32 and f16 take the same shape (f16 may refuse only a value it cannot
/// hold), `read_dense` reads it as `read_npy` does, and what is accepted survives
/// `write_npy` then `read_npy` bit for bit (NaN payloads included). `true` when f32
/// accepts it.
pub fn npy(data: &[u8]) -> bool {
    let path = write("in.npy", data);
    let a = io::read_npy::<f32>(&path);
    let h = io::read_npy::<f16>(&path);
    assert_eq!(
        structural(&a),
        structural(&h),
        "f32 and f16 disagree on {path:?}"
    );
    let dense = io::read_dense::<f32>(&path);
    assert_eq!(dense.is_ok(), a.is_ok(), "read_dense disagrees on {path:?}");
    if let Ok(h) = &h {
        npy_round_trip(h);
    }
    let Ok(a) = a else {
        return false;
    };
    assert!(same(dense.unwrap().as_slice(), a.as_slice()));
    if let Ok(h) = &h {
        assert_eq!((a.rows(), a.cols()), (h.rows(), h.cols()));
    }
    assert_eq!(a.as_slice().len(), a.rows() * a.cols());
    npy_round_trip(&a);
    true
}

fn npy_round_trip<T: Scalar>(m: &Dense<T>) {
    let path = scratch("out.npy");
    io::write_npy(&path, m.as_ref()).unwrap();
    let back = io::read_npy::<T>(&path).unwrap();
    let bits = |d: &Dense<T>| {
        d.as_slice()
            .iter()
            .map(|v| v.to_f32().to_bits())
            .collect::<Vec<_>>()
    };
    assert_eq!((back.rows(), back.cols()), (m.rows(), m.cols()));
    assert_eq!(
        bits(&back),
        bits(m),
        "{} NPY round trip changed values",
        T::DTYPE
    );
}

/// The configuration table a build might have: eight per op.
fn config_exists(_: rosa::Op, i: usize) -> bool {
    i < 8
}

/// A tuning cache: what is accepted is what a tuner could have written (known
/// configurations, positive finite times, unique sorted keys), and it re-serializes and
/// re-parses, and loads from disk, to the same value.
pub fn tune_cache(data: &[u8]) -> bool {
    let path = write("cache.json", data);
    let Ok(text) = std::str::from_utf8(data) else {
        assert!(TuneCache::load(&path, &header(), config_exists).is_err());
        return false;
    };
    let Ok(cache) = TuneCache::from_json(text, &path, config_exists) else {
        return false;
    };
    for w in cache.entries().windows(2) {
        assert!(w[0].key < w[1].key, "entries not sorted and unique");
    }
    for e in cache.entries() {
        assert!(config_exists(e.key.op, e.config));
        assert!(e.tuned_us.is_finite() && e.tuned_us > 0.0);
        assert!(e.heuristic_us.is_finite() && e.heuristic_us > 0.0);
    }
    let again = serde_json::to_string(&cache).unwrap();
    let back = TuneCache::from_json(&again, &path, config_exists).unwrap();
    assert_eq!(back, cache, "JSON round trip changed the cache");
    let loaded = TuneCache::load(&path, cache.header(), config_exists).unwrap();
    assert_eq!(loaded, cache, "loading from disk differs from parsing");
    true
}

fn header() -> rosa::tune::CacheHeader {
    let device = rosa::tune::DeviceFingerprint {
        name: "fuzz".into(),
        compute_capability: (9, 0),
        sm_count: 132,
        memory_bytes: 1 << 36,
        driver_version: 13000,
    };
    rosa::tune::CacheHeader::new("fuzz", device)
}

/// Saved masks and adapters: an accepted mask file holds exactly the shapes and counts
/// its tensors declare and re-saves to the same structure; accepted adapters re-save to
/// the same bytes.
pub fn safetensors_masks(data: &[u8]) -> bool {
    let path = write("in.safetensors", data);
    let masks_ok = match load_masks(&path) {
        Ok(masks) => {
            check_mask_claims(data, &masks);
            let out = scratch("masks.safetensors");
            save_masks(&out, &masks).unwrap();
            let back = load_masks(&out).unwrap();
            assert_eq!(back.len(), masks.len());
            for (m, b) in masks.iter().zip(&back) {
                assert_eq!((m.rows(), m.cols()), (b.rows(), b.cols()));
                assert_eq!((m.row_ptr(), m.col_idx()), (b.row_ptr(), b.col_idx()));
                assert!(b.values().iter().all(|&v| v == 1.0));
            }
            true
        }
        Err(_) => false,
    };
    let cfg = MlpConfig {
        inputs: 3,
        hidden: 4,
        outputs: 2,
        blocks: 1,
    };
    let mut mlp = Mlp::new(cfg, 1);
    let adapters_ok = mlp.load_adapters(&path).is_ok();
    if adapters_ok {
        let first = scratch("adapters-1.safetensors");
        mlp.save_adapters(&first, true).unwrap();
        let mut fresh = Mlp::new(cfg, 2);
        fresh.load_adapters(&first).unwrap();
        let second = scratch("adapters-2.safetensors");
        fresh.save_adapters(&second, true).unwrap();
        assert_eq!(
            std::fs::read(&first).unwrap(),
            std::fs::read(&second).unwrap()
        );
    }
    // Adapters ignore tensors they do not know, so only files naming some count.
    let names_adapters = safetensors::SafeTensors::deserialize(data)
        .is_ok_and(|st| st.names().iter().any(|n| !n.contains(".mask.")));
    masks_ok || (adapters_ok && names_adapters)
}

fn check_mask_claims(data: &[u8], masks: &[Csr<f32>]) {
    let st = safetensors::SafeTensors::deserialize(data).unwrap();
    for (i, m) in masks.iter().enumerate() {
        let t = |n: &str| st.tensor(&format!("layers.{i}.mask.{n}")).unwrap();
        let shape: Vec<i32> = ints(t("shape").data());
        assert_eq!(shape, [m.rows() as i32, m.cols() as i32]);
        assert_eq!(ints(t("row_ptr").data()), m.row_ptr());
        assert_eq!(ints(t("col_idx").data()), m.col_idx());
        assert_eq!(*m.row_ptr().last().unwrap() as usize, m.nnz());
    }
}

fn ints(bytes: &[u8]) -> Vec<i32> {
    bytes
        .chunks_exact(4)
        .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// The `rosa spmm` / `rosa sddmm` inputs: a .mtx and a .npy or array .mtx (split at the
/// first two bytes, a little-endian length), read as the CLI reads them and, when the shapes fit,
/// multiplied; products must match a dense f64 reference where it is finite and be
/// non-finite where it is not.
pub fn cli_files(data: &[u8]) -> bool {
    let cut = data
        .get(..2)
        .map_or(0, |b| u16::from_le_bytes([b[0], b[1]]) as usize);
    let rest = data.get(2..).unwrap_or(&[]);
    let (mtx_bytes, npy_bytes) = rest.split_at(cut.min(rest.len()));
    if too_many_rows(mtx_bytes) {
        return false;
    }
    let a = io::read_mtx::<f32>(write("a.mtx", mtx_bytes));
    // Read as the CLI reads a dense operand: NPY, or a Matrix Market array.
    let b = io::read_dense::<f32>(write("b.npy", npy_bytes));
    let (Ok(a), Ok(b)) = (a, b) else {
        return false;
    };
    // The CLI refuses outputs it cannot allocate; the fuzzer only checks small ones.
    // The transpose plan is O(cols) too, even for an empty output.
    if a.rows().max(a.cols()).saturating_mul(b.cols().max(1)) > 1 << 16 {
        return true;
    }
    if a.cols() == b.rows() {
        let mut c = Dense::zeros(a.rows(), b.cols());
        cpu::spmm(1.0, a.as_ref(), b.as_ref(), 0.0, c.as_mut()).unwrap();
        check_product(&c, &a, &b, false);
    }
    if a.rows() == b.rows() {
        let plan = a.transpose_plan();
        let mut c = Dense::zeros(a.cols(), b.cols());
        cpu::spmm_t(1.0, a.as_ref(), &plan, b.as_ref(), 0.0, c.as_mut()).unwrap();
        check_product(&c, &a, &b, true);
    }
    true
}

/// Compares `A B` (or `A^T B`) against f64 sums over A's stored entries (a stored zero
/// times an infinity is NaN in the kernels too): equal within f32 accumulation error,
/// NaN exactly where the reference is NaN, and the same infinity where it is infinite.
fn check_product(c: &Dense<f32>, a: &Csr<f32>, b: &Dense<f32>, transposed: bool) {
    let n = b.cols();
    let mut sum = vec![0f64; c.rows() * n];
    let mut mag = vec![0f64; c.rows() * n]; // of the finite products
    for i in 0..a.rows() {
        let (cols, vals) = a.row(i);
        for (&k, &v) in cols.iter().zip(vals) {
            let (out, src) = if transposed {
                (k as usize, i)
            } else {
                (i, k as usize)
            };
            for j in 0..n {
                let p = v as f64 * b.get(src, j).unwrap() as f64;
                sum[out * n + j] += p;
                if p.is_finite() {
                    mag[out * n + j] += p.abs();
                }
            }
        }
    }
    for (p, (&s, &m)) in sum.iter().zip(&mag).enumerate() {
        let got = c.as_slice()[p];
        let close = (got as f64 - s).abs() <= 1e-4 * m + 1e-30;
        if s.is_nan() {
            assert!(got.is_nan(), "entry {p}: expected NaN, got {got}");
        } else if m >= 1e30 {
            // Products and partial sums may overflow f32 where f64 holds them.
            assert!(!got.is_finite() || close, "entry {p}: {got} vs {s}");
        } else if s.is_infinite() {
            assert_eq!(got as f64, s, "entry {p}: expected {s}");
        } else {
            assert!(close, "entry {p}: {got} vs {s}");
        }
    }
}
