//! The shared GPU of the CUDA test binaries, or a visible skip where there is none.

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
        Ok(dev) => Some(dev),
        Err(why) => {
            // Straight to stderr: the test harness captures println!, and a skip must be
            // visible in a plain `cargo test` log.
            let _ = writeln!(std::io::stderr(), "{test}: skipped: no CUDA device ({why})");
            None
        }
    }
}
