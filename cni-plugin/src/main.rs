//! `strait-cni`: exec'd by the container runtime. Wires the process's
//! environment, stdin, stdout and exit code to [`strait_cni::run`].

use std::io::{self, IsTerminal, Write};
use std::process::ExitCode;

/// Log filter variable; logs go to stderr, default `warn`.
const LOG_ENV: &str = "STRAIT_CNI_LOG";

fn main() -> ExitCode {
    init_logging();
    let outcome = strait_cni::run(
        |name| std::env::var_os(name),
        || {
            let stdin = io::stdin();
            // A person running the binary by hand gets an answer, not a hang.
            if stdin.is_terminal() {
                Ok(Vec::new())
            } else {
                strait_cni::stdin::read_bounded(stdin.lock())
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
        return ExitCode::from(strait_cni::dispatch::ERROR_EXIT);
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
