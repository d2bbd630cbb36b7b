//! Strait's network-namespace test harness.
//!
//! Every test that touches the network builds its world out of guards from this crate:
//! [`NetNs`] namespaces joined by [`VethPair`]s and [`Bridge`]s, a [`Cgroup`] for
//! processes and eBPF socket hooks, a private [`Bpffs`] for pins, and [`ChildGuard`]s for
//! processes. Each guard removes what it created on drop, also when the test panics, and
//! [`sweep_stale`] removes what a killed test process left behind (it runs automatically,
//! once per process).
//!
//! Network safety is the default: before a closure ([`NetNs::run`]) or a program
//! ([`NetNs::command`]) runs inside a namespace, the harness checks that the namespace
//! holds only links it created and that nothing routes out of the machine
//! ([`safety::SAFETY_RULE`]).
//!
//! ```no_run
//! use std::time::Duration;
//! use strait_tests::{TcpEcho, require_root, tcp_ask, two_hosts};
//!
//! if !require_root() {
//!     return;
//! }
//! let net = two_hosts().unwrap();
//! let server = TcpEcho::start(&net.b, "backend-b", (net.b_addr, 8080).into()).unwrap();
//! let reply = net.a.run(|| tcp_ask(server.addr(), Duration::from_secs(2))).unwrap();
//! assert_eq!(reply.name, "backend-b");
//! assert_eq!(reply.peer.ip(), net.a_addr);
//! ```

#![deny(missing_docs)]

pub mod bpffs;
pub mod cgroup;
mod cmd;
pub mod echo;
pub mod error;
pub mod exec;
pub mod link;
pub mod mounts;
pub mod names;
pub mod netns;
pub mod root;
pub mod safety;
pub mod sweep;
pub mod topology;

pub use bpffs::{Bpffs, PinGuard};
pub use cgroup::{Cgroup, Cgroup2Root};
pub use echo::{Echo, EchoReply, TcpEcho, UdpEcho, tcp_ask, udp_ask};
pub use error::{Error, Result};
pub use exec::{ChildGuard, NsCommand};
pub use link::{Bridge, VethBuilder, VethEnd, VethPair};
pub use netns::{NetNs, Via};
pub use root::{in_ci, require_root};
pub use safety::SAFETY_RULE;
pub use sweep::{SweepReport, sweep_stale};
pub use topology::{BridgedHosts, Host, TwoHosts, bridged_hosts, two_hosts};
