//! The CUDA emulator's own semantics (feature `cuda-emu`), one test each, through the test
//! kernels of csrc/emu/tests/semantics.cu: per-thread built-ins, the block barrier,
//! `__syncwarp(mask)` waiting for exactly its lanes, the four shuffles with PTX's width and
//! clamping rules, `__shared__` per block, `atomicAdd`, invalid launch configurations, and
//! every misuse abort, each run in a child process (this test binary, re-executed) whose
//! stderr must name the kernel's file:line, block and thread.
#![cfg(feature = "cuda-emu")]

use std::process::Command;

use rosa::emu::test_kernels::*;

const INVALID_CONFIGURATION: i32 = 9; // cudaErrorInvalidConfiguration

#[test]
fn builtins_are_per_thread() {
    let (grid, block) = ([2u32, 3, 2], [4u32, 2, 3]);
    let (blocks, threads) = (12usize, 24usize);
    let mut out = vec![u32::MAX; 12 * blocks * threads];
    // SAFETY: out holds 12 words per thread of the launch.
    assert_eq!(
        unsafe { rosa_emu_test_builtins(grid.as_ptr(), block.as_ptr(), out.as_mut_ptr()) },
        0
    );
    for b in 0..blocks {
        let bi = [b % 2, b / 2 % 3, b / 6].map(|x| x as u32);
        for t in 0..threads {
            let ti = [t % 4, t / 4 % 2, t / 8].map(|x| x as u32);
            let want: Vec<u32> = [ti, bi, block, grid].concat();
            let at = 12 * (b * threads + t);
            assert_eq!(&out[at..at + 12], &want[..], "block {b} thread {t}");
        }
    }
}

#[test]
fn syncthreads_is_a_block_barrier() {
    for (bx, by) in [(1u32, 1u32), (32, 1), (33, 3), (256, 4)] {
        let n = (bx * by) as usize;
        let rounds = 4;
        let mut out = vec![-1i32; n];
        // SAFETY: out holds one word per thread.
        assert_eq!(
            unsafe { rosa_emu_test_barrier(bx, by, rounds, out.as_mut_ptr()) },
            0
        );
        for (t, &got) in out.iter().enumerate() {
            let want: i32 = (0..rounds).map(|r| r * 10000 + ((t + 1) % n) as i32).sum();
            assert_eq!(got, want, "block {bx}x{by} thread {t}");
        }
    }
}

#[test]
fn syncwarp_waits_for_exactly_its_mask() {
    let mut out = vec![-1i32; 32];
    // SAFETY: out holds one word per lane.
    assert_eq!(
        unsafe { rosa_emu_test_syncwarp_halves(out.as_mut_ptr()) },
        0
    );
    for (lane, &got) in out.iter().enumerate() {
        let (rounds, late) = if lane < 16 { (3, 3) } else { (5, 19) };
        let want: i32 = (0..rounds).map(|r| r * 100 + late).sum();
        assert_eq!(got, want, "lane {lane}");
    }
}

/// The source lane of each shuffle, from the CUDA programming guide's rules: lanes form
/// segments of `width`; idx wraps inside the caller's segment, up/down/xor fall back to the
/// caller's own value when the source lies outside it (below for up, above for down/xor).
fn shfl_source(kind: i32, lane: i32, arg: i32, width: i32) -> i32 {
    let seg = lane / width * width;
    match kind {
        0 => seg + arg.rem_euclid(width),
        1 if lane - arg < seg => lane,
        1 => lane - arg,
        2 if lane + arg >= seg + width => lane,
        2 => lane + arg,
        _ if (lane ^ arg) >= seg + width => lane,
        _ => lane ^ arg,
    }
}

#[test]
fn shuffles_follow_width_and_clamping() {
    let mut cases = 0;
    for kind in 0..4 {
        for width in [1, 2, 4, 8, 16, 32] {
            for arg in [0, 1, 2, 3, 5, 7, 8, 15, 16, 17, 31, 33] {
                if kind != 0 && arg > 31 {
                    continue; // up/down deltas and xor masks are lane counts
                }
                let mut out = vec![-1i64; 32];
                // SAFETY: out holds one value per lane.
                assert_eq!(
                    unsafe { rosa_emu_test_shfl(kind, arg, width, out.as_mut_ptr()) },
                    0
                );
                for lane in 0..32 {
                    let src = shfl_source(kind, lane, arg, width) as i64;
                    let want = (src << 40) | (1000 + src);
                    assert_eq!(
                        out[lane as usize], want,
                        "kind {kind} width {width} arg {arg} lane {lane}"
                    );
                }
                cases += 1;
            }
        }
    }
    assert!(cases > 200);
}

#[test]
fn shared_memory_is_per_block() {
    let (blocks, threads) = (7u32, 96u32);
    let mut out = vec![-1i32; (blocks * threads) as usize];
    // SAFETY: out holds one word per thread of the launch.
    assert_eq!(
        unsafe { rosa_emu_test_shared(blocks, threads, out.as_mut_ptr()) },
        0
    );
    for (i, &got) in out.iter().enumerate() {
        assert_eq!(got, i as i32 / threads as i32, "thread {i}");
    }
}

#[test]
fn atomic_add_counts_every_thread() {
    let (mut f, mut d) = (0.25f32, -1.0f64);
    // SAFETY: one f32 and one f64, alive for the (synchronous) launch.
    assert_eq!(unsafe { rosa_emu_test_atomic(5, 200, &mut f, &mut d) }, 0);
    assert_eq!((f, d), (1000.25, 499.0));
}

#[test]
fn invalid_configurations_are_refused() {
    let mut out = [0i32];
    let bad: [([u32; 3], [u32; 3]); 7] = [
        ([1, 1, 1], [0, 1, 1]),
        ([1, 1, 1], [1025, 1, 1]),
        ([1, 1, 1], [32, 32, 2]),
        ([1, 1, 1], [1, 1, 65]),
        ([0, 1, 1], [32, 1, 1]),
        ([1, 65536, 1], [32, 1, 1]),
        ([1, 1, 65536], [32, 1, 1]),
    ];
    for (grid, block) in bad {
        // SAFETY: out is one word, and an invalid launch runs nothing.
        let code = unsafe { rosa_emu_test_config(grid.as_ptr(), block.as_ptr(), out.as_mut_ptr()) };
        assert_eq!(code, INVALID_CONFIGURATION, "grid {grid:?} block {block:?}");
        assert_eq!(out[0], 0, "grid {grid:?} block {block:?} ran");
    }
    // The error was cleared by the launcher's cudaGetLastError: a valid launch succeeds.
    let (grid, block) = ([1u32, 1, 1], [1024u32, 1, 1]);
    // SAFETY: as above; this launch writes out[0].
    assert_eq!(
        unsafe { rosa_emu_test_config(grid.as_ptr(), block.as_ptr(), out.as_mut_ptr()) },
        0
    );
    assert_eq!(out[0], 1);
}

/// The environment variable that makes this binary a child running one misuse.
const CHILD: &str = "ROSA_EMU_MISUSE_CHILD";

/// The misuses of semantics.cu's misuse_kernel: its `which`, the tag of the line that must
/// abort, the message, the thread that must report it, and its block size.
const MISUSES: [(i32, &str, &str, u32); 7] = [
    (0, "own-mask", "lane not in its own mask", 2),
    (1, "exited-lane", "mask names an exited lane", 0),
    (2, "absent-lane", "mask names an absent lane", 0),
    (
        3,
        "shuffle-outside",
        "shuffle reads a lane outside its mask",
        1,
    ),
    (
        4,
        "syncthreads-exited",
        "__syncthreads while a thread of the block has exited",
        0,
    ),
    (5, "deadlock", "deadlock: every live thread waits", 1),
    (6, "misaligned", "misaligned 16-byte __ldg", 0),
];

/// The 1-based line of semantics.cu tagged `// abort: <tag>`.
fn tagged_line(tag: &str) -> usize {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/csrc/emu/tests/semantics.cu");
    let text = std::fs::read_to_string(path).expect("semantics.cu");
    let lines: Vec<usize> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| l.trim_end().ends_with(&format!("// abort: {tag}")))
        .map(|(i, _)| i + 1)
        .collect();
    assert_eq!(lines.len(), 1, "tag {tag} in {path}");
    lines[0]
}

#[test]
fn misuse_aborts_name_line_block_and_thread() {
    if let Ok(which) = std::env::var(CHILD) {
        // The child: this launch must abort the process; returning fails the parent's check.
        let which: i32 = which.parse().expect("misuse number");
        // SAFETY: the misuse kernels touch only their own static buffer.
        let code = unsafe { rosa_emu_test_misuse(which) };
        eprintln!("misuse {which} returned {code} without aborting");
        return;
    }
    let exe = std::env::current_exe().expect("test binary");
    for (which, tag, message, thread) in MISUSES {
        let out = Command::new(&exe)
            .args([
                "--exact",
                "misuse_aborts_name_line_block_and_thread",
                "--test-threads=1",
                "--nocapture",
            ])
            .env(CHILD, which.to_string())
            .output()
            .expect("re-execute the test binary");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let want = format!("semantics.cu:{}: {message}", tagged_line(tag));
        let at = format!("(block (1,0,0), thread ({thread},0,0))");
        assert!(
            !out.status.success(),
            "misuse {tag} did not abort:\n{stderr}"
        );
        let line = stderr
            .lines()
            .find(|l| l.starts_with("cuda-emu: ") && l.contains(&want))
            .unwrap_or_else(|| panic!("misuse {tag}: no `{want}` in stderr:\n{stderr}"));
        assert!(
            line.contains(&at),
            "misuse {tag}: `{line}` does not name {at}"
        );
        if tag == "deadlock" {
            assert!(
                stderr.contains("cuda-emu: wait table:")
                    && stderr.contains("__syncwarp/shfl")
                    && stderr.contains("__syncthreads"),
                "deadlock without its wait table:\n{stderr}"
            );
        }
    }
}
