//! The harness's error type.

use std::io;
use std::time::Duration;

/// Everything the harness can fail with. Tests usually `unwrap()` these; the messages
/// carry the failing command line and its stderr so the unwrap panic explains itself.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An external command (`ip`, ...) exited unsuccessfully.
    #[error("command `{command}` failed ({status}): {stderr}")]
    Command {
        /// The command line that was run.
        command: String,
        /// Its exit status.
        status: String,
        /// What it printed on stderr, trimmed.
        stderr: String,
    },
    /// A system call or file operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What the harness was doing.
        context: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A namespace failed the network-safety check (see [`crate::safety`]).
    #[error("network-safety check failed for netns `{netns}`: {reason}\n\n{rule}", rule = crate::safety::SAFETY_RULE)]
    NotIsolated {
        /// The namespace that was checked.
        netns: String,
        /// Which part of the rule it breaks.
        reason: String,
    },
    /// Something did not happen in time.
    #[error("timed out after {after:?} waiting for {what}")]
    Timeout {
        /// What the harness was waiting for.
        what: String,
        /// How long it waited.
        after: Duration,
    },
    /// A command's output could not be understood.
    #[error("could not parse the output of `{command}`: {detail}")]
    Parse {
        /// The command whose output was parsed.
        command: String,
        /// What was wrong with it.
        detail: String,
    },
    /// The caller passed something the harness refuses (a bad name, a bad CIDR...).
    #[error("invalid argument: {0}")]
    Invalid(String),
}

/// The harness's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Builds a `map_err` adapter that wraps an `io::Error` with context.
pub(crate) fn io_ctx<C: Into<String>>(context: C) -> impl FnOnce(io::Error) -> Error {
    move |source| Error::Io {
        context: context.into(),
        source,
    }
}

/// Same as [`io_ctx`] for nix errors.
pub(crate) fn nix_ctx<C: Into<String>>(context: C) -> impl FnOnce(nix::Error) -> Error {
    move |errno| Error::Io {
        context: context.into(),
        source: io::Error::from(errno),
    }
}

/// Reports a cleanup failure from a `Drop` impl, where it cannot be returned.
/// It goes to the real stderr, past the test harness's output capture, so a cleanup
/// failure in a passing test is still seen.
pub(crate) fn warn_cleanup(what: &str, err: &dyn std::fmt::Display) {
    tracing::warn!(what, error = %err, "strait-tests cleanup failed");
    loud(&format!("strait-tests: cleanup of {what} failed: {err}"));
}

/// Writes a line straight to the process's stderr, bypassing libtest's capture (which
/// only intercepts the `print!` family).
pub(crate) fn loud(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}
