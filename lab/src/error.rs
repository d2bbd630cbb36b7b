//! The lab's error type: every failure names what the lab was doing and, where
//! there is one, what the user can do about it.
use std::path::PathBuf;

/// Why a lab command failed.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// A file or directory operation failed.
    #[error("{what} ({path}): {source}")]
    Io {
        /// What the lab was doing.
        what: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// An external command (`ip`, `strait-cni`) failed.
    #[error("{command} failed: {detail}")]
    Command {
        /// The command line, for the user to re-run by hand.
        command: String,
        /// Its stderr or exit status.
        detail: String,
    },
    /// The CNI plugin returned an error result.
    #[error("strait-cni {command} for pod {pod} failed (code {code}): {msg}{details}")]
    Cni {
        /// ADD or DEL.
        command: &'static str,
        /// The pod, as NAMESPACE/NAME.
        pod: String,
        /// The CNI error code.
        code: u64,
        /// The error message.
        msg: String,
        /// The error details, prefixed with "; " when present.
        details: String,
    },
    /// The manifests could not be loaded.
    #[error("the lab's manifests have errors:\n{0}")]
    Manifests(String),
    /// The state file is unreadable or the lab is in a state that forbids the command.
    #[error("{0}")]
    State(String),
    /// Something the lab needs is missing from this machine.
    #[error("{0}")]
    Prerequisite(String),
    /// A component did not become healthy.
    #[error(
        "{component} did not become ready within {seconds} s; see `strait lab logs {component}`"
    )]
    NotReady {
        /// The component's name (as `lab logs` takes it).
        component: String,
        /// How long the lab waited.
        seconds: u64,
    },
}

impl LabError {
    /// An I/O error with its context.
    pub fn io(
        what: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> LabError {
        let path = path.into();
        move |source| LabError::Io { what, path, source }
    }
}

/// The lab's result type.
pub type Result<T, E = LabError> = std::result::Result<T, E>;
