//! kube-proxy's iptables layout for NodePort services, as
//! pkg/proxy/iptables/proxier.go writes it for `type: NodePort` with
//! `externalTrafficPolicy: Cluster` and `--nodeport-addresses` unset:
//!
//! - `KUBE-SERVICES`: the ClusterIP jumps, then as its last rule
//!   `-m addrtype --dst-type LOCAL -j KUBE-NODEPORTS`;
//! - `KUBE-NODEPORTS`: one `-m tcp -p tcp --dport <nodePort> -j
//!   KUBE-EXT-<hash>` per service port (same hash as its `KUBE-SVC` chain);
//! - `KUBE-EXT-<hash>`: `-j KUBE-MARK-MASQ` ("masquerade traffic for ...
//!   external destinations", the policy is Cluster), then `-j KUBE-SVC-<hash>`;
//! - `KUBE-SVC-*` / `KUBE-SEP-*` as for ClusterIPs ([`super::super::kube`]);
//! - `KUBE-POSTROUTING`: masquerade of marked packets (`--random-fully`);
//! - the filter table's `KUBE-FORWARD` accepting marked and established
//!   traffic, and every jump from the built-in chains kube-proxy installs.
use std::fmt::Write as _;

use super::super::kube::{CLUSTER_CIDR, Service, sep_chain, svc_chain};

/// kube-proxy's masquerade mark bit.
const MASQ_MARK: &str = "0x4000";

/// A service with its node port.
#[derive(Clone, Debug)]
pub struct NodePortService {
    /// ClusterIP, endpoints and names.
    pub svc: Service,
    /// `spec.ports[0].nodePort`.
    pub node_port: u16,
}

/// `ServicePortName.String()`.
fn port_name(svc: &Service) -> String {
    format!("{}/{}:{}", svc.namespace, svc.name, svc.port_name)
}

/// `serviceExternalChainName`: `KUBE-EXT-` + the same hash as `KUBE-SVC-`.
pub fn ext_chain(svc: &Service) -> String {
    svc_chain(svc).replacen("KUBE-SVC-", "KUBE-EXT-", 1)
}

const FILTER_CHAINS: [&str; 5] = [
    "KUBE-SERVICES",
    "KUBE-EXTERNAL-SERVICES",
    "KUBE-FORWARD",
    "KUBE-NODEPORTS",
    "KUBE-PROXY-FIREWALL",
];
const NAT_CHAINS: [&str; 4] = [
    "KUBE-SERVICES",
    "KUBE-NODEPORTS",
    "KUBE-POSTROUTING",
    "KUBE-MARK-MASQ",
];

/// The jumps kube-proxy installs in the built-in chains (table, rule spec).
fn builtin_jumps() -> Vec<(&'static str, &'static str)> {
    vec![
        (
            "filter",
            "INPUT -m conntrack --ctstate NEW -m comment --comment \"kubernetes load balancer firewall\" -j KUBE-PROXY-FIREWALL",
        ),
        (
            "filter",
            "INPUT -m comment --comment \"kubernetes health check service ports\" -j KUBE-NODEPORTS",
        ),
        (
            "filter",
            "INPUT -m conntrack --ctstate NEW -m comment --comment \"kubernetes externally-visible service portals\" -j KUBE-EXTERNAL-SERVICES",
        ),
        (
            "filter",
            "FORWARD -m conntrack --ctstate NEW -m comment --comment \"kubernetes load balancer firewall\" -j KUBE-PROXY-FIREWALL",
        ),
        (
            "filter",
            "FORWARD -m comment --comment \"kubernetes forwarding rules\" -j KUBE-FORWARD",
        ),
        (
            "filter",
            "FORWARD -m conntrack --ctstate NEW -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES",
        ),
        (
            "filter",
            "FORWARD -m conntrack --ctstate NEW -m comment --comment \"kubernetes externally-visible service portals\" -j KUBE-EXTERNAL-SERVICES",
        ),
        (
            "filter",
            "OUTPUT -m conntrack --ctstate NEW -m comment --comment \"kubernetes load balancer firewall\" -j KUBE-PROXY-FIREWALL",
        ),
        (
            "filter",
            "OUTPUT -m conntrack --ctstate NEW -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES",
        ),
        (
            "nat",
            "PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES",
        ),
        (
            "nat",
            "OUTPUT -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES",
        ),
        (
            "nat",
            "POSTROUTING -m comment --comment \"kubernetes postrouting rules\" -j KUBE-POSTROUTING",
        ),
    ]
}

/// The chains of the nat table for `services`, in declaration order.
fn nat_chains(services: &[NodePortService]) -> Vec<String> {
    let mut chains: Vec<String> = NAT_CHAINS.iter().map(|c| c.to_string()).collect();
    for s in services {
        chains.push(svc_chain(&s.svc));
        chains.push(ext_chain(&s.svc));
        for ep in &s.svc.endpoints {
            chains.push(sep_chain(&s.svc, *ep));
        }
    }
    chains
}

/// The full `iptables-restore --noflush` input of kube-proxy's first sync.
pub fn iptables_full(services: &[NodePortService]) -> String {
    let mut out = String::with_capacity(services.len() * 2600);
    out.push_str("*filter\n");
    for c in FILTER_CHAINS {
        let _ = writeln!(out, ":{c} - [0:0]");
    }
    for (table, rule) in builtin_jumps() {
        if table == "filter" {
            let _ = writeln!(out, "-A {rule}");
        }
    }
    out.push_str("-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP\n");
    let _ = writeln!(
        out,
        "-A KUBE-FORWARD -m comment --comment \"kubernetes forwarding rules\" -m mark --mark {MASQ_MARK}/{MASQ_MARK} -j ACCEPT"
    );
    out.push_str("-A KUBE-FORWARD -m comment --comment \"kubernetes forwarding conntrack rule\" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n");
    out.push_str("COMMIT\n*nat\n");
    for c in nat_chains(services) {
        let _ = writeln!(out, ":{c} - [0:0]");
    }
    for (table, rule) in builtin_jumps() {
        if table == "nat" {
            let _ = writeln!(out, "-A {rule}");
        }
    }
    let _ = writeln!(
        out,
        "-A KUBE-POSTROUTING -m mark ! --mark {MASQ_MARK}/{MASQ_MARK} -j RETURN"
    );
    let _ = writeln!(out, "-A KUBE-POSTROUTING -j MARK --xor-mark {MASQ_MARK}");
    out.push_str("-A KUBE-POSTROUTING -m comment --comment \"kubernetes service traffic requiring SNAT\" -j MASQUERADE --random-fully\n");
    let _ = writeln!(out, "-A KUBE-MARK-MASQ -j MARK --or-mark {MASQ_MARK}");
    // proxier.go writes, per service: the KUBE-SERVICES and KUBE-NODEPORTS
    // jumps, then the SVC chain, the EXT chain and the SEP chains. Within a
    // chain only the order of that chain's rules matters, so the layout in
    // the kernel is the same.
    for s in services {
        let svc = &s.svc;
        let name = port_name(svc);
        let _ = writeln!(
            out,
            "-A KUBE-SERVICES -m comment --comment \"{name} cluster IP\" -d {}/32 -p tcp -m tcp --dport {} -j {}",
            svc.vip.ip(),
            svc.vip.port(),
            svc_chain(svc)
        );
        let _ = writeln!(
            out,
            "-A KUBE-NODEPORTS -m comment --comment {name} -m tcp -p tcp --dport {} -j {}",
            s.node_port,
            ext_chain(svc)
        );
    }
    out.push_str("-A KUBE-SERVICES -m comment --comment \"kubernetes service nodeports; NOTE: this must be the last rule in this chain\" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS\n");
    for s in services {
        let svc = &s.svc;
        let name = port_name(svc);
        let chain = svc_chain(svc);
        let _ = writeln!(
            out,
            "-A {chain} -m comment --comment \"{name} cluster IP\" ! -s {CLUSTER_CIDR} -d {}/32 -p tcp -m tcp --dport {} -j KUBE-MARK-MASQ",
            svc.vip.ip(),
            svc.vip.port()
        );
        let n = svc.endpoints.len();
        for (i, ep) in svc.endpoints.iter().enumerate() {
            let sep = sep_chain(svc, *ep);
            if i + 1 < n {
                let _ = writeln!(
                    out,
                    "-A {chain} -m comment --comment \"{name} -> {ep}\" -m statistic --mode random --probability {:.10} -j {sep}",
                    1.0 / (n - i) as f64
                );
            } else {
                let _ = writeln!(
                    out,
                    "-A {chain} -m comment --comment \"{name} -> {ep}\" -j {sep}"
                );
            }
        }
        let ext = ext_chain(svc);
        let _ = writeln!(
            out,
            "-A {ext} -m comment --comment \"masquerade traffic for {name} external destinations\" -j KUBE-MARK-MASQ"
        );
        let _ = writeln!(out, "-A {ext} -j {chain}");
        for ep in &svc.endpoints {
            let sep = sep_chain(svc, *ep);
            let _ = writeln!(
                out,
                "-A {sep} -m comment --comment {name} -s {}/32 -j KUBE-MARK-MASQ",
                ep.ip()
            );
            let _ = writeln!(
                out,
                "-A {sep} -m comment --comment {name} -m tcp -p tcp -j DNAT --to-destination {ep}"
            );
        }
    }
    out.push_str("COMMIT\n");
    out
}

/// Removes exactly what [`iptables_full`] added: the built-in jumps, then
/// every chain (flushed first, so references between them are gone).
pub fn iptables_cleanup(services: &[NodePortService]) -> String {
    let mut out = String::new();
    for table in ["filter", "nat"] {
        let _ = writeln!(out, "*{table}");
        for (t, rule) in builtin_jumps() {
            if t == table {
                let _ = writeln!(out, "-D {rule}");
            }
        }
        let chains: Vec<String> = if table == "filter" {
            FILTER_CHAINS.iter().map(|c| c.to_string()).collect()
        } else {
            nat_chains(services)
        };
        for c in &chains {
            let _ = writeln!(out, "-F {c}");
        }
        for c in &chains {
            let _ = writeln!(out, "-X {c}");
        }
        out.push_str("COMMIT\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc() -> NodePortService {
        NodePortService {
            svc: Service {
                namespace: "ns1".into(),
                name: "svc1".into(),
                port_name: "p80".into(),
                vip: "172.30.0.41:80".parse().unwrap(),
                endpoints: vec!["10.180.0.1:80".parse().unwrap()],
            },
            node_port: 3001,
        }
    }

    #[test]
    fn nodeport_rules_match_kube_proxy() {
        // Expected lines from kube-proxy's proxier_test.go (ns1/svc1:p80,
        // nodePort 3001, Cluster policy).
        let rules = iptables_full(&[svc()]);
        for line in [
            "-A KUBE-NODEPORTS -m comment --comment ns1/svc1:p80 -m tcp -p tcp --dport 3001 -j KUBE-EXT-XPGD46QRK7WJZT7O",
            "-A KUBE-EXT-XPGD46QRK7WJZT7O -m comment --comment \"masquerade traffic for ns1/svc1:p80 external destinations\" -j KUBE-MARK-MASQ",
            "-A KUBE-EXT-XPGD46QRK7WJZT7O -j KUBE-SVC-XPGD46QRK7WJZT7O",
            "-A KUBE-SEP-SXIVWICOYRO3J4NJ -m comment --comment ns1/svc1:p80 -m tcp -p tcp -j DNAT --to-destination 10.180.0.1:80",
        ] {
            assert!(rules.lines().any(|l| l == line), "missing {line}");
        }
        let last_services = rules
            .lines()
            .rfind(|l| l.starts_with("-A KUBE-SERVICES"))
            .unwrap();
        assert!(last_services.ends_with("-m addrtype --dst-type LOCAL -j KUBE-NODEPORTS"));
        let cleanup = iptables_cleanup(&[svc()]);
        assert!(cleanup.contains("-X KUBE-EXT-XPGD46QRK7WJZT7O\n"));
    }
}
