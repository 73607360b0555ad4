//! The GPU test binaries' shared device, and their skip rule.

use std::io::Write;
use std::sync::OnceLock;

use rosa::cuda::Device;
use rosa::Error;

/// The shared device, or `None` after printing why the test is skipped.
pub fn device(test: &str) -> Option<&'static Device> {
    static DEV: OnceLock<Result<Device, String>> = OnceLock::new();
    let dev = DEV.get_or_init(|| {
        Device::new(0).map_err(|e| match e {
            Error::NoDevice(why) => why,
            other => other.to_string(),
        })
    });
    match dev {
        Ok(dev) => {
            // A kernel fault leaves a sticky error that every later CUDA call of this
            // process returns: name it here, rather than fail in this test's first launch
            // as if this test were at fault. (The GPU runner gives each kernel family its
            // own process for the same reason.)
            if let Err(e) = dev.synchronize() {
                panic!(
                    "{test}: not run: this process's CUDA context was poisoned by an earlier \
                     fault ({e}); the first failing test is the one to look at"
                );
            }
            Some(dev)
        }
        Err(why) => {
            // Straight to stderr: the test harness captures println!, and a skip must be
            // visible in a plain `cargo test` log.
            let _ = writeln!(std::io::stderr(), "{test}: skipped: no CUDA device ({why})");
            None
        }
    }
}
