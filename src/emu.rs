//! The CUDA kernels of `csrc/` compiled as host C++ and run by the emulator of
//! `csrc/emu/` (feature `cuda-emu`): the same C ABI, `csrc/rosa_kernels.h`, through the same
//! bindgen bindings as the `cuda` feature, with "device" pointers that are plain host
//! pointers. It exists so that tests can run the real kernel code where no GPU is; it is
//! not a backend (see docs/CUDA.md, "Emulated kernels", for what it does and does not prove).

/// Raw bindings to `csrc/rosa_kernels.h`: the same bindgen output and module file as
/// `rosa::cuda`'s.
#[path = "cuda/sys.rs"]
pub mod sys;

/// A launcher's status as a `Result`: `Ok` for `ROSA_OK`, otherwise the code and its text
/// from `rosa_status_string` (negative: refused arguments; positive: a `cudaError_t`).
pub fn check(code: i32) -> Result<(), (i32, String)> {
    if code == 0 {
        return Ok(());
    }
    // SAFETY: rosa_status_string returns a static NUL-terminated string for every code.
    let text = unsafe { std::ffi::CStr::from_ptr(sys::rosa_status_string(code)) };
    Err((code, text.to_string_lossy().into_owned()))
}
