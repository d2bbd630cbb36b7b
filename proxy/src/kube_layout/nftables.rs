//! The `nft -f` transactions of kube-proxy's nftables mode
//! (`pkg/proxy/nftables/proxier.go`): everything lives in `table ip
//! kube-proxy`. Verdict maps (`service-ips`, `service-nodeports`) send
//! traffic to per-service chains (`service-*` for the cluster policy,
//! `local-*` for the local policy, `external-*` for NodePort, external and
//! load balancer IPs), which pick an endpoint chain (`endpoint-*`, DNAT)
//! with `numgen random` after checking `affinity-*` sets; the
//! `no-endpoint-*` maps reject or drop traffic to services without
//! (local) endpoints.
//!
//! [`full`] writes the whole table in one transaction the way a kube-proxy
//! full sync does: every chain and map is added and flushed, then
//! refilled; affinity sets are added but not flushed, so ClientIP affinity
//! survives a sync; chains and sets that went stale are deleted. Nothing
//! outside the table is touched.
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use super::model::{MASQ_MARK, Options, ServicePort};
use super::names::{
    nft_affinity_set, nft_cluster_chain, nft_endpoint_chain, nft_external_chain, nft_local_chain,
};

/// The table kube-proxy owns.
pub const TABLE: &str = "kube-proxy";

/// Our table's chains and sets as they exist now.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NftExisting {
    /// The table exists.
    pub table: bool,
    /// Its chains.
    pub chains: BTreeSet<String>,
    /// Its sets (maps not included).
    pub sets: BTreeSet<String>,
}

impl NftExisting {
    /// Parses `nft -j list table ip kube-proxy`.
    pub fn parse_json(text: &str) -> Result<NftExisting, String> {
        let v: serde_json::Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let items = v["nftables"]
            .as_array()
            .ok_or("no \"nftables\" array in the listing")?;
        let mut out = NftExisting::default();
        for item in items {
            let name = |kind: &str| item[kind]["name"].as_str().map(str::to_owned);
            if item.get("table").is_some() {
                out.table = true;
            } else if let Some(n) = name("chain") {
                out.chains.insert(n);
            } else if let Some(n) = name("set") {
                out.sets.insert(n);
            }
        }
        Ok(out)
    }
}

/// One element of a map or set.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Element {
    map: &'static str,
    key: String,
    comment: Option<String>,
    /// Verdict (`goto X`, `drop`), empty for a set.
    value: String,
}

impl Element {
    fn add(&self) -> String {
        let comment = self
            .comment
            .as_ref()
            .map(|c| format!(" comment \"{c}\""))
            .unwrap_or_default();
        let value = if self.value.is_empty() {
            String::new()
        } else {
            format!(" : {}", self.value)
        };
        format!(
            "add element ip {TABLE} {} {{ {}{comment}{value} }}",
            self.map, self.key
        )
    }

    fn delete(&self) -> String {
        format!("delete element ip {TABLE} {} {{ {} }}", self.map, self.key)
    }
}

/// Everything one service port contributes.
#[derive(Default)]
struct PortObjects {
    /// Chains with their rule bodies (after `add rule ip kube-proxy CHAIN `).
    chains: Vec<(String, Vec<String>)>,
    /// Affinity sets and their timeout in seconds.
    sets: Vec<(String, u32)>,
    elements: Vec<Element>,
}

/// Affinity lookups, then the `numgen` pick.
fn to_endpoints(sp: &ServicePort, endpoints: &[std::net::SocketAddrV4]) -> Vec<String> {
    let mut out = Vec::new();
    if sp.affinity_seconds.is_some() {
        for ep in endpoints {
            out.push(format!(
                "ip saddr @{} goto {}",
                nft_affinity_set(sp, *ep),
                nft_endpoint_chain(sp, *ep)
            ));
        }
    }
    let vmap: Vec<String> = endpoints
        .iter()
        .enumerate()
        .map(|(i, ep)| format!("{i} : goto {}", nft_endpoint_chain(sp, *ep)))
        .collect();
    out.push(format!(
        "numgen random mod {} vmap {{ {} }}",
        endpoints.len(),
        vmap.join(" , ")
    ));
    out
}

fn port_objects(sp: &ServicePort, opts: &Options) -> PortObjects {
    let mut o = PortObjects::default();
    let name = sp.name_string();
    let p = sp.proto();
    let (cip, port) = (sp.cluster_ip, sp.port);
    let cluster_chain = nft_cluster_chain(sp);
    let local_chain = nft_local_chain(sp);
    let ext = nft_external_chain(sp);
    let (internal_chain, external_policy_chain) = sp.policy_chains(&cluster_chain, &local_chain);
    let reject = "goto reject-chain".to_string();
    let (internal_verdict, external_verdict) = if !sp.has_endpoints() {
        (Some(reject.clone()), Some(reject))
    } else {
        (
            (!sp.has_internal_endpoints()).then(|| "drop".to_string()),
            (!sp.has_external_endpoints()).then(|| "drop".to_string()),
        )
    };
    let element = |map, key: String, value: String, comment: bool| Element {
        map,
        key,
        comment: comment.then(|| name.clone()),
        value,
    };

    o.elements.push(element(
        "cluster-ips",
        cip.to_string(),
        String::new(),
        false,
    ));
    let key = format!("{cip} . {p} . {port}");
    match &internal_verdict {
        None => o.elements.push(element(
            "service-ips",
            key,
            format!("goto {internal_chain}"),
            false,
        )),
        Some(v) => o
            .elements
            .push(element("no-endpoint-services", key, v.clone(), true)),
    }
    for ip in sp.external_ips.iter().chain(&sp.load_balancer_ips) {
        let key = format!("{ip} . {p} . {port}");
        if sp.has_endpoints() {
            o.elements.push(element(
                "service-ips",
                key.clone(),
                format!("goto {ext}"),
                false,
            ));
        }
        if let Some(v) = &external_verdict {
            o.elements
                .push(element("no-endpoint-services", key, v.clone(), true));
        }
    }
    if let Some(node_port) = sp.node_port {
        let key = format!("{p} . {node_port}");
        if sp.has_endpoints() {
            o.elements.push(element(
                "service-nodeports",
                key.clone(),
                format!("goto {ext}"),
                false,
            ));
        }
        if let Some(v) = &external_verdict {
            o.elements
                .push(element("no-endpoint-nodeports", key, v.clone(), true));
        }
    }

    let mut cluster_rules = Vec::new();
    let mut local_rules = Vec::new();
    if internal_verdict.is_none()
        && let Some(cidr) = opts.cluster_cidr
    {
        let masq =
            format!("ip daddr {cip} {p} dport {port} ip saddr != {cidr} jump mark-for-masquerade");
        if sp.internal_local {
            local_rules.push(masq);
        } else {
            cluster_rules.push(masq);
        }
    }
    if sp.uses_external_chain() {
        let mut rules = Vec::new();
        if !sp.external_policy_local() {
            rules.push("jump mark-for-masquerade".to_string());
        } else {
            if let Some(cidr) = opts.cluster_cidr {
                rules.push(format!(
                    "ip saddr {cidr} goto {cluster_chain} comment \"short-circuit pod traffic\""
                ));
            }
            rules.push(
                "fib saddr type local jump mark-for-masquerade comment \"masquerade local traffic\""
                    .to_string(),
            );
            rules.push(format!(
                "fib saddr type local goto {cluster_chain} comment \"short-circuit local traffic\""
            ));
        }
        if sp.has_external_endpoints() {
            rules.push(format!("goto {external_policy_chain}"));
        }
        o.chains.push((ext, rules));
    }
    if sp.uses_cluster_chain() {
        cluster_rules.extend(to_endpoints(sp, &sp.cluster_endpoints));
        o.chains.push((cluster_chain, cluster_rules));
    }
    if sp.uses_local_chain() {
        local_rules.extend(to_endpoints(sp, &sp.local_endpoints));
        o.chains.push((local_chain, local_rules));
    }
    for ep in sp.reachable_endpoints() {
        let mut rules = vec![format!("ip saddr {} jump mark-for-masquerade", ep.ip())];
        if let Some(seconds) = sp.affinity_seconds {
            let set = nft_affinity_set(sp, ep);
            rules.push(format!("update @{set} {{ ip saddr }}"));
            o.sets.push((set, seconds));
        }
        rules.push(format!("meta l4proto {p} dnat to {ep}"));
        o.chains.push((nft_endpoint_chain(sp, ep), rules));
    }
    o
}

/// The chains, maps and rules every kube-proxy table has.
fn base(out: &mut String, opts: &Options) {
    let t = TABLE;
    let _ = writeln!(
        out,
        "add table ip {t} {{ comment \"rules for kube-proxy\" ; }}"
    );
    let hooks = [
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
    ];
    let plain = [
        "mark-for-masquerade",
        "masquerading",
        "services",
        "service-endpoints-check",
        "firewall-check",
        "cluster-ips-check",
        "nodeport-endpoints-check",
    ];
    for (name, spec) in hooks {
        let _ = writeln!(out, "add chain ip {t} {name} {{ {spec} ; }}");
    }
    for name in plain {
        let _ = writeln!(out, "add chain ip {t} {name}");
    }
    let _ = writeln!(
        out,
        "add chain ip {t} reject-chain {{ comment \"helper for @no-endpoint-services / @no-endpoint-nodeports\" ; }}"
    );
    for name in hooks
        .iter()
        .map(|(n, _)| *n)
        .chain(plain)
        .chain(["reject-chain"])
    {
        let _ = writeln!(out, "flush chain ip {t} {name}");
    }
    for (kind, name, spec) in [
        (
            "map",
            "service-ips",
            "type ipv4_addr . inet_proto . inet_service : verdict ; comment \"ClusterIP, ExternalIP and LoadBalancer IP traffic\"",
        ),
        (
            "map",
            "service-nodeports",
            "type inet_proto . inet_service : verdict ; comment \"NodePort traffic\"",
        ),
        (
            "set",
            "cluster-ips",
            "type ipv4_addr ; comment \"Active ClusterIPs\"",
        ),
        (
            "map",
            "no-endpoint-services",
            "type ipv4_addr . inet_proto . inet_service : verdict ; comment \"vmap to drop or reject packets to services with no endpoints\"",
        ),
        (
            "map",
            "no-endpoint-nodeports",
            "type inet_proto . inet_service : verdict ; comment \"vmap to drop or reject packets to service nodeports with no endpoints\"",
        ),
        (
            "map",
            "firewall-ips",
            "type ipv4_addr . inet_proto . inet_service : verdict ; comment \"destinations that are subject to LoadBalancerSourceRanges\"",
        ),
    ] {
        let _ = writeln!(out, "add {kind} ip {t} {name} {{ {spec} ; }}");
        let _ = writeln!(out, "flush {kind} ip {t} {name}");
    }
    for rule in [
        format!("mark-for-masquerade mark set mark or {MASQ_MARK}"),
        format!("masquerading mark and {MASQ_MARK} == 0 return"),
        format!("masquerading mark set mark xor {MASQ_MARK}"),
        "masquerading masquerade fully-random".into(),
        "filter-prerouting ct state new jump firewall-check".into(),
        "filter-input ct state new jump nodeport-endpoints-check".into(),
        "filter-input ct state new jump service-endpoints-check".into(),
        "filter-forward ct state new jump service-endpoints-check".into(),
        "filter-forward ct state new jump cluster-ips-check".into(),
        "filter-output ct state new jump service-endpoints-check".into(),
        "filter-output ct state new jump firewall-check".into(),
        "filter-output-post-dnat ct state new jump cluster-ips-check".into(),
        "nat-prerouting jump services".into(),
        "nat-output jump services".into(),
        "nat-postrouting jump masquerading".into(),
        "services ip daddr . meta l4proto . th dport vmap @service-ips".into(),
        "services fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @service-nodeports".into(),
        "service-endpoints-check ip daddr . meta l4proto . th dport vmap @no-endpoint-services".into(),
        "nodeport-endpoints-check ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @no-endpoint-nodeports".into(),
        "firewall-check ip daddr . meta l4proto . th dport vmap @firewall-ips".into(),
        "cluster-ips-check ip daddr @cluster-ips reject comment \"Reject traffic to invalid ports of ClusterIPs\"".into(),
        "reject-chain reject".into(),
    ] {
        let _ = writeln!(out, "add rule ip {t} {rule}");
    }
    if let Some(cidr) = opts.service_cidr {
        let _ = writeln!(
            out,
            "add rule ip {t} cluster-ips-check ip daddr {{ {cidr} }} drop comment \"Drop traffic to unallocated ClusterIPs\""
        );
    }
}

/// Adds the port's sets and chains, flushes the chains, writes their rules.
fn write_port(out: &mut String, o: &PortObjects) {
    let t = TABLE;
    for (set, seconds) in &o.sets {
        let _ = writeln!(
            out,
            "add set ip {t} {set} {{ type ipv4_addr ; flags dynamic,timeout ; timeout {seconds}s ; }}"
        );
    }
    for (chain, _) in &o.chains {
        let _ = writeln!(out, "add chain ip {t} {chain}");
    }
    for (chain, _) in &o.chains {
        let _ = writeln!(out, "flush chain ip {t} {chain}");
    }
    for (chain, rules) in &o.chains {
        for rule in rules {
            let _ = writeln!(out, "add rule ip {t} {chain} {rule}");
        }
    }
}

/// Flushes, then deletes, chains and deletes sets that are no longer used.
fn remove_stale<'a>(
    out: &mut String,
    chains: impl IntoIterator<Item = &'a String> + Clone,
    sets: impl IntoIterator<Item = &'a String>,
) {
    let t = TABLE;
    for c in chains.clone() {
        let _ = writeln!(out, "flush chain ip {t} {c}");
    }
    for c in chains {
        let _ = writeln!(out, "delete chain ip {t} {c}");
    }
    for s in sets {
        let _ = writeln!(out, "delete set ip {t} {s}");
    }
}

/// One transaction that makes the table hold exactly `services`, given
/// what `existing` says the table holds now.
pub fn full(services: &[ServicePort], opts: &Options, existing: &NftExisting) -> String {
    let objects: Vec<PortObjects> = services.iter().map(|sp| port_objects(sp, opts)).collect();
    let mut out = String::with_capacity(services.len() * 2048);
    base(&mut out, opts);
    let active_chains: BTreeSet<&str> = objects
        .iter()
        .flat_map(|o| o.chains.iter().map(|(c, _)| c.as_str()))
        .collect();
    let active_sets: BTreeSet<&str> = objects
        .iter()
        .flat_map(|o| o.sets.iter().map(|(s, _)| s.as_str()))
        .collect();
    // Only per-service chains (their names have a '/') and affinity sets
    // can go stale; the base objects were just re-added.
    let stale_chains: Vec<&String> = existing
        .chains
        .iter()
        .filter(|c| c.contains('/') && !active_chains.contains(c.as_str()))
        .collect();
    let stale_sets: Vec<&String> = existing
        .sets
        .iter()
        .filter(|s| s.starts_with("affinity-") && !active_sets.contains(s.as_str()))
        .collect();
    for o in &objects {
        write_port(&mut out, o);
    }
    let mut seen = BTreeSet::new();
    for e in objects.iter().flat_map(|o| &o.elements) {
        if seen.insert((e.map, e.key.clone())) {
            let _ = writeln!(out, "{}", e.add());
        }
    }
    remove_stale(&mut out, stale_chains, stale_sets);
    out
}

/// kube-proxy's partial sync when one service port changed from `before`
/// to `after`: its chains rewritten, map elements that differ replaced,
/// chains and sets it no longer uses deleted.
pub fn change(before: &ServicePort, after: &ServicePort, opts: &Options) -> String {
    let (b, a) = (port_objects(before, opts), port_objects(after, opts));
    let mut out = String::new();
    write_port(&mut out, &a);
    let keyed = |o: &PortObjects| -> BTreeMap<(&'static str, String), Element> {
        o.elements
            .iter()
            .map(|e| ((e.map, e.key.clone()), e.clone()))
            .collect()
    };
    let (old, new) = (keyed(&b), keyed(&a));
    for (k, e) in &old {
        if new.get(k) != Some(e) {
            let _ = writeln!(out, "{}", e.delete());
        }
    }
    for (k, e) in &new {
        if old.get(k) != Some(e) {
            let _ = writeln!(out, "{}", e.add());
        }
    }
    let now: BTreeSet<&String> = a.chains.iter().map(|(c, _)| c).collect();
    let sets_now: BTreeSet<&String> = a.sets.iter().map(|(s, _)| s).collect();
    let stale: Vec<&String> = b
        .chains
        .iter()
        .map(|(c, _)| c)
        .filter(|c| !now.contains(c))
        .collect();
    let stale_sets = b
        .sets
        .iter()
        .map(|(s, _)| s)
        .filter(|s| !sets_now.contains(s));
    remove_stale(&mut out, stale, stale_sets);
    out
}

/// Removes our table (and with it everything in it), if it exists.
pub fn cleanup(existing: &NftExisting) -> String {
    if existing.table {
        format!("delete table ip {TABLE}\n")
    } else {
        String::new()
    }
}
