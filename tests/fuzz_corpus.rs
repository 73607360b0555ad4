//! Replays every seed and minimized crash under `fuzz/corpus/` and `fuzz/regressions/`
//! through the fuzz targets' own checks, so stable `cargo test` guards what the nightly
//! fuzzers found.

#[path = "../fuzz/checks.rs"]
mod checks;

use std::path::Path;

fn files(dir: &Path) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<_> = entries.map(|e| e.unwrap().path()).collect();
    files.sort();
    files
}

#[test]
fn every_corpus_file_passes_its_target_check() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let (mut accepted, mut rejected) = (0, 0);
    let mut failures = Vec::new();
    for &(target, check) in checks::TARGETS {
        let seeds = files(&root.join("corpus").join(target));
        assert!(!seeds.is_empty(), "no seed corpus for {target}");
        for file in seeds
            .iter()
            .chain(&files(&root.join("regressions").join(target)))
        {
            let bytes = std::fs::read(file).unwrap();
            let ok = std::panic::catch_unwind(|| check(&bytes))
                .unwrap_or_else(|_| panic!("{} fails its {target} check", file.display()));
            let name = file.file_name().unwrap().to_string_lossy();
            // Seeds say in their name whether the library must take them.
            if file.starts_with(root.join("corpus")) && ok != name.starts_with("valid-") {
                failures.push(format!("{target}/{name}: accepted = {ok}"));
            }
            if ok {
                accepted += 1;
            } else {
                rejected += 1;
            }
        }
    }
    println!(
        "replayed {} inputs: {accepted} accepted, {rejected} rejected",
        accepted + rejected
    );
    assert!(failures.is_empty(), "seeds whose name lies: {failures:#?}");
    // A floor, so a corpus lost in a move fails loudly rather than replaying nothing.
    assert!(accepted >= 40 && rejected >= 100, "corpus shrank");
}
