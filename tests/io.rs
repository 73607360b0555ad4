//! File IO: round trips for every dtype, and every malformed file rejected with an
//! error (never a panic).

mod common;

use common::npy::{npy, npy_file};
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
        // Storage kinds: what each forbids.
        ("skew diagonal", "%%MatrixMarket matrix coordinate real skew-symmetric\n2 2 1\n1 1 1.0\n"),
        ("symmetric not square", "%%MatrixMarket matrix coordinate real symmetric\n2 3 1\n2 1 1.0\n"),
        ("pattern skew", "%%MatrixMarket matrix coordinate pattern skew-symmetric\n2 2 1\n2 1\n"),
        ("array pattern", "%%MatrixMarket matrix array pattern general\n1 1\n1\n"),
        ("array short", "%%MatrixMarket matrix array real general\n2 2\n1\n2\n3\n"),
        ("array long", "%%MatrixMarket matrix array real general\n1 1\n1\n2\n"),
        ("array two per line", "%%MatrixMarket matrix array real general\n2 1\n1 2\n"),
        ("array size line", "%%MatrixMarket matrix array real general\n2 1 2\n1\n2\n"),
        ("array symmetric short", "%%MatrixMarket matrix array real symmetric\n2 2\n1\n2\n"),
        ("non-ASCII entry", "%%MatrixMarket matrix coordinate real general\n1 1 1\n1 1 1\u{e9}\n"),
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
            "hermitian",
            "%%MatrixMarket matrix coordinate complex hermitian\n2 2 1\n2 1 1 0\n",
        ),
        (
            "complex",
            "%%MatrixMarket matrix coordinate complex general\n2 2 1\n2 1 1 0\n",
        ),
        (
            "complex array",
            "%%MatrixMarket matrix array complex general\n1 1\n1 0\n",
        ),
        (
            "vector",
            "%%MatrixMarket vector coordinate real general\n2 1\n1 1.0\n",
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

#[test]
fn npy_rejects_malformed_files() {
    let f4 = |n: usize| vec![0u8; 4 * n];
    let unsupported = [
        ("1-D", npy(b"'<f4'", false, "(4,)", &f4(4))),
        ("3-D", npy(b"'<f4'", false, "(2, 2, 2)", &f4(8))),
        ("0-D", npy(b"'<f4'", false, "()", &f4(1))),
        ("complex", npy(b"'<c8'", false, "(1, 1)", &f4(2))),
        ("long double", npy(b"'<f16'", false, "(1, 1)", &f4(4))),
        ("datetime", npy(b"'<M8[ns]'", false, "(1, 1)", &f4(2))),
        ("unicode", npy(b"'<U1'", false, "(1, 1)", &f4(1))),
        ("object", npy(b"'|O'", false, "(1, 1)", &f4(2))),
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
        ("bool not 0 or 1", npy(b"'|b1'", false, "(1, 1)", &[2])),
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

fn read_mtx_as<T: Scalar>(text: &[u8]) -> rosa::Result<Csr<T>> {
    let tmp = Scratch::new();
    let path = tmp.path("m.mtx");
    std::fs::write(&path, text).unwrap();
    io::read_mtx::<T>(&path)
}

fn dense_of(a: &Csr<f32>) -> Vec<f32> {
    a.to_dense().into_vec()
}

#[test]
fn mtx_reads_every_real_storage_kind() {
    // scipy.io.mmwrite of eye(3) + ones((3, 3)): the lower triangle, mirrored.
    let sym = b"%%MatrixMarket matrix coordinate real symmetric\n%\n3 3 6\n1 1 2\n2 1 1\n2 2 2\n3 1 1\n3 2 1\n3 3 2\n";
    let want_sym = [2.0, 1.0, 1.0, 1.0, 2.0, 1.0, 1.0, 1.0, 2.0];
    assert_eq!(dense_of(&read_mtx_as(sym).unwrap()), want_sym);
    // An entry above the diagonal is mirrored too, as SciPy does.
    let upper = b"%%MatrixMarket matrix coordinate real symmetric\n2 2 1\n1 2 5\n";
    assert_eq!(dense_of(&read_mtx_as(upper).unwrap()), [0.0, 5.0, 5.0, 0.0]);
    // Skew-symmetric: the mirror is negated; SciPy writes only the strict lower triangle.
    let skew = b"%%MatrixMarket matrix coordinate real skew-symmetric\n%\n3 3 2\n2 1 -2\n3 2 4.5\n";
    assert_eq!(
        dense_of(&read_mtx_as(skew).unwrap()),
        [0.0, 2.0, 0.0, -2.0, 0.0, -4.5, 0.0, 4.5, 0.0]
    );
    let pattern = b"%%MatrixMarket matrix coordinate pattern symmetric\n3 3 3\n1 1\n3 1\n3 2\n";
    assert_eq!(
        dense_of(&read_mtx_as(pattern).unwrap()),
        [1.0, 0.0, 1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.0]
    );
    let integer = b"%%MatrixMarket matrix coordinate integer skew-symmetric\n2 2 1\n2 1 7\n";
    assert_eq!(
        dense_of(&read_mtx_as(integer).unwrap()),
        [0.0, -7.0, 7.0, 0.0]
    );
    // A symmetric file's mirrored pair and the same matrix stored in general form agree,
    // structure included, for every dtype.
    let general = b"%%MatrixMarket matrix coordinate real general\n3 3 9\n1 1 2\n1 2 1\n1 3 1\n2 1 1\n2 2 2\n2 3 1\n3 1 1\n3 2 1\n3 3 2\n";
    assert_eq!(
        read_mtx_as::<bf16>(sym).unwrap(),
        read_mtx_as::<bf16>(general).unwrap()
    );
    assert_eq!(
        read_mtx_as::<f16>(sym).unwrap(),
        read_mtx_as::<f16>(general).unwrap()
    );
}

#[test]
fn mtx_array_files_read_as_dense_and_as_their_nonzeros() {
    let tmp = Scratch::new();
    let path = tmp.path("d.mtx");
    // scipy.io.mmwrite of [[1, 2], [3, 4.5], [0, 6]]: column-major.
    std::fs::write(
        &path,
        "%%MatrixMarket matrix array real general\n%\n3 2\n1\n3\n0\n2\n4.5\n6\n",
    )
    .unwrap();
    let d = io::read_mtx_dense::<f32>(&path).unwrap();
    assert_eq!((d.rows(), d.cols()), (3, 2));
    assert_eq!(d.as_slice(), &[1.0, 2.0, 3.0, 4.5, 0.0, 6.0]);
    assert_eq!(io::read_dense::<f32>(&path).unwrap(), d);
    let a = io::read_mtx::<f32>(&path).unwrap();
    assert_eq!(a.nnz(), 5, "the zero is not stored");
    assert_eq!(a.to_dense(), d);
    // Symmetric arrays list the lower triangle column by column (scipy.io.mmwrite of
    // eye(3) + ones((3, 3)) as a dense array); skew-symmetric the strict one.
    std::fs::write(
        &path,
        "%%MatrixMarket matrix array real symmetric\n%\n3 3\n2\n1\n1\n2\n1\n2\n",
    )
    .unwrap();
    let want = [2.0, 1.0, 1.0, 1.0, 2.0, 1.0, 1.0, 1.0, 2.0];
    assert_eq!(io::read_mtx_dense::<f32>(&path).unwrap().as_slice(), want);
    assert_eq!(dense_of(&io::read_mtx(&path).unwrap()), want);
    std::fs::write(
        &path,
        "%%MatrixMarket matrix array integer skew-symmetric\n3 3\n1\n2\n3\n",
    )
    .unwrap();
    let want = [0.0, -1.0, -2.0, 1.0, 0.0, -3.0, 2.0, 3.0, 0.0];
    assert_eq!(io::read_mtx_dense::<f32>(&path).unwrap().as_slice(), want);
    assert_eq!(io::read_mtx::<f32>(&path).unwrap().nnz(), 6);
    // Empty shapes.
    std::fs::write(&path, "%%MatrixMarket matrix array real general\n0 4\n").unwrap();
    assert_eq!(io::read_mtx_dense::<f32>(&path).unwrap().cols(), 4);
    // A coordinate file is no dense operand: its shape is not confirmed by its data.
    std::fs::write(
        &path,
        "%%MatrixMarket matrix coordinate real general\n100000 100000 1\n1 1 1\n",
    )
    .unwrap();
    assert!(matches!(
        io::read_dense::<f32>(&path),
        Err(Error::Unsupported(_))
    ));
    std::fs::write(&path, "rows,cols\n1,2\n").unwrap();
    let err = io::read_dense::<f32>(&path).unwrap_err().to_string();
    assert!(err.contains("neither an NPY file"), "{err}");
}

#[test]
fn mtx_comments_hold_any_bytes_and_a_utf8_bom_is_skipped() {
    let latin1 = b"%%MatrixMarket matrix coordinate real general\n% M\xfcller's matrix, \xa9 1998\n1 1 1\n1 1 2.5\n";
    assert_eq!(dense_of(&read_mtx_as(latin1).unwrap()), [2.5]);
    let bom = b"\xef\xbb\xbf%%MatrixMarket matrix coordinate real general\n1 1 1\n1 1 2.5\n";
    assert_eq!(dense_of(&read_mtx_as(bom).unwrap()), [2.5]);
    // Outside comments, the first non-ASCII byte is named, escaped.
    let entry = b"%%MatrixMarket matrix coordinate real general\n1 1 1\n1 1 2\xb75\n";
    let err = read_mtx_as::<f32>(entry).unwrap_err().to_string();
    assert!(err.contains("line 3: byte 0xb7 at column 6"), "{err}");
    assert!(err.contains("'1 1 2\\xb75'"), "{err}");
    let utf16 = b"\xff\xfe%\x00%\x00";
    let err = read_mtx_as::<f32>(utf16).unwrap_err().to_string();
    assert!(err.contains("UTF-16"), "{err}");
}

#[test]
fn duplicates_sum_in_f64_and_round_once() {
    // The file: 1.001 - 1 is 0.000999..., not bf16(1.001) - 1 = 0.
    let text = b"%%MatrixMarket matrix coordinate real general\n1 2 2\n1 1 1.001\n1 1 -1\n";
    let sum = 1.001f64 - 1.0;
    let b = read_mtx_as::<bf16>(text).unwrap();
    assert_eq!(b.values(), &[<bf16 as Scalar>::from_f64(sum)]);
    assert!((b.values()[0].to_f32() - 0.001).abs() < 1e-5);
    assert_eq!(read_mtx_as::<f32>(text).unwrap().values(), &[sum as f32]);
    assert_eq!(
        read_mtx_as::<f16>(text).unwrap().values(),
        &[<f16 as Scalar>::from_f64(sum)]
    );
    // More duplicates than the matrix has cells: summed, as SciPy does.
    let many = b"%%MatrixMarket matrix coordinate real general\n1 1 3\n1 1 1.0\n1 1 2.0\n1 1 0.5\n";
    assert_eq!(dense_of(&read_mtx_as(many).unwrap()), [3.5]);
    // Csr::from_triplets keeps the same promise: 1 + 2^-8 + 2^-30 rounds up in bf16,
    // though the f32 of the sum (1 + 2^-8) is a tie that rounds down.
    let parts = [1.0, 2f32.powi(-8), 2f32.powi(-30)].map(bf16::from_f32);
    let t: Vec<_> = parts.iter().map(|&v| (0, 0, v)).collect();
    let a = Csr::from_triplets(1, 1, &t).unwrap();
    assert_eq!(a.values()[0].to_f32(), 1.0 + 2f32.powi(-7));
}

#[test]
fn f64_to_half_types_rounds_correctly() {
    // Exhaustively over the grid in [1, 2) (7 fraction bits in bf16, 10 in f16): every
    // midpoint, and the midpoints nudged either way by amounts f32 cannot see.
    fn ties_and_near_ties<T: Scalar>(fraction_bits: i32) {
        let ulp = 2f64.powi(-fraction_bits);
        let tiny = 2f64.powi(-40);
        for k in 0..1u32 << fraction_bits {
            let lo = 1.0 + k as f64 * ulp;
            let (hi, mid) = (lo + ulp, lo + ulp / 2.0);
            let even = if k % 2 == 0 { lo } else { hi };
            let round = |x: f64| <T as Scalar>::from_f64(x).to_f32() as f64;
            assert_eq!(round(mid), even, "{}: tie at {mid}", T::DTYPE);
            assert_eq!(round(mid + tiny), hi, "{}: above {mid}", T::DTYPE);
            assert_eq!(round(mid - tiny), lo, "{}: below {mid}", T::DTYPE);
        }
    }
    ties_and_near_ties::<bf16>(7);
    ties_and_near_ties::<f16>(10);
    // Range edges, subnormals, signs, NaN.
    assert_eq!(<f16 as Scalar>::from_f64(65519.99), f16::MAX);
    assert_eq!(<f16 as Scalar>::from_f64(65520.0), f16::INFINITY);
    assert_eq!(<f16 as Scalar>::from_f64(-1e300), f16::NEG_INFINITY);
    assert_eq!(<bf16 as Scalar>::from_f64(f32::MAX as f64), bf16::INFINITY);
    assert_eq!(<bf16 as Scalar>::from_f64(3.39e38), bf16::MAX);
    let sub = f16::from_bits(1).to_f64();
    assert_eq!(
        <f16 as Scalar>::from_f64(sub * (0.5 + 2f64.powi(-40))),
        f16::from_bits(1)
    );
    assert_eq!(<f16 as Scalar>::from_f64(sub * 0.5).to_bits(), 0);
    assert_eq!(<bf16 as Scalar>::from_f64(-1e-300).to_bits(), 0x8000);
    assert!(<bf16 as Scalar>::from_f64(f64::NAN).is_nan());
    assert_eq!(<f32 as Scalar>::from_f64(0.1), 0.1f32);
}

/// An `Unrepresentable` error whose message names `at` and `value`.
fn assert_unrepresentable(err: Error, what: &str, at: &str, value: &str) {
    match &err {
        Error::Unrepresentable { .. } => {}
        other => panic!("{what}: expected Unrepresentable, got {other:?}"),
    }
    let msg = err.to_string();
    assert!(msg.contains(at), "{what}: {msg}");
    assert!(msg.contains(value), "{what}: {msg}");
}

#[test]
fn values_the_dtype_cannot_hold_are_errors_naming_line_or_index() {
    let one = |v: &str| format!("%%MatrixMarket matrix coordinate real general\n1 1 1\n1 1 {v}\n");
    let err = read_mtx_as::<f32>(one("1e39").as_bytes()).unwrap_err();
    assert_unrepresentable(err, "f32", "line 3", "1e39");
    let msg = read_mtx_as::<f32>(one("-1e39").as_bytes())
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("m.mtx") && msg.contains("3.4028235e38") && msg.contains("f32"),
        "{msg}"
    );
    let msg = read_mtx_as::<f16>(one("70000").as_bytes())
        .unwrap_err()
        .to_string();
    assert!(msg.contains("65504") && msg.contains("f16"), "{msg}");
    assert!(read_mtx_as::<bf16>(one("3.4e38").as_bytes()).is_err());
    // What the dtype holds (or rounds to a finite value) is read; infinities and NaN
    // in the file are values, not overflows.
    assert!(read_mtx_as::<f16>(one("65519").as_bytes()).is_ok());
    assert!(read_mtx_as::<f16>(one("1e-30").as_bytes()).is_ok());
    assert!(read_mtx_as::<f32>(one("inf").as_bytes()).is_ok());
    // A sum past the range names the entries summed.
    let sum = b"%%MatrixMarket matrix coordinate real general\n1 1 2\n1 1 40000\n1 1 40000\n";
    let msg = read_mtx_as::<f16>(sum).unwrap_err().to_string();
    assert!(
        msg.contains("sum of 2 entries") && msg.contains("80000"),
        "{msg}"
    );
    // Integers must come through exactly.
    let int = b"%%MatrixMarket matrix coordinate integer general\n1 1 1\n1 1 16777217\n";
    let err = read_mtx_as::<f32>(int).unwrap_err();
    assert_unrepresentable(err, "int", "line 3", "16777217");
    assert!(read_mtx_as::<f32>(
        b"%%MatrixMarket matrix coordinate integer general\n1 1 1\n1 1 16777216\n"
    )
    .is_ok());
    let big = b"%%MatrixMarket matrix coordinate integer general\n1 1 1\n1 1 9007199254740993\n";
    assert!(matches!(
        read_mtx_as::<f32>(big),
        Err(Error::Unrepresentable { .. })
    ));
    // A mask's values are not kept, so none is refused.
    let tmp = Scratch::new();
    let path = tmp.path("mask.mtx");
    std::fs::write(&path, one("1e39")).unwrap();
    let mask = io::read_mtx_pattern::<f16>(&path).unwrap();
    assert_eq!((mask.nnz(), mask.values()[0].to_f32()), (1, 0.0));
    // NPY: float64 past f32, float32 past f16, named by index.
    std::fs::write(
        &path,
        npy(
            b"'<f8'",
            false,
            "(1, 2)",
            &[1.0f64, 1e39].map(f64::to_le_bytes).concat(),
        ),
    )
    .unwrap();
    let err = io::read_npy::<f32>(&path).unwrap_err();
    assert_unrepresentable(err, "npy f8", "element [0, 1]", "1e39");
    std::fs::write(
        &path,
        npy(
            b"'<f4'",
            true,
            "(2, 1)",
            &[1.0f32, 7e4].map(f32::to_le_bytes).concat(),
        ),
    )
    .unwrap();
    let err = io::read_npy::<f16>(&path).unwrap_err();
    assert_unrepresentable(err, "npy f4", "element [1, 0]", "70000");
}

#[test]
fn npy_reads_fortran_order_integers_and_bool() {
    let tmp = Scratch::new();
    let path = tmp.path("x.npy");
    // np.save(x.T) for x = arange(6).reshape(2, 3): shape (3, 2), Fortran order, and
    // the bytes of x in C order.
    let x = [0.0f32, 1.0, 2.0, 3.0, 4.0, 5.0];
    std::fs::write(
        &path,
        npy(b"'<f4'", true, "(3, 2)", &x.map(f32::to_le_bytes).concat()),
    )
    .unwrap();
    let t = io::read_npy::<f32>(&path).unwrap();
    assert_eq!((t.rows(), t.cols()), (3, 2));
    assert_eq!(t.as_slice(), &[0.0, 3.0, 1.0, 4.0, 2.0, 5.0]);
    // Integers of every width and both byte orders; bool as 0 and 1.
    let i8s = npy(b"'|i1'", false, "(1, 3)", &[1u8, 0xff, 0x80]);
    let u16s = npy(b"'>u2'", false, "(1, 2)", &[0x01, 0x00, 0xff, 0xe0]);
    let i64s = npy(
        b"'<i8'",
        true,
        "(2, 1)",
        &[-7i64, 1 << 40].map(i64::to_le_bytes).concat(),
    );
    let bools = npy(b"'|b1'", false, "(1, 2)", &[1, 0]);
    for (bytes, want) in [
        (i8s, vec![1.0, -1.0, -128.0]),
        (u16s, vec![256.0, 65504.0]),
        (i64s, vec![-7.0, (1u64 << 40) as f32]),
        (bools, vec![1.0, 0.0]),
    ] {
        std::fs::write(&path, bytes).unwrap();
        assert_eq!(io::read_npy::<f32>(&path).unwrap().as_slice(), &want[..]);
    }
    // 65504 is an f16; 1 << 40 is not, though it is an f32.
    assert!(io::read_npy::<f16>(&path).is_ok());
    std::fs::write(
        &path,
        npy(b"'>u2'", false, "(1, 2)", &[0x01, 0x00, 0xff, 0xe0]),
    )
    .unwrap();
    assert!(io::read_npy::<f16>(&path).is_ok());
    std::fs::write(
        &path,
        npy(
            b"'<i4'",
            false,
            "(1, 2)",
            &[2049i32, 3].map(i32::to_le_bytes).concat(),
        ),
    )
    .unwrap();
    let err = io::read_npy::<f16>(&path).unwrap_err();
    assert_unrepresentable(err, "i4 in f16", "element [0, 0]", "2049");
    let err = io::read_npy::<bf16>(&path).unwrap_err();
    assert_unrepresentable(err, "i4 in bf16", "element [0, 0]", "2049");
    std::fs::write(
        &path,
        npy(b"'<u8'", false, "(1, 1)", &u64::MAX.to_le_bytes()),
    )
    .unwrap();
    assert!(matches!(
        io::read_npy::<f32>(&path),
        Err(Error::Unrepresentable { .. })
    ));
}

#[test]
fn npy_messages_speak_numpy_and_quote_little() {
    let tmp = Scratch::new();
    let path = tmp.path("m.npy");
    let msg = |bytes: Vec<u8>| {
        std::fs::write(&path, bytes).unwrap();
        io::read_npy::<f32>(&path).unwrap_err().to_string()
    };
    let m = msg(npy(b"'<c8'", false, "(1, 1)", &[0; 8]));
    assert!(m.contains("'<c8' (complex64)") && !m.contains("''"), "{m}");
    let m = msg(npy(b"'<f16'", false, "(1, 1)", &[0; 16]));
    assert!(
        m.contains("128-bit long double") && !m.contains("''"),
        "{m}"
    );
    let m = msg(npy(b"'<f4'", false, "(4,)", &[0; 16]));
    assert!(m.contains("1-D NPY array of shape '(4,)'"), "{m}");
    // A header NumPy itself would refuse as too long, full of garbage: one short line.
    let text = format!(
        "{{'descr': '<f4', 'shape': (1, 1), 'x': '{}'}}",
        "y".repeat(5_000_000)
    );
    let huge = npy_file(2, &text, &[]);
    let m = msg(huge);
    assert!(
        m.len() < 300 && m.contains("10000"),
        "{} bytes: {}",
        m.len(),
        &m[..m.len().min(300)]
    );
    // Within the limit, a malformed header is quoted, cut at 80 characters.
    let garbage = format!(
        "{{'descr': '<f4', 'fortran_order': False, 'shape': (1, 1), {} }}",
        "'k': ?, ".repeat(900)
    );
    let v1 = npy_file(1, &garbage, &[]);
    let m = msg(v1);
    assert!(m.len() < 400 && m.contains("not a Python literal"), "{m}");
    // Python 2 headers, as NumPy reads them.
    std::fs::write(
        &path,
        npy(
            b"'<f4'",
            false,
            "(1L, 2L)",
            &[1.0f32, 2.0].map(f32::to_le_bytes).concat(),
        ),
    )
    .unwrap();
    assert_eq!(io::read_npy::<f32>(&path).unwrap().as_slice(), &[1.0, 2.0]);
}

#[test]
fn writers_never_replace_what_is_not_a_regular_file() {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    let tmp = Scratch::new();
    let m = Dense::from_vec(1, 2, vec![1.0f32, 2.0]).unwrap();
    // A symbolic link (relative, two hops) stays a link; its target gets the data.
    std::fs::create_dir(tmp.path("data")).unwrap();
    std::fs::write(tmp.path("data/target.npy"), b"old").unwrap();
    std::os::unix::fs::symlink("data/target.npy", tmp.path("hop")).unwrap();
    std::os::unix::fs::symlink("hop", tmp.path("out.npy")).unwrap();
    io::write_npy(tmp.path("out.npy"), m.as_ref()).unwrap();
    assert!(tmp.path("out.npy").symlink_metadata().unwrap().is_symlink());
    assert!(tmp.path("hop").symlink_metadata().unwrap().is_symlink());
    assert_eq!(io::read_npy::<f32>(tmp.path("data/target.npy")).unwrap(), m);
    // A dangling link creates its target, as the shell's `>` does.
    std::os::unix::fs::symlink("data/new.npy", tmp.path("dangling")).unwrap();
    io::write_npy(tmp.path("dangling"), m.as_ref()).unwrap();
    assert_eq!(io::read_npy::<f32>(tmp.path("data/new.npy")).unwrap(), m);
    // A replaced file keeps its permission bits.
    let kept = tmp.path("data/target.npy");
    std::fs::set_permissions(&kept, std::fs::Permissions::from_mode(0o640)).unwrap();
    io::write_npy(&kept, m.as_ref()).unwrap();
    assert_eq!(kept.metadata().unwrap().permissions().mode() & 0o777, 0o640);
    // Directories, with or without a trailing slash, and links to them.
    std::os::unix::fs::symlink("data", tmp.path("dirlink")).unwrap();
    let a = Csr::<f32>::empty(1, 1).unwrap();
    for dir in ["data", "data/", "dirlink", "dirlink/"] {
        let err = io::write_mtx(tmp.path(dir), &a).unwrap_err().to_string();
        assert!(
            err.to_lowercase().contains("is a directory"),
            "{dir}: {err}"
        );
    }
    // A FIFO is streamed into, and stays a FIFO. The reader is a process, so that a
    // FIFO replaced by a regression fails this test instead of hanging it.
    let fifo = tmp.path("pipe");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let copy = tmp.path("copy.npy");
    let mut reader = std::process::Command::new("cat")
        .arg(&fifo)
        .stdout(std::fs::File::create(&copy).unwrap())
        .spawn()
        .unwrap();
    let written = io::write_npy(&fifo, m.as_ref());
    let still_fifo = fifo.metadata().unwrap().file_type().is_fifo();
    if !still_fifo {
        reader.kill().unwrap();
    }
    reader.wait().unwrap();
    assert!(still_fifo, "the FIFO was replaced");
    written.unwrap();
    assert_eq!(io::read_npy::<f32>(&copy).unwrap(), m);
    // Nothing but the files written is left behind (no temporary files).
    let mut names: Vec<_> = std::fs::read_dir(tmp.path("data"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["new.npy", "target.npy"]);
}
