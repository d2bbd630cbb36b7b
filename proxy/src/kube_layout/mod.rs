//! kube-proxy's iptables and nftables layouts, generated from the cluster
//! view: the baselines of the proxy benchmark and the `--mode iptables` /
//! `--mode nftables` of the agent (and so `strait lab up --proxy …`), so
//! the eBPF datapath can be compared with what a kube-proxy node would do,
//! rule for rule.
//!
//! - [`model`]: the service ports and kube-proxy's own settings;
//! - [`names`]: kube-proxy's chain and set names (hashes included);
//! - [`iptables`], [`owned`] and [`saved`]: the `iptables-restore` input,
//!   which chains and jumps are ours, and what of ours `iptables-save` shows;
//! - [`nftables`]: the `nft -f` transactions;
//! - [`convert`]: the cluster view as service ports, with the eBPF side's
//!   endpoint selection;
//! - [`program`]: running the tools, reading what exists, cleaning up.
//!
//! Not modelled: `loadBalancerSourceRanges` (`KUBE-FW-*`), topology hints,
//! `--nodeport-addresses`, IPv6, SCTP, and the conntrack flush kube-proxy
//! does for UDP endpoints that go away.
pub(crate) mod agent_loop;
pub mod convert;
pub mod iptables;
pub mod model;
pub mod names;
#[cfg(test)]
mod netns_tests;
pub mod nftables;
pub mod owned;
pub mod program;
pub mod saved;
#[cfg(test)]
mod tests;

pub use convert::service_ports;
pub use model::{Options, Protocol, ServicePort};
pub use program::{IptablesBackend, RulesError, RulesMode, SyncReport};
pub use saved::Existing;
