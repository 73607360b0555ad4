//! Tuning caches without a GPU: key bucketing, round trips, corrupt and foreign caches,
//! the lookup order, atomic writes and concurrent merges.

use std::fs;
use std::path::PathBuf;

use std::sync::Mutex;

use rosa::tune::{
    cache_file_name, load_caches, CacheHeader, DeviceFingerprint, FileStatus, Origin, ProblemKey,
    Source, TuneCache, TuneEntry, TuneTable,
};
use rosa::{DType, Error, Op};

fn device(name: &str) -> DeviceFingerprint {
    DeviceFingerprint {
        name: name.into(),
        compute_capability: (9, 0),
        sm_count: 132,
        memory_bytes: 85_520_809_984,
        driver_version: 13000,
    }
}

fn header() -> CacheHeader {
    CacheHeader::new("build-a", device("NVIDIA H100 80GB HBM3"))
}

/// A fresh directory under the system temp dir, unique to this test and process.
fn scratch(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rosa-tune-{test}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

fn entry(n: usize, config: usize) -> TuneEntry {
    TuneEntry {
        key: ProblemKey::new(Op::Spmm, DType::Bf16, 4096, 11008, n, 0.006, 0.1),
        config,
        config_name: format!("cfg{config}"),
        tuned_us: 10.0 + n as f64,
        heuristic_us: 20.0 + n as f64,
    }
}

const CONFIGS: usize = 8;
fn exists(_: Op, i: usize) -> bool {
    i < CONFIGS
}

#[test]
fn keys_bucket_by_octave_and_split_on_op_dtype_density_and_spread() {
    let k = |op, dt, n, d, cv| ProblemKey::new(op, dt, 4096, 4096, n, d, cv);
    let base = k(Op::Spmm, DType::F32, 512, 0.01, 0.1);
    assert_eq!(base, k(Op::Spmm, DType::F32, 600, 0.0105, 0.2));
    assert_ne!(base, k(Op::Spmm, DType::F32, 2048, 0.01, 0.1));
    assert_ne!(base, k(Op::Spmm, DType::F32, 512, 0.05, 0.1));
    assert_ne!(base, k(Op::Spmm, DType::F32, 512, 0.01, 3.0));
    assert_eq!(
        base.distance(&k(Op::SpmmT, DType::F32, 512, 0.01, 0.1)),
        None
    );
    assert_eq!(
        base.distance(&k(Op::Spmm, DType::Bf16, 512, 0.01, 0.1)),
        None
    );
    let far = k(Op::Spmm, DType::F32, 8192, 0.001, 3.0);
    assert_eq!(base.distance(&far), far.distance(&base));
    // Empty shapes and empty matrices still have a key.
    let empty = ProblemKey::new(Op::Sddmm, DType::F16, 0, 0, 0, 0.0, 0.0);
    assert_eq!((empty.m, empty.density), (0, 80));
}

#[test]
fn a_saved_cache_loads_back_equal_and_leaves_no_temporary_file() {
    let dir = scratch("roundtrip");
    let path = dir.join("cache.json");
    let mut cache = TuneCache::new(header());
    for n in [512, 2048, 8192] {
        cache.insert(entry(n, n % CONFIGS));
    }
    cache.insert(entry(512, 5)); // replaces
    assert_eq!(cache.entries().len(), 3);
    cache.save(&path).unwrap();
    let back = TuneCache::load(&path, &header(), exists).unwrap();
    assert_eq!(back, cache);
    let names: Vec<_> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("cache.json")]);
}

#[test]
fn corrupt_caches_are_format_errors() {
    let dir = scratch("corrupt");
    let mut good = TuneCache::new(header());
    good.insert(entry(512, 1));
    let text = serde_json::to_string(&good).unwrap();
    let cases = [
        String::new(),
        "not json".into(),
        text[..text.len() / 2].into(),
        text.replace("\"config\":1", "\"config\":99"),
        text.replace("\"tuned_us\":522.0", "\"tuned_us\":-1.0"),
        text.replace("\"op\":\"spmm\"", "\"op\":\"conv\""),
        text.replace("\"dtype\":\"bf16\"", "\"dtype\":7"),
    ];
    for (i, bad) in cases.iter().enumerate() {
        assert_ne!(bad, &text, "case {i} must change the file");
        let path = dir.join(format!("bad{i}.json"));
        fs::write(&path, bad).unwrap();
        let err = TuneCache::load(&path, &header(), exists).unwrap_err();
        assert!(matches!(err, Error::Format { .. }), "case {i}: {err}");
        assert!(err.to_string().contains(&format!("bad{i}.json")), "{err}");
    }
    let mut twice = good.clone();
    let dup = serde_json::to_string(&twice.entries()[0]).unwrap();
    twice.insert(entry(2048, 2));
    let repeated =
        serde_json::to_string(&twice)
            .unwrap()
            .replacen("},{", &format!("}},{dup},{{"), 1);
    assert!(TuneCache::from_json(&repeated, &dir, exists).is_err());
}

#[test]
fn caches_from_another_device_build_or_schema_are_refused_with_the_reason() {
    let dir = scratch("foreign");
    let path = dir.join("cache.json");
    let mut others = vec![
        CacheHeader::new("build-a", device("NVIDIA H200")),
        CacheHeader::new("build-b", device("NVIDIA H100 80GB HBM3")),
    ];
    let mut old = header();
    old.schema = 0;
    others.push(old);
    for (other, word) in others.into_iter().zip(["device", "build", "schema"]) {
        let mut c = TuneCache::new(other);
        c.insert(entry(512, 1));
        c.save(&path).unwrap();
        let err = TuneCache::load(&path, &header(), exists).unwrap_err();
        assert!(err.to_string().contains(word), "{err}");
    }
}

#[test]
fn lookup_prefers_exact_then_nearest_then_nothing() {
    let (a, b) = (entry(512, 1), entry(8192, 2));
    let mut cache = TuneCache::new(header());
    cache.insert(a.clone());
    cache.insert(b.clone());
    let table = TuneTable::from_caches([&cache]);
    assert_eq!(table.len(), 2);
    assert_eq!(table.lookup(&a.key), Some((1, Source::Exact)));
    let near_a = ProblemKey::new(Op::Spmm, DType::Bf16, 4096, 11008, 1024, 0.006, 0.1);
    assert_eq!(table.lookup(&near_a), Some((1, Source::Nearest)));
    let near_b = ProblemKey::new(Op::Spmm, DType::Bf16, 4096, 11008, 4096, 0.006, 0.1);
    assert_eq!(table.lookup(&near_b), Some((2, Source::Nearest)));
    let far = ProblemKey::new(Op::Spmm, DType::Bf16, 64, 64, 512, 0.5, 4.0);
    assert_eq!(table.lookup(&far), None);
    // What a launch gets: the table's choice when it has one, else the heuristic, which
    // is not even computed while the table answers.
    let never = || -> usize { panic!("the heuristic is not consulted when the table answers") };
    assert_eq!(table.choose(&a.key, never), (1, Source::Exact));
    assert_eq!(table.choose(&near_b, never), (2, Source::Nearest));
    assert_eq!(table.choose(&far, || 4), (4, Source::Heuristic));
    // A later cache (the user's) overrides an earlier one (shipped).
    let mut user = TuneCache::new(header());
    user.insert(entry(512, 7));
    let table = TuneTable::from_caches([&cache, &user]);
    assert_eq!(table.lookup(&a.key), Some((7, Source::Exact)));
}

#[test]
fn concurrent_merges_keep_every_entry_and_a_valid_file() {
    let dir = scratch("concurrent");
    let path = dir.join("cache.json");
    fs::write(&path, "{ torn").unwrap(); // a corrupt file is replaced, not fatal
    std::thread::scope(|s| {
        for t in 0..6usize {
            let path = &path;
            s.spawn(move || {
                for i in 0..10 {
                    let e = entry(16 << ((t * 10 + i) % 40), (t + i) % CONFIGS);
                    TuneCache::merge_into_file(path, &header(), &[e], exists).unwrap();
                }
            });
        }
    });
    let cache = TuneCache::load(&path, &header(), exists).unwrap();
    let mut want: Vec<_> = (0..60usize).map(|x| entry(16 << (x % 40), 0).key).collect();
    want.sort();
    want.dedup();
    let got: Vec<_> = cache.entries().iter().map(|e| e.key).collect();
    assert_eq!(got, want);
}

/// Warnings logged by the library in this test process.
static WARNINGS: Mutex<Vec<String>> = Mutex::new(Vec::new());

struct Capture;

impl log::Log for Capture {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        m.level() <= log::Level::Warn
    }
    fn log(&self, r: &log::Record<'_>) {
        if self.enabled(r.metadata()) {
            WARNINGS.lock().unwrap().push(r.args().to_string());
        }
    }
    fn flush(&self) {}
}

/// Warnings that mention `needle` (tests run in parallel and share the logger).
fn warnings_about(needle: &str) -> Vec<String> {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| {
        log::set_logger(&Capture).unwrap();
        log::set_max_level(log::LevelFilter::Warn);
    });
    let all = WARNINGS.lock().unwrap();
    all.iter().filter(|w| w.contains(needle)).cloned().collect()
}

#[test]
fn a_cache_from_another_build_is_ignored_with_one_warning() {
    warnings_about(""); // installs the logger before anything logs
    let dir = scratch("other-build");
    let name = cache_file_name(&header().device);
    let mut foreign = TuneCache::new(CacheHeader::new("build-b", header().device));
    foreign.insert(entry(512, 1));
    foreign.save(&dir.join(&name)).unwrap();

    let loaded = load_caches(&header(), &[], Some(&dir), exists);
    assert!(loaded.table.is_empty());
    assert_eq!(loaded.files.len(), 1);
    assert_eq!(loaded.files[0].origin, Origin::User);
    match &loaded.files[0].status {
        FileStatus::Ignored(why) => assert!(why.contains("kernel build build-b"), "{why}"),
        other => panic!("a foreign cache was used: {other:?}"),
    }
    let dir_name = dir.to_string_lossy().into_owned();
    let warned = warnings_about(&dir_name);
    assert_eq!(warned.len(), 1, "{warned:?}");
    assert!(warned[0].contains("build"), "{warned:?}");
}

#[test]
fn the_user_cache_overrides_the_shipped_one_and_other_devices_files_are_not_read() {
    let dir = scratch("layers");
    let name = cache_file_name(&header().device);
    let mut shipped = TuneCache::new(header());
    shipped.insert(entry(512, 1));
    shipped.insert(entry(8192, 2));
    let shipped_text = serde_json::to_string(&shipped).unwrap();
    let mut user = TuneCache::new(header());
    user.insert(entry(512, 7));
    user.save(&dir.join(&name)).unwrap();
    // A corrupt file for another GPU in the same directory is none of this device's business.
    fs::write(dir.join("nvidia-h200-sm90.json"), "{ torn").unwrap();

    let caches = [
        (name.as_str(), shipped_text.as_str()),
        ("other-sm80.json", "{"),
    ];
    let loaded = load_caches(&header(), &caches, Some(&dir), exists);
    let origins: Vec<_> = loaded
        .files
        .iter()
        .map(|f| (f.origin, f.status.clone()))
        .collect();
    assert_eq!(
        origins,
        vec![
            (Origin::Shipped, FileStatus::Used { entries: 2 }),
            (Origin::User, FileStatus::Used { entries: 1 }),
        ]
    );
    assert_eq!(
        loaded.table.lookup(&entry(512, 0).key),
        Some((7, Source::Exact))
    );
    assert_eq!(
        loaded.table.lookup(&entry(8192, 0).key),
        Some((2, Source::Exact))
    );
    // A corrupt shipped cache is ignored too, and the user's still serves.
    let broken = [(name.as_str(), "{ not json")];
    let loaded = load_caches(&header(), &broken, Some(&dir), exists);
    assert!(matches!(loaded.files[0].status, FileStatus::Ignored(_)));
    assert_eq!(
        loaded.table.lookup(&entry(512, 0).key),
        Some((7, Source::Exact))
    );
}

/// `rosa tune --mask` on the repository's six MiniLM masks: each mask becomes problems on
/// its own pattern, keyed by its own shape, density and row-length spread (so five skewed
/// masks do not share a key with their uniform twins), one problem per distinct key; the
/// cache written from their entries answers each mask's launch key exactly.
#[test]
fn the_minilm_masks_tune_under_the_keys_their_launches_look_up() {
    use rosa::bench::mask::Mask;
    use rosa::tune::{mask_problems, Effort, RowSkew};
    use rosa::{bf16, random, CsrShape};

    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("data/minilm-rosa-masks");
    let mut paths: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "mtx"))
        .collect();
    paths.sort();
    let masks = Mask::read_all(&paths).unwrap();
    assert_eq!(masks.len(), 6);
    // (name, spread bucket of the row-length CV: BENCHMARKS.md's 2.48, 2.19, 2.26, 1.20,
    // 2.66, 0.68).
    let want = [
        ("layer5.attention.output.dense", 4),
        ("layer5.attention.self.key", 4),
        ("layer5.attention.self.query", 4),
        ("layer5.attention.self.value", 3),
        ("layer5.intermediate.dense", 4),
        ("layer5.output.dense", 2),
    ];
    let dtypes = [DType::F32, DType::Bf16];
    for (mask, (name, spread)) in masks.iter().zip(want) {
        assert_eq!(mask.name(), name);
        let key = ProblemKey::for_matrix(Op::Spmm, DType::F32, mask.pattern(), 512);
        assert_eq!(key.spread, spread, "{name}");
        // Its uniform twin (same shape and density) falls in another spread bucket.
        let a = mask.pattern();
        let twin = random::csr::<f32>(a.rows(), a.cols(), a.density(), 1).unwrap();
        let twin_key = ProblemKey::for_matrix(Op::Spmm, DType::F32, &twin, 512);
        assert!(twin_key.spread < 2, "{name}: {twin_key:?}");
        assert_ne!(key, twin_key, "{name}");
    }

    for (effort, widths) in [(Effort::Quick, 1), (Effort::Full, 3)] {
        let problems = mask_problems(&masks, &Op::ALL, &dtypes, effort);
        // 384x384 at spreads 4 and 3, 1536x384 and 384x1536: four distinct mask keys per
        // op, dtype and width (key and query share output.dense's).
        assert_eq!(problems.len(), 4 * 3 * dtypes.len() * widths, "{effort:?}");
        let mut keys = Vec::new();
        for p in &problems {
            p.validate().unwrap();
            let RowSkew::Mask(mask) = &p.skew else {
                panic!("{p:?} is not on a mask")
            };
            assert!(
                !["layer5.attention.self.key", "layer5.attention.self.query"]
                    .contains(&mask.name())
            );
            let key = p.key().unwrap();
            // The operand the search times: the mask's structure with fresh values, and
            // the key its entry is stored under is this problem's.
            let a32 = p.mask::<f32>(7).unwrap();
            let a16 = p.mask::<bf16>(7).unwrap();
            for (row_ptr, col_idx) in [
                (a32.row_ptr(), a32.col_idx()),
                (a16.row_ptr(), a16.col_idx()),
            ] {
                assert_eq!(row_ptr, mask.pattern().row_ptr());
                assert_eq!(col_idx, mask.pattern().col_idx());
            }
            assert!(a32.values().iter().any(|&v| v != 1.0), "values are fresh");
            assert_eq!(key, ProblemKey::for_matrix(p.op, p.dtype, &a32, p.n));
            assert_eq!((key.op, key.dtype), (p.op, p.dtype));
            keys.push(key);
        }
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), problems.len(), "{effort:?}: a key tuned twice");

        // The cache those entries make, read back, answers every mask's launch exactly
        // (key and query by the entry their bucket shares).
        let path = scratch(&format!("masks-{effort:?}")).join("cache.json");
        let entries: Vec<TuneEntry> = problems
            .iter()
            .map(|p| TuneEntry {
                key: p.key().unwrap(),
                config: 1,
                config_name: "c1".into(),
                tuned_us: 1.0,
                heuristic_us: 2.0,
            })
            .collect();
        TuneCache::merge_into_file(&path, &header(), &entries, exists).unwrap();
        let cache = TuneCache::load(&path, &header(), exists).unwrap();
        let table = TuneTable::from_caches([&cache]);
        for mask in &masks {
            for op in Op::ALL {
                for dtype in dtypes {
                    for &n in effort.widths() {
                        let launch = ProblemKey::for_matrix(op, dtype, mask.pattern(), n);
                        assert_eq!(table.lookup(&launch), Some((1, Source::Exact)));
                    }
                }
            }
        }
        let _ = fs::remove_dir_all(path.parent().unwrap());
    }

    // A problem that claims another shape or density than its mask's is refused.
    let p = &mask_problems(&masks[..1], &[Op::Spmm], &[DType::F32], Effort::Quick)[0];
    for bad in [
        rosa::tune::Problem {
            m: 385,
            ..p.clone()
        },
        rosa::tune::Problem {
            density: 0.02,
            ..p.clone()
        },
    ] {
        assert!(matches!(bad.validate(), Err(Error::InvalidArgument(_))));
        assert!(matches!(bad.mask::<f32>(1), Err(Error::InvalidArgument(_))));
    }
}
