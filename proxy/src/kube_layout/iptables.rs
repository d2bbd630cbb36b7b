//! The `iptables-restore --noflush` input of kube-proxy's iptables mode
//! (`pkg/proxy/iptables/proxier.go`, v1.28+ layout):
//!
//! - filter: `KUBE-SERVICES` REJECTs ClusterIPs without endpoints,
//!   `KUBE-EXTERNAL-SERVICES` REJECTs/DROPs external destinations without
//!   (local) endpoints, `KUBE-NODEPORTS` ACCEPTs health check node ports,
//!   `KUBE-FORWARD` accepts marked and established traffic;
//! - nat: `KUBE-SERVICES` jumps per ClusterIP to the internal policy chain
//!   (`KUBE-SVC-*` or, for `internalTrafficPolicy: Local`, `KUBE-SVL-*`) and
//!   per external IP and load balancer IP to `KUBE-EXT-*`, and ends with
//!   `addrtype LOCAL -j KUBE-NODEPORTS`; `KUBE-EXT-*` masquerades (Cluster
//!   policy) or short-circuits pod and node traffic and keeps the client
//!   address (Local policy); `KUBE-SVC-*`/`KUBE-SVL-*` pick an endpoint with
//!   `-m recent` affinity and `-m statistic` probabilities; `KUBE-SEP-*`
//!   marks hairpin traffic and DNATs; `KUBE-POSTROUTING` masquerades marked
//!   packets.
//!
//! Every sync rewrites the top-level chains; [`restore`] rewrites the
//! per-service chains of all or of only the changed services (kube-proxy's
//! partial sync), declares and deletes stale chains, and appends only the
//! jumps from built-in chains that are missing. [`cleanup`] removes what
//! [`Existing`] lists and nothing else.
use std::collections::BTreeSet;
use std::fmt::Write as _;

use super::model::{MASQ_MARK, Options, ServicePort};
use super::names::{ext_chain, probability, sep_chain, svc_chain, svl_chain};
pub use super::owned::{FILTER_CHAINS, JUMPS, Jump, NAT_CHAINS, is_ours};
use super::saved::Existing;

/// `--comment X`, quoted when X has spaces (as kube-proxy writes it).
fn comment(text: &str) -> String {
    if text.contains(' ') {
        format!("-m comment --comment \"{text}\"")
    } else {
        format!("-m comment --comment {text}")
    }
}

/// Everything one service port contributes.
#[derive(Default)]
struct PortRules {
    /// `-A ...` lines of the filter table's top-level chains.
    filter: Vec<String>,
    /// `-A ...` lines of nat `KUBE-SERVICES` and `KUBE-NODEPORTS`.
    nat_top: Vec<String>,
    /// The port's own nat chains with their `-A ...` lines.
    chains: Vec<(String, Vec<String>)>,
}

/// `-m recent` affinity checks, then the probability cascade.
fn to_endpoints(
    sp: &ServicePort,
    chain: &str,
    endpoints: &[std::net::SocketAddrV4],
) -> Vec<String> {
    let name = sp.name_string();
    let mut out = Vec::new();
    if let Some(seconds) = sp.affinity_seconds {
        for ep in endpoints {
            let sep = sep_chain(sp, *ep);
            out.push(format!(
                "-A {chain} {} -m recent --name {sep} --rcheck --seconds {seconds} --reap -j {sep}",
                comment(&format!("{name} -> {ep}"))
            ));
        }
    }
    let n = endpoints.len();
    for (i, ep) in endpoints.iter().enumerate() {
        let sep = sep_chain(sp, *ep);
        let stat = if i + 1 < n {
            format!(
                " -m statistic --mode random --probability {}",
                probability(n - i)
            )
        } else {
            String::new()
        };
        out.push(format!(
            "-A {chain} {}{stat} -j {sep}",
            comment(&format!("{name} -> {ep}"))
        ));
    }
    out
}

fn port_rules(sp: &ServicePort, opts: &Options) -> PortRules {
    let mut r = PortRules::default();
    let name = sp.name_string();
    let p = sp.proto();
    let (cip, port) = (sp.cluster_ip, sp.port);
    let cluster_chain = svc_chain(sp);
    let local_chain = svl_chain(sp);
    let ext = ext_chain(sp);
    let (internal_chain, external_policy_chain) = sp.policy_chains(&cluster_chain, &local_chain);
    let (internal_filter, external_filter) = if !sp.has_endpoints() {
        let c = format!("{name} has no endpoints");
        (Some((c.clone(), "REJECT")), Some((c, "REJECT")))
    } else {
        let c = format!("{name} has no local endpoints");
        (
            (!sp.has_internal_endpoints()).then(|| (c.clone(), "DROP")),
            (!sp.has_external_endpoints()).then_some((c, "DROP")),
        )
    };

    match &internal_filter {
        None => r.nat_top.push(format!(
            "-A KUBE-SERVICES {} -m {p} -p {p} -d {cip} --dport {port} -j {internal_chain}",
            comment(&format!("{name} cluster IP"))
        )),
        Some((c, target)) => r.filter.push(format!(
            "-A KUBE-SERVICES {} -m {p} -p {p} -d {cip} --dport {port} -j {target}",
            comment(c)
        )),
    }
    for (ips, what) in [
        (&sp.external_ips, "external IP"),
        (&sp.load_balancer_ips, "loadbalancer IP"),
    ] {
        for ip in ips {
            if sp.has_endpoints() {
                r.nat_top.push(format!(
                    "-A KUBE-SERVICES {} -m {p} -p {p} -d {ip} --dport {port} -j {ext}",
                    comment(&format!("{name} {what}"))
                ));
            }
            if let Some((c, target)) = &external_filter {
                r.filter.push(format!(
                    "-A KUBE-EXTERNAL-SERVICES {} -m {p} -p {p} -d {ip} --dport {port} -j {target}",
                    comment(c)
                ));
            }
        }
    }
    if let Some(node_port) = sp.node_port {
        if sp.has_endpoints() {
            r.nat_top.push(format!(
                "-A KUBE-NODEPORTS {} -m {p} -p {p} --dport {node_port} -j {ext}",
                comment(&name)
            ));
        }
        if let Some((c, target)) = &external_filter {
            r.filter.push(format!(
                "-A KUBE-EXTERNAL-SERVICES {} -m addrtype --dst-type LOCAL -m {p} -p {p} --dport {node_port} -j {target}",
                comment(c)
            ));
        }
    }
    if let Some(hc) = sp.health_check_node_port {
        r.filter.push(format!(
            "-A KUBE-NODEPORTS {} -m tcp -p tcp --dport {hc} -j ACCEPT",
            comment(&format!("{name} health check node port"))
        ));
    }

    // The per-port chains. Rules of one chain are collected in order.
    let mut cluster_rules = Vec::new();
    let mut local_rules = Vec::new();
    if internal_filter.is_none()
        && let Some(cidr) = opts.cluster_cidr
    {
        // Off-cluster traffic to the VIP may leave the node again: masquerade.
        let masq = format!(
            "-A {internal_chain} {} -m {p} -p {p} -d {cip} --dport {port} ! -s {cidr} -j KUBE-MARK-MASQ",
            comment(&format!("{name} cluster IP"))
        );
        if sp.internal_local {
            local_rules.push(masq);
        } else {
            cluster_rules.push(masq);
        }
    }
    if sp.uses_external_chain() {
        let mut rules = Vec::new();
        if !sp.external_policy_local() {
            rules.push(format!(
                "-A {ext} {} -j KUBE-MARK-MASQ",
                comment(&format!(
                    "masquerade traffic for {name} external destinations"
                ))
            ));
        } else {
            if let Some(cidr) = opts.cluster_cidr {
                rules.push(format!(
                    "-A {ext} {} -s {cidr} -j {cluster_chain}",
                    comment(&format!("pod traffic for {name} external destinations"))
                ));
            }
            rules.push(format!(
                "-A {ext} {} -m addrtype --src-type LOCAL -j KUBE-MARK-MASQ",
                comment(&format!(
                    "masquerade LOCAL traffic for {name} external destinations"
                ))
            ));
            rules.push(format!(
                "-A {ext} {} -m addrtype --src-type LOCAL -j {cluster_chain}",
                comment(&format!(
                    "route LOCAL traffic for {name} external destinations"
                ))
            ));
        }
        if sp.has_external_endpoints() {
            rules.push(format!("-A {ext} -j {external_policy_chain}"));
        }
        r.chains.push((ext.clone(), rules));
    }
    if sp.uses_cluster_chain() {
        cluster_rules.extend(to_endpoints(sp, &cluster_chain, &sp.cluster_endpoints));
        r.chains.push((cluster_chain.clone(), cluster_rules));
    }
    if sp.uses_local_chain() {
        local_rules.extend(to_endpoints(sp, &local_chain, &sp.local_endpoints));
        r.chains.push((local_chain.clone(), local_rules));
    }
    for ep in sp.reachable_endpoints() {
        let sep = sep_chain(sp, ep);
        let c = comment(&name);
        let recent = match sp.affinity_seconds {
            Some(_) => format!(" -m recent --name {sep} --set"),
            None => String::new(),
        };
        r.chains.push((
            sep.clone(),
            vec![
                format!("-A {sep} {c} -s {} -j KUBE-MARK-MASQ", ep.ip()),
                format!("-A {sep} {c}{recent} -m {p} -p {p} -j DNAT --to-destination {ep}"),
            ],
        ));
    }
    r
}

/// The nat chains a full sync of `services` leaves, top-level ones included.
pub fn nat_chains(services: &[ServicePort], opts: &Options) -> BTreeSet<String> {
    let mut out: BTreeSet<String> = NAT_CHAINS.iter().map(|c| c.to_string()).collect();
    for sp in services {
        out.extend(port_rules(sp, opts).chains.into_iter().map(|(c, _)| c));
    }
    out
}

/// The restore input that brings the tables to `services`.
///
/// `existing` is what the tables hold now (its stale chains are declared,
/// which flushes them, and deleted; its built-in jumps are not added
/// twice). `only`: rewrite just these services' own chains (the others are
/// unchanged in the kernel); `None` rewrites all.
pub fn restore(
    services: &[ServicePort],
    opts: &Options,
    existing: &Existing,
    only: Option<&[ServicePort]>,
) -> String {
    let rules: Vec<PortRules> = services.iter().map(|sp| port_rules(sp, opts)).collect();
    let write = |sp: &ServicePort| only.is_none_or(|o| o.iter().any(|c| c.key() == sp.key()));
    let mut out = String::with_capacity(services.len() * 2048);

    out.push_str("*filter\n");
    for c in FILTER_CHAINS {
        let _ = writeln!(out, ":{c} - [0:0]");
    }
    for j in JUMPS
        .iter()
        .filter(|j| j.table == "filter" && !existing.has_jump(j))
    {
        let _ = writeln!(out, "-A {}", j.spec());
    }
    out.push_str("-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP\n");
    let _ = writeln!(
        out,
        "-A KUBE-FORWARD -m comment --comment \"kubernetes forwarding rules\" -m mark --mark {MASQ_MARK}/{MASQ_MARK} -j ACCEPT"
    );
    out.push_str("-A KUBE-FORWARD -m comment --comment \"kubernetes forwarding conntrack rule\" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n");
    for r in &rules {
        for line in &r.filter {
            let _ = writeln!(out, "{line}");
        }
    }
    out.push_str("COMMIT\n*nat\n");

    let mut active: BTreeSet<&str> = NAT_CHAINS.into_iter().collect();
    for r in &rules {
        active.extend(r.chains.iter().map(|(c, _)| c.as_str()));
    }
    let stale: Vec<&String> = existing
        .nat_chains
        .iter()
        .filter(|c| !active.contains(c.as_str()))
        .collect();
    for c in NAT_CHAINS {
        let _ = writeln!(out, ":{c} - [0:0]");
    }
    for (sp, r) in services.iter().zip(&rules) {
        if write(sp) {
            for (c, _) in &r.chains {
                let _ = writeln!(out, ":{c} - [0:0]");
            }
        }
    }
    for c in &stale {
        let _ = writeln!(out, ":{c} - [0:0]");
    }
    for j in JUMPS
        .iter()
        .filter(|j| j.table == "nat" && !existing.has_jump(j))
    {
        let _ = writeln!(out, "-A {}", j.spec());
    }
    let _ = writeln!(
        out,
        "-A KUBE-POSTROUTING -m mark ! --mark {MASQ_MARK}/{MASQ_MARK} -j RETURN"
    );
    let _ = writeln!(out, "-A KUBE-POSTROUTING -j MARK --xor-mark {MASQ_MARK}");
    out.push_str("-A KUBE-POSTROUTING -m comment --comment \"kubernetes service traffic requiring SNAT\" -j MASQUERADE --random-fully\n");
    let _ = writeln!(out, "-A KUBE-MARK-MASQ -j MARK --or-mark {MASQ_MARK}");
    for r in &rules {
        for line in &r.nat_top {
            let _ = writeln!(out, "{line}");
        }
    }
    out.push_str("-A KUBE-SERVICES -m comment --comment \"kubernetes service nodeports; NOTE: this must be the last rule in this chain\" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS\n");
    for (sp, r) in services.iter().zip(&rules) {
        if write(sp) {
            for line in r.chains.iter().flat_map(|(_, lines)| lines) {
                let _ = writeln!(out, "{line}");
            }
        }
    }
    for c in &stale {
        let _ = writeln!(out, "-X {c}");
    }
    out.push_str("COMMIT\n");
    out
}

/// Removes exactly what `existing` lists: the jumps from built-in chains,
/// then our chains (all flushed before any is deleted, so references
/// between them are gone). Empty when nothing of ours exists.
pub fn cleanup(existing: &Existing) -> String {
    let mut out = String::new();
    for (table, chains) in [
        ("filter", &existing.filter_chains),
        ("nat", &existing.nat_chains),
    ] {
        let jumps: Vec<&String> = existing
            .jumps
            .iter()
            .filter(|j| j.table == table)
            .map(|j| &j.spec)
            .collect();
        if jumps.is_empty() && chains.is_empty() {
            continue;
        }
        let _ = writeln!(out, "*{table}");
        for spec in jumps {
            let _ = writeln!(out, "-D {spec}");
        }
        for c in chains {
            let _ = writeln!(out, "-F {c}");
        }
        for c in chains {
            let _ = writeln!(out, "-X {c}");
        }
        out.push_str("COMMIT\n");
    }
    out
}
