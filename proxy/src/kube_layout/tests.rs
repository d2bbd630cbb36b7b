//! The generated rules against kube-proxy's own expectations: the service
//! set of proxier_test.go's `TestOverallIPTablesRules` /
//! `TestOverallNFTablesRules` (ClusterIP, Local LoadBalancer with external
//! IP and health check port, NodePort, external IP, Cluster LoadBalancer
//! with ClientIP affinity, no endpoints), compared chain by chain with the
//! lines kube-proxy writes. Deviations, each deliberate: no
//! `loadBalancerSourceRanges` (svc5 has none here, so no `KUBE-FW-*`), no
//! nfacct counters, no localhost NodePort rules, MASQUERADE with
//! `--random-fully`.
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddrV4;

use super::iptables::{self, JUMPS};
use super::model::{Options, Protocol, ServicePort};
use super::nftables::{self, NftExisting};
use super::saved::Existing;

fn ep(s: &str) -> SocketAddrV4 {
    s.parse().unwrap()
}

fn port(ns: &str, name: &str, cip: &str, endpoints: &[&str]) -> ServicePort {
    ServicePort::cluster_ip(
        ns,
        name,
        "p80",
        format!("{cip}:80").parse().unwrap(),
        endpoints.iter().map(|e| ep(e)).collect(),
    )
}

/// The services of kube-proxy's overall test, as seen from its test node.
fn overall() -> Vec<ServicePort> {
    let svc1 = port("ns1", "svc1", "172.30.0.41", &["10.180.0.1:80"]);
    let mut svc2 = port("ns2", "svc2", "172.30.0.42", &["10.180.0.2:80"]);
    svc2.node_port = Some(3001);
    svc2.load_balancer_ips = vec!["1.2.3.4".parse().unwrap()];
    svc2.external_ips = vec!["192.168.99.22".parse().unwrap()];
    svc2.external_local = true;
    svc2.health_check_node_port = Some(30000);
    let mut svc3 = port("ns3", "svc3", "172.30.0.43", &["10.180.0.3:80"]);
    svc3.node_port = Some(3003);
    let mut svc4 = port(
        "ns4",
        "svc4",
        "172.30.0.44",
        &["10.180.0.4:80", "10.180.0.5:80"],
    );
    svc4.external_ips = vec!["192.168.99.33".parse().unwrap()];
    svc4.local_endpoints = vec![ep("10.180.0.5:80")];
    let mut svc5 = port("ns5", "svc5", "172.30.0.45", &["10.180.0.3:80"]);
    svc5.node_port = Some(3002);
    svc5.load_balancer_ips = vec!["5.6.7.8".parse().unwrap()];
    svc5.affinity_seconds = Some(10800);
    let svc6 = port("ns6", "svc6", "172.30.0.46", &[]);
    vec![svc1, svc2, svc3, svc4, svc5, svc6]
}

fn options() -> Options {
    Options {
        cluster_cidr: Some("10.0.0.0/8".parse().unwrap()),
        service_cidr: Some("172.30.0.0/16".parse().unwrap()),
    }
}

const EXPECTED_FILTER: &str = r#"
-A KUBE-NODEPORTS -m comment --comment "ns2/svc2:p80 health check node port" -m tcp -p tcp --dport 30000 -j ACCEPT
-A KUBE-SERVICES -m comment --comment "ns6/svc6:p80 has no endpoints" -m tcp -p tcp -d 172.30.0.46 --dport 80 -j REJECT
-A KUBE-EXTERNAL-SERVICES -m comment --comment "ns2/svc2:p80 has no local endpoints" -m tcp -p tcp -d 192.168.99.22 --dport 80 -j DROP
-A KUBE-EXTERNAL-SERVICES -m comment --comment "ns2/svc2:p80 has no local endpoints" -m tcp -p tcp -d 1.2.3.4 --dport 80 -j DROP
-A KUBE-EXTERNAL-SERVICES -m comment --comment "ns2/svc2:p80 has no local endpoints" -m addrtype --dst-type LOCAL -m tcp -p tcp --dport 3001 -j DROP
-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP
-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark 0x4000/0x4000 -j ACCEPT
-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
"#;

const EXPECTED_NAT: &str = r#"
-A KUBE-NODEPORTS -m comment --comment ns2/svc2:p80 -m tcp -p tcp --dport 3001 -j KUBE-EXT-GNZBNJ2PO5MGZ6GT
-A KUBE-NODEPORTS -m comment --comment ns3/svc3:p80 -m tcp -p tcp --dport 3003 -j KUBE-EXT-X27LE4BHSL4DOUIK
-A KUBE-NODEPORTS -m comment --comment ns5/svc5:p80 -m tcp -p tcp --dport 3002 -j KUBE-EXT-NUKIZ6OKUXPJNT4C
-A KUBE-SERVICES -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41 --dport 80 -j KUBE-SVC-XPGD46QRK7WJZT7O
-A KUBE-SERVICES -m comment --comment "ns2/svc2:p80 cluster IP" -m tcp -p tcp -d 172.30.0.42 --dport 80 -j KUBE-SVC-GNZBNJ2PO5MGZ6GT
-A KUBE-SERVICES -m comment --comment "ns2/svc2:p80 external IP" -m tcp -p tcp -d 192.168.99.22 --dport 80 -j KUBE-EXT-GNZBNJ2PO5MGZ6GT
-A KUBE-SERVICES -m comment --comment "ns2/svc2:p80 loadbalancer IP" -m tcp -p tcp -d 1.2.3.4 --dport 80 -j KUBE-EXT-GNZBNJ2PO5MGZ6GT
-A KUBE-SERVICES -m comment --comment "ns3/svc3:p80 cluster IP" -m tcp -p tcp -d 172.30.0.43 --dport 80 -j KUBE-SVC-X27LE4BHSL4DOUIK
-A KUBE-SERVICES -m comment --comment "ns4/svc4:p80 cluster IP" -m tcp -p tcp -d 172.30.0.44 --dport 80 -j KUBE-SVC-4SW47YFZTEDKD3PK
-A KUBE-SERVICES -m comment --comment "ns4/svc4:p80 external IP" -m tcp -p tcp -d 192.168.99.33 --dport 80 -j KUBE-EXT-4SW47YFZTEDKD3PK
-A KUBE-SERVICES -m comment --comment "ns5/svc5:p80 cluster IP" -m tcp -p tcp -d 172.30.0.45 --dport 80 -j KUBE-SVC-NUKIZ6OKUXPJNT4C
-A KUBE-SERVICES -m comment --comment "ns5/svc5:p80 loadbalancer IP" -m tcp -p tcp -d 5.6.7.8 --dport 80 -j KUBE-EXT-NUKIZ6OKUXPJNT4C
-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS
-A KUBE-EXT-4SW47YFZTEDKD3PK -m comment --comment "masquerade traffic for ns4/svc4:p80 external destinations" -j KUBE-MARK-MASQ
-A KUBE-EXT-4SW47YFZTEDKD3PK -j KUBE-SVC-4SW47YFZTEDKD3PK
-A KUBE-EXT-GNZBNJ2PO5MGZ6GT -m comment --comment "pod traffic for ns2/svc2:p80 external destinations" -s 10.0.0.0/8 -j KUBE-SVC-GNZBNJ2PO5MGZ6GT
-A KUBE-EXT-GNZBNJ2PO5MGZ6GT -m comment --comment "masquerade LOCAL traffic for ns2/svc2:p80 external destinations" -m addrtype --src-type LOCAL -j KUBE-MARK-MASQ
-A KUBE-EXT-GNZBNJ2PO5MGZ6GT -m comment --comment "route LOCAL traffic for ns2/svc2:p80 external destinations" -m addrtype --src-type LOCAL -j KUBE-SVC-GNZBNJ2PO5MGZ6GT
-A KUBE-EXT-NUKIZ6OKUXPJNT4C -m comment --comment "masquerade traffic for ns5/svc5:p80 external destinations" -j KUBE-MARK-MASQ
-A KUBE-EXT-NUKIZ6OKUXPJNT4C -j KUBE-SVC-NUKIZ6OKUXPJNT4C
-A KUBE-EXT-X27LE4BHSL4DOUIK -m comment --comment "masquerade traffic for ns3/svc3:p80 external destinations" -j KUBE-MARK-MASQ
-A KUBE-EXT-X27LE4BHSL4DOUIK -j KUBE-SVC-X27LE4BHSL4DOUIK
-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000
-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN
-A KUBE-POSTROUTING -j MARK --xor-mark 0x4000
-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully
-A KUBE-SEP-C6EBXVWJJZMIWKLZ -m comment --comment ns4/svc4:p80 -s 10.180.0.5 -j KUBE-MARK-MASQ
-A KUBE-SEP-C6EBXVWJJZMIWKLZ -m comment --comment ns4/svc4:p80 -m tcp -p tcp -j DNAT --to-destination 10.180.0.5:80
-A KUBE-SEP-I77PXRDZVX7PMWMN -m comment --comment ns5/svc5:p80 -s 10.180.0.3 -j KUBE-MARK-MASQ
-A KUBE-SEP-I77PXRDZVX7PMWMN -m comment --comment ns5/svc5:p80 -m recent --name KUBE-SEP-I77PXRDZVX7PMWMN --set -m tcp -p tcp -j DNAT --to-destination 10.180.0.3:80
-A KUBE-SEP-OYPFS5VJICHGATKP -m comment --comment ns3/svc3:p80 -s 10.180.0.3 -j KUBE-MARK-MASQ
-A KUBE-SEP-OYPFS5VJICHGATKP -m comment --comment ns3/svc3:p80 -m tcp -p tcp -j DNAT --to-destination 10.180.0.3:80
-A KUBE-SEP-RS4RBKLTHTF2IUXJ -m comment --comment ns2/svc2:p80 -s 10.180.0.2 -j KUBE-MARK-MASQ
-A KUBE-SEP-RS4RBKLTHTF2IUXJ -m comment --comment ns2/svc2:p80 -m tcp -p tcp -j DNAT --to-destination 10.180.0.2:80
-A KUBE-SEP-SXIVWICOYRO3J4NJ -m comment --comment ns1/svc1:p80 -s 10.180.0.1 -j KUBE-MARK-MASQ
-A KUBE-SEP-SXIVWICOYRO3J4NJ -m comment --comment ns1/svc1:p80 -m tcp -p tcp -j DNAT --to-destination 10.180.0.1:80
-A KUBE-SEP-UKSFD7AGPMPPLUHC -m comment --comment ns4/svc4:p80 -s 10.180.0.4 -j KUBE-MARK-MASQ
-A KUBE-SEP-UKSFD7AGPMPPLUHC -m comment --comment ns4/svc4:p80 -m tcp -p tcp -j DNAT --to-destination 10.180.0.4:80
-A KUBE-SVC-4SW47YFZTEDKD3PK -m comment --comment "ns4/svc4:p80 cluster IP" -m tcp -p tcp -d 172.30.0.44 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ
-A KUBE-SVC-4SW47YFZTEDKD3PK -m comment --comment "ns4/svc4:p80 -> 10.180.0.4:80" -m statistic --mode random --probability 0.5000000000 -j KUBE-SEP-UKSFD7AGPMPPLUHC
-A KUBE-SVC-4SW47YFZTEDKD3PK -m comment --comment "ns4/svc4:p80 -> 10.180.0.5:80" -j KUBE-SEP-C6EBXVWJJZMIWKLZ
-A KUBE-SVC-GNZBNJ2PO5MGZ6GT -m comment --comment "ns2/svc2:p80 cluster IP" -m tcp -p tcp -d 172.30.0.42 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ
-A KUBE-SVC-GNZBNJ2PO5MGZ6GT -m comment --comment "ns2/svc2:p80 -> 10.180.0.2:80" -j KUBE-SEP-RS4RBKLTHTF2IUXJ
-A KUBE-SVC-NUKIZ6OKUXPJNT4C -m comment --comment "ns5/svc5:p80 cluster IP" -m tcp -p tcp -d 172.30.0.45 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ
-A KUBE-SVC-NUKIZ6OKUXPJNT4C -m comment --comment "ns5/svc5:p80 -> 10.180.0.3:80" -m recent --name KUBE-SEP-I77PXRDZVX7PMWMN --rcheck --seconds 10800 --reap -j KUBE-SEP-I77PXRDZVX7PMWMN
-A KUBE-SVC-NUKIZ6OKUXPJNT4C -m comment --comment "ns5/svc5:p80 -> 10.180.0.3:80" -j KUBE-SEP-I77PXRDZVX7PMWMN
-A KUBE-SVC-X27LE4BHSL4DOUIK -m comment --comment "ns3/svc3:p80 cluster IP" -m tcp -p tcp -d 172.30.0.43 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ
-A KUBE-SVC-X27LE4BHSL4DOUIK -m comment --comment "ns3/svc3:p80 -> 10.180.0.3:80" -j KUBE-SEP-OYPFS5VJICHGATKP
-A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ
-A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 -> 10.180.0.1:80" -j KUBE-SEP-SXIVWICOYRO3J4NJ
"#;

const EXPECTED_NAT_CHAINS: &str = "KUBE-NODEPORTS KUBE-SERVICES KUBE-EXT-4SW47YFZTEDKD3PK \
    KUBE-EXT-GNZBNJ2PO5MGZ6GT KUBE-EXT-NUKIZ6OKUXPJNT4C KUBE-EXT-X27LE4BHSL4DOUIK KUBE-MARK-MASQ \
    KUBE-POSTROUTING KUBE-SEP-C6EBXVWJJZMIWKLZ KUBE-SEP-I77PXRDZVX7PMWMN KUBE-SEP-OYPFS5VJICHGATKP \
    KUBE-SEP-RS4RBKLTHTF2IUXJ KUBE-SEP-SXIVWICOYRO3J4NJ KUBE-SEP-UKSFD7AGPMPPLUHC \
    KUBE-SVC-4SW47YFZTEDKD3PK KUBE-SVC-GNZBNJ2PO5MGZ6GT KUBE-SVC-NUKIZ6OKUXPJNT4C \
    KUBE-SVC-X27LE4BHSL4DOUIK KUBE-SVC-XPGD46QRK7WJZT7O";

const BUILTIN: [&str; 5] = ["PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"];

/// One table of a restore input: declared chains, and `-A` rules by chain
/// (rule order kept within a chain, as kube-proxy's test compares them).
#[derive(Debug, Default, PartialEq)]
struct Table {
    declared: BTreeSet<String>,
    rules: BTreeMap<String, Vec<String>>,
}

fn tables(input: &str) -> BTreeMap<String, Table> {
    let mut out: BTreeMap<String, Table> = BTreeMap::new();
    let mut current = String::new();
    for line in input.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if let Some(t) = line.strip_prefix('*') {
            current = t.to_owned();
        } else if let Some(c) = line.strip_prefix(':') {
            let name = c.split_whitespace().next().unwrap().to_owned();
            out.entry(current.clone())
                .or_default()
                .declared
                .insert(name);
        } else if let Some(rule) = line.strip_prefix("-A ") {
            let chain = rule.split_whitespace().next().unwrap().to_owned();
            if !BUILTIN.contains(&chain.as_str()) {
                out.entry(current.clone())
                    .or_default()
                    .rules
                    .entry(chain)
                    .or_default()
                    .push(line.to_owned());
            }
        }
    }
    out
}

fn rules_of(expected: &str) -> BTreeMap<String, Vec<String>> {
    tables(&format!("*t\n{expected}"))
        .remove("t")
        .unwrap()
        .rules
}

#[test]
fn iptables_rules_match_kube_proxy_overall_test() {
    let input = iptables::restore(&overall(), &options(), &Existing::default(), None);
    let got = tables(&input);
    assert_eq!(
        got["filter"].rules,
        rules_of(EXPECTED_FILTER),
        "filter:\n{input}"
    );
    assert_eq!(got["nat"].rules, rules_of(EXPECTED_NAT), "nat:\n{input}");
    let chains: BTreeSet<String> = EXPECTED_NAT_CHAINS
        .split_whitespace()
        .map(Into::into)
        .collect();
    assert_eq!(got["nat"].declared, chains);
    // Fresh tables get every jump from the built-in chains, once.
    for j in JUMPS {
        let line = format!("-A {}", j.spec());
        assert_eq!(input.lines().filter(|l| *l == line).count(), 1, "{line}");
    }
}

#[test]
fn a_second_sync_adds_no_jumps_and_deletes_stale_chains() {
    let opts = options();
    let before = overall();
    let mut after = before.clone();
    // svc4 loses an endpoint; svc3 goes away.
    after[3].cluster_endpoints.truncate(1);
    after[3].local_endpoints.clear();
    after.remove(2);
    let existing = Existing::after_full(&before, &opts);
    let input = iptables::restore(&after, &opts, &existing, None);
    assert!(
        !input
            .lines()
            .any(|l| BUILTIN.iter().any(|b| l.starts_with(&format!("-A {b} ")))),
        "jumps added twice:\n{input}"
    );
    for stale in [
        "KUBE-SEP-C6EBXVWJJZMIWKLZ",
        "KUBE-SVC-X27LE4BHSL4DOUIK",
        "KUBE-EXT-X27LE4BHSL4DOUIK",
        "KUBE-SEP-OYPFS5VJICHGATKP",
    ] {
        assert!(
            input.contains(&format!("\n:{stale} - [0:0]\n")),
            "{stale} not flushed"
        );
        assert!(
            input.contains(&format!("\n-X {stale}\n")),
            "{stale} not deleted"
        );
    }
    assert!(!input.contains("-X KUBE-SVC-4SW47YFZTEDKD3PK"));
    // Partial: only svc4's own chains are written.
    let only = [after[2].clone()];
    let partial = iptables::restore(&after, &opts, &existing, Some(&only));
    let t = tables(&partial);
    assert!(t["nat"].rules.contains_key("KUBE-SVC-4SW47YFZTEDKD3PK"));
    assert!(
        !t["nat"].rules.contains_key("KUBE-SVC-XPGD46QRK7WJZT7O"),
        "{partial}"
    );
    assert!(
        t["nat"].rules["KUBE-SERVICES"].len() > 5,
        "top-level chains are always complete"
    );
}

#[test]
fn nodeport_rules_match_kube_proxy() {
    // From the proxy benchmark's NodePort baseline (proxier_test.go's
    // ns1/svc1:p80, nodePort 3001, Cluster policy).
    let mut svc = port("ns1", "svc1", "172.30.0.41", &["10.180.0.1:80"]);
    svc.node_port = Some(3001);
    let rules = iptables::restore(&[svc.clone()], &options(), &Existing::default(), None);
    for line in [
        "-A KUBE-NODEPORTS -m comment --comment ns1/svc1:p80 -m tcp -p tcp --dport 3001 -j KUBE-EXT-XPGD46QRK7WJZT7O",
        "-A KUBE-EXT-XPGD46QRK7WJZT7O -m comment --comment \"masquerade traffic for ns1/svc1:p80 external destinations\" -j KUBE-MARK-MASQ",
        "-A KUBE-EXT-XPGD46QRK7WJZT7O -j KUBE-SVC-XPGD46QRK7WJZT7O",
        "-A KUBE-SEP-SXIVWICOYRO3J4NJ -m comment --comment ns1/svc1:p80 -m tcp -p tcp -j DNAT --to-destination 10.180.0.1:80",
    ] {
        assert!(rules.lines().any(|l| l == line), "missing {line}");
    }
    let last = rules
        .lines()
        .rfind(|l| l.starts_with("-A KUBE-SERVICES"))
        .unwrap();
    assert!(last.ends_with("-m addrtype --dst-type LOCAL -j KUBE-NODEPORTS"));
    let cleanup = iptables::cleanup(&Existing::after_full(&[svc], &options()));
    assert!(cleanup.contains("-X KUBE-EXT-XPGD46QRK7WJZT7O\n"));
    assert!(cleanup.contains(
        "-D PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n"
    ));
}

#[test]
fn udp_and_local_policies() {
    let mut dns = port("kube-system", "kube-dns", "10.96.0.10", &["10.244.1.5:53"]);
    dns.port_name = "dns".into();
    dns.protocol = Protocol::Udp;
    dns.port = 53;
    let mut local = port("ns", "itp", "10.96.0.20", &["10.244.2.5:80"]);
    local.internal_local = true;
    let input = iptables::restore(
        &[dns.clone(), local],
        &options(),
        &Existing::default(),
        None,
    );
    assert!(input.contains(
        "-A KUBE-SERVICES -m comment --comment \"kube-system/kube-dns:dns cluster IP\" -m udp -p udp -d 10.96.0.10 --dport 53 -j KUBE-SVC-TCOU7JCQXEZGVUNU\n"
    ), "{input}");
    assert!(input.contains("-m udp -p udp -j DNAT --to-destination 10.244.1.5:53\n"));
    // internalTrafficPolicy: Local without a local endpoint: DROP, not REJECT.
    assert!(input.contains(
        "-A KUBE-SERVICES -m comment --comment \"ns/itp:p80 has no local endpoints\" -m tcp -p tcp -d 10.96.0.20 --dport 80 -j DROP\n"
    ), "{input}");
    let nft = nftables::full(&[dns], &options(), &NftExisting::default());
    assert!(
        nft.contains(
            "add element ip kube-proxy service-ips { 10.96.0.10 . udp . 53 : goto service-"
        )
    );
    assert!(nft.contains("meta l4proto udp dnat to 10.244.1.5:53\n"));
}

/// kube-proxy's per-service lines of `TestOverallNFTablesRules` (svc5
/// without source ranges, the masquerade rule with `tcp dport` as the
/// current proxier.go writes it).
const EXPECTED_NFT: &str = r#"
add chain ip kube-proxy service-ULMVA6XW-ns1/svc1/tcp/p80
add rule ip kube-proxy service-ULMVA6XW-ns1/svc1/tcp/p80 ip daddr 172.30.0.41 tcp dport 80 ip saddr != 10.0.0.0/8 jump mark-for-masquerade
add rule ip kube-proxy service-ULMVA6XW-ns1/svc1/tcp/p80 numgen random mod 1 vmap { 0 : goto endpoint-5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80 }
add chain ip kube-proxy endpoint-5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80
add rule ip kube-proxy endpoint-5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80 ip saddr 10.180.0.1 jump mark-for-masquerade
add rule ip kube-proxy endpoint-5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80 meta l4proto tcp dnat to 10.180.0.1:80
add element ip kube-proxy cluster-ips { 172.30.0.41 }
add element ip kube-proxy service-ips { 172.30.0.41 . tcp . 80 : goto service-ULMVA6XW-ns1/svc1/tcp/p80 }
add chain ip kube-proxy service-42NFTM6N-ns2/svc2/tcp/p80
add rule ip kube-proxy service-42NFTM6N-ns2/svc2/tcp/p80 ip daddr 172.30.0.42 tcp dport 80 ip saddr != 10.0.0.0/8 jump mark-for-masquerade
add rule ip kube-proxy service-42NFTM6N-ns2/svc2/tcp/p80 numgen random mod 1 vmap { 0 : goto endpoint-SGOXE6O3-ns2/svc2/tcp/p80__10.180.0.2/80 }
add chain ip kube-proxy external-42NFTM6N-ns2/svc2/tcp/p80
add rule ip kube-proxy external-42NFTM6N-ns2/svc2/tcp/p80 ip saddr 10.0.0.0/8 goto service-42NFTM6N-ns2/svc2/tcp/p80 comment "short-circuit pod traffic"
add rule ip kube-proxy external-42NFTM6N-ns2/svc2/tcp/p80 fib saddr type local jump mark-for-masquerade comment "masquerade local traffic"
add rule ip kube-proxy external-42NFTM6N-ns2/svc2/tcp/p80 fib saddr type local goto service-42NFTM6N-ns2/svc2/tcp/p80 comment "short-circuit local traffic"
add chain ip kube-proxy endpoint-SGOXE6O3-ns2/svc2/tcp/p80__10.180.0.2/80
add rule ip kube-proxy endpoint-SGOXE6O3-ns2/svc2/tcp/p80__10.180.0.2/80 ip saddr 10.180.0.2 jump mark-for-masquerade
add rule ip kube-proxy endpoint-SGOXE6O3-ns2/svc2/tcp/p80__10.180.0.2/80 meta l4proto tcp dnat to 10.180.0.2:80
add element ip kube-proxy cluster-ips { 172.30.0.42 }
add element ip kube-proxy service-ips { 172.30.0.42 . tcp . 80 : goto service-42NFTM6N-ns2/svc2/tcp/p80 }
add element ip kube-proxy service-ips { 192.168.99.22 . tcp . 80 : goto external-42NFTM6N-ns2/svc2/tcp/p80 }
add element ip kube-proxy service-ips { 1.2.3.4 . tcp . 80 : goto external-42NFTM6N-ns2/svc2/tcp/p80 }
add element ip kube-proxy service-nodeports { tcp . 3001 : goto external-42NFTM6N-ns2/svc2/tcp/p80 }
add element ip kube-proxy no-endpoint-nodeports { tcp . 3001 comment "ns2/svc2:p80" : drop }
add element ip kube-proxy no-endpoint-services { 1.2.3.4 . tcp . 80 comment "ns2/svc2:p80" : drop }
add element ip kube-proxy no-endpoint-services { 192.168.99.22 . tcp . 80 comment "ns2/svc2:p80" : drop }
add chain ip kube-proxy service-4AT6LBPK-ns3/svc3/tcp/p80
add rule ip kube-proxy service-4AT6LBPK-ns3/svc3/tcp/p80 ip daddr 172.30.0.43 tcp dport 80 ip saddr != 10.0.0.0/8 jump mark-for-masquerade
add rule ip kube-proxy service-4AT6LBPK-ns3/svc3/tcp/p80 numgen random mod 1 vmap { 0 : goto endpoint-UEIP74TE-ns3/svc3/tcp/p80__10.180.0.3/80 }
add chain ip kube-proxy external-4AT6LBPK-ns3/svc3/tcp/p80
add rule ip kube-proxy external-4AT6LBPK-ns3/svc3/tcp/p80 jump mark-for-masquerade
add rule ip kube-proxy external-4AT6LBPK-ns3/svc3/tcp/p80 goto service-4AT6LBPK-ns3/svc3/tcp/p80
add chain ip kube-proxy endpoint-UEIP74TE-ns3/svc3/tcp/p80__10.180.0.3/80
add rule ip kube-proxy endpoint-UEIP74TE-ns3/svc3/tcp/p80__10.180.0.3/80 ip saddr 10.180.0.3 jump mark-for-masquerade
add rule ip kube-proxy endpoint-UEIP74TE-ns3/svc3/tcp/p80__10.180.0.3/80 meta l4proto tcp dnat to 10.180.0.3:80
add element ip kube-proxy cluster-ips { 172.30.0.43 }
add element ip kube-proxy service-ips { 172.30.0.43 . tcp . 80 : goto service-4AT6LBPK-ns3/svc3/tcp/p80 }
add element ip kube-proxy service-nodeports { tcp . 3003 : goto external-4AT6LBPK-ns3/svc3/tcp/p80 }
add chain ip kube-proxy service-LAUZTJTB-ns4/svc4/tcp/p80
add rule ip kube-proxy service-LAUZTJTB-ns4/svc4/tcp/p80 ip daddr 172.30.0.44 tcp dport 80 ip saddr != 10.0.0.0/8 jump mark-for-masquerade
add rule ip kube-proxy service-LAUZTJTB-ns4/svc4/tcp/p80 numgen random mod 2 vmap { 0 : goto endpoint-UNZV3OEC-ns4/svc4/tcp/p80__10.180.0.4/80 , 1 : goto endpoint-5RFCDDV7-ns4/svc4/tcp/p80__10.180.0.5/80 }
add chain ip kube-proxy external-LAUZTJTB-ns4/svc4/tcp/p80
add rule ip kube-proxy external-LAUZTJTB-ns4/svc4/tcp/p80 jump mark-for-masquerade
add rule ip kube-proxy external-LAUZTJTB-ns4/svc4/tcp/p80 goto service-LAUZTJTB-ns4/svc4/tcp/p80
add chain ip kube-proxy endpoint-5RFCDDV7-ns4/svc4/tcp/p80__10.180.0.5/80
add rule ip kube-proxy endpoint-5RFCDDV7-ns4/svc4/tcp/p80__10.180.0.5/80 ip saddr 10.180.0.5 jump mark-for-masquerade
add rule ip kube-proxy endpoint-5RFCDDV7-ns4/svc4/tcp/p80__10.180.0.5/80 meta l4proto tcp dnat to 10.180.0.5:80
add chain ip kube-proxy endpoint-UNZV3OEC-ns4/svc4/tcp/p80__10.180.0.4/80
add rule ip kube-proxy endpoint-UNZV3OEC-ns4/svc4/tcp/p80__10.180.0.4/80 ip saddr 10.180.0.4 jump mark-for-masquerade
add rule ip kube-proxy endpoint-UNZV3OEC-ns4/svc4/tcp/p80__10.180.0.4/80 meta l4proto tcp dnat to 10.180.0.4:80
add element ip kube-proxy cluster-ips { 172.30.0.44 }
add element ip kube-proxy service-ips { 172.30.0.44 . tcp . 80 : goto service-LAUZTJTB-ns4/svc4/tcp/p80 }
add element ip kube-proxy service-ips { 192.168.99.33 . tcp . 80 : goto external-LAUZTJTB-ns4/svc4/tcp/p80 }
add set ip kube-proxy affinity-GTK6MW7G-ns5/svc5/tcp/p80__10.180.0.3/80 { type ipv4_addr ; flags dynamic,timeout ; timeout 10800s ; }
add chain ip kube-proxy service-HVFWP5L3-ns5/svc5/tcp/p80
add rule ip kube-proxy service-HVFWP5L3-ns5/svc5/tcp/p80 ip daddr 172.30.0.45 tcp dport 80 ip saddr != 10.0.0.0/8 jump mark-for-masquerade
add rule ip kube-proxy service-HVFWP5L3-ns5/svc5/tcp/p80 ip saddr @affinity-GTK6MW7G-ns5/svc5/tcp/p80__10.180.0.3/80 goto endpoint-GTK6MW7G-ns5/svc5/tcp/p80__10.180.0.3/80
add rule ip kube-proxy service-HVFWP5L3-ns5/svc5/tcp/p80 numgen random mod 1 vmap { 0 : goto endpoint-GTK6MW7G-ns5/svc5/tcp/p80__10.180.0.3/80 }
add chain ip kube-proxy external-HVFWP5L3-ns5/svc5/tcp/p80
add rule ip kube-proxy external-HVFWP5L3-ns5/svc5/tcp/p80 jump mark-for-masquerade
add rule ip kube-proxy external-HVFWP5L3-ns5/svc5/tcp/p80 goto service-HVFWP5L3-ns5/svc5/tcp/p80
add chain ip kube-proxy endpoint-GTK6MW7G-ns5/svc5/tcp/p80__10.180.0.3/80
add rule ip kube-proxy endpoint-GTK6MW7G-ns5/svc5/tcp/p80__10.180.0.3/80 ip saddr 10.180.0.3 jump mark-for-masquerade
add rule ip kube-proxy endpoint-GTK6MW7G-ns5/svc5/tcp/p80__10.180.0.3/80 update @affinity-GTK6MW7G-ns5/svc5/tcp/p80__10.180.0.3/80 { ip saddr }
add rule ip kube-proxy endpoint-GTK6MW7G-ns5/svc5/tcp/p80__10.180.0.3/80 meta l4proto tcp dnat to 10.180.0.3:80
add element ip kube-proxy cluster-ips { 172.30.0.45 }
add element ip kube-proxy service-ips { 172.30.0.45 . tcp . 80 : goto service-HVFWP5L3-ns5/svc5/tcp/p80 }
add element ip kube-proxy service-ips { 5.6.7.8 . tcp . 80 : goto external-HVFWP5L3-ns5/svc5/tcp/p80 }
add element ip kube-proxy service-nodeports { tcp . 3002 : goto external-HVFWP5L3-ns5/svc5/tcp/p80 }
add element ip kube-proxy cluster-ips { 172.30.0.46 }
add element ip kube-proxy no-endpoint-services { 172.30.0.46 . tcp . 80 comment "ns6/svc6:p80" : goto reject-chain }
"#;

/// The lines of a transaction that belong to services (chains with a '/',
/// affinity sets, map elements), without the flushes kube-proxy's fake
/// does not show; sorted, as kube-proxy's test compares them.
fn service_lines(text: &str) -> BTreeSet<String> {
    let per_service = |token: &str| {
        let token = token.trim_start_matches('@');
        token.contains('/')
            && ["service-", "local-", "external-", "endpoint-", "affinity-"]
                .iter()
                .any(|p| token.starts_with(p))
    };
    text.lines()
        .map(str::trim)
        .filter(|l| {
            !l.starts_with("flush ")
                && (l.starts_with("add element") || l.split_whitespace().any(per_service))
        })
        .map(str::to_owned)
        .collect()
}

#[test]
fn nftables_rules_match_kube_proxy_overall_test() {
    let tx = nftables::full(&overall(), &options(), &NftExisting::default());
    let (got, want) = (service_lines(&tx), service_lines(EXPECTED_NFT));
    let missing: Vec<_> = want.difference(&got).collect();
    let extra: Vec<_> = got.difference(&want).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing {missing:#?}\nextra {extra:#?}"
    );
    assert!(tx.contains(
        "add rule ip kube-proxy cluster-ips-check ip daddr { 172.30.0.0/16 } drop comment \"Drop traffic to unallocated ClusterIPs\"\n"
    ));
    assert!(tx.contains("add rule ip kube-proxy reject-chain reject\n"));
}

#[test]
fn nftables_full_sync_keeps_affinity_and_removes_stale_objects() {
    let opts = options();
    let existing = NftExisting {
        table: true,
        chains: [
            "services".to_string(),
            "service-XXXXXXXX-gone/svc/tcp/p80".into(),
            "endpoint-5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80".into(),
        ]
        .into(),
        sets: [
            "affinity-GTK6MW7G-ns5/svc5/tcp/p80__10.180.0.3/80".to_string(),
            "affinity-OLD".into(),
        ]
        .into(),
    };
    let tx = nftables::full(&overall(), &opts, &existing);
    assert!(tx.contains("delete chain ip kube-proxy service-XXXXXXXX-gone/svc/tcp/p80\n"));
    assert!(!tx.contains("delete chain ip kube-proxy endpoint-5OJB2KTY"));
    assert!(!tx.contains("delete chain ip kube-proxy services"));
    assert!(tx.contains("delete set ip kube-proxy affinity-OLD\n"));
    assert!(
        !tx.contains("flush set ip kube-proxy affinity-"),
        "affinity must survive a sync"
    );
    assert!(
        !tx.contains("delete table"),
        "the table is never replaced wholesale"
    );
}

#[test]
fn nftables_change_rewrites_one_service() {
    let opts = options();
    let before = port(
        "bench",
        "svc-1",
        "10.96.0.11",
        &["10.244.0.1:8080", "10.244.0.2:8080"],
    );
    let mut after = before.clone();
    after.cluster_endpoints[1] = ep("10.244.254.1:8081");
    let tx = nftables::change(&before, &after, &opts);
    assert!(tx.contains("flush chain ip kube-proxy service-"));
    assert!(tx.contains("dnat to 10.244.254.1:8081\n"));
    assert!(
        tx.contains("delete chain ip kube-proxy endpoint-") && tx.contains("__10.244.0.2/8080\n")
    );
    assert!(
        !tx.contains("element"),
        "the VIP's map entry is unchanged:\n{tx}"
    );
}
