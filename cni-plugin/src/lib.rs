//! The Strait CNI plugin: the protocol side of `strait-cni`.
//!
//! The container runtime execs the plugin once per pod network operation,
//! with the parameters in `CNI_*` environment variables and the network
//! configuration on stdin; the plugin answers with one JSON document on
//! stdout and its exit code (CNI specification 1.1). Logs go to stderr only,
//! because anything else on stdout would corrupt the answer.
//!
//! Every command's input is validated exactly as the spec requires
//! ([`env`](mod@env), [`config`], [`options`]) before a handler runs
//! ([`dispatch`], [`commands`]). `ADD` allocates from the built-in IPAM
//! ([`ipam`]) and wires the pod in routed, bridge or vxlan mode
//! ([`wiring`]) over netlink ([`netlink`], [`netns`]); `DEL`, `CHECK`, `STATUS` and `GC` undo, verify
//! and report on the same state. Errors carry the spec's codes ([`error`]).
//! In a conflist, the previous plugins' result is honoured ([`chain`]).
//! Both binaries (`strait-cni`, and `strait-ipam`, the IPAM alone as a CNI
//! IPAM plugin: [`ipam::plugin`]) are thin wrappers around [`cli::main`].

#![deny(missing_docs)]

pub mod chain;
pub mod cli;
pub mod commands;
pub mod config;
pub mod conflist;
pub mod dispatch;
pub mod env;
pub mod error;
pub mod ipam;
pub mod names;
/// The rtnetlink client, shared with the agent (crate `strait-netlink`).
pub use strait_netlink as netlink;
pub mod netns;
pub mod options;
pub mod result;
pub mod stdin;
pub mod testhook;
pub mod version;
pub mod wiring;

pub use config::{ConfigError, NetworkConfig, ValidAttachment};
pub use dispatch::{Outcome, run};
pub use env::{Attach, CniArgs, Command, Detach, EnvError, Invocation, Probe};
pub use error::{CniError, ErrorCode};
pub use version::{CniVersion, VersionInfo};
