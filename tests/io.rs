//! File IO: round trips for every dtype, and every malformed file rejected with an
//! error (never a panic).

mod common;

use common::scratch::Scratch;
use rosa::{bf16, f16, io, random, Csr, CsrShape, Dense, Error, Scalar};

fn mtx_round_trip<T: Scalar>() {
    let tmp = Scratch::new();
    let path = tmp.path("a.mtx");
    let a = random::csr::<T>(37, 23, 0.2, 5).unwrap();
    io::write_mtx(&path, &a).unwrap();
    assert_eq!(io::read_mtx::<T>(&path).unwrap(), a);
    // An empty matrix and explicit zeros survive too.
    let z = Csr::from_triplets(3, 4, &[(2, 3, T::from_f32(0.0))]).unwrap();
    io::write_mtx(&path, &z).unwrap();
    assert_eq!(io::read_mtx::<T>(&path).unwrap(), z);
    let e = Csr::<T>::empty(5, 2).unwrap();
    io::write_mtx(&path, &e).unwrap();
    assert_eq!(io::read_mtx::<T>(&path).unwrap(), e);
}

#[test]
fn mtx_round_trips_every_dtype() {
    mtx_round_trip::<f32>();
    mtx_round_trip::<f16>();
    mtx_round_trip::<bf16>();
}

fn read_mtx_text(text: &str) -> rosa::Result<Csr<f32>> {
    let tmp = Scratch::new();
    let path = tmp.path("m.mtx");
    std::fs::write(&path, text).unwrap();
    io::read_mtx::<f32>(&path)
}

#[test]
fn mtx_reads_pattern_integer_comments_and_sums_duplicates() {
    let a = read_mtx_text(
        "%%MatrixMarket matrix coordinate integer general\n% a comment\n\n2 2 3\n1 2 3\n1 2 -1\n2 1 7\n",
    )
    .unwrap();
    assert_eq!(a.to_dense().as_slice(), &[0.0, 2.0, 7.0, 0.0]);
    let p = read_mtx_text("%%matrixmarket MATRIX Coordinate Pattern GENERAL\r\n1 3 1\r\n1 3\r\n")
        .unwrap();
    assert_eq!(p.to_dense().as_slice(), &[0.0, 0.0, 1.0]);
}

#[test]
fn mtx_rejects_malformed_files() {
    let bad_format = [
        ("empty", ""),
        ("banner only", "%%MatrixMarket matrix coordinate real general\n"),
        ("bad banner", "%%MatrixMarkt matrix coordinate real general\n1 1 0\n"),
        ("short banner", "%%MatrixMarket matrix coordinate real\n1 1 0\n"),
        ("unknown field", "%%MatrixMarket matrix coordinate quaternion general\n1 1 0\n"),
        ("truncated", "%%MatrixMarket matrix coordinate real general\n2 2 3\n1 1 1.0\n2 2 2.0\n"),
        ("truncated line", "%%MatrixMarket matrix coordinate real general\n2 2 1\n1\n"),
        ("too many", "%%MatrixMarket matrix coordinate real general\n2 2 1\n1 1 1\n2 2 2\n"),
        ("row out of range", "%%MatrixMarket matrix coordinate real general\n2 2 1\n3 1 1.0\n"),
        ("col out of range", "%%MatrixMarket matrix coordinate real general\n2 2 1\n1 3 1.0\n"),
        ("zero index", "%%MatrixMarket matrix coordinate real general\n2 2 1\n0 1 1.0\n"),
        ("negative index", "%%MatrixMarket matrix coordinate real general\n2 2 1\n-1 1 1.0\n"),
        ("bad value", "%%MatrixMarket matrix coordinate real general\n2 2 1\n1 1 x\n"),
        ("missing value", "%%MatrixMarket matrix coordinate real general\n2 2 1\n1 1\n"),
        ("extra value", "%%MatrixMarket matrix coordinate pattern general\n2 2 1\n1 1 1\n"),
        ("real in integer", "%%MatrixMarket matrix coordinate integer general\n2 2 1\n1 1 1.5\n"),
        ("bad size line", "%%MatrixMarket matrix coordinate real general\n2 x 1\n"),
        ("size line fields", "%%MatrixMarket matrix coordinate real general\n2 2\n"),
        ("entries beyond shape", "%%MatrixMarket matrix coordinate real general\n2 2 5\n"),
        // Declared sizes far beyond the file must be refused or found truncated
        // without allocating for them.
        ("huge entries", "%%MatrixMarket matrix coordinate real general\n2000000000 2000000000 2000000000\n1 1 1\n"),
        ("beyond i32", "%%MatrixMarket matrix coordinate real general\n3000000000 2 1\n1 1 1\n"),
        ("beyond usize", "%%MatrixMarket matrix coordinate real general\n99999999999999999999999 2 1\n"),
    ];
    for (what, text) in bad_format {
        match read_mtx_text(text) {
            Err(Error::Format { path, reason }) => {
                assert!(path.ends_with("m.mtx"), "{what}: {path:?}");
                assert!(!reason.is_empty(), "{what}");
            }
            other => panic!("{what}: expected a format error, got {other:?}"),
        }
    }
    let unsupported = [
        (
            "symmetric",
            "%%MatrixMarket matrix coordinate real symmetric\n2 2 1\n2 1 1.0\n",
        ),
        (
            "skew",
            "%%MatrixMarket matrix coordinate real skew-symmetric\n2 2 1\n2 1 1.0\n",
        ),
        (
            "hermitian",
            "%%MatrixMarket matrix coordinate complex hermitian\n2 2 1\n2 1 1 0\n",
        ),
        (
            "complex",
            "%%MatrixMarket matrix coordinate complex general\n2 2 1\n2 1 1 0\n",
        ),
        (
            "array",
            "%%MatrixMarket matrix array real general\n2 2\n1\n2\n3\n4\n",
        ),
    ];
    for (what, text) in unsupported {
        match read_mtx_text(text) {
            Err(Error::Unsupported(msg)) => assert!(msg.contains("m.mtx"), "{what}: {msg}"),
            other => panic!("{what}: expected unsupported, got {other:?}"),
        }
    }
    let garbage: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let tmp = Scratch::new();
    let path = tmp.path("garbage.mtx");
    std::fs::write(&path, garbage).unwrap();
    assert!(io::read_mtx::<f32>(&path).is_err());
    assert!(matches!(
        io::read_mtx::<f32>(tmp.path("missing.mtx")),
        Err(Error::Io { .. })
    ));
}

fn npy_round_trip<T: Scalar>() {
    let tmp = Scratch::new();
    let path = tmp.path("d.npy");
    let m = random::dense::<T>(7, 5, 3);
    io::write_npy(&path, m.as_ref()).unwrap();
    assert_eq!(io::read_npy::<T>(&path).unwrap(), m);
    let empty = Dense::<T>::zeros(0, 4);
    io::write_npy(&path, empty.as_ref()).unwrap();
    assert_eq!(io::read_npy::<T>(&path).unwrap(), empty);
}

#[test]
fn npy_round_trips_every_dtype() {
    npy_round_trip::<f32>();
    npy_round_trip::<f16>();
    npy_round_trip::<bf16>();
}

#[test]
fn npy_dtypes_on_disk_and_conversions() {
    let tmp = Scratch::new();
    let path = tmp.path("d.npy");
    let m = Dense::from_vec(1, 3, vec![1.0f32, 0.1, -2.5]).unwrap();
    io::write_npy(&path, m.as_ref()).unwrap();
    assert_eq!(descr(&path), "'<f4'");
    // f32 -> bf16 rounds; bf16 is stored as lossless f4.
    let b = io::read_npy::<bf16>(&path).unwrap();
    assert_eq!(b.get(0, 1), Some(bf16::from_f32(0.1)));
    io::write_npy(&path, b.as_ref()).unwrap();
    assert_eq!(descr(&path), "'<f4'");
    let h = io::read_npy::<f16>(&path).unwrap();
    io::write_npy(&path, h.as_ref()).unwrap();
    assert_eq!(descr(&path), "'<f2'");
    assert_eq!(io::read_npy::<f32>(&path).unwrap().get(0, 2), Some(-2.5));
    // f64 input is converted.
    std::fs::write(
        &path,
        npy(
            b"'<f8'",
            false,
            "(2, 1)",
            &[1.5f64, -3.0].map(f64::to_le_bytes).concat(),
        ),
    )
    .unwrap();
    assert_eq!(io::read_npy::<f32>(&path).unwrap().as_slice(), &[1.5, -3.0]);
    // Big-endian is just another byte order.
    std::fs::write(&path, npy(b"'>f4'", false, "(1, 1)", &2.0f32.to_be_bytes())).unwrap();
    assert_eq!(io::read_npy::<f32>(&path).unwrap().as_slice(), &[2.0]);
}

fn descr(path: &std::path::Path) -> String {
    let bytes = std::fs::read(path).unwrap();
    let header = npyz::NpyHeader::from_reader(&bytes[..]).unwrap();
    header.dtype().descr()
}

/// A hand-made NPY v1 file, so that malformed headers can be written.
fn npy(descr: &[u8], fortran: bool, shape: &str, data: &[u8]) -> Vec<u8> {
    let mut dict = format!(
        "{{'descr': {}, 'fortran_order': {}, 'shape': {shape}, }}",
        String::from_utf8_lossy(descr),
        if fortran { "True" } else { "False" }
    );
    while (10 + dict.len() + 1) % 64 != 0 {
        dict.push(' ');
    }
    dict.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(dict.len() as u16).to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    out.extend_from_slice(data);
    out
}

#[test]
fn npy_rejects_malformed_files() {
    let f4 = |n: usize| vec![0u8; 4 * n];
    let unsupported = [
        ("1-D", npy(b"'<f4'", false, "(4,)", &f4(4))),
        ("3-D", npy(b"'<f4'", false, "(2, 2, 2)", &f4(8))),
        ("0-D", npy(b"'<f4'", false, "()", &f4(1))),
        ("fortran", npy(b"'<f4'", true, "(2, 2)", &f4(4))),
        ("int32", npy(b"'<i4'", false, "(2, 2)", &f4(4))),
        ("complex", npy(b"'<c8'", false, "(1, 1)", &f4(2))),
        (
            "structured",
            npy(b"[('a', '<f4')]", false, "(1, 1)", &f4(1)),
        ),
    ];
    for (what, bytes) in unsupported {
        let tmp = Scratch::new();
        let path = tmp.path("bad.npy");
        std::fs::write(&path, bytes).unwrap();
        match io::read_npy::<f32>(&path) {
            Err(Error::Unsupported(msg)) => assert!(msg.contains("bad.npy"), "{what}: {msg}"),
            other => panic!("{what}: expected unsupported, got {other:?}"),
        }
    }
    let full = npy(b"'<f4'", false, "(2, 2)", &f4(4));
    let format = [
        ("empty", vec![]),
        ("bad magic", b"\x93NUMPX\x01\x00\x10\x00{}".to_vec()),
        ("text", b"hello, this is not an npy file at all".to_vec()),
        ("truncated header", full[..40].to_vec()),
        ("truncated data", full[..full.len() - 3].to_vec()),
        ("trailing data", [full.clone(), vec![0; 4]].concat()),
        (
            "header length beyond file",
            b"\x93NUMPY\x02\x00\xff\xff\xff\x7f{".to_vec(),
        ),
        (
            "shape overflow",
            npy(b"'<f4'", false, "(4294967296, 4294967296)", &f4(1)),
        ),
        (
            "zero-size overflow",
            npy(b"'<f4'", false, "(0, 4294967296, 4294967296)", &[]),
        ),
        (
            "huge shape",
            npy(b"'<f4'", false, "(100000000, 100000000)", &f4(1)),
        ),
        ("bad dict", npy(b"'<f4", false, "(2, 2)", &f4(4))),
        ("negative dim", npy(b"'<f4'", false, "(-2, 2)", &f4(4))),
    ];
    for (what, bytes) in format {
        let tmp = Scratch::new();
        let path = tmp.path("bad.npy");
        std::fs::write(&path, bytes).unwrap();
        match io::read_npy::<f32>(&path) {
            Err(Error::Format { path, .. }) => assert!(path.ends_with("bad.npy"), "{what}"),
            other => panic!("{what}: expected a format error, got {other:?}"),
        }
    }
}

#[test]
fn failed_writes_leave_no_file() {
    let m = Dense::<f32>::zeros(2, 2);
    let a = Csr::<f32>::empty(2, 2).unwrap();
    let tmp = Scratch::new();
    let missing_dir = tmp.path("no-such-dir").join("out.npy");
    assert!(matches!(
        io::write_npy(&missing_dir, m.as_ref()),
        Err(Error::Io { .. })
    ));
    assert!(!missing_dir.exists());
    // The target is a directory: the rename fails after the data was written, and the
    // temporary file must be gone.
    let dir_target = tmp.path("occupied");
    std::fs::create_dir_all(dir_target.join("inside")).unwrap();
    assert!(io::write_mtx(&dir_target, &a).is_err());
    assert!(io::write_npy(&dir_target, m.as_ref()).is_err());
    let names: Vec<_> = std::fs::read_dir(tmp.dir())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("occupied")]);
}

#[test]
fn shapes_read_back_as_written() {
    let tmp = Scratch::new();
    let path = tmp.path("s.mtx");
    let a = random::csr::<f32>(3, 1000, 0.01, 1).unwrap();
    io::write_mtx(&path, &a).unwrap();
    let b = io::read_mtx::<f32>(&path).unwrap();
    assert_eq!((b.rows(), b.cols(), b.nnz()), (a.rows(), a.cols(), a.nnz()));
}

/// Every prefix and many random corruptions of valid files: errors or values, never a
/// panic.
#[test]
fn corrupted_files_never_panic() {
    let tmp = Scratch::new();
    let (mtx, npy_path) = (tmp.path("c.mtx"), tmp.path("c.npy"));
    io::write_mtx(&mtx, &random::csr::<f32>(6, 5, 0.4, 2).unwrap()).unwrap();
    io::write_npy(&npy_path, random::dense::<f16>(3, 4, 2).as_ref()).unwrap();
    let mut rng = random::Rng::new(99);
    for path in [&mtx, &npy_path] {
        let good = std::fs::read(path).unwrap();
        let bad = tmp.path("bad");
        // Files cost about a millisecond each here, so prefixes are sampled.
        let mut cases: Vec<Vec<u8>> = (0..good.len())
            .step_by(3)
            .map(|n| good[..n].to_vec())
            .collect();
        for _ in 0..150 {
            let mut b = good.clone();
            for _ in 0..1 + rng.below(3) {
                let at = rng.below(b.len());
                b[at] = match rng.below(4) {
                    0 => rng.next_u64() as u8,
                    1 => b"0123456789"[rng.below(10)],
                    2 => b' ',
                    _ => b'\n',
                };
            }
            cases.push(b);
        }
        for bytes in cases {
            std::fs::write(&bad, &bytes).unwrap();
            let _ = io::read_mtx::<f32>(&bad);
            let _ = io::read_npy::<bf16>(&bad);
        }
    }
}
