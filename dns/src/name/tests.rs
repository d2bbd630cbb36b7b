//! Table-driven tests for name classification, plus a no-panic property.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use proptest::prelude::*;

use super::InvalidReason::*;
use super::NameKind::{self, *};
use super::Protocol::{Sctp, Tcp, Udp};
use super::{Zone, ZoneError};

fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(a, b, c, d))
}

fn v6(text: &str) -> IpAddr {
    IpAddr::V6(text.parse::<Ipv6Addr>().expect("test literal"))
}

/// Run one table against a zone, both through the dotted API and through the
/// wire-label API (which must agree).
fn check(zone: &Zone, table: &[(&str, NameKind<'_>)]) {
    for (name, want) in table {
        assert_eq!(zone.classify(name), *want, "dotted {name:?}");
        let trimmed = name.strip_suffix('.').unwrap_or(name);
        let labels: Vec<&[u8]> = if trimmed.is_empty() {
            Vec::new()
        } else {
            trimmed.split('.').map(str::as_bytes).collect()
        };
        assert_eq!(zone.classify_labels(labels), *want, "labels {name:?}");
    }
}

#[test]
fn forward_shapes_in_the_default_zone() {
    check(
        &Zone::default(),
        &[
            ("cluster.local", ZoneApex),
            ("cluster.local.", ZoneApex),
            ("dns-version.cluster.local", DnsVersion),
            ("svc.cluster.local", ServiceApex),
            ("pod.cluster.local", PodApex),
            ("default.svc.cluster.local", Namespace { ns: "default" }),
            (
                "kubernetes.default.svc.cluster.local.",
                Service {
                    svc: "kubernetes",
                    ns: "default",
                },
            ),
            (
                "_tcp.kubernetes.default.svc.cluster.local",
                ServiceProtocol {
                    proto: Tcp,
                    svc: "kubernetes",
                    ns: "default",
                },
            ),
            (
                "_https._tcp.kubernetes.default.svc.cluster.local",
                ServicePort {
                    port: "https",
                    proto: Tcp,
                    svc: "kubernetes",
                    ns: "default",
                },
            ),
            (
                "_dns._udp.kube-dns.kube-system.svc.cluster.local.",
                ServicePort {
                    port: "dns",
                    proto: Udp,
                    svc: "kube-dns",
                    ns: "kube-system",
                },
            ),
            (
                "_diameter._sctp.hss.core.svc.cluster.local",
                ServicePort {
                    port: "diameter",
                    proto: Sctp,
                    svc: "hss",
                    ns: "core",
                },
            ),
            (
                "my-pet.headless.default.svc.cluster.local",
                Endpoint {
                    hostname: "my-pet",
                    svc: "headless",
                    ns: "default",
                },
            ),
            (
                "438934893.headless.default.svc.cluster.local",
                Endpoint {
                    hostname: "438934893",
                    svc: "headless",
                    ns: "default",
                },
            ),
            ("default.pod.cluster.local", PodNamespace { ns: "default" }),
            (
                "10-244-1-5.default.pod.cluster.local",
                Pod {
                    ip: v4(10, 244, 1, 5),
                    ns: "default",
                },
            ),
            (
                "fd00--1.default.pod.cluster.local",
                Pod {
                    ip: v6("fd00::1"),
                    ns: "default",
                },
            ),
            (
                "2001-db8-0-0-0-0-0-1.prod.pod.cluster.local.",
                Pod {
                    ip: v6("2001:db8::1"),
                    ns: "prod",
                },
            ),
            (
                "1--3-4.default.pod.cluster.local",
                Pod {
                    ip: v6("1::3:4"),
                    ns: "default",
                },
            ),
            (
                "--1.default.pod.cluster.local",
                Pod {
                    ip: v6("::1"),
                    ns: "default",
                },
            ),
        ],
    );
}

#[test]
fn matching_is_case_insensitive_and_keeps_query_case() {
    check(
        &Zone::default(),
        &[
            ("CLUSTER.LOCAL.", ZoneApex),
            ("DNS-Version.Cluster.Local", DnsVersion),
            ("SVC.cluster.LOCAL", ServiceApex),
            ("Pod.Cluster.Local", PodApex),
            (
                "KubeRnetes.DEFAULT.Svc.Cluster.Local",
                Service {
                    svc: "KubeRnetes",
                    ns: "DEFAULT",
                },
            ),
            (
                "_HTTPS._TCP.Web.Shop.SVC.cluster.local",
                ServicePort {
                    port: "HTTPS",
                    proto: Tcp,
                    svc: "Web",
                    ns: "Shop",
                },
            ),
            (
                "_Udp.Web.Shop.svc.cluster.local",
                ServiceProtocol {
                    proto: Udp,
                    svc: "Web",
                    ns: "Shop",
                },
            ),
            (
                "FD00--A.ns.POD.cluster.local",
                Pod {
                    ip: v6("fd00::a"),
                    ns: "ns",
                },
            ),
        ],
    );
}

#[test]
fn names_that_cannot_exist_are_invalid() {
    check(
        &Zone::default(),
        &[
            // ndots:5 search-list expansions of external names.
            (
                "www.example.com.default.svc.cluster.local",
                Invalid(TooManyLabels),
            ),
            (
                "a.b.www.example.com.default.svc.cluster.local.",
                Invalid(TooManyLabels),
            ),
            ("www.example.com.cluster.local", Invalid(UnknownBranch)),
            ("example.com.cluster.local", Invalid(UnknownBranch)),
            ("foo.cluster.local", Invalid(UnknownBranch)),
            // Deeper than any shape.
            ("x.dns-version.cluster.local", Invalid(TooManyLabels)),
            (
                "x._https._tcp.svc.ns.svc.cluster.local",
                Invalid(TooManyLabels),
            ),
            ("x.1-2-3-4.ns.pod.cluster.local", Invalid(TooManyLabels)),
            // Labels no Kubernetes object can carry.
            ("foo_bar.default.svc.cluster.local", Invalid(BadLabel)),
            ("web.-ns.svc.cluster.local", Invalid(BadLabel)),
            ("web-.ns.svc.cluster.local", Invalid(BadLabel)),
            ("host_1.web.ns.svc.cluster.local", Invalid(BadLabel)),
            ("web.ns_x.pod.cluster.local", Invalid(BadLabel)),
            ("__http._tcp.web.ns.svc.cluster.local", Invalid(BadLabel)),
            ("_._tcp.web.ns.svc.cluster.local", Invalid(BadLabel)),
            ("http._tcp.web.ns.svc.cluster.local", Invalid(BadLabel)),
            // Protocols that are not TCP, UDP or SCTP.
            ("_http._quic.web.ns.svc.cluster.local", Invalid(BadProtocol)),
            ("_https.web.ns.svc.cluster.local", Invalid(BadProtocol)),
            ("_.web.ns.svc.cluster.local", Invalid(BadProtocol)),
            // Malformed names.
            ("web..ns.svc.cluster.local", Invalid(Malformed)),
            (".svc.cluster.local", Invalid(Malformed)),
        ],
    );
}

#[test]
fn bad_pod_addresses_are_invalid() {
    let bad = [
        "1-2-3.ns.pod.cluster.local",
        "1-2-3-4-5.ns.pod.cluster.local",
        "256-1-1-1.ns.pod.cluster.local",
        "01-2-3-4.ns.pod.cluster.local",
        "a-b-c-d.ns.pod.cluster.local",
        "fd00---1.ns.pod.cluster.local",
        "fd00--1--2.ns.pod.cluster.local",
        "12345--1.ns.pod.cluster.local",
        "nginx.ns.pod.cluster.local",
        "1-2-3-4-.ns.pod.cluster.local",
    ];
    let zone = Zone::default();
    for name in bad {
        assert_eq!(zone.classify(name), Invalid(BadPodAddress), "{name}");
    }
}

#[test]
fn reverse_names() {
    let zone = Zone::default();
    let full_v6 = "b.a.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.0.0.0.0.1.2.3.4.ip6.arpa.";
    check(
        &zone,
        &[
            ("1.0.96.10.in-addr.arpa", Reverse(v4(10, 96, 0, 1))),
            ("100.0.3.10.IN-ADDR.ARPA.", Reverse(v4(10, 3, 0, 100))),
            ("0.0.0.0.in-addr.arpa", Reverse(v4(0, 0, 0, 0))),
            (
                "255.255.255.255.in-addr.arpa",
                Reverse(v4(255, 255, 255, 255)),
            ),
            (full_v6, Reverse(v6("4321:0:1:2:3:4:567:89ab"))),
            (
                "10.in-addr.arpa",
                ReversePartial {
                    network: v4(10, 0, 0, 0),
                    prefix_len: 8,
                },
            ),
            (
                "96.10.in-addr.arpa.",
                ReversePartial {
                    network: v4(10, 96, 0, 0),
                    prefix_len: 16,
                },
            ),
            (
                "0.96.10.in-addr.arpa",
                ReversePartial {
                    network: v4(10, 96, 0, 0),
                    prefix_len: 24,
                },
            ),
            (
                "in-addr.arpa",
                ReversePartial {
                    network: v4(0, 0, 0, 0),
                    prefix_len: 0,
                },
            ),
            (
                "0.0.d.f.ip6.arpa",
                ReversePartial {
                    network: v6("fd00::"),
                    prefix_len: 16,
                },
            ),
            (
                "IP6.ARPA",
                ReversePartial {
                    network: v6("::"),
                    prefix_len: 0,
                },
            ),
            // Not addresses: someone else's names, forward them.
            ("256.0.0.10.in-addr.arpa", NotInZone),
            ("01.0.0.10.in-addr.arpa", NotInZone),
            ("+1.0.0.10.in-addr.arpa", NotInZone),
            ("5.1.0.0.10.in-addr.arpa", NotInZone),
            ("0/25.2.0.192.in-addr.arpa", NotInZone),
            ("x.0.0.10.in-addr.arpa", NotInZone),
            ("10.ip6.arpa", NotInZone),
            ("g.ip6.arpa", NotInZone),
            (&format!("0.{full_v6}"), NotInZone),
            ("arpa", NotInZone),
            ("foo.arpa", NotInZone),
        ],
    );
}

#[test]
fn names_outside_the_zone_are_forwarded() {
    check(
        &Zone::default(),
        &[
            ("", NotInZone),
            (".", NotInZone),
            ("local", NotInZone),
            ("www.example.com", NotInZone),
            ("www.example.com.", NotInZone),
            (
                "kubernetes.default.svc.cluster.local.example.com",
                NotInZone,
            ),
            ("cluster.locals", NotInZone),
            ("xcluster.local", NotInZone),
            ("other.local", NotInZone),
            // Outside the zone, labels need not be host names.
            ("_sip._udp.example.com", NotInZone),
        ],
    );
}

#[test]
fn custom_zone() {
    let zone = Zone::new("Corp.Example.").expect("valid zone");
    assert_eq!(zone.name(), "corp.example");
    check(
        &zone,
        &[
            ("corp.example", ZoneApex),
            (
                "api.team.svc.corp.example.",
                Service {
                    svc: "api",
                    ns: "team",
                },
            ),
            ("api.team.svc.cluster.local", NotInZone),
            ("1.0.96.10.in-addr.arpa", Reverse(v4(10, 96, 0, 1))),
        ],
    );
    let single = Zone::new("k8s").expect("valid zone");
    assert_eq!(
        single.classify("web.ns.svc.k8s"),
        Service {
            svc: "web",
            ns: "ns"
        }
    );
}

#[test]
fn zone_validation() {
    assert_eq!(Zone::new(""), Err(ZoneError::Empty));
    assert_eq!(Zone::new("."), Err(ZoneError::Empty));
    assert!(matches!(Zone::new("a..b"), Err(ZoneError::BadLabel { .. })));
    assert!(matches!(
        Zone::new("clu_ster.local"),
        Err(ZoneError::BadLabel { .. })
    ));
    assert!(matches!(
        Zone::new("-x.local"),
        Err(ZoneError::BadLabel { .. })
    ));
    assert!(matches!(
        Zone::new(&"a".repeat(64)),
        Err(ZoneError::BadLabel { .. })
    ));
    let long = vec!["abcdefg"; 40].join(".");
    assert!(matches!(Zone::new(&long), Err(ZoneError::TooLong(_))));
    assert_eq!(Zone::new("cluster.local"), Ok(Zone::default()));
    assert_eq!("cluster.local".parse::<Zone>(), Ok(Zone::default()));
    assert_eq!(Zone::default().to_string(), "cluster.local");
}

#[test]
fn size_limits() {
    let zone = Zone::default();
    let label64 = "a".repeat(64);
    assert_eq!(
        zone.classify(&format!("{label64}.default.svc.cluster.local")),
        Invalid(Malformed)
    );
    let label63 = "a".repeat(63);
    assert_eq!(
        zone.classify(&format!("{label63}.default.svc.cluster.local")),
        Service {
            svc: &label63,
            ns: "default"
        }
    );
    // 253 characters of text are 255 wire octets: the longest legal name.
    let longest = format!("{}.cluster.local", vec!["a"; 120].join("."));
    assert_eq!(longest.len(), 253);
    assert_eq!(zone.classify(&longest), Invalid(TooManyLabels));
    let labels: Vec<&[u8]> = longest.split('.').map(str::as_bytes).collect();
    assert_eq!(zone.classify_labels(labels), Invalid(TooManyLabels));
    let too_long = format!("b{longest}");
    assert_eq!(too_long.len(), 254);
    assert_eq!(zone.classify(&too_long), Invalid(Malformed));
    let labels: Vec<&[u8]> = too_long.split('.').map(str::as_bytes).collect();
    assert_eq!(zone.classify_labels(labels), Invalid(Malformed));
    let empty: [&[u8]; 2] = [b"", b"local"];
    assert_eq!(zone.classify_labels(empty), Invalid(Malformed));
}

#[test]
fn wire_labels_may_hold_dots_and_binary() {
    let zone = Zone::default();
    let dotted: [&[u8]; 5] = [b"a.b", b"default", b"svc", b"cluster", b"local"];
    assert_eq!(zone.classify_labels(dotted), Invalid(BadLabel));
    let binary: [&[u8]; 3] = [b"\xff\x00", b"example", b"com"];
    assert_eq!(zone.classify_labels(binary), NotInZone);
}

#[test]
fn protocol_names_for_the_index() {
    assert_eq!(Tcp.as_k8s_str(), "TCP");
    assert_eq!(Udp.as_k8s_str(), "UDP");
    assert_eq!(Sctp.as_k8s_str(), "SCTP");
    assert_eq!(super::SCHEMA_VERSION, "1.1.0");
}

proptest! {
    #[test]
    fn arbitrary_strings_never_panic(name in ".{0,300}") {
        let _ = Zone::default().classify(&name);
    }

    #[test]
    fn dns_like_strings_never_panic(
        name in "([a-zA-Z0-9_-]{0,8}\\.){0,8}(svc|pod|dns-version|in-addr|ip6)?\\.?(cluster\\.local|arpa)?\\.?"
    ) {
        let zone = Zone::default();
        let kind = zone.classify(&name);
        // Whatever the verdict, a name outside both trees is never claimed.
        let lower = name.to_ascii_lowercase();
        let lower = lower.trim_end_matches('.');
        if !lower.ends_with("cluster.local") && !lower.ends_with("arpa") {
            prop_assert!(matches!(kind, NotInZone | Invalid(Malformed)), "{name:?} -> {kind:?}");
        }
    }

    #[test]
    fn arbitrary_wire_labels_never_panic(
        labels in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..70), 0..10)
    ) {
        let mut labels: Vec<&[u8]> = labels.iter().map(Vec::as_slice).collect();
        let _ = Zone::default().classify_labels(labels.iter().copied());
        labels.extend([b"svc".as_slice(), b"cluster", b"local"]);
        let _ = Zone::default().classify_labels(labels.iter().copied());
    }

    #[test]
    fn pod_records_round_trip(octets in any::<[u8; 4]>(), segs in any::<[u16; 8]>()) {
        let zone = Zone::default();
        let ip4 = Ipv4Addr::from(octets);
        let name = format!("{}.ns.pod.cluster.local", ip4.to_string().replace('.', "-"));
        prop_assert_eq!(zone.classify(&name), Pod { ip: IpAddr::V4(ip4), ns: "ns" });
        let ip6 = Ipv6Addr::from(segs);
        let name = format!("{}.ns.pod.cluster.local", ip6.to_string().replace(':', "-"));
        prop_assert_eq!(zone.classify(&name), Pod { ip: IpAddr::V6(ip6), ns: "ns" });
    }

    #[test]
    fn reverse_names_round_trip(octets in any::<[u8; 4]>(), bits in any::<u128>()) {
        let zone = Zone::default();
        let [a, b, c, d] = octets;
        let name = format!("{d}.{c}.{b}.{a}.in-addr.arpa.");
        prop_assert_eq!(zone.classify(&name), Reverse(v4(a, b, c, d)));
        let nibbles: Vec<String> = (0..32).map(|i| format!("{:x}", (bits >> (4 * i)) & 0xf)).collect();
        let name = format!("{}.ip6.arpa", nibbles.join("."));
        prop_assert_eq!(zone.classify(&name), Reverse(IpAddr::V6(Ipv6Addr::from(bits))));
    }
}
