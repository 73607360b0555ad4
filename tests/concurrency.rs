//! The library under concurrent use: kernels called from many threads at once, panics in
//! user closures, atomic file writes, and tuning-cache merges from separate processes.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::process::Command;

use rosa::tune::{CacheHeader, DeviceFingerprint, ProblemKey, TuneCache, TuneEntry};
use rosa::{cpu, io, random, Csr, CsrShape, DType, Dense, Op};

/// spmm, spmm_t and sddmm on one fixed problem: rows are short (no heavy-row split, whose
/// parallel reduction order may vary), so results are bit-identical run to run.
fn products(a: &Csr<f32>, b: &Dense<f32>, bt: &Dense<f32>) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let mut c = Dense::zeros(a.rows(), b.cols());
    cpu::spmm(1.0, a.as_ref(), b.as_ref(), 0.0, c.as_mut()).unwrap();
    let mut ct = Dense::zeros(a.cols(), bt.cols());
    cpu::spmm_t(
        0.5,
        a.as_ref(),
        &a.transpose_plan(),
        bt.as_ref(),
        0.0,
        ct.as_mut(),
    )
    .unwrap();
    let (l, r) = (
        random::dense::<f32>(a.rows(), 8, 3),
        random::dense::<f32>(a.cols(), 8, 4),
    );
    let mut mask = a.clone();
    cpu::sddmm(1.0, l.as_ref(), r.as_ref(), 0.0, mask.as_mut()).unwrap();
    (c.into_vec(), ct.into_vec(), mask.values().to_vec())
}

fn problem() -> (Csr<f32>, Dense<f32>, Dense<f32>) {
    let a = random::csr::<f32>(300, 200, 0.05, 1).unwrap();
    (a, random::dense(200, 16, 2), random::dense(300, 16, 5))
}

#[test]
fn kernels_on_many_threads_match_serial_results() {
    let (a, b, bt) = problem();
    let serial = products(&a, &b, &bt);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..6)
            .map(|_| s.spawn(|| (0..5).map(|_| products(&a, &b, &bt)).collect::<Vec<_>>()))
            .collect();
        for h in handles {
            for got in h.join().unwrap() {
                assert!(
                    got == serial,
                    "a concurrent call differs from the serial one"
                );
            }
        }
    });
}

#[test]
fn a_panic_in_user_code_leaves_the_library_usable() {
    let (a, b, bt) = problem();
    let serial = products(&a, &b, &bt);
    std::thread::scope(|s| {
        // Panics inside closures the library calls, on threads of their own...
        let from_fn = s.spawn(|| {
            Dense::<f32>::from_fn(4, 4, |i, _| if i == 2 { panic!("user") } else { 0.0 })
        });
        let from_dense = s.spawn(|| {
            let d = random::dense::<f32>(8, 8, 1);
            Csr::from_dense(
                d.as_ref(),
                |i, _, _| if i == 5 { panic!("user") } else { true },
            )
        });
        // ...and inside the rayon pool the kernels share, while kernels run beside them.
        let pool = s.spawn(|| {
            rayon::scope(|r| {
                r.spawn(|_| panic!("user code in a rayon scope"));
            })
        });
        let busy = s.spawn(|| products(&a, &b, &bt));
        assert!(from_fn.join().is_err() && from_dense.join().is_err() && pool.join().is_err());
        assert!(busy.join().unwrap() == serial);
    });
    // The same thread, after catching a panic that unwound through the library.
    let caught = catch_unwind(AssertUnwindSafe(|| {
        let d = random::dense::<f32>(3, 3, 1);
        Csr::from_dense(d.as_ref(), |_, _, _| panic!("user"))
    }));
    assert!(caught.is_err());
    assert!(products(&a, &b, &bt) == serial);
    let on_other = std::thread::spawn(move || products(&a, &b, &bt));
    assert!(on_other.join().unwrap() == serial);
}

#[test]
fn concurrent_writes_to_one_path_are_never_torn() {
    let dir = std::env::temp_dir().join(format!("rosa-concurrency-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("a.mtx");
    let versions: Vec<Csr<f32>> = (0..3)
        .map(|s| random::csr(40, 40, 0.2, s).unwrap())
        .collect();
    io::write_mtx(&path, &versions[0]).unwrap();
    std::thread::scope(|s| {
        for v in &versions {
            let path = &path;
            s.spawn(move || (0..10).for_each(|_| io::write_mtx(path, v).unwrap()));
        }
        for _ in 0..2 {
            s.spawn(|| {
                for _ in 0..20 {
                    let got = io::read_mtx::<f32>(&path).unwrap();
                    assert!(versions.contains(&got), "read a torn or mixed file");
                }
            });
        }
    });
    std::fs::remove_dir_all(&dir).unwrap();
}

const CHILD_ENV: &str = "ROSA_MERGE_CHILD";
const CHILDREN: usize = 3;
const MERGES: usize = 15;

fn header() -> CacheHeader {
    let device = DeviceFingerprint {
        name: "concurrency".into(),
        compute_capability: (9, 0),
        sm_count: 132,
        memory_bytes: 1 << 36,
        driver_version: 13000,
    };
    CacheHeader::new("concurrency", device)
}

fn entry(child: usize, i: usize) -> TuneEntry {
    let n = 1 << (child * MERGES + i);
    TuneEntry {
        key: ProblemKey::new(Op::Spmm, DType::F32, 4096, 4096, n, 0.01, 0.1),
        config: i % 4,
        config_name: format!("child{child}-{i}"),
        tuned_us: 1.0 + i as f64,
        heuristic_us: 2.0 + i as f64,
    }
}

fn exists(_: Op, i: usize) -> bool {
    i < 4
}

/// Not a test: the body of one child process of
/// `processes_merging_one_cache_keep_every_entry`, selected by `ROSA_MERGE_CHILD`.
#[test]
#[ignore = "child process of processes_merging_one_cache_keep_every_entry"]
fn merge_child() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let (child, path) = spec.split_once(':').unwrap();
    let child: usize = child.parse().unwrap();
    for i in 0..MERGES {
        TuneCache::merge_into_file(Path::new(path), &header(), &[entry(child, i)], exists).unwrap();
    }
}

#[test]
fn processes_merging_one_cache_keep_every_entry() {
    let dir = std::env::temp_dir().join(format!("rosa-merge-procs-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("cache.json");
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..CHILDREN)
        .map(|c| {
            Command::new(&exe)
                .args([
                    "merge_child",
                    "--exact",
                    "--ignored",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(CHILD_ENV, format!("{c}:{}", path.display()))
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success(), "a merging process failed");
    }
    let cache = TuneCache::load(&path, &header(), exists).unwrap();
    let mut want: Vec<_> = (0..CHILDREN)
        .flat_map(|c| (0..MERGES).map(move |i| entry(c, i)))
        .collect();
    want.sort_by_key(|e| e.key);
    assert_eq!(cache.entries(), &want[..]);
    std::fs::remove_dir_all(&dir).unwrap();
}
