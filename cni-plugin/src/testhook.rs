//! A pause point for crash-safety tests: with `STRAIT_CNI_TEST_PAUSE` set
//! to a stage name, the plugin announces the stage on stderr and sleeps
//! there, so a test can `kill -9` it at exactly that point. Unset (always,
//! outside tests) it costs one environment lookup per stage.

use std::io::Write;
use std::time::Duration;

/// The variable naming the stage to pause at.
pub const PAUSE_ENV: &str = "STRAIT_CNI_TEST_PAUSE";

/// How long a paused plugin sleeps before going on by itself, so a test
/// that forgets it never leaves it behind for long.
const PAUSE_FOR: Duration = Duration::from_secs(30);

/// Pause here if the test asked for `stage`.
pub fn pause(stage: &str) {
    if std::env::var_os(PAUSE_ENV).is_some_and(|v| v == stage) {
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "strait-cni: paused at {stage}");
        let _ = err.flush();
        std::thread::sleep(PAUSE_FOR);
    }
}
