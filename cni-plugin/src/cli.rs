//! The process side shared by both binaries (`strait-cni`, `strait-ipam`):
//! logging to stderr, stdin read bounded, the answer written to stdout and
//! the exit code. Kept in one place so both plugins behave identically
//! towards the runtime.

use std::io::{self, IsTerminal, Write};
use std::process::ExitCode;

use crate::dispatch::{ERROR_EXIT, Handler, run_with};

/// Log filter variable; logs go to stderr, default `warn`.
pub const LOG_ENV: &str = "STRAIT_CNI_LOG";

/// Run one call of the plugin `handler` implements, as a process: read the
/// environment and stdin, print the answer, return the exit code.
pub fn main(handler: Handler) -> ExitCode {
    init_logging();
    let outcome = run_with(
        handler,
        |name| std::env::var_os(name),
        || {
            let stdin = io::stdin();
            // A person running the binary by hand gets an answer, not a hang.
            if stdin.is_terminal() {
                Ok(Vec::new())
            } else {
                crate::stdin::read_bounded(stdin.lock())
            }
        },
    );
    let mut stdout = io::stdout().lock();
    if stdout
        .write_all(outcome.stdout.as_bytes())
        .and_then(|()| stdout.flush())
        .is_err()
    {
        // The runtime is gone or closed the pipe; nothing more can be said.
        return ExitCode::from(ERROR_EXIT);
    }
    ExitCode::from(outcome.exit_code)
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env(LOG_ENV)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    // Ignore failure: a second subscriber cannot exist in this process.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(io::stderr)
        .with_ansi(false)
        .try_init();
}
