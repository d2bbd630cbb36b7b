//! The baselines: the same services written the way kube-proxy writes them.
//!
//! - iptables mode (pkg/proxy/iptables/proxier.go): `KUBE-SERVICES` with one
//!   jump per service port to `KUBE-SVC-<16 chars of base32(sha256)>`, which
//!   marks off-cluster sources for masquerade and picks an endpoint with
//!   `-m statistic --mode random --probability 1/k` into `KUBE-SEP-<hash>`,
//!   which marks hairpin traffic and DNATs; `KUBE-POSTROUTING` masquerades
//!   marked packets; jumps from nat `PREROUTING`, `OUTPUT`, `POSTROUTING` and
//!   the filter chains kube-proxy hooks in.
//! - nftables mode (pkg/proxy/nftables/proxier.go): `table ip kube-proxy`, a
//!   `service-ips` verdict map keyed by `ipv4_addr . inet_proto .
//!   inet_service`, per-service chains `numgen random mod k vmap { ... }`,
//!   per-endpoint chains with `dnat`.
//!
//! Both generators also write the incremental update kube-proxy sends when
//! one endpoint of one service changes.
use std::{fmt::Write as _, net::SocketAddrV4};

use data_encoding::BASE32;
use ring::digest::{SHA256, digest};

/// The cluster CIDR kube-proxy is configured with (`--cluster-cidr`).
pub const CLUSTER_CIDR: &str = "10.244.0.0/16";
/// The service CIDR (nftables mode drops traffic to unallocated ClusterIPs).
pub const SERVICE_CIDR: &str = "10.96.0.0/12";
/// kube-proxy's masquerade mark bit.
const MASQ_MARK: &str = "0x4000";

/// One service port with its endpoints, as kube-proxy sees it.
#[derive(Clone, Debug)]
pub struct Service {
    /// Namespace.
    pub namespace: String,
    /// Service name.
    pub name: String,
    /// Port name.
    pub port_name: String,
    /// ClusterIP and port.
    pub vip: SocketAddrV4,
    /// Endpoints (TCP).
    pub endpoints: Vec<SocketAddrV4>,
}

impl Service {
    /// `ServicePortName.String()`: `ns/name:port`.
    fn port_name_string(&self) -> String {
        format!("{}/{}:{}", self.namespace, self.name, self.port_name)
    }
}

fn base32_sha256(input: &str) -> String {
    BASE32.encode(digest(&SHA256, input.as_bytes()).as_ref())
}

/// `servicePortChainName`: `KUBE-SVC-` + 16 chars of base32(sha256(name + proto)).
pub fn svc_chain(svc: &Service) -> String {
    let h = base32_sha256(&format!("{}tcp", svc.port_name_string()));
    format!("KUBE-SVC-{}", &h[..16])
}

/// `servicePortEndpointChainName`: `KUBE-SEP-` + 16 chars of
/// base32(sha256(name + proto + endpoint)).
pub fn sep_chain(svc: &Service, ep: SocketAddrV4) -> String {
    let h = base32_sha256(&format!("{}tcp{ep}", svc.port_name_string()));
    format!("KUBE-SEP-{}", &h[..16])
}

/// kube-proxy's `probability(n)`: `%0.10f` of 1/n.
fn probability(n: usize) -> String {
    format!("{:.10}", 1.0 / n as f64)
}

/// Chains of the filter table kube-proxy creates.
const FILTER_CHAINS: [&str; 5] = [
    "KUBE-SERVICES",
    "KUBE-EXTERNAL-SERVICES",
    "KUBE-FORWARD",
    "KUBE-NODEPORTS",
    "KUBE-PROXY-FIREWALL",
];
/// Top-level chains of the nat table kube-proxy creates.
const NAT_CHAINS: [&str; 4] = [
    "KUBE-SERVICES",
    "KUBE-NODEPORTS",
    "KUBE-POSTROUTING",
    "KUBE-MARK-MASQ",
];

/// The jumps kube-proxy installs in the built-in chains (table, rule spec).
fn builtin_jumps() -> Vec<(&'static str, String)> {
    vec![
        ("filter", "INPUT -m conntrack --ctstate NEW -m comment --comment \"kubernetes load balancer firewall\" -j KUBE-PROXY-FIREWALL".into()),
        ("filter", "INPUT -m comment --comment \"kubernetes health check service ports\" -j KUBE-NODEPORTS".into()),
        ("filter", "INPUT -m conntrack --ctstate NEW -m comment --comment \"kubernetes externally-visible service portals\" -j KUBE-EXTERNAL-SERVICES".into()),
        ("filter", "FORWARD -m conntrack --ctstate NEW -m comment --comment \"kubernetes load balancer firewall\" -j KUBE-PROXY-FIREWALL".into()),
        ("filter", "FORWARD -m comment --comment \"kubernetes forwarding rules\" -j KUBE-FORWARD".into()),
        ("filter", "FORWARD -m conntrack --ctstate NEW -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES".into()),
        ("filter", "FORWARD -m conntrack --ctstate NEW -m comment --comment \"kubernetes externally-visible service portals\" -j KUBE-EXTERNAL-SERVICES".into()),
        ("filter", "OUTPUT -m conntrack --ctstate NEW -m comment --comment \"kubernetes load balancer firewall\" -j KUBE-PROXY-FIREWALL".into()),
        ("filter", "OUTPUT -m conntrack --ctstate NEW -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES".into()),
        ("nat", "PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES".into()),
        ("nat", "OUTPUT -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES".into()),
        ("nat", "POSTROUTING -m comment --comment \"kubernetes postrouting rules\" -j KUBE-POSTROUTING".into()),
    ]
}

fn filter_body(out: &mut String) {
    for c in FILTER_CHAINS {
        let _ = writeln!(out, ":{c} - [0:0]");
    }
    out.push_str("-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP\n");
    let _ = writeln!(
        out,
        "-A KUBE-FORWARD -m comment --comment \"kubernetes forwarding rules\" -m mark --mark {MASQ_MARK}/{MASQ_MARK} -j ACCEPT"
    );
    out.push_str("-A KUBE-FORWARD -m comment --comment \"kubernetes forwarding conntrack rule\" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n");
}

fn nat_top(out: &mut String, services: &[Service]) {
    let _ = writeln!(
        out,
        "-A KUBE-POSTROUTING -m mark ! --mark {MASQ_MARK}/{MASQ_MARK} -j RETURN"
    );
    let _ = writeln!(out, "-A KUBE-POSTROUTING -j MARK --xor-mark {MASQ_MARK}");
    out.push_str("-A KUBE-POSTROUTING -m comment --comment \"kubernetes service traffic requiring SNAT\" -j MASQUERADE --random-fully\n");
    let _ = writeln!(out, "-A KUBE-MARK-MASQ -j MARK --or-mark {MASQ_MARK}");
    for svc in services {
        let _ = writeln!(
            out,
            "-A KUBE-SERVICES -m comment --comment \"{} cluster IP\" -d {}/32 -p tcp -m tcp --dport {} -j {}",
            svc.port_name_string(),
            svc.vip.ip(),
            svc.vip.port(),
            svc_chain(svc)
        );
    }
    out.push_str("-A KUBE-SERVICES -m comment --comment \"kubernetes service nodeports; NOTE: this must be the last rule in this chain\" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS\n");
}

fn svc_rules(out: &mut String, svc: &Service) {
    let name = svc.port_name_string();
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
                "-A {chain} -m comment --comment \"{name} -> {ep}\" -m statistic --mode random --probability {} -j {sep}",
                probability(n - i)
            );
        } else {
            let _ = writeln!(
                out,
                "-A {chain} -m comment --comment \"{name} -> {ep}\" -j {sep}"
            );
        }
    }
}

fn sep_rules(out: &mut String, svc: &Service, ep: SocketAddrV4) {
    let name = svc.port_name_string();
    let sep = sep_chain(svc, ep);
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

/// The full `iptables-restore --noflush` input of a sync with `services`,
/// including the jumps from the built-in chains.
pub fn iptables_full(services: &[Service]) -> String {
    let mut out = String::with_capacity(services.len() * 2048);
    out.push_str("*filter\n");
    filter_body(&mut out);
    for (table, rule) in builtin_jumps() {
        if table == "filter" {
            let _ = writeln!(out, "-A {rule}");
        }
    }
    out.push_str("COMMIT\n*nat\n");
    for c in NAT_CHAINS {
        let _ = writeln!(out, ":{c} - [0:0]");
    }
    for svc in services {
        let _ = writeln!(out, ":{} - [0:0]", svc_chain(svc));
        for ep in &svc.endpoints {
            let _ = writeln!(out, ":{} - [0:0]", sep_chain(svc, *ep));
        }
    }
    for (table, rule) in builtin_jumps() {
        if table == "nat" {
            let _ = writeln!(out, "-A {rule}");
        }
    }
    nat_top(&mut out, services);
    for svc in services {
        svc_rules(&mut out, svc);
        for ep in &svc.endpoints {
            sep_rules(&mut out, svc, *ep);
        }
    }
    out.push_str("COMMIT\n");
    out
}

/// What kube-proxy (with `MinimizeIPTablesRestore`, the default) writes when
/// `after` replaced `before`, one service: every top-level chain (so all of
/// `KUBE-SERVICES`), the changed `KUBE-SVC` chain, new `KUBE-SEP` chains, and
/// `-X` of the stale ones.
pub fn iptables_change(services_after: &[Service], before: &Service, after: &Service) -> String {
    let mut out = String::with_capacity(services_after.len() * 200);
    out.push_str("*filter\n");
    filter_body(&mut out);
    out.push_str("COMMIT\n*nat\n");
    for c in NAT_CHAINS {
        let _ = writeln!(out, ":{c} - [0:0]");
    }
    let _ = writeln!(out, ":{} - [0:0]", svc_chain(after));
    let new_eps: Vec<_> = after
        .endpoints
        .iter()
        .filter(|e| !before.endpoints.contains(e))
        .copied()
        .collect();
    for ep in &new_eps {
        let _ = writeln!(out, ":{} - [0:0]", sep_chain(after, *ep));
    }
    // Stale chains are declared (which flushes them) and then deleted.
    let stale: Vec<String> = before
        .endpoints
        .iter()
        .filter(|e| !after.endpoints.contains(e))
        .map(|ep| sep_chain(before, *ep))
        .collect();
    for c in &stale {
        let _ = writeln!(out, ":{c} - [0:0]");
    }
    nat_top(&mut out, services_after);
    svc_rules(&mut out, after);
    for ep in &new_eps {
        sep_rules(&mut out, after, *ep);
    }
    for c in &stale {
        let _ = writeln!(out, "-X {c}");
    }
    out.push_str("COMMIT\n");
    out
}

/// Removes exactly what [`iptables_full`] added (after any number of
/// [`iptables_change`]s leading to `services`): the built-in jumps, then the
/// chains.
pub fn iptables_cleanup(services: &[Service]) -> String {
    let mut out = String::new();
    for table in ["filter", "nat"] {
        let _ = writeln!(out, "*{table}");
        for (t, rule) in builtin_jumps() {
            if t == table {
                let _ = writeln!(out, "-D {rule}");
            }
        }
        let mut chains: Vec<String> = if table == "filter" {
            FILTER_CHAINS.iter().map(|c| c.to_string()).collect()
        } else {
            NAT_CHAINS.iter().map(|c| c.to_string()).collect()
        };
        if table == "nat" {
            for svc in services {
                chains.push(svc_chain(svc));
                for ep in &svc.endpoints {
                    chains.push(sep_chain(svc, *ep));
                }
            }
        }
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

/// The nftables table kube-proxy owns.
pub const NFT_TABLE: &str = "kube-proxy";

/// kube-proxy's `hashAndTruncate`: 8 chars of base32(sha256(name)), `-`,
/// the name (our names stay far below the length limit).
fn hash_and_truncate(name: &str) -> String {
    format!("{}-{name}", &base32_sha256(name)[..8])
}

/// `servicePortChainNameBase`: `ns/name/proto/port`, hashed and prefixed.
fn nft_svc_base(svc: &Service) -> String {
    hash_and_truncate(&format!(
        "{}/{}/tcp/{}",
        svc.namespace, svc.name, svc.port_name
    ))
}

/// `servicePortEndpointChainNameBase`: `ns/name/proto/port__ip/port`.
fn nft_ep_base(svc: &Service, ep: SocketAddrV4) -> String {
    hash_and_truncate(&format!(
        "{}/{}/tcp/{}__{}/{}",
        svc.namespace,
        svc.name,
        svc.port_name,
        ep.ip(),
        ep.port()
    ))
}

fn nft_svc_chain(svc: &Service) -> String {
    format!("service-{}", nft_svc_base(svc))
}

fn nft_ep_chain(svc: &Service, ep: SocketAddrV4) -> String {
    format!("endpoint-{}", nft_ep_base(svc, ep))
}

fn nft_service_rules(out: &mut String, svc: &Service) {
    let t = NFT_TABLE;
    let chain = nft_svc_chain(svc);
    let _ = writeln!(
        out,
        "add rule ip {t} {chain} ip daddr {} tcp dport {} ip saddr != {CLUSTER_CIDR} jump mark-for-masquerade",
        svc.vip.ip(),
        svc.vip.port()
    );
    let vmap: Vec<String> = svc
        .endpoints
        .iter()
        .enumerate()
        .map(|(i, ep)| format!("{i} : goto {}", nft_ep_chain(svc, *ep)))
        .collect();
    let _ = writeln!(
        out,
        "add rule ip {t} {chain} numgen random mod {} vmap {{ {} }}",
        svc.endpoints.len(),
        vmap.join(" , ")
    );
}

fn nft_endpoint(out: &mut String, svc: &Service, ep: SocketAddrV4) {
    let t = NFT_TABLE;
    let chain = nft_ep_chain(svc, ep);
    let _ = writeln!(out, "add chain ip {t} {chain}");
    let _ = writeln!(
        out,
        "add rule ip {t} {chain} ip saddr {} jump mark-for-masquerade",
        ep.ip()
    );
    let _ = writeln!(out, "add rule ip {t} {chain} meta l4proto tcp dnat to {ep}");
}

/// The `nft -f` input of kube-proxy's first full sync with `services`.
pub fn nft_full(services: &[Service]) -> String {
    let t = NFT_TABLE;
    let mut out = String::with_capacity(services.len() * 2048);
    let _ = writeln!(
        out,
        "add table ip {t} {{ comment \"rules for kube-proxy\" ; }}"
    );
    let _ = writeln!(out, "add chain ip {t} mark-for-masquerade");
    let _ = writeln!(
        out,
        "add rule ip {t} mark-for-masquerade mark set mark or {MASQ_MARK}"
    );
    let _ = writeln!(out, "add chain ip {t} masquerading");
    let _ = writeln!(
        out,
        "add rule ip {t} masquerading mark and {MASQ_MARK} == 0 return"
    );
    let _ = writeln!(
        out,
        "add rule ip {t} masquerading mark set mark xor {MASQ_MARK}"
    );
    let _ = writeln!(out, "add rule ip {t} masquerading masquerade fully-random");
    for (name, spec) in [
        (
            "filter-prerouting",
            "type filter hook prerouting priority -110",
        ),
        ("filter-input", "type filter hook input priority -110"),
        ("filter-forward", "type filter hook forward priority -110"),
        ("filter-output", "type filter hook output priority -110"),
        (
            "filter-output-post-dnat",
            "type filter hook output priority -90",
        ),
        ("nat-prerouting", "type nat hook prerouting priority -100"),
        ("nat-output", "type nat hook output priority -100"),
        ("nat-postrouting", "type nat hook postrouting priority 100"),
    ] {
        let _ = writeln!(out, "add chain ip {t} {name} {{ {spec} ; }}");
    }
    for name in [
        "services",
        "service-endpoints-check",
        "firewall-check",
        "cluster-ips-check",
        "nodeport-endpoints-check",
    ] {
        let _ = writeln!(out, "add chain ip {t} {name}");
    }
    let _ = writeln!(
        out,
        "add map ip {t} service-ips {{ type ipv4_addr . inet_proto . inet_service : verdict ; comment \"ClusterIP, ExternalIP and LoadBalancer IP traffic\" ; }}"
    );
    let _ = writeln!(
        out,
        "add map ip {t} service-nodeports {{ type inet_proto . inet_service : verdict ; comment \"NodePort traffic\" ; }}"
    );
    let _ = writeln!(
        out,
        "add set ip {t} cluster-ips {{ type ipv4_addr ; comment \"Active ClusterIPs\" ; }}"
    );
    let _ = writeln!(
        out,
        "add map ip {t} no-endpoint-services {{ type ipv4_addr . inet_proto . inet_service : verdict ; comment \"vmap to drop or reject packets to services with no endpoints\" ; }}"
    );
    let _ = writeln!(
        out,
        "add map ip {t} no-endpoint-nodeports {{ type inet_proto . inet_service : verdict ; comment \"vmap to drop or reject packets to service nodeports with no endpoints\" ; }}"
    );
    let _ = writeln!(
        out,
        "add map ip {t} firewall-ips {{ type ipv4_addr . inet_proto . inet_service : verdict ; comment \"destinations that are subject to LoadBalancerSourceRanges\" ; }}"
    );
    for rule in [
        "filter-prerouting ct state new jump firewall-check",
        "filter-input ct state new jump nodeport-endpoints-check",
        "filter-input ct state new jump service-endpoints-check",
        "filter-forward ct state new jump service-endpoints-check",
        "filter-forward ct state new jump cluster-ips-check",
        "filter-output ct state new jump service-endpoints-check",
        "filter-output ct state new jump firewall-check",
        "filter-output-post-dnat ct state new jump cluster-ips-check",
        "nat-prerouting jump services",
        "nat-output jump services",
        "nat-postrouting jump masquerading",
        "services ip daddr . meta l4proto . th dport vmap @service-ips",
        "services fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @service-nodeports",
        "service-endpoints-check ip daddr . meta l4proto . th dport vmap @no-endpoint-services",
        "nodeport-endpoints-check ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @no-endpoint-nodeports",
        "firewall-check ip daddr . meta l4proto . th dport vmap @firewall-ips",
        "cluster-ips-check ip daddr @cluster-ips reject comment \"Reject traffic to invalid ports of ClusterIPs\"",
    ] {
        let _ = writeln!(out, "add rule ip {t} {rule}");
    }
    let _ = writeln!(
        out,
        "add rule ip {t} cluster-ips-check ip daddr {{ {SERVICE_CIDR} }} drop comment \"Drop traffic to unallocated ClusterIPs\""
    );
    for svc in services {
        let chain = nft_svc_chain(svc);
        let _ = writeln!(out, "add chain ip {t} {chain}");
        for ep in &svc.endpoints {
            nft_endpoint(&mut out, svc, *ep);
        }
        nft_service_rules(&mut out, svc);
        let _ = writeln!(
            out,
            "add element ip {t} service-ips {{ {} . tcp . {} : goto {chain} }}",
            svc.vip.ip(),
            svc.vip.port()
        );
        let _ = writeln!(out, "add element ip {t} cluster-ips {{ {} }}", svc.vip.ip());
    }
    out
}

/// kube-proxy's nftables transaction when one service's endpoints change:
/// rewrite the service chain, add new endpoint chains, delete stale ones.
pub fn nft_change(before: &Service, after: &Service) -> String {
    let t = NFT_TABLE;
    let mut out = String::new();
    for ep in after
        .endpoints
        .iter()
        .filter(|e| !before.endpoints.contains(e))
    {
        nft_endpoint(&mut out, after, *ep);
    }
    let chain = nft_svc_chain(after);
    let _ = writeln!(out, "flush chain ip {t} {chain}");
    nft_service_rules(&mut out, after);
    for ep in before
        .endpoints
        .iter()
        .filter(|e| !after.endpoints.contains(e))
    {
        let c = nft_ep_chain(before, *ep);
        let _ = writeln!(out, "flush chain ip {t} {c}");
        let _ = writeln!(out, "delete chain ip {t} {c}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc() -> Service {
        Service {
            namespace: "ns1".into(),
            name: "svc1".into(),
            port_name: "p80".into(),
            vip: "172.30.0.41:80".parse().unwrap(),
            endpoints: vec!["10.180.0.1:80".parse().unwrap()],
        }
    }

    #[test]
    fn chain_names_match_kube_proxy() {
        // Values from kube-proxy's own unit tests (proxier_test.go).
        assert_eq!(svc_chain(&svc()), "KUBE-SVC-XPGD46QRK7WJZT7O");
        assert_eq!(
            sep_chain(&svc(), "10.180.0.1:80".parse().unwrap()),
            "KUBE-SEP-SXIVWICOYRO3J4NJ"
        );
        assert_eq!(nft_svc_chain(&svc()), "service-ULMVA6XW-ns1/svc1/tcp/p80");
        assert_eq!(
            nft_ep_chain(&svc(), "10.180.0.1:80".parse().unwrap()),
            "endpoint-5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80"
        );
    }

    #[test]
    fn probabilities_are_formatted_like_kube_proxy() {
        assert_eq!(probability(5), "0.2000000000");
        assert_eq!(probability(3), "0.3333333333");
    }
}
