//! The `rosa` binary end to end: real files in, results checked against a dense f64
//! reference, and bad inputs answered with one `error:` line and no output file.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::scratch::Scratch;
use common::{assert_close, dense64, gemm_ref, to64, transpose as transpose_ref};
use rosa::{bf16, f16, io, random, CsrShape, DType, Scalar};

/// The binary under test: `ROSA_BIN` where the tests run away from their build tree (the
/// GPU machine's bundle), else the one cargo built.
fn rosa_bin() -> std::ffi::OsString {
    std::env::var_os("ROSA_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_rosa").into())
}

fn rosa(args: &[&str]) -> Output {
    Command::new(rosa_bin())
        .args(args)
        .output()
        .expect("the rosa binary runs")
}

fn arg(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn spmm_case<T: Scalar>(transpose: bool) {
    let tmp = Scratch::new();
    let (m, k, n) = (23, 17, 5);
    let a = random::csr::<T>(m, k, 0.3, 1).unwrap();
    let b = random::dense::<T>(if transpose { m } else { k }, n, 2);
    let (pa, pb, pc) = (tmp.path("A.mtx"), tmp.path("B.npy"), tmp.path("C.npy"));
    io::write_mtx(&pa, &a).unwrap();
    io::write_npy(&pb, b.as_ref()).unwrap();
    let dtype = T::DTYPE.name();
    let mut args = vec![
        "spmm",
        "--sparse",
        arg(&pa),
        "--dense",
        arg(&pb),
        "--out",
        arg(&pc),
        "--dtype",
        dtype,
    ];
    if transpose {
        args.push("--transpose");
    }
    let out = rosa(&args);
    assert_ok(&out);
    assert!(out.stderr.is_empty());

    let c = io::read_npy::<T>(&pc).unwrap();
    let (ad, bd) = (dense64(&a), to64(&b));
    let want = if transpose {
        gemm_ref(1.0, &transpose_ref(&ad, m, k), &bd, 0.0, None, k, m, n)
    } else {
        gemm_ref(1.0, &ad, &bd, 0.0, None, m, k, n)
    };
    assert_eq!((c.rows(), c.cols()), (if transpose { k } else { m }, n));
    assert_close(
        &format!("rosa spmm (transpose: {transpose})"),
        c.as_slice(),
        &want,
    );
}

#[test]
fn spmm_matches_dense_reference_for_every_dtype() {
    for transpose in [false, true] {
        spmm_case::<f32>(transpose);
        spmm_case::<f16>(transpose);
        spmm_case::<bf16>(transpose);
    }
}

fn sddmm_case<T: Scalar>() {
    let tmp = Scratch::new();
    let (m, n, k) = (19, 13, 6);
    let mask = random::csr::<T>(m, n, 0.25, 3).unwrap();
    let (l, r) = (random::dense::<T>(m, k, 4), random::dense::<T>(n, k, 5));
    let (pm, pl, pr, po) = (
        tmp.path("M.mtx"),
        tmp.path("L.npy"),
        tmp.path("R.npy"),
        tmp.path("O.mtx"),
    );
    io::write_mtx(&pm, &mask).unwrap();
    io::write_npy(&pl, l.as_ref()).unwrap();
    io::write_npy(&pr, r.as_ref()).unwrap();
    let out = rosa(&[
        "sddmm",
        "--mask",
        arg(&pm),
        "--lhs",
        arg(&pl),
        "--rhs",
        arg(&pr),
        "--out",
        arg(&po),
        "--dtype",
        T::DTYPE.name(),
    ]);
    assert_ok(&out);

    let o = io::read_mtx::<T>(&po).unwrap();
    assert_eq!((o.rows(), o.cols(), o.col_idx()), (m, n, mask.col_idx()));
    // L R^T in full, then the entries at the mask.
    let full = gemm_ref(
        1.0,
        &to64(&l),
        &transpose_ref(&to64(&r), n, k),
        0.0,
        None,
        m,
        k,
        n,
    );
    let want: Vec<_> = (0..m)
        .flat_map(|i| mask.row(i).0.iter().map(move |&j| (i, j as usize)))
        .map(|(i, j)| full[i * n + j])
        .collect();
    assert_close("rosa sddmm", o.values(), &want);
}

#[test]
fn sddmm_matches_dense_reference_for_every_dtype() {
    sddmm_case::<f32>();
    sddmm_case::<f16>();
    sddmm_case::<bf16>();
}

/// A failed command: nonzero exit, one `error:` line, no panic text, no output file.
fn assert_fails_cleanly(args: &[&str], out_file: &Path) {
    let out = rosa(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{args:?} succeeded");
    assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
    assert!(stderr.starts_with("error: "), "{args:?}: {stderr}");
    assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    assert!(!out_file.exists(), "{args:?} left {}", out_file.display());
}

#[test]
fn bad_inputs_fail_with_one_error_line_and_no_output() {
    let tmp = Scratch::new();
    let a = random::csr::<f32>(4, 3, 0.5, 1).unwrap();
    let (pa, pb, pc) = (tmp.path("A.mtx"), tmp.path("B.npy"), tmp.path("C.npy"));
    io::write_mtx(&pa, &a).unwrap();
    io::write_npy(&pb, random::dense::<f32>(3, 2, 1).as_ref()).unwrap();
    let (pbad, pwrong, p3d) = (
        tmp.path("bad.mtx"),
        tmp.path("wrong.npy"),
        tmp.path("3d.npy"),
    );
    std::fs::write(
        &pbad,
        "%%MatrixMarket matrix coordinate real general\n4 3 2\n1 1 1\n",
    )
    .unwrap();
    io::write_npy(&pwrong, random::dense::<f32>(5, 2, 1).as_ref()).unwrap();
    write_raw_npy(&p3d, &[3, 1, 2], npyz::Order::C);
    let pfortran = tmp.path("fortran.npy");
    write_raw_npy(&pfortran, &[3, 2], npyz::Order::Fortran);
    let pnone = tmp.path("none.mtx");
    let (sa, sb, sc) = (arg(&pa), arg(&pb), arg(&pc));
    let cases: Vec<Vec<&str>> = vec![
        vec!["spmm", "--sparse", arg(&pbad), "--dense", sb, "--out", sc],
        vec!["spmm", "--sparse", sa, "--dense", arg(&pwrong), "--out", sc],
        vec![
            "spmm",
            "--sparse",
            sa,
            "--dense",
            sb,
            "--out",
            sc,
            "--transpose",
        ],
        vec!["spmm", "--sparse", sa, "--dense", arg(&p3d), "--out", sc],
        vec![
            "spmm",
            "--sparse",
            sa,
            "--dense",
            arg(&pfortran),
            "--out",
            sc,
        ],
        vec!["spmm", "--sparse", arg(&pnone), "--dense", sb, "--out", sc],
        vec!["spmm", "--sparse", sb, "--dense", sa, "--out", sc],
        vec![
            "spmm", "--sparse", sa, "--dense", sb, "--out", sc, "--dtype", "f64",
        ],
        vec![
            "spmm", "--sparse", sa, "--dense", sb, "--out", sc, "--bogus",
        ],
        vec!["spmm", "--sparse", sa, "--out", sc],
        vec!["sddmm", "--mask", sa, "--lhs", sb, "--rhs", sb, "--out", sc],
        vec![
            "sddmm",
            "--mask",
            arg(&pbad),
            "--lhs",
            sb,
            "--rhs",
            sb,
            "--out",
            sc,
        ],
        vec!["frobnicate"],
        vec!["bench", "--density", "2", "--json"],
        vec!["bench", "--ops", "spmm,gemm"],
        vec!["bench", "--m", "99999999999", "--k", "99999999999"],
    ];
    for args in &cases {
        assert_fails_cleanly(args, &pc);
    }
    let stderr = |args: &[&str]| String::from_utf8_lossy(&rosa(args).stderr).into_owned();
    assert!(
        stderr(&cases[3]).contains("3-D array"),
        "{}",
        stderr(&cases[3])
    );
    assert!(
        stderr(&cases[4]).contains("Fortran"),
        "{}",
        stderr(&cases[4])
    );
}

/// An NPY file of zeros with any shape and order, as NumPy could write it.
fn write_raw_npy(path: &Path, shape: &[u64], order: npyz::Order) {
    use npyz::WriterBuilder;
    let file = std::fs::File::create(path).unwrap();
    let mut w = npyz::WriteOptions::new()
        .default_dtype()
        .shape(shape)
        .order(order)
        .writer(file)
        .begin_nd()
        .unwrap();
    w.extend(std::iter::repeat_n(
        0.0f32,
        shape.iter().product::<u64>() as usize,
    ))
    .unwrap();
    w.finish().unwrap();
}

#[test]
fn info_names_the_cpu_backend() {
    let out = rosa(&["info"]);
    let text = assert_ok(&out);
    assert!(text.contains(env!("CARGO_PKG_VERSION")));
    assert!(text.contains("backends: cpu"));
    assert!(text.contains("cpu isa: "), "{text}");
    assert!(text.contains("heuristic configuration"), "{text}");
    // One line per GPU or one line saying why there is none, never a panic.
    assert!(text.lines().any(|l| l.starts_with("gpu: ")), "{text}");
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn info_counts_the_files_in_the_tuning_cache() {
    let tmp = Scratch::new();
    for name in ["a.json", "b.json", "notes.txt"] {
        std::fs::write(tmp.path(name), "{}").unwrap();
    }
    let out = Command::new(rosa_bin())
        .arg("info")
        .env("ROSA_TUNING_DIR", tmp.path(""))
        .output()
        .unwrap();
    let text = assert_ok(&out);
    let line = text
        .lines()
        .find(|l| l.starts_with("tuning cache: "))
        .unwrap();
    assert!(line.contains("(2 *.json files)"), "{line}");
    assert!(line.contains("no tuned entries"), "{line}");
    assert!(
        text.lines().any(|l| l.starts_with("tuning shipped: ")),
        "{text}"
    );
}

/// One `error:` line on stderr, nothing on stdout, a nonzero exit.
/// Asserts that the command succeeded, showing its stderr if not; returns its stdout.
fn assert_ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The JSON document in the file at `path`.
fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn assert_one_error_line(out: &Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "{err}");
    assert!(out.stdout.is_empty());
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("error: "), "{err}");
    err
}

#[cfg(not(feature = "cuda"))]
#[test]
fn tune_without_the_feature_says_so() {
    let tmp = Scratch::new();
    let out_file = tmp.path("cache.json");
    let out = rosa(&["tune", "--quick", "--out", arg(&out_file)]);
    let err = assert_one_error_line(&out);
    assert!(err.contains("built without the cuda feature"), "{err}");
    assert!(!out_file.exists());
}

/// Without a GPU: the `Device::new` error as one line and no cache written. With one: a
/// small quick tune whose cache holds one entry per problem, for this build.
#[cfg(feature = "cuda")]
#[test]
fn tune_runs_or_reports_why_not() {
    let tmp = Scratch::new();
    let out_file = tmp.path("cache.json");
    let args = [
        "tune",
        "--quick",
        "--ops",
        "sddmm",
        "--dtype",
        "f32",
        "--out",
        arg(&out_file),
    ];
    let out = rosa(&args);
    if let Err(e) = rosa::cuda::Device::new(0) {
        eprintln!("tune_runs_or_reports_why_not: skipped: no CUDA device ({e})");
        assert_one_error_line(&out);
        assert!(!out_file.exists());
        return;
    }
    let text = assert_ok(&out);
    assert!(text.contains("geomean speedup"), "{text}");
    let cache = read_json(&out_file);
    assert_eq!(cache["header"]["build_id"], rosa::tune::BUILD_ID);
    let entries = cache["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 6, "{cache}");
    assert!(entries
        .iter()
        .all(|e| e["tuned_us"].as_f64().unwrap() <= e["heuristic_us"].as_f64().unwrap()));
}

#[cfg(not(feature = "cuda"))]
#[test]
fn bench_on_cuda_without_the_feature_says_so() {
    let out = rosa(&[
        "bench", "--device", "cuda", "--m", "32", "--k", "32", "--n", "4",
    ]);
    let err = assert_one_error_line(&out);
    assert!(err.contains("built without the cuda feature"), "{err}");
}

/// Without a GPU: the `Device::new` error as one line. With one (on the GPU machine): a
/// small sweep whose rows carry the GPU fields and agree with the CPU kernels.
#[cfg(feature = "cuda")]
#[test]
fn bench_on_cuda_runs_or_reports_why_not() {
    let tmp = Scratch::new();
    let json = tmp.path("bench.json");
    let mut args = vec![
        "bench",
        "--device",
        "cuda",
        "--shapes",
        "300x200x64,128x512x40",
        "--density",
        "0.01,0.1",
        "--time-ms",
        "1",
        "--json-out",
    ];
    args.push(arg(&json));
    let out = rosa(&args);
    if let Err(e) = rosa::cuda::Device::new(0) {
        let err = assert_one_error_line(&out);
        assert!(err.contains("no CUDA device"), "{err} ({e})");
        assert!(!json.exists());
        return;
    }
    let table = assert_ok(&out);
    assert!(table.contains("summary spmm"), "{table}");
    let report = read_json(&json);
    assert!(report["device"].as_str().unwrap().starts_with("cuda:0"));
    let rows = report["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2 * 2 * 3);
    for row in rows {
        assert!(row["roofline_pct"].as_f64().unwrap() > 0.0, "{row}");
        assert!(row["baseline_us"].as_f64().unwrap() > 0.0, "{row}");
        // cuSPARSE (timed or declined with a note) and both cuBLAS modes of f32.
        let names: Vec<&str> = row["baselines"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["name"].as_str().unwrap())
            .collect();
        assert!(names.iter().any(|n| n.starts_with("cuSPARSE")), "{row}");
        assert!(names.contains(&"cuBLAS TF32"), "{row}");
        assert!(row["config"].as_str().is_some(), "{row}");
        let diff = row["max_abs_diff"]
            .as_f64()
            .expect("finite: no NaN left in the output");
        assert!(diff < 1e-3, "{row}");
    }
}

#[test]
fn bench_runs_several_shapes_and_writes_json_beside_the_table() {
    let tmp = Scratch::new();
    let json = tmp.path("rows.json");
    let out = rosa(&[
        "bench",
        "--shapes",
        "40x30x4,20x50x3",
        "--density",
        "0.1",
        "--time-ms",
        "1",
        "--ops",
        "spmm",
        "--no-dense",
        "--json-out",
        arg(&json),
    ]);
    let table = assert_ok(&out);
    assert!(
        table.contains("40x30x4") && table.contains("20x50x3"),
        "{table}"
    );
    let report = read_json(&json);
    let rows = report["rows"].as_array().unwrap();
    // 2 shapes x (sprs, sprs+rayon); CPU rows carry no GPU fields.
    assert_eq!(rows.len(), 4);
    assert!(report.get("device").is_none());
    assert!(rows.iter().all(|r| r.get("roofline_pct").is_none()));
    assert!(rows.iter().all(|r| r.get("baselines").is_none()));
    assert!(rows.iter().all(|r| r.get("forward_us").is_none()));
    assert_eq!(
        (rows[2]["m"].as_u64(), rows[2]["n"].as_u64()),
        (Some(20), Some(3))
    );
}

#[test]
fn bench_times_the_forward_product_beside_the_transposed_one() {
    let tmp = Scratch::new();
    let json = tmp.path("rows.json");
    let out = rosa(&[
        "bench",
        "--shapes",
        "40x30x8",
        "--density",
        "0.1,0.3",
        "--time-ms",
        "1",
        "--ops",
        "spmm_t",
        "--no-dense",
        "--json-out",
        arg(&json),
    ]);
    let table = assert_ok(&out);
    assert!(
        table.contains("summary spmm_t/spmm f32  time ratio over 2 points"),
        "{table}"
    );
    let report = read_json(&json);
    let rows = report["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 4);
    for row in rows {
        assert!(row["forward_us"].as_f64().unwrap() > 0.0, "{row}");
    }
}

#[test]
fn bench_plots_time_against_density_as_svg() {
    let tmp = Scratch::new();
    let svg = tmp.path("bench.svg");
    let out = rosa(&[
        "bench",
        "--m",
        "48",
        "--k",
        "40",
        "--n",
        "4",
        "--density",
        "0.05,0.2",
        "--time-ms",
        "1",
        "--ops",
        "spmm,sddmm",
        "--plot",
        arg(&svg),
    ]);
    assert_ok(&out);
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.starts_with("<svg") && text.trim_end().ends_with("</svg>"));
    // One panel per op, a legend entry per series: ours, the sparse and dense baselines.
    for name in [
        "spmm f32 48x40x4",
        "sddmm f32 48x40x4",
        "ours",
        "sprs+rayon",
        "ndarray dot per nonzero+rayon",
        "ndarray dense GEMM",
    ] {
        assert!(text.contains(name), "{name} missing from the SVG");
    }
    // Two densities: each series is a polyline through two points.
    assert!(text.contains("<polyline"), "no line series");
}

#[test]
fn bench_refuses_a_plot_path_it_cannot_write_before_measuring() {
    let tmp = Scratch::new();
    let bad = tmp.path("no-such-dir").join("p.svg");
    let out = rosa(&[
        "bench",
        "--m",
        "32",
        "--k",
        "32",
        "--n",
        "4",
        "--time-ms",
        "1",
        "--plot",
        arg(&bad),
    ]);
    let err = assert_one_error_line(&out);
    assert!(err.contains("p.svg"), "{err}");
    assert!(!bad.exists());
}

#[test]
fn bench_refuses_conflicting_shapes() {
    for args in [
        vec!["bench", "--grid", "--m", "64"],
        vec!["bench", "--shapes", "4x4", "--time-ms", "1"],
    ] {
        let out = rosa(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert_one_error_line(&out);
    }
}

#[test]
fn bench_emits_json_rows_and_a_table() {
    for dtype in DType::ALL {
        let out = rosa(&[
            "bench",
            "--m",
            "64",
            "--k",
            "48",
            "--n",
            "8",
            "--density",
            "0.05,0.2",
            "--time-ms",
            "1",
            "--dtype",
            dtype.name(),
            "--json",
        ]);
        assert_ok(&out);
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let rows = report["rows"].as_array().unwrap();
        // 2 densities x (spmm: 3, spmm_t: 3, sddmm: 2 baselines).
        assert_eq!(rows.len(), 16);
        for row in rows {
            assert_eq!(row["dtype"], dtype.name());
            assert_eq!(row["baseline_dtype"], "f32");
            for field in [
                "ours_us",
                "baseline_us",
                "speedup",
                "gflops",
                "gbps",
                "max_abs_diff",
            ] {
                assert!(row[field].as_f64().unwrap() >= 0.0, "{field}");
            }
            // Our result agrees with the baseline's on the same values.
            let tol = if dtype == DType::F32 { 1e-4 } else { 0.05 };
            assert!(row["max_abs_diff"].as_f64().unwrap() <= tol, "{row}");
        }
    }
    let out = rosa(&[
        "bench",
        "--m",
        "32",
        "--k",
        "32",
        "--n",
        "4",
        "--density",
        "0.1",
        "--time-ms",
        "1",
        "--ops",
        "sddmm",
        "--no-dense",
    ]);
    let table = assert_ok(&out);
    assert!(
        table.contains("sddmm") && table.contains("GFLOP/s"),
        "{table}"
    );
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("bench: [1/1]"));
}

/// `rosa train --device cuda` with a short run's flags.
fn train_on_cuda() -> Output {
    rosa(&[
        "train",
        "--device",
        "cuda",
        "--steps",
        "2",
        "--pretrain-steps",
        "2",
        "--method",
        "rosa",
        "--task",
        "new_family",
        "--hidden",
        "16",
        "--quiet",
    ])
}

/// Without the cuda feature, `train --device cuda` is one line naming the feature, never a
/// CPU run under a CUDA label.
#[cfg(not(feature = "cuda"))]
#[test]
fn train_on_cuda_without_the_feature_names_it() {
    let err = assert_one_error_line(&train_on_cuda());
    assert!(err.contains("training on CUDA"), "{err}");
    assert!(err.contains("built without the cuda feature"), "{err}");
}

/// With the feature, `train --device cuda` runs on the staged CUDA backend where there is
/// a GPU, and is one line naming the missing device where there is none.
#[cfg(feature = "cuda")]
#[test]
fn train_on_cuda_runs_or_names_the_missing_device() {
    let out = train_on_cuda();
    match rosa::cuda::Device::new(0) {
        Ok(_) => {
            let table = assert_ok(&out);
            assert!(table.contains("backend: cuda"), "{table}");
        }
        Err(_) => {
            let err = assert_one_error_line(&out);
            assert!(err.starts_with("error: no CUDA device"), "{err}");
        }
    }
}
