//! `scripts/gpu-run.sh`, the GPU machine's runner, on this GPU-less machine against stub
//! bundles: shell scripts in place of the test binaries, `rosa` and `gpu_step`, that
//! answer as the real ones do without a device (and, when asked, take a while first).
//! What must hold there holds here: every GPU step is reported, as failed for want of a
//! device; the global deadline turns the steps it cannot start into `NOT RUN` lines and
//! cuts the one it catches short; `summary.txt` is written; at most 8 files land in
//! `$OUT`, the device tool's limit.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// A fresh folder under the system's temp dir, removed on drop.
struct Tmp(PathBuf);

impl Tmp {
    fn new(tag: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("rosa-gpu-runner-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Tmp(dir)
    }
}

impl Drop for Tmp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const TESTS: [&str; 7] = [
    "lib",
    "gpu_kernels",
    "gpu_train",
    "gpu_tune",
    "gpu_baselines",
    "gpu_embed",
    "cli",
];

fn write_exe(path: &Path, body: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, format!("#!/bin/sh\n{body}")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// A bundle folder whose programs behave as the real ones do where there is no GPU: the
/// test binaries (after $STUB_SLEEP seconds) print the skip line and pass; `rosa info`
/// says there is no GPU, every other `rosa` command and `gpu_step` fail saying why.
fn stub_bundle(dir: &Path) {
    std::fs::create_dir_all(dir.join("tests")).unwrap();
    for t in TESTS {
        write_exe(
            &dir.join("tests").join(t),
            "sleep \"${STUB_SLEEP:-0}\"\n\
             echo \"$0: skipped: no CUDA device (stub: no driver)\"\n\
             echo 'test result: ok. 1 passed'\n",
        );
    }
    write_exe(
        &dir.join("rosa"),
        "if [ \"$*\" = info ]; then echo 'gpu: none (stub: no driver)'; exit 0; fi\n\
         echo 'error: no CUDA device: stub: no driver' >&2\nexit 1\n",
    );
    write_exe(
        &dir.join("gpu_step"),
        "echo 'gpu_step: skipped: no CUDA device (stub: no driver)' >&2\n",
    );
    std::fs::write(dir.join("MANIFEST"), "commit:    stub\n").unwrap();
}

fn runner(bundle: &Path, out: &Path, args: &[&str], sleep: u32) -> (Output, Duration) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/gpu-run.sh");
    let t0 = Instant::now();
    let output = Command::new("bash")
        .arg(script)
        .arg("--bundle")
        .arg(bundle)
        .args(args)
        .env("OUT", out)
        .env("STUB_SLEEP", sleep.to_string())
        .env("ROSA_GPU_MIN_STEP", "1")
        .output()
        .expect("bash runs the runner");
    (output, t0.elapsed())
}

/// The lines of summary.txt, and the files in `out`.
fn results(out: &Path) -> (Vec<String>, Vec<String>) {
    let summary = std::fs::read_to_string(out.join("summary.txt")).expect("summary.txt is written");
    let files = std::fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    (summary.lines().map(String::from).collect(), files)
}

fn line<'a>(lines: &'a [String], step: &str) -> &'a str {
    lines
        .iter()
        .find(|l| l.starts_with(step))
        .unwrap_or_else(|| panic!("no line for {step:?} in\n{}", lines.join("\n")))
}

/// Without a device every GPU step runs and fails, saying why, well within a minute; the
/// bundle is the xz tarball the bundle script makes (packed here with Python's tarfile).
#[test]
fn without_a_gpu_every_gpu_step_fails_for_want_of_a_device() {
    let tmp = Tmp::new("nodev");
    let (dir, out) = (tmp.0.join("stage"), tmp.0.join("out"));
    stub_bundle(&dir);
    let tarball = tmp.0.join("gpu-bundle.tar.xz");
    let packed = Command::new("python3")
        .args([
            "-c",
            "import sys, tarfile\nwith tarfile.open(sys.argv[2], 'w:xz') as t: t.add(sys.argv[1], arcname='.')",
        ])
        .arg(&dir)
        .arg(&tarball)
        .status()
        .expect("python3 packs the stub bundle");
    assert!(packed.success());
    let (output, took) = runner(&tarball, &out, &[], 0);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(took < Duration::from_secs(60), "took {took:?}");
    let (lines, files) = results(&out);
    assert!(line(&lines, "unpack bundle").contains("PASS"), "{lines:?}");
    assert!(line(&lines, "machine facts").contains("PASS"), "{lines:?}");
    for step in [
        "ceilings",
        "kernels: spmm ",
        "kernels: spmm_t",
        "kernels: sddmm",
        "kernels: launchers",
        "raw C ABI tests",
        "layer, elementwise, AdamW",
        "bench bf16 (headline)",
        "bench f32 (headline)",
        "training step",
        "rosa tune --quick",
        "baselines tests",
        "tuner and cache lookup",
        "rosa tune --quick (MiniLM RoSA masks)",
    ] {
        let l = line(&lines, step);
        assert!(
            l.contains(" FAIL ") && l.contains("no CUDA device"),
            "{step}: {l}"
        );
    }
    // Nothing exported, so nothing for PyTorch; no sanitizer here, so no sanitizer step.
    assert!(line(&lines, "PyTorch on the same matrices").contains("FAIL"));
    for step in ["memcheck:", "racecheck:", "synccheck:"] {
        assert!(line(&lines, step).contains("SKIPPED"), "{step}");
    }
    assert!(!lines.iter().any(|l| l.contains("NOT RUN")), "{lines:?}");
    assert!(files.len() <= 8, "{files:?}");
    assert!(files.contains(&"tests.log".to_string()), "{files:?}");
    // The logs hold what the steps printed.
    let tests_log = std::fs::read_to_string(out.join("tests.log")).unwrap();
    assert!(
        tests_log.contains("skipped: no CUDA device (stub"),
        "{tests_log}"
    );
}

/// A short deadline: the step it catches is killed at the deadline (TIMEOUT), every later
/// one is reported NOT RUN, and the run ends soon after the deadline.
#[test]
fn a_short_deadline_reports_the_steps_it_could_not_start_as_not_run() {
    let tmp = Tmp::new("deadline");
    let (dir, out) = (tmp.0.join("bundle"), tmp.0.join("out"));
    stub_bundle(&dir);
    // The test binaries take a minute: the first kernel step starts within a few seconds
    // (more on a loaded machine: the deadline counts from the script's start) and is cut
    // at the deadline, 15 s in.
    let (output, took) = runner(&dir, &out, &["--deadline", "15"], 60);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(took < Duration::from_secs(45), "took {took:?}: {stdout}");
    let (lines, files) = results(&out);
    assert!(line(&lines, "machine facts").contains("PASS"), "{lines:?}");
    let not_run: Vec<&String> = lines.iter().filter(|l| l.contains("NOT RUN")).collect();
    assert!(not_run.len() >= 10, "{lines:?}");
    for step in [
        "bench f32 (headline)",
        "training step",
        "tuner and cache lookup",
        "rosa tune --quick (MiniLM RoSA masks)",
    ] {
        assert!(line(&lines, step).contains("NOT RUN"), "{step}: {lines:?}");
    }
    assert!(
        line(&lines, "kernels: spmm ").contains("TIMEOUT"),
        "the step running at the deadline is cut: {lines:?}"
    );
    assert!(files.len() <= 8, "{files:?}");
}

#[test]
fn a_bad_part_or_deadline_is_a_usage_error() {
    let tmp = Tmp::new("usage");
    let (dir, out) = (tmp.0.join("bundle"), tmp.0.join("out"));
    stub_bundle(&dir);
    for args in [&["--part", "3"][..], &["--deadline", "soon"][..]] {
        let (output, _) = runner(&dir, &out, args, 0);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
    }
}
