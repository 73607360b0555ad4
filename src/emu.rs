//! The CUDA kernels of `csrc/` compiled as host C++ and run by the emulator of
//! `csrc/emu/` (feature `cuda-emu`): the same C ABI, `csrc/rosa_kernels.h`, through the same
//! bindgen bindings as the `cuda` feature, with "device" pointers that are plain host
//! pointers. It exists so that tests can run the real kernel code where no GPU is; it is
//! not a backend (see docs/CUDA.md, "Emulated kernels", for what it does and does not prove).
//!
//! Layered as `rosa::cuda`, from the same files (`#[path]`) wherever no cudarc is needed:
//! [`sys`] (the bindings), the checked launch layer (status codes as
//! [`Error::Cuda`](crate::Error::Cuda), parameters built and checked), and on top of it
//! [`raw`], the raw-pointer entry of `rosa::cuda::raw` with [`KernelConfig`]: here its
//! "device" addresses are host pointers and the stream is null.

/// Raw bindings to `csrc/rosa_kernels.h`: the same bindgen output and module file as
/// `rosa::cuda`'s.
#[path = "cuda/sys.rs"]
pub mod sys;

/// The cudarc-free half of `rosa::cuda`'s checked layer, the same file.
#[path = "cuda/launch.rs"]
mod launch;

/// The tile configurations, the same file as `rosa::cuda`'s.
#[path = "cuda/config.rs"]
mod config;

/// `rosa::cuda::raw`, the same file, on the emulated kernels: addresses are host pointers
/// (as `u64`), `stream` is null, and a launch has finished when the call returns.
#[path = "cuda/raw.rs"]
pub mod raw;

pub use config::KernelConfig;

/// A launcher's status as a `Result`: `Ok` for `ROSA_OK`, otherwise the code and its text
/// from `rosa_status_string` (negative: refused arguments; positive: a `cudaError_t`).
pub fn check(code: i32) -> Result<(), (i32, String)> {
    if code == sys::rosa_status::ROSA_OK {
        return Ok(());
    }
    Err((code, launch::status_string(code)))
}

extern "C" {
    fn rosa_emu_poison(p: *const std::ffi::c_void, bytes: usize, poison: i32);
}

/// Marks `bytes` bytes at `p` unaddressable (`poisoned`) or addressable again for
/// AddressSanitizer, when scripts/emu-check.sh built the C++ with it; a no-op otherwise.
/// Tests fence the guard bytes around an operand so that a kernel reading or writing them
/// fails the run, even inside the test's own allocation (ASan poisons whole 8-byte
/// granules, and a suffix of a partial last one, never a prefix).
///
/// # Safety
/// `p .. p + bytes` must lie inside one live allocation, and be unpoisoned before it is
/// freed or touched through instrumented code (the kernels, or libc calls such as memcpy).
pub unsafe fn poison(p: *const u8, bytes: usize, poisoned: bool) {
    // SAFETY: the caller's contract; the runtime only edits ASan's shadow of the range.
    unsafe { rosa_emu_poison(p.cast(), bytes, i32::from(poisoned)) }
}

/// The emulator's own test kernels, csrc/emu/tests/semantics.cu (built only for this
/// feature), for tests/emu_semantics.rs: each launches one kernel on host buffers and
/// returns `cudaGetLastError`. Declared here rather than in the test so that they link
/// like the kernels' bindings, from the crate that links the emulated library.
#[doc(hidden)]
pub mod test_kernels {
    extern "C" {
        pub fn rosa_emu_test_builtins(grid: *const u32, block: *const u32, out: *mut u32) -> i32;
        pub fn rosa_emu_test_barrier(bx: u32, by: u32, rounds: i32, out: *mut i32) -> i32;
        pub fn rosa_emu_test_syncwarp_halves(out: *mut i32) -> i32;
        pub fn rosa_emu_test_shfl(kind: i32, arg: i32, width: i32, out: *mut i64) -> i32;
        pub fn rosa_emu_test_shared(blocks: u32, threads: u32, out: *mut i32) -> i32;
        pub fn rosa_emu_test_atomic(blocks: u32, threads: u32, f: *mut f32, d: *mut f64) -> i32;
        pub fn rosa_emu_test_config(grid: *const u32, block: *const u32, out: *mut i32) -> i32;
        pub fn rosa_emu_test_misuse(which: i32) -> i32;
    }
}
