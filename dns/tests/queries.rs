//! Table-driven queries through real UDP and TCP sockets on 127.0.0.1
//! against a server fed from the fixture manifests: every record shape and
//! negative-answer rule of the Kubernetes DNS specification 1.1.0.

mod common;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use strait_cluster::{ClusterView, Kind, KindSet};

use common::{config, fixture, lines, start, tcp, udp};

use RecordType::{A, AAAA, CNAME, PTR, SOA, SRV, TXT};

/// One question and the answer it must get.
struct Case {
    name: &'static str,
    qtype: RecordType,
    rcode: ResponseCode,
    answers: &'static [&'static str],
    /// Record types of the authority section.
    authority: &'static [RecordType],
    additionals: &'static [&'static str],
}

const NOERROR: ResponseCode = ResponseCode::NoError;
const NXDOMAIN: ResponseCode = ResponseCode::NXDomain;

const fn ok(name: &'static str, qtype: RecordType, answers: &'static [&'static str]) -> Case {
    Case {
        name,
        qtype,
        rcode: NOERROR,
        answers,
        authority: &[],
        additionals: &[],
    }
}

const fn nodata(name: &'static str, qtype: RecordType) -> Case {
    Case {
        name,
        qtype,
        rcode: NOERROR,
        answers: &[],
        authority: &[SOA],
        additionals: &[],
    }
}

const fn nxdomain(name: &'static str, qtype: RecordType) -> Case {
    Case {
        name,
        qtype,
        rcode: NXDOMAIN,
        answers: &[],
        authority: &[SOA],
        additionals: &[],
    }
}

const CASES: &[Case] = &[
    // ClusterIP services.
    ok(
        "web.default.svc.cluster.local.",
        A,
        &["web.default.svc.cluster.local. A 10.96.0.10"],
    ),
    // Mixed case: matched case-insensitively, the owner keeps the query's case.
    ok(
        "WeB.DeFault.SVC.Cluster.LOCAL.",
        A,
        &["WeB.DeFault.SVC.Cluster.LOCAL. A 10.96.0.10"],
    ),
    nodata("web.default.svc.cluster.local.", AAAA),
    nodata("web.default.svc.cluster.local.", TXT),
    ok(
        "dual.default.svc.cluster.local.",
        AAAA,
        &["dual.default.svc.cluster.local. AAAA fd00::11"],
    ),
    ok(
        "dual.default.svc.cluster.local.",
        A,
        &["dual.default.svc.cluster.local. A 10.96.0.11"],
    ),
    nxdomain("nope.default.svc.cluster.local.", A),
    nxdomain("web.nons.svc.cluster.local.", A),
    // Empty non-terminals: NODATA; unknown namespaces: NXDOMAIN.
    nodata("default.svc.cluster.local.", A),
    nodata("DATA.svc.cluster.local.", A),
    nxdomain("nons.svc.cluster.local.", A),
    nodata("svc.cluster.local.", A),
    nodata("_tcp.web.default.svc.cluster.local.", A),
    nxdomain("_sctp.web.default.svc.cluster.local.", A),
    // Apex and schema version.
    Case {
        name: "cluster.local.",
        qtype: SOA,
        rcode: NOERROR,
        answers: &[
            "cluster.local. SOA ns.dns.cluster.local. hostmaster.cluster.local. 1 7200 1800 86400 30",
        ],
        authority: &[],
        additionals: &[],
    },
    nodata("cluster.local.", A),
    ok(
        "dns-version.cluster.local.",
        TXT,
        &["dns-version.cluster.local. TXT 1.1.0"],
    ),
    nodata("dns-version.cluster.local.", A),
    // SRV of a ClusterIP service: one record at the service name, glue in
    // the additional section.
    Case {
        name: "_http._tcp.web.default.svc.cluster.local.",
        qtype: SRV,
        rcode: NOERROR,
        answers: &[
            "_http._tcp.web.default.svc.cluster.local. SRV 0 100 80 web.default.svc.cluster.local.",
        ],
        authority: &[],
        additionals: &["web.default.svc.cluster.local. A 10.96.0.10"],
    },
    Case {
        name: "_dns._udp.web.default.svc.cluster.local.",
        qtype: SRV,
        rcode: NOERROR,
        answers: &[
            "_dns._udp.web.default.svc.cluster.local. SRV 0 100 53 web.default.svc.cluster.local.",
        ],
        authority: &[],
        additionals: &["web.default.svc.cluster.local. A 10.96.0.10"],
    },
    nxdomain("_http._udp.web.default.svc.cluster.local.", SRV),
    nxdomain("_nope._tcp.web.default.svc.cluster.local.", SRV),
    nodata("_http._tcp.web.default.svc.cluster.local.", A),
    // Headless: ready endpoints only; endpoints without a hostname get
    // their dashed address.
    ok(
        "db.data.svc.cluster.local.",
        A,
        &[
            "db.data.svc.cluster.local. A 10.244.1.10",
            "db.data.svc.cluster.local. A 10.244.1.11",
            "db.data.svc.cluster.local. A 10.244.1.12",
        ],
    ),
    Case {
        name: "_pg._tcp.db.data.svc.cluster.local.",
        qtype: SRV,
        rcode: NOERROR,
        answers: &[
            "_pg._tcp.db.data.svc.cluster.local. SRV 0 33 5432 10-244-1-12.db.data.svc.cluster.local.",
            "_pg._tcp.db.data.svc.cluster.local. SRV 0 33 5432 db-0.db.data.svc.cluster.local.",
            "_pg._tcp.db.data.svc.cluster.local. SRV 0 33 5432 db-1.db.data.svc.cluster.local.",
        ],
        authority: &[],
        additionals: &[
            "10-244-1-12.db.data.svc.cluster.local. A 10.244.1.12",
            "db-0.db.data.svc.cluster.local. A 10.244.1.10",
            "db-1.db.data.svc.cluster.local. A 10.244.1.11",
        ],
    },
    ok(
        "db-1.db.data.svc.cluster.local.",
        A,
        &["db-1.db.data.svc.cluster.local. A 10.244.1.11"],
    ),
    ok(
        "DB-0.db.data.svc.cluster.local.",
        A,
        &["DB-0.db.data.svc.cluster.local. A 10.244.1.10"],
    ),
    nodata("db-1.db.data.svc.cluster.local.", AAAA),
    nxdomain("db-3.db.data.svc.cluster.local.", A),
    ok(
        "10-244-1-12.db.data.svc.cluster.local.",
        A,
        &["10-244-1-12.db.data.svc.cluster.local. A 10.244.1.12"],
    ),
    // Hostnames are not names under ClusterIP services.
    nxdomain("db-1.web.default.svc.cluster.local.", A),
    // A hostname shared by two endpoints has both addresses.
    ok(
        "peer.shared.data.svc.cluster.local.",
        A,
        &[
            "peer.shared.data.svc.cluster.local. A 10.244.2.1",
            "peer.shared.data.svc.cluster.local. A 10.244.2.2",
        ],
    ),
    Case {
        name: "_gossip._udp.shared.data.svc.cluster.local.",
        qtype: SRV,
        rcode: NOERROR,
        answers: &[
            "_gossip._udp.shared.data.svc.cluster.local. SRV 0 50 7946 10-244-1-10.shared.data.svc.cluster.local.",
            "_gossip._udp.shared.data.svc.cluster.local. SRV 0 50 7946 peer.shared.data.svc.cluster.local.",
        ],
        authority: &[],
        additionals: &[
            "10-244-1-10.shared.data.svc.cluster.local. A 10.244.1.10",
            "peer.shared.data.svc.cluster.local. A 10.244.2.1",
            "peer.shared.data.svc.cluster.local. A 10.244.2.2",
        ],
    },
    // publishNotReadyAddresses.
    ok(
        "nr-0.nr.data.svc.cluster.local.",
        A,
        &["nr-0.nr.data.svc.cluster.local. A 10.244.3.1"],
    ),
    // A headless service without ready endpoints does not exist.
    nxdomain("empty.data.svc.cluster.local.", A),
    nxdomain("_pg._tcp.empty.data.svc.cluster.local.", SRV),
    // ExternalName: CNAME, chased inside the zone.
    ok(
        "ext.default.svc.cluster.local.",
        A,
        &["ext.default.svc.cluster.local. CNAME www.example.com."],
    ),
    ok(
        "ext.default.svc.cluster.local.",
        CNAME,
        &["ext.default.svc.cluster.local. CNAME www.example.com."],
    ),
    ok(
        "alias.default.svc.cluster.local.",
        A,
        &[
            "WEB.default.svc.cluster.local. A 10.96.0.10",
            "alias.default.svc.cluster.local. CNAME WEB.default.svc.cluster.local.",
        ],
    ),
    Case {
        name: "alias.default.svc.cluster.local.",
        qtype: AAAA,
        rcode: NOERROR,
        answers: &["alias.default.svc.cluster.local. CNAME WEB.default.svc.cluster.local."],
        authority: &[SOA],
        additionals: &[],
    },
    // Reverse: service IPs, endpoint IPs, and an IP shared by two services.
    ok(
        "10.0.96.10.in-addr.arpa.",
        PTR,
        &["10.0.96.10.in-addr.arpa. PTR web.default.svc.cluster.local."],
    ),
    ok(
        "10.1.244.10.in-addr.arpa.",
        PTR,
        &[
            "10.1.244.10.in-addr.arpa. PTR 10-244-1-10.shared.data.svc.cluster.local.",
            "10.1.244.10.in-addr.arpa. PTR db-0.db.data.svc.cluster.local.",
        ],
    ),
    ok(
        "1.1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa.",
        PTR,
        &[
            "1.1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa. PTR dual.default.svc.cluster.local.",
        ],
    ),
    nodata("10.0.96.10.in-addr.arpa.", A),
    // Pod records (insecure by default).
    ok(
        "1-2-3-4.default.pod.cluster.local.",
        A,
        &["1-2-3-4.default.pod.cluster.local. A 1.2.3.4"],
    ),
    ok(
        "fd00--1.ns.pod.cluster.local.",
        AAAA,
        &["fd00--1.ns.pod.cluster.local. AAAA fd00::1"],
    ),
    nodata("1-2-3-4.default.pod.cluster.local.", AAAA),
    nodata("default.pod.cluster.local.", A),
    nxdomain("1-2-3.default.pod.cluster.local.", A),
    // Search-list expansions and other impossible names.
    nxdomain("www.example.com.default.svc.cluster.local.", A),
    nxdomain("www.example.com.svc.cluster.local.", A),
    nxdomain("www.example.com.cluster.local.", A),
    nxdomain("foo.cluster.local.", AAAA),
    nxdomain("a.b.c.d.e.f.g.h.default.svc.cluster.local.", A),
];

/// Check `case` against `got`; returns a failure description.
fn check(case: &Case, transport: &str, got: &hickory_proto::op::Message) -> Option<String> {
    let answers = lines(&got.answers);
    let additionals = lines(&got.additionals);
    let authority: Vec<RecordType> = got.authorities.iter().map(|r| r.record_type()).collect();
    let want_answers: Vec<String> = case.answers.iter().map(|s| s.to_string()).collect();
    let want_additionals: Vec<String> = case.additionals.iter().map(|s| s.to_string()).collect();
    let mut want_answers = want_answers;
    want_answers.sort();
    let mut want_additionals = want_additionals;
    want_additionals.sort();
    if got.metadata.response_code != case.rcode
        || answers != want_answers
        || authority != case.authority
        || additionals != want_additionals
        || !got.metadata.authoritative
        || got.queries[0].name.to_string() != case.name
    {
        return Some(format!(
            "{transport} {} {}: got {} {answers:?} auth {authority:?} add {additionals:?} aa={}",
            case.name, case.qtype, got.metadata.response_code, got.metadata.authoritative
        ));
    }
    None
}

#[tokio::test]
async fn every_rule_over_udp_and_tcp() {
    every_rule(fixture()).await;
}

/// The server answers every case the same from a view trimmed to what DNS
/// reads (as `strait dns` runs it).
#[tokio::test]
async fn every_rule_from_a_trimmed_view() {
    every_rule(common::fixture_trimmed()).await;
}

async fn every_rule(snapshot: strait_cluster::ClusterSnapshot) {
    let server = start(config(), ClusterView::from_snapshot(snapshot)).await;
    let mut failures = Vec::new();
    for case in CASES {
        let got = udp(server.udp_addr(), case.name, case.qtype, Some(1232)).await;
        failures.extend(check(case, "udp", &got));
        let got = tcp(server.tcp_addr(), case.name, case.qtype).await;
        failures.extend(check(case, "tcp", &got));
    }
    assert!(
        failures.is_empty(),
        "{} failing:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[tokio::test]
async fn answers_carry_the_configured_ttl() {
    let mut cfg = config();
    cfg.ttl = 7;
    let server = start(cfg, ClusterView::from_snapshot(fixture())).await;
    let got = udp(server.udp_addr(), "web.default.svc.cluster.local.", A, None).await;
    assert_eq!(got.answers[0].ttl, 7);
    let got = udp(
        server.udp_addr(),
        "nope.default.svc.cluster.local.",
        A,
        None,
    )
    .await;
    assert_eq!(got.authorities[0].ttl, 7);
    match &got.authorities[0].data {
        hickory_proto::rr::RData::SOA(soa) => assert_eq!(soa.minimum, 7),
        other => panic!("not an SOA: {other:?}"),
    }
}

#[tokio::test]
async fn large_answers_are_truncated_over_udp_and_complete_over_tcp() {
    let server = start(config(), ClusterView::from_snapshot(fixture())).await;
    let name = "big.data.svc.cluster.local.";
    // No EDNS: 512 octets.
    let got = udp(server.udp_addr(), name, A, None).await;
    assert!(got.metadata.truncation, "TC must be set");
    assert!(got.answers.is_empty());
    assert!(got.edns.is_none());
    // EDNS 4096 is capped at our 1232: still too big for 100 records.
    let got = udp(server.udp_addr(), name, A, Some(4096)).await;
    assert!(got.metadata.truncation);
    assert!(got.edns.is_some(), "an EDNS query gets an OPT back");
    // TCP carries all of them.
    let got = tcp(server.tcp_addr(), name, A).await;
    assert!(!got.metadata.truncation);
    assert_eq!(got.answers.len(), 100);
    // A medium answer fits with EDNS but not without.
    let got = udp(server.udp_addr(), "db.data.svc.cluster.local.", A, None).await;
    assert!(!got.metadata.truncation);
    assert_eq!(got.answers.len(), 3);
}

#[tokio::test]
async fn servfail_before_sync_never_nxdomain() {
    let (mut publisher, view) = ClusterView::channel(KindSet::only(Kind::Service));
    let server = start(config(), view).await;
    for name in [
        "web.default.svc.cluster.local.",
        "nope.default.svc.cluster.local.",
        "10.0.96.10.in-addr.arpa.",
    ] {
        let got = udp(server.udp_addr(), name, A, None).await;
        assert_eq!(got.metadata.response_code, ResponseCode::ServFail, "{name}");
    }
    let report = strait_cluster::ManifestLoader::parse_str("f.yaml", common::FIXTURE);
    publisher.update(|b| {
        b.replace(
            KindSet::only(Kind::Service),
            report
                .objects
                .iter()
                .filter(|o| o.kind() == Kind::Service)
                .cloned(),
        );
        b.mark_synced(Kind::Service);
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
    loop {
        let got = udp(server.udp_addr(), "web.default.svc.cluster.local.", A, None).await;
        if got.metadata.response_code == ResponseCode::NoError {
            assert_eq!(
                lines(&got.answers),
                ["web.default.svc.cluster.local. A 10.96.0.10"]
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not answered after sync"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert!(server.ready());
    let got = udp(
        server.udp_addr(),
        "nope.default.svc.cluster.local.",
        A,
        None,
    )
    .await;
    assert_eq!(got.metadata.response_code, ResponseCode::NXDomain);
}

#[tokio::test]
async fn names_outside_the_zone_are_refused_without_upstreams() {
    let server = start(config(), ClusterView::from_snapshot(fixture())).await;
    let got = udp(server.udp_addr(), "www.example.com.", A, None).await;
    assert_eq!(got.metadata.response_code, ResponseCode::Refused);
    assert!(!got.metadata.recursion_available);
    // A reverse name we do not own is someone else's too.
    let got = udp(server.udp_addr(), "1.2.0.192.in-addr.arpa.", PTR, None).await;
    assert_eq!(got.metadata.response_code, ResponseCode::Refused);
}
