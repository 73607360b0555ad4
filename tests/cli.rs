//! The `rosa` binary end to end: real files in, results checked against a dense f64
//! reference, and bad inputs answered with one `error:` line and no output file.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::npy::{npy, npy_file};
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

/// `rosa sddmm --mask m --lhs l --rhs r --out o`, to extend with flags.
fn sddmm_args<'a>(m: &'a Path, l: &'a Path, r: &'a Path, o: &'a Path) -> Vec<&'a str> {
    vec![
        "sddmm",
        "--mask",
        arg(m),
        "--lhs",
        arg(l),
        "--rhs",
        arg(r),
        "--out",
        arg(o),
    ]
}

/// `rosa spmm --sparse a --dense b --out c`, to extend with flags.
fn spmm_args<'a>(a: &'a Path, b: &'a Path, c: &'a Path) -> Vec<&'a str> {
    vec![
        "spmm",
        "--sparse",
        arg(a),
        "--dense",
        arg(b),
        "--out",
        arg(c),
    ]
}

fn spmm_case<T: Scalar>(transpose: bool) {
    let tmp = Scratch::new();
    let (m, k, n) = (23, 17, 5);
    let a = random::csr::<T>(m, k, 0.3, 1).unwrap();
    let b = random::dense::<T>(if transpose { m } else { k }, n, 2);
    let (pa, pb, pc) = (tmp.path("A.mtx"), tmp.path("B.npy"), tmp.path("C.npy"));
    io::write_mtx(&pa, &a).unwrap();
    io::write_npy(&pb, b.as_ref()).unwrap();
    let mut args = spmm_args(&pa, &pb, &pc);
    args.extend(["--dtype", T::DTYPE.name()]);
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
    let mut args = sddmm_args(&pm, &pl, &pr, &po);
    args.extend(["--dtype", T::DTYPE.name()]);
    let out = rosa(&args);
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
    let plong = tmp.path("long.npy");
    write_npy_as(&plong, &[3, 2], npyz::Order::C, &[u64::MAX; 6]);
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
        vec!["spmm", "--sparse", sa, "--dense", arg(&plong), "--out", sc],
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
        stderr(&cases[3]).contains("3-D NPY array"),
        "{}",
        stderr(&cases[3])
    );
    assert!(
        stderr(&cases[4]).contains("18446744073709551615"),
        "{}",
        stderr(&cases[4])
    );
}

/// An NPY file of zeros with any shape and order, as NumPy could write it.
fn write_raw_npy(path: &Path, shape: &[u64], order: npyz::Order) {
    let zeros = vec![0.0f32; shape.iter().product::<u64>() as usize];
    write_npy_as(path, shape, order, &zeros);
}

/// An NPY file of `data` (in file order) with NumPy's dtype for `S`.
fn write_npy_as<S: npyz::AutoSerialize + Copy>(
    path: &Path,
    shape: &[u64],
    order: npyz::Order,
    data: &[S],
) {
    use npyz::WriterBuilder;
    let file = std::fs::File::create(path).unwrap();
    let mut w = npyz::WriteOptions::new()
        .default_dtype()
        .shape(shape)
        .order(order)
        .writer(file)
        .begin_nd()
        .unwrap();
    w.extend(data.iter().copied()).unwrap();
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

/// `rosa tune --mask` reads its masks before it looks for a GPU: a missing file or an
/// empty mask is refused as `bench --mask` refuses it, with or without the cuda feature;
/// a good mask then meets the missing feature (or, with it, the GPU check).
#[test]
fn tune_refuses_a_missing_or_empty_mask_before_looking_for_a_gpu() {
    let tmp = Scratch::new();
    let out_file = tmp.path("cache.json");
    let missing = tmp.path("absent.mtx");
    let tune = |mask: &Path| {
        rosa(&[
            "tune",
            "--quick",
            "--mask",
            arg(mask),
            "--out",
            arg(&out_file),
        ])
    };
    let err = assert_one_error_line(&tune(&missing));
    assert!(err.contains("absent.mtx"), "{err}");
    let empty = tmp.path("empty.mtx");
    std::fs::write(
        &empty,
        "%%MatrixMarket matrix coordinate pattern general\n3 4 0\n",
    )
    .unwrap();
    let err = assert_one_error_line(&tune(&empty));
    assert!(
        err.contains("empty.mtx") && err.contains("no nonzeros"),
        "{err}"
    );
    // A good mask beside a bad one is no better.
    let good = tmp.path("good.mtx");
    io::write_mtx(&good, &random::csr::<f32>(20, 30, 0.1, 1).unwrap()).unwrap();
    let both = format!("{},{}", arg(&good), arg(&missing));
    let err = assert_one_error_line(&rosa(&["tune", "--mask", &both, "--out", arg(&out_file)]));
    assert!(err.contains("absent.mtx"), "{err}");
    #[cfg(not(feature = "cuda"))]
    {
        let err = assert_one_error_line(&tune(&good));
        assert!(err.contains("built without the cuda feature"), "{err}");
    }
    assert!(!out_file.exists());
}

/// Without a GPU: the `Device::new` error as one line and no cache written. With one: a
/// small quick tune whose cache holds one entry per problem, for this build; then one on
/// a mask, whose entry is stored under the mask's own key.
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

    let mask = random::csr_power_law::<f32>(300, 200, 0.05, 1.5, 2).unwrap();
    let mask_file = tmp.path("skewed.mtx");
    io::write_mtx(&mask_file, &mask).unwrap();
    let mask_cache = tmp.path("mask-cache.json");
    let out = rosa(&[
        "tune",
        "--quick",
        "--ops",
        "sddmm",
        "--dtype",
        "f32",
        "--mask",
        arg(&mask_file),
        "--out",
        arg(&mask_cache),
    ]);
    let text = assert_ok(&out);
    assert!(text.contains("mask skewed"), "{text}");
    let cache: rosa::tune::TuneCache = serde_json::from_value(read_json(&mask_cache)).unwrap();
    let key = rosa::tune::ProblemKey::for_matrix(rosa::Op::Sddmm, DType::F32, &mask, 512);
    assert_eq!(cache.entries().len(), 1);
    assert_eq!(cache.entries()[0].key, key);
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
fn bench_on_masks_times_each_beside_its_uniform_twin() {
    let tmp = Scratch::new();
    // Two masks of one shape and nnz, one with power-law rows: one twin serves both.
    let skewed = random::csr_power_law::<f32>(60, 40, 0.1, 1.2, 5).unwrap();
    let even = random::csr_with_row_lengths::<f32>(60, 40, &[skewed.nnz() / 60; 60], 6).unwrap();
    assert_eq!(even.nnz(), 60 * (skewed.nnz() / 60));
    let (p_skewed, p_even) = (tmp.path("layer0.q.mtx"), tmp.path("flat.mtx"));
    io::write_mtx(&p_skewed, &skewed).unwrap();
    io::write_mtx(&p_even, &even).unwrap();
    let json = tmp.path("rows.json");
    let masks = format!("{},{}", arg(&p_skewed), arg(&p_even));
    let out = rosa(&[
        "bench",
        "--mask",
        &masks,
        "--n",
        "4,8",
        "--time-ms",
        "1",
        "--ops",
        "spmm,sddmm",
        "--no-dense",
        "--json-out",
        arg(&json),
    ]);
    let table = assert_ok(&out);
    let report = read_json(&json);
    let rows = report["rows"].as_array().unwrap();
    // Per N: 2 masks + 2 twins (the two nnz differ) x (spmm: 2 baselines, sddmm: 1).
    assert_eq!(rows.len(), 2 * 4 * 3, "{table}");
    let of = |name: Option<&str>| -> Vec<&serde_json::Value> {
        rows.iter().filter(|r| r["mask"].as_str() == name).collect()
    };
    let on_skewed = of(Some("layer0.q"));
    assert_eq!(on_skewed.len(), 6);
    for r in &on_skewed {
        assert_eq!((r["m"].as_u64(), r["k"].as_u64()), (Some(60), Some(40)));
        assert_eq!(r["nnz"].as_u64(), Some(skewed.nnz() as u64));
        assert!((r["density"].as_f64().unwrap() - skewed.density()).abs() < 1e-12);
        let stats = skewed.row_stats();
        assert!((r["row_cv"].as_f64().unwrap() - stats.cv).abs() < 1e-9);
        assert!(r["max_abs_diff"].as_f64().unwrap() < 1e-4, "{r}");
    }
    assert!(of(Some("flat"))
        .iter()
        .all(|r| r["row_cv"].as_f64() == Some(0.0)));
    assert_eq!(of(None).len(), 12);
    for n in [4, 8] {
        for op in ["spmm", "sddmm"] {
            let line = format!("summary mask layer0.q {op} f32 n={n}: time on the mask");
            assert!(table.contains(&line), "{line} missing from\n{table}");
        }
    }
}

#[test]
fn bench_refuses_a_missing_mask_and_a_mask_with_a_shape() {
    let tmp = Scratch::new();
    let missing = tmp.path("absent.mtx");
    let err = assert_one_error_line(&rosa(&["bench", "--mask", arg(&missing), "--time-ms", "1"]));
    assert!(err.contains("absent.mtx"), "{err}");
    for conflict in [["--m", "64"], ["--export", "dir"]] {
        let out = rosa(&["bench", "--mask", arg(&missing), conflict[0], conflict[1]]);
        assert_eq!(out.status.code(), Some(2), "{conflict:?}");
        assert_one_error_line(&out);
    }
    let empty = tmp.path("empty.mtx");
    std::fs::write(
        &empty,
        "%%MatrixMarket matrix coordinate pattern general\n3 4 0\n",
    )
    .unwrap();
    let err = assert_one_error_line(&rosa(&["bench", "--mask", arg(&empty), "--time-ms", "1"]));
    assert!(
        err.contains("empty.mtx") && err.contains("no nonzeros"),
        "{err}"
    );
}

#[test]
fn bench_names_masks_of_one_file_name_by_their_paths() {
    let tmp = Scratch::new();
    let (a, b) = (tmp.path("a"), tmp.path("b"));
    std::fs::create_dir_all(&a).unwrap();
    std::fs::create_dir_all(&b).unwrap();
    for (dir, seed) in [(&a, 1), (&b, 2)] {
        let m = random::csr::<f32>(20, 30, 0.2, seed).unwrap();
        io::write_mtx(dir.join("q.mtx"), &m).unwrap();
    }
    let masks = format!("{},{}", arg(&a.join("q.mtx")), arg(&b.join("q.mtx")));
    let out = rosa(&[
        "bench",
        "--mask",
        &masks,
        "--n",
        "4",
        "--time-ms",
        "1",
        "--ops",
        "spmm",
        "--no-dense",
    ]);
    let table = assert_ok(&out);
    let summaries: Vec<&str> = table
        .lines()
        .filter(|l| l.starts_with("summary mask"))
        .collect();
    assert_eq!(summaries.len(), 2, "{table}");
    assert!(summaries[0].contains(arg(&a.join("q.mtx"))), "{table}");
    assert!(summaries[1].contains(arg(&b.join("q.mtx"))), "{table}");
    // --predict names the mask and times no twin.
    let out = rosa(&[
        "bench",
        "--mask",
        &masks,
        "--n",
        "4",
        "--predict",
        "1,1,1",
        "--json",
    ]);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let points = doc["points"].as_array().unwrap();
    assert_eq!(points.len(), 2 * 3);
    assert!(points
        .iter()
        .all(|p| p["mask"].as_str().unwrap().ends_with("q.mtx")));
}

#[test]
fn bench_predicts_roofline_floors_without_running_anything() {
    let out = rosa(&[
        "bench",
        "--m",
        "1000",
        "--k",
        "2000",
        "--n",
        "64",
        "--density",
        "0.01,0.5",
        "--dtype",
        "bf16",
        "--predict",
        "2,4,8",
        "--json",
    ]);
    assert_ok(&out);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["predicted"], true);
    assert_eq!(doc["ceilings"]["l2_bytes_per_s"].as_f64(), Some(4e12));
    let points = doc["points"].as_array().unwrap();
    assert_eq!(points.len(), 2 * 3);
    for p in points {
        let nnz = p["nnz"].as_f64().unwrap();
        let want_nnz = (p["density"].as_f64().unwrap() * 2e6).round();
        assert_eq!(nnz, want_nnz);
        // Gathered bytes nnz N s at 4 TB/s, flops 2 nnz N at 8 TFLOP/s: in microseconds.
        let l2_us = nnz * 64.0 * 2.0 / 4e12 * 1e6;
        let fma_us = 2.0 * nnz * 64.0 / 8e12 * 1e6;
        assert!(
            (p["l2_us"].as_f64().unwrap() - l2_us).abs() < 1e-9 * l2_us,
            "{p}"
        );
        assert!(
            (p["fma_us"].as_f64().unwrap() - fma_us).abs() < 1e-9 * fma_us,
            "{p}"
        );
        let floor = [&p["dram_us"], &p["l2_us"], &p["fma_us"]]
            .iter()
            .map(|v| v.as_f64().unwrap())
            .fold(0.0, f64::max);
        assert_eq!(p["us"].as_f64(), Some(floor), "{p}");
    }
    // 2 bytes gathered per 2 flops at half the FMA rate: L2 binds, dense traffic aside.
    assert!(points.iter().all(|p| p["bound"] == "l2"), "{points:?}");
    let table = assert_ok(&rosa(&[
        "bench",
        "--m",
        "64",
        "--k",
        "64",
        "--n",
        "8",
        "--density",
        "0.1",
        "--predict",
        "2,4,8",
    ]));
    assert!(
        table.contains("roofline floors, nothing run") && table.contains("10.00%"),
        "{table}"
    );
    for bad in [
        "1,2",
        "1,0,3",
        "a,b,c",
        "1,inf,2",
        "1e300,1,1",
        "1e-310,1,1",
    ] {
        let out = rosa(&["bench", "--predict", bad]);
        assert_eq!(out.status.code(), Some(2), "{bad}");
        assert!(assert_one_error_line(&out).contains("COPY,L2,FMA"), "{bad}");
    }
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

/// `rosa` with its data segment capped at `mib` MiB (`ulimit -d`): an allocation past
/// the cap fails there as it would on a machine without the memory.
fn rosa_limited(mib: u64, args: &[&str]) -> Output {
    Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit -d {} && exec \"$0\" \"$@\"", mib * 1024))
        .arg(rosa_bin())
        .args(args)
        .output()
        .expect("sh runs")
}

/// `rosa spmm` of `a` (Matrix Market bytes, written as A.mtx) and the file `b`, with
/// `extra` flags: C read back as f32, or the one `error:` line of a failure.
fn spmm_files(tmp: &Scratch, a: &[u8], b: &Path, extra: &[&str]) -> Result<Vec<f32>, String> {
    let (pa, pc) = (tmp.path("A.mtx"), tmp.path("C.npy"));
    std::fs::write(&pa, a).unwrap();
    let _ = std::fs::remove_file(&pc);
    let mut args = spmm_args(&pa, b, &pc);
    args.extend(extra);
    let out = rosa(&args);
    if out.status.success() {
        Ok(io::read_npy::<f32>(&pc).unwrap().into_vec())
    } else {
        assert_one_error_line(&out);
        assert!(!pc.exists());
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

#[test]
fn spmm_reads_what_scipy_and_numpy_write() {
    let tmp = Scratch::new();
    // scipy.io.mmwrite(coo_matrix(eye(3) + ones((3, 3)))): symmetric storage.
    let sym = b"%%MatrixMarket matrix coordinate real symmetric\n%\n3 3 6\n1 1 2\n2 1 1\n2 2 2\n3 1 1\n3 2 1\n3 3 2\n";
    // B = [[1, 2], [3, 4.5], [0, 6]] as scipy.io.mmwrite writes a dense array.
    let b_mtx = tmp.path("B.mtx");
    std::fs::write(
        &b_mtx,
        "%%MatrixMarket matrix array real general\n%\n3 2\n1\n3\n0\n2\n4.5\n6\n",
    )
    .unwrap();
    let sym_times_b = [5.0, 14.5, 7.0, 17.0, 4.0, 18.5];
    assert_eq!(spmm_files(&tmp, sym, &b_mtx, &[]).unwrap(), sym_times_b);
    // The same B as np.save(x.T) writes it for x = B^T, in float64: Fortran order.
    let b_fortran = tmp.path("B.npy");
    write_npy_as(
        &b_fortran,
        &[3, 2],
        npyz::Order::Fortran,
        &[1.0f64, 3.0, 0.0, 2.0, 4.5, 6.0],
    );
    for dtype in ["f32", "f16", "bf16"] {
        let got = spmm_files(&tmp, sym, &b_fortran, &["--dtype", dtype]).unwrap();
        assert_eq!(got, sym_times_b, "{dtype}");
    }
    // Skew-symmetric (the mirror negated) times an int64 B, and a pattern-symmetric A
    // times a bool B.
    let skew = b"%%MatrixMarket matrix coordinate real skew-symmetric\n3 3 2\n2 1 -2\n3 2 4\n";
    let b_int = tmp.path("Bi.npy");
    write_npy_as(&b_int, &[3, 1], npyz::Order::C, &[1i64, 10, 100]);
    // [[0, 2, 0], [-2, 0, -4], [0, 4, 0]] [1, 10, 100]^T
    assert_eq!(
        spmm_files(&tmp, skew, &b_int, &[]).unwrap(),
        [20.0, -402.0, 40.0]
    );
    let pattern = b"%%MatrixMarket matrix coordinate pattern symmetric\n3 3 2\n1 1\n3 2\n";
    let b_bool = tmp.path("Bb.npy");
    write_npy_as(&b_bool, &[3, 1], npyz::Order::C, &[true, false, true]);
    assert_eq!(
        spmm_files(&tmp, pattern, &b_bool, &[]).unwrap(),
        [1.0, 1.0, 0.0]
    );
    // A dense symmetric array as the sparse operand: its nonzeros.
    let dense_sym = b"%%MatrixMarket matrix array real symmetric\n3 3\n2\n0\n1\n2\n0\n2\n";
    assert_eq!(
        spmm_files(&tmp, dense_sym, &b_int, &["--transpose"]).unwrap(),
        [102.0, 20.0, 201.0]
    );
    // Hermitian and complex files stay refused, saying so.
    let herm = b"%%MatrixMarket matrix coordinate complex hermitian\n1 1 1\n1 1 1 0\n";
    let err = spmm_files(&tmp, herm, &b_int, &[]).unwrap_err();
    assert!(err.contains("hermitian"), "{err}");
}

#[test]
fn spmm_sums_duplicates_in_f64_and_rounds_once() {
    let tmp = Scratch::new();
    let b = tmp.path("B.npy");
    write_npy_as(&b, &[2, 1], npyz::Order::C, &[1.0f32, 0.0]);
    let dup = b"%%MatrixMarket matrix coordinate real general\n1 2 2\n1 1 1.001\n1 1 -1\n";
    // The same matrix pre-summed in f64, written with every digit of the sum.
    let summed = format!(
        "%%MatrixMarket matrix coordinate real general\n1 2 1\n1 1 {:?}\n",
        1.001f64 - 1.0
    );
    for dtype in ["f32", "f16", "bf16"] {
        let got = spmm_files(&tmp, dup, &b, &["--dtype", dtype]).unwrap();
        let want = spmm_files(&tmp, summed.as_bytes(), &b, &["--dtype", dtype]).unwrap();
        assert_eq!(got, want, "{dtype}");
        assert!((got[0] - 0.001).abs() < 1e-5, "{dtype}: {got:?}");
    }
    // More duplicates than the matrix has cells, as SciPy reads them.
    let many = b"%%MatrixMarket matrix coordinate real general\n1 1 2\n1 1 1.0\n1 1 2.0\n";
    let one = tmp.path("one.npy");
    write_npy_as(&one, &[1, 1], npyz::Order::C, &[1.0f32]);
    assert_eq!(spmm_files(&tmp, many, &one, &[]).unwrap(), [3.0]);
}

#[test]
fn values_past_the_dtype_are_one_error_line_naming_them() {
    let tmp = Scratch::new();
    let tiny = tmp.path("tiny.npy");
    write_npy_as(&tiny, &[1, 1], npyz::Order::C, &[1e-10f32]);
    let big = b"%%MatrixMarket matrix coordinate real general\n1 1 1\n1 1 1e39\n";
    let err = spmm_files(&tmp, big, &tiny, &[]).unwrap_err();
    for part in ["A.mtx", "line 3", "1e39", "f32", "3.4028235e38"] {
        assert!(err.contains(part), "{part}: {err}");
    }
    let f64_big = tmp.path("big.npy");
    write_npy_as(&f64_big, &[1, 1], npyz::Order::C, &[1e39f64]);
    let one = b"%%MatrixMarket matrix coordinate real general\n1 1 1\n1 1 1\n";
    let err = spmm_files(&tmp, one, &f64_big, &[]).unwrap_err();
    for part in ["big.npy", "element [0, 0]", "1e39", "f32"] {
        assert!(err.contains(part), "{part}: {err}");
    }
    let f16_big = b"%%MatrixMarket matrix coordinate real general\n1 1 1\n1 1 65520\n";
    let err = spmm_files(&tmp, f16_big, &tiny, &["--dtype", "f16"]).unwrap_err();
    assert!(err.contains("65504") && err.contains("f16"), "{err}");
    let bf16_big = b"%%MatrixMarket matrix coordinate real general\n1 1 1\n1 1 3.4e38\n";
    let err = spmm_files(&tmp, bf16_big, &tiny, &["--dtype", "bf16"]).unwrap_err();
    assert!(err.contains("bf16"), "{err}");
    // f32 holds what bf16 cannot.
    assert!(spmm_files(&tmp, bf16_big, &tiny, &[]).is_ok());
}

/// An `n x 0` NPY file: a few bytes that declare many rows and hold nothing.
fn empty_rows_npy(path: &Path, rows: u64) {
    write_npy_as::<f32>(path, &[rows, 0], npyz::Order::C, &[]);
}

#[test]
fn huge_declared_shapes_fail_cleanly_or_cost_their_row_offsets() {
    let tmp = Scratch::new();
    let max = i32::MAX as u64;
    let banner = "%%MatrixMarket matrix coordinate real general\n";
    let (pa, pb, pc) = (tmp.path("A.mtx"), tmp.path("B.npy"), tmp.path("C.npy"));
    // The 23-byte size line: 2^31 - 1 empty rows (8 GiB of row_ptr) times a
    // 1 x 0 B. Under a 1 GiB cap the allocation fails: one line, no abort.
    std::fs::write(&pa, format!("{banner}{max} 1 0\n")).unwrap();
    write_npy_as::<f32>(&pb, &[1, 0], npyz::Order::C, &[]);
    let args = spmm_args(&pa, &pb, &pc);
    let out = rosa_limited(1024, &args);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = assert_one_error_line(&out);
    for part in ["A.mtx", "row_ptr", "8589934592 bytes"] {
        assert!(err.contains(part), "{part}: {err}");
    }
    assert!(!pc.exists());
    // The same for an SDDMM mask of 2^31 - 1 squared and L, R of 2^31 - 1 x 0.
    let (pm, pl, po) = (tmp.path("M.mtx"), tmp.path("L.npy"), tmp.path("O.mtx"));
    std::fs::write(&pm, format!("{banner}{max} {max} 0\n")).unwrap();
    empty_rows_npy(&pl, max);
    let sddmm = |mib| rosa_limited(mib, &sddmm_args(&pm, &pl, &pl, &po));
    let err = assert_one_error_line(&sddmm(1024));
    assert!(err.contains("M.mtx") && err.contains("row_ptr"), "{err}");
    // The 68-byte mask of 10^8 x 10^8: its row_ptr (400 MB) and little else.
    let rows = 100_000_000u64;
    let mask = format!("{banner}{rows} {rows} 0\n");
    assert_eq!(mask.len(), 68);
    std::fs::write(&pm, mask).unwrap();
    empty_rows_npy(&pl, rows);
    let out = sddmm(400 + 128);
    assert_ok(&out);
    let written = std::fs::read_to_string(&po).unwrap();
    assert_eq!(written.lines().last(), Some("100000000 100000000 0"));
    // An empty A^T B needs no transpose plan: a 1 x (2^31 - 1) A with a 1 x 0 B.
    std::fs::write(&pa, format!("{banner}1 {max} 0\n")).unwrap();
    let mut t = args.clone();
    t.push("--transpose");
    assert_ok(&rosa_limited(256, &t));
    assert_eq!(io::read_npy::<f32>(&pc).unwrap().rows(), max as usize);
    // A nonempty one does, and allocates it fallibly: 2^27 columns and a 1 x 1 f16 B
    // give a 256 MiB C, then a plan of 2 x 512 MiB offsets, past a 700 MiB cap.
    let k = 1u64 << 27;
    std::fs::write(&pa, format!("{banner}1 {k} 1\n1 {k} 1\n")).unwrap();
    write_npy_as(&pb, &[1, 1], npyz::Order::C, &[1.0f32]);
    t.extend(["--dtype", "f16"]);
    let out = rosa_limited(700, &t);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = assert_one_error_line(&out);
    assert!(
        err.contains("transpose plan") && err.contains("cannot allocate"),
        "{err}"
    );
}

#[test]
fn out_never_replaces_what_is_not_a_regular_file() {
    use std::os::unix::fs::FileTypeExt;
    let tmp = Scratch::new();
    let a = random::csr::<f32>(3, 2, 0.5, 1).unwrap();
    let b = random::dense::<f32>(2, 2, 2);
    let (pa, pb) = (tmp.path("A.mtx"), tmp.path("B.npy"));
    io::write_mtx(&pa, &a).unwrap();
    io::write_npy(&pb, b.as_ref()).unwrap();
    let spmm_to = |out: &Path| rosa(&spmm_args(&pa, &pb, out));
    let want = {
        let mut c = rosa::Dense::zeros(3, 2);
        rosa::cpu::spmm(1.0, a.as_ref(), b.as_ref(), 0.0, c.as_mut()).unwrap();
        c
    };
    // A symbolic link keeps being one; the file it points to gets C.
    std::fs::create_dir(tmp.path("keep")).unwrap();
    std::os::unix::fs::symlink("keep/C.npy", tmp.path("link.npy")).unwrap();
    assert_ok(&spmm_to(&tmp.path("link.npy")));
    assert!(tmp
        .path("link.npy")
        .symlink_metadata()
        .unwrap()
        .is_symlink());
    assert_eq!(io::read_npy::<f32>(tmp.path("keep/C.npy")).unwrap(), want);
    // A FIFO is written into, not replaced. The reader is a process, so that a FIFO
    // replaced by a regression fails this test instead of hanging it.
    let fifo = tmp.path("fifo.npy");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let copy = tmp.path("streamed.npy");
    let mut reader = Command::new("cat")
        .arg(&fifo)
        .stdout(std::fs::File::create(&copy).unwrap())
        .spawn()
        .unwrap();
    let out = spmm_to(&fifo);
    let still_fifo = fifo.symlink_metadata().unwrap().file_type().is_fifo();
    if !still_fifo {
        reader.kill().unwrap();
    }
    reader.wait().unwrap();
    assert!(still_fifo, "the FIFO was replaced");
    assert_ok(&out);
    assert_eq!(io::read_npy::<f32>(&copy).unwrap(), want);
    // A directory, with or without a trailing slash: "is a directory", left alone.
    let dir = tmp.path("keep");
    for out in [arg(&dir).to_string(), format!("{}/", arg(&dir))] {
        let err = assert_one_error_line(&spmm_to(Path::new(&out)));
        assert!(err.contains("is a directory"), "{out}: {err}");
    }
    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, [std::ffi::OsString::from("C.npy")]);
    // /dev/null, and /dev/stdout to a pipe (a link to a link to no path), where a
    // regression could not replace the system's own (not as root).
    use std::os::unix::fs::MetadataExt;
    if std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() != 0) {
        assert_ok(&spmm_to(Path::new("/dev/null")));
        assert!(std::fs::metadata("/dev/null")
            .unwrap()
            .file_type()
            .is_char_device());
        let out = spmm_to(Path::new("/dev/stdout"));
        assert_ok(&out);
        std::fs::write(tmp.path("stdout.npy"), &out.stdout).unwrap();
        assert_eq!(io::read_npy::<f32>(tmp.path("stdout.npy")).unwrap(), want);
    }
}

#[test]
fn comment_lines_may_hold_any_bytes() {
    let tmp = Scratch::new();
    let b = tmp.path("B.npy");
    write_npy_as(&b, &[1, 1], npyz::Order::C, &[2.0f32]);
    let latin1 =
        b"%%MatrixMarket matrix coordinate real general\n% \xa9 J. M\xfcller\n1 1 1\n1 1 1.5\n";
    assert_eq!(spmm_files(&tmp, latin1, &b, &[]).unwrap(), [3.0]);
    let bom = b"\xef\xbb\xbf%%MatrixMarket matrix coordinate real general\n1 1 1\n1 1 1.5\n";
    assert_eq!(spmm_files(&tmp, bom, &b, &[]).unwrap(), [3.0]);
}

#[test]
fn error_lines_quote_little_and_speak_numpy() {
    let tmp = Scratch::new();
    let one = b"%%MatrixMarket matrix coordinate real general\n1 1 1\n1 1 1\n";
    // Malformed NPY headers (a bare word where a value belongs) of 5,000,000 and of
    // 9,000 characters: NumPy's length limit, then the 80-character quote.
    let pb = tmp.path("B.npy");
    for (len, version) in [(5_000_000, 2u8), (9_000, 1)] {
        let text = format!(
            "{{'descr': '<f4', 'fortran_order': False, 'shape': (1, 1), 'x': {}}}",
            "y".repeat(len)
        );
        let bytes = npy_file(version, &text, &1.0f32.to_le_bytes());
        std::fs::write(&pb, bytes).unwrap();
        let err = spmm_files(&tmp, one, &pb, &[]).unwrap_err();
        assert!(err.len() < 300, "{len}: {} bytes", err.len());
    }
    // A 1 MB Matrix Market line.
    let long = format!(
        "%%MatrixMarket matrix coordinate real general\n1 1 1\n1 1 {}\n",
        "9".repeat(1 << 20) + "x"
    );
    write_npy_as(&pb, &[1, 1], npyz::Order::C, &[1.0f32]);
    let err = spmm_files(&tmp, long.as_bytes(), &pb, &[]).unwrap_err();
    assert!(err.len() < 300, "{} bytes", err.len());
    // Dtypes named once, in NumPy's terms.
    write_npy_as(&pb, &[1, 1], npyz::Order::C, &[half::f16::ONE]);
    let f16_file = spmm_files(&tmp, one, &pb, &[]);
    assert_eq!(f16_file.unwrap(), [1.0]);
    let long_double = npy(b"'<f16'", false, "(1, 1)", &[0; 16]);
    std::fs::write(&pb, long_double).unwrap();
    let err = spmm_files(&tmp, one, &pb, &[]).unwrap_err();
    assert!(
        err.contains("'<f16' is a 128-bit long double") && !err.contains("''"),
        "{err}"
    );
    // Python 2's (3L, 4L) shapes read as NumPy reads them.
    let py2 = npy(b"'<f4'", false, "(1L, 1L)", &4.0f32.to_le_bytes());
    std::fs::write(&pb, py2).unwrap();
    assert_eq!(spmm_files(&tmp, one, &pb, &[]).unwrap(), [4.0]);
}

#[test]
fn train_refuses_a_rank_or_density_outside_its_range() {
    let train = |flags: &[&str]| {
        let mut args = vec!["train", "--hidden", "16", "--steps", "1", "--quiet"];
        args.extend(flags);
        assert_one_error_line(&rosa(&args))
    };
    for rank in ["17", "0"] {
        let err = train(&["--rank", rank]);
        assert!(err.contains("1..=16"), "{rank}: {err}");
    }
    for density in ["0", "1.5", "-0.1", "NaN"] {
        let flag = format!("--density={density}");
        let err = train(&[&flag]);
        assert!(err.contains("(0, 1]"), "{density}: {err}");
    }
}
