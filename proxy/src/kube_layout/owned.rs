//! Which iptables chains and jumps are kube-proxy's (and so ours): the
//! fixed top-level chains, the per-service chain prefixes, and the jumps
//! from built-in chains. Everything else in the tables belongs to someone
//! else (kubelet's `KUBE-FIREWALL`, `KUBE-MARK-DROP` and canaries, a
//! firewall) and is never named by a sync or a cleanup.

/// The filter chains kube-proxy owns.
pub const FILTER_CHAINS: [&str; 5] = [
    "KUBE-SERVICES",
    "KUBE-EXTERNAL-SERVICES",
    "KUBE-FORWARD",
    "KUBE-NODEPORTS",
    "KUBE-PROXY-FIREWALL",
];
/// The top-level nat chains kube-proxy owns.
pub const NAT_CHAINS: [&str; 4] = [
    "KUBE-SERVICES",
    "KUBE-NODEPORTS",
    "KUBE-POSTROUTING",
    "KUBE-MARK-MASQ",
];
/// Prefixes of the per-service nat chains.
const NAT_PREFIXES: [&str; 5] = [
    "KUBE-SVC-",
    "KUBE-SVL-",
    "KUBE-EXT-",
    "KUBE-FW-",
    "KUBE-SEP-",
];

/// Whether `chain` of `table` ("filter" or "nat") is one kube-proxy's
/// layout owns (kubelet's `KUBE-FIREWALL`, `KUBE-MARK-DROP` and canaries
/// are not).
pub fn is_ours(table: &str, chain: &str) -> bool {
    match table {
        "filter" => FILTER_CHAINS.contains(&chain),
        "nat" => NAT_CHAINS.contains(&chain) || NAT_PREFIXES.iter().any(|p| chain.starts_with(p)),
        _ => false,
    }
}

/// A jump kube-proxy installs in a built-in chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Jump {
    /// "filter" or "nat".
    pub table: &'static str,
    /// The built-in chain.
    pub chain: &'static str,
    /// Our chain it jumps to.
    pub target: &'static str,
    /// Its comment (identifies it together with chain and target).
    pub comment: &'static str,
    /// Only for new connections (`-m conntrack --ctstate NEW`).
    pub new_only: bool,
}

impl Jump {
    /// The rule after `-A `/`-D `.
    pub fn spec(&self) -> String {
        let ct = if self.new_only {
            "-m conntrack --ctstate NEW "
        } else {
            ""
        };
        format!(
            "{} {ct}-m comment --comment \"{}\" -j {}",
            self.chain, self.comment, self.target
        )
    }
}

const fn jump(
    table: &'static str,
    chain: &'static str,
    target: &'static str,
    comment: &'static str,
    new_only: bool,
) -> Jump {
    Jump {
        table,
        chain,
        target,
        comment,
        new_only,
    }
}

/// The jumps from built-in chains, in kube-proxy's `iptablesJumpChains` order.
pub const JUMPS: [Jump; 12] = [
    jump(
        "filter",
        "INPUT",
        "KUBE-PROXY-FIREWALL",
        "kubernetes load balancer firewall",
        true,
    ),
    jump(
        "filter",
        "INPUT",
        "KUBE-NODEPORTS",
        "kubernetes health check service ports",
        false,
    ),
    jump(
        "filter",
        "INPUT",
        "KUBE-EXTERNAL-SERVICES",
        "kubernetes externally-visible service portals",
        true,
    ),
    jump(
        "filter",
        "FORWARD",
        "KUBE-PROXY-FIREWALL",
        "kubernetes load balancer firewall",
        true,
    ),
    jump(
        "filter",
        "FORWARD",
        "KUBE-FORWARD",
        "kubernetes forwarding rules",
        false,
    ),
    jump(
        "filter",
        "FORWARD",
        "KUBE-SERVICES",
        "kubernetes service portals",
        true,
    ),
    jump(
        "filter",
        "FORWARD",
        "KUBE-EXTERNAL-SERVICES",
        "kubernetes externally-visible service portals",
        true,
    ),
    jump(
        "filter",
        "OUTPUT",
        "KUBE-PROXY-FIREWALL",
        "kubernetes load balancer firewall",
        true,
    ),
    jump(
        "filter",
        "OUTPUT",
        "KUBE-SERVICES",
        "kubernetes service portals",
        true,
    ),
    jump(
        "nat",
        "PREROUTING",
        "KUBE-SERVICES",
        "kubernetes service portals",
        false,
    ),
    jump(
        "nat",
        "OUTPUT",
        "KUBE-SERVICES",
        "kubernetes service portals",
        false,
    ),
    jump(
        "nat",
        "POSTROUTING",
        "KUBE-POSTROUTING",
        "kubernetes postrouting rules",
        false,
    ),
];
