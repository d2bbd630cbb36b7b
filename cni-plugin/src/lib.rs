//! The Strait CNI plugin: the protocol side of `strait-cni`.
//!
//! The container runtime execs the plugin once per pod network operation,
//! with the parameters in `CNI_*` environment variables and the network
//! configuration on stdin; the plugin answers with one JSON document on
//! stdout and its exit code (CNI specification 1.1). Logs go to stderr only,
//! because anything else on stdout would corrupt the answer.
//!
//! This first piece is the complete protocol skeleton: every command's input
//! is validated exactly as the spec requires ([`env`](mod@env), [`config`]), `VERSION`
//! is answered ([`version`]), errors carry the spec's codes ([`error`]), and
//! the commands whose networking work is not built yet (`ADD`, `DEL`,
//! `CHECK`, `STATUS`, `GC`) fail with code 100 after validation
//! ([`dispatch`]). The binary is a thin wrapper around [`run`].

pub mod config;
pub mod dispatch;
pub mod env;
pub mod error;
pub mod stdin;
pub mod version;

pub use config::{ConfigError, NetworkConfig, ValidAttachment};
pub use dispatch::{Outcome, run};
pub use env::{Attach, CniArgs, Command, Detach, EnvError, Invocation, Probe};
pub use error::{CniError, ErrorCode};
pub use version::{CniVersion, VersionInfo};
