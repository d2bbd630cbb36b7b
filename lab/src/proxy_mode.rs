//! Which datapath the lab's node agents program (`strait lab up --proxy`):
//! Strait's eBPF proxy, or kube-proxy's iptables or nftables layout
//! written by the same agent, so both can be compared on the same lab.
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::LabError;

/// The pod CIDR of the whole lab (each node has a /24 of it).
pub const CLUSTER_CIDR: &str = "10.244.0.0/16";
/// The lab's service CIDR (the manifests' ClusterIPs are in it).
pub const SERVICE_CIDR: &str = "10.96.0.0/12";

/// The datapath of the node agents.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProxyMode {
    /// eBPF socket load balancing and tc programs.
    #[default]
    Ebpf,
    /// kube-proxy's iptables layout (iptables-nft).
    Iptables,
    /// kube-proxy's nftables layout (`table ip kube-proxy`).
    Nftables,
}

impl ProxyMode {
    /// The name `--proxy` and `strait agent --mode` take.
    pub fn as_str(self) -> &'static str {
        match self {
            ProxyMode::Ebpf => "ebpf",
            ProxyMode::Iptables => "iptables",
            ProxyMode::Nftables => "nftables",
        }
    }

    /// Whether the agents write kube-proxy rules instead of loading eBPF.
    pub fn is_kube_proxy_layout(self) -> bool {
        self != ProxyMode::Ebpf
    }

    /// One line for `status` and the summary.
    pub fn describe(self) -> &'static str {
        match self {
            ProxyMode::Ebpf => "ebpf (socket load balancing in each node's cgroup, tc on eth0)",
            ProxyMode::Iptables => {
                "iptables (kube-proxy's layout in each node netns, iptables-nft; no eBPF)"
            }
            ProxyMode::Nftables => {
                "nftables (kube-proxy's `table ip kube-proxy` in each node netns; no eBPF)"
            }
        }
    }

    /// The `strait agent` flags of this mode.
    pub fn agent_args(self) -> Vec<String> {
        let mut args = vec!["--mode".to_string(), self.as_str().to_string()];
        if self.is_kube_proxy_layout() {
            args.extend([
                "--cluster-cidr".to_string(),
                CLUSTER_CIDR.to_string(),
                "--service-cidr".to_string(),
                SERVICE_CIDR.to_string(),
            ]);
        }
        args
    }
}

impl fmt::Display for ProxyMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ProxyMode {
    type Err = LabError;

    fn from_str(s: &str) -> Result<ProxyMode, LabError> {
        match s {
            "ebpf" => Ok(ProxyMode::Ebpf),
            "iptables" => Ok(ProxyMode::Iptables),
            "nftables" => Ok(ProxyMode::Nftables),
            other => Err(LabError::Prerequisite(format!(
                "--proxy {other}: choose ebpf, iptables or nftables"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_old_state_files_mean_ebpf() {
        for m in [ProxyMode::Ebpf, ProxyMode::Iptables, ProxyMode::Nftables] {
            assert_eq!(m.as_str().parse::<ProxyMode>().unwrap(), m);
            assert_eq!(serde_json::to_string(&m).unwrap(), format!("\"{m}\""));
        }
        assert!("ipvs".parse::<ProxyMode>().is_err());
        assert_eq!(
            ProxyMode::Iptables.agent_args(),
            [
                "--mode",
                "iptables",
                "--cluster-cidr",
                CLUSTER_CIDR,
                "--service-cidr",
                SERVICE_CIDR
            ]
        );
        assert_eq!(ProxyMode::Ebpf.agent_args(), ["--mode", "ebpf"]);
    }
}
