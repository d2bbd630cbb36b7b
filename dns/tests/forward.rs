//! Forwarding and caching against upstreams started by the test on
//! loopback: a scripted DNS server counting its queries, and a second
//! strait DNS server. Never a real resolver.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::rdata::SOA;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use strait_cluster::{ClusterView, Kind, KindSet, ManifestLoader};
use strait_dns::{DnsConfig, Zone};
use tokio::net::UdpSocket;

use common::{config, fixture, lines, start, udp};

/// A scripted upstream: `nx*` names are NXDOMAIN (SOA minimum 60), `short*`
/// names have a 1 s TTL, every other name is `192.0.2.1` for 60 s.
struct Upstream {
    addr: SocketAddr,
    queries: Arc<AtomicUsize>,
    down: Arc<AtomicBool>,
    _task: tokio::task::JoinHandle<()>,
}

async fn upstream() -> Upstream {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    let queries = Arc::new(AtomicUsize::new(0));
    let down = Arc::new(AtomicBool::new(false));
    let (q, d) = (queries.clone(), down.clone());
    let task = tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        loop {
            let Ok((len, peer)) = socket.recv_from(&mut buf).await else {
                continue;
            };
            if d.load(Ordering::SeqCst) {
                continue;
            }
            q.fetch_add(1, Ordering::SeqCst);
            let request = Message::from_vec(&buf[..len]).unwrap();
            let mut response = Message::response(request.metadata.id, request.metadata.op_code);
            response.metadata.message_type = MessageType::Response;
            response.metadata.recursion_available = true;
            response.queries = request.queries.clone();
            let name = request.queries[0].name.clone();
            let text = name.to_ascii().to_ascii_lowercase();
            if text.starts_with("nx") {
                response.metadata.response_code = ResponseCode::NXDomain;
                let soa = SOA::new(
                    Name::from_ascii("ns.example.").unwrap(),
                    Name::from_ascii("h.example.").unwrap(),
                    1,
                    1,
                    1,
                    1,
                    60,
                );
                response.authorities.push(Record::from_rdata(
                    Name::from_ascii("example.").unwrap(),
                    300,
                    RData::SOA(soa),
                ));
            } else {
                let ttl = if text.starts_with("short") { 1 } else { 60 };
                response.answers.push(Record::from_rdata(
                    name,
                    ttl,
                    RData::A("192.0.2.1".parse::<std::net::Ipv4Addr>().unwrap().into()),
                ));
            }
            let _ = socket.send_to(&response.to_vec().unwrap(), peer).await;
        }
    });
    Upstream {
        addr,
        queries,
        down,
        _task: task,
    }
}

fn forwarding(upstream: SocketAddr) -> DnsConfig {
    DnsConfig {
        upstreams: vec![upstream],
        upstream_timeout: Duration::from_millis(200),
        ..config()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_answers_are_cached_positive_and_negative() {
    let up = upstream().await;
    let server = start(forwarding(up.addr), ClusterView::from_snapshot(fixture())).await;
    let addr = server.udp_addr();

    let first = udp(addr, "www.example.com.", RecordType::A, None).await;
    assert_eq!(first.metadata.response_code, ResponseCode::NoError);
    assert!(first.metadata.recursion_available && !first.metadata.authoritative);
    assert_eq!(lines(&first.answers), ["www.example.com. A 192.0.2.1"]);
    assert_eq!(up.queries.load(Ordering::SeqCst), 1);
    // Second query (different case): a cache hit, owner in the new case.
    let second = udp(addr, "WWW.example.com.", RecordType::A, None).await;
    assert_eq!(lines(&second.answers), ["WWW.example.com. A 192.0.2.1"]);
    assert!(second.answers[0].ttl <= 60);
    assert_eq!(
        up.queries.load(Ordering::SeqCst),
        1,
        "second query must hit the cache"
    );
    // Another type is another question.
    let _ = udp(addr, "www.example.com.", RecordType::AAAA, None).await;
    assert_eq!(up.queries.load(Ordering::SeqCst), 2);

    // Negative answers are cached for the SOA minimum.
    let nx = udp(addr, "nx.example.com.", RecordType::A, None).await;
    assert_eq!(nx.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(nx.authorities.len(), 1);
    let nx = udp(addr, "nx.example.com.", RecordType::A, None).await;
    assert_eq!(nx.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(
        up.queries.load(Ordering::SeqCst),
        3,
        "negative answer must hit the cache"
    );

    // The cluster zone never reaches the upstream.
    let _ = udp(addr, "web.default.svc.cluster.local.", RecordType::A, None).await;
    let _ = udp(addr, "nope.default.svc.cluster.local.", RecordType::A, None).await;
    assert_eq!(up.queries.load(Ordering::SeqCst), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_entries_are_served_stale_only_when_upstreams_fail() {
    let up = upstream().await;
    let server = start(forwarding(up.addr), ClusterView::from_snapshot(fixture())).await;
    let addr = server.udp_addr();
    let _ = udp(addr, "short.example.com.", RecordType::A, None).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // Expired and the upstream is up: asked again.
    let _ = udp(addr, "short.example.com.", RecordType::A, None).await;
    assert_eq!(up.queries.load(Ordering::SeqCst), 2);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    up.down.store(true, Ordering::SeqCst);
    let stale = udp(addr, "short.example.com.", RecordType::A, None).await;
    assert_eq!(stale.metadata.response_code, ResponseCode::NoError);
    assert_eq!(lines(&stale.answers), ["short.example.com. A 192.0.2.1"]);
    assert_eq!(stale.answers[0].ttl, strait_dns::forward::STALE_TTL);
    // Never cached: SERVFAIL.
    let fail = udp(addr, "never.example.com.", RecordType::A, None).await;
    assert_eq!(fail.metadata.response_code, ResponseCode::ServFail);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwards_to_a_second_strait_server() {
    // The upstream is another strait DNS server, authoritative for
    // example.com over the same fixture.
    let upstream_cfg = DnsConfig {
        zone: Zone::new("example.com").unwrap(),
        ..config()
    };
    let up = start(upstream_cfg, ClusterView::from_snapshot(fixture())).await;
    let server = start(
        forwarding(up.udp_addr()),
        ClusterView::from_snapshot(fixture()),
    )
    .await;
    let got = udp(
        server.udp_addr(),
        "Web.Default.svc.example.com.",
        RecordType::A,
        Some(1232),
    )
    .await;
    assert_eq!(got.metadata.response_code, ResponseCode::NoError);
    assert_eq!(
        lines(&got.answers),
        ["Web.Default.svc.example.com. A 10.96.0.10"]
    );
    let got = udp(
        server.udp_addr(),
        "nope.default.svc.example.com.",
        RecordType::A,
        None,
    )
    .await;
    assert_eq!(got.metadata.response_code, ResponseCode::NXDomain);
    // Truncated upstream answers are fetched again over TCP.
    let got = common::tcp(
        server.tcp_addr(),
        "big.data.svc.example.com.",
        RecordType::A,
    )
    .await;
    assert_eq!(got.answers.len(), 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cluster_zone_is_never_served_stale() {
    let up = upstream().await;
    let (mut publisher, view) = ClusterView::channel(KindSet::only(Kind::Service));
    let server = start(forwarding(up.addr), view).await;
    let addr = server.udp_addr();
    let yaml = |ip: &str| {
        ManifestLoader::parse_str(
            "s.yaml",
            &format!("apiVersion: v1\nkind: Service\nmetadata: {{name: web, namespace: default}}\nspec: {{clusterIP: {ip}}}\n"),
        )
        .objects
    };
    publisher.update(|b| {
        b.replace(KindSet::only(Kind::Service), yaml("10.96.0.1"));
        b.mark_synced(Kind::Service);
    });
    let name = "web.default.svc.cluster.local.";
    for ip in ["10.96.0.1", "10.96.0.2", "10.96.0.3"] {
        publisher.replace(KindSet::only(Kind::Service), yaml(ip));
        let want = format!("{name} A {ip}");
        let started = std::time::Instant::now();
        loop {
            let got = udp(addr, name, RecordType::A, None).await;
            if lines(&got.answers) == [want.clone()] {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_millis(500),
                "stale: {} {:?}",
                got.metadata.response_code,
                lines(&got.answers)
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    assert_eq!(up.queries.load(Ordering::SeqCst), 0);
}

/// The fixture plus a pod in `default` whose address is the test client's
/// (127.0.0.1), so autopath knows the client's namespace.
fn fixture_with_client_pod() -> strait_cluster::ClusterSnapshot {
    let pod = "---\napiVersion: v1\nkind: Pod\nmetadata: {name: client, namespace: default}\n\
               spec: {containers: [{name: c, image: x}]}\n\
               status: {podIP: 127.0.0.1, podIPs: [{ip: 127.0.0.1}]}\n";
    let report = ManifestLoader::parse_str("fixture.yaml", &format!("{}{pod}", common::FIXTURE));
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    report.to_snapshot()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn autopath_answers_the_first_search_expansion_with_a_cname() {
    let up = upstream().await;
    let config = DnsConfig {
        autopath: true,
        ..forwarding(up.addr)
    };
    let server = start(
        config,
        ClusterView::from_snapshot(fixture_with_client_pod()),
    )
    .await;
    let addr = server.udp_addr();

    // An external name: walked to the bare name upstream in one query.
    let got = udp(
        addr,
        "www.example.com.default.svc.cluster.local.",
        RecordType::A,
        None,
    )
    .await;
    assert_eq!(got.metadata.response_code, ResponseCode::NoError);
    assert_eq!(
        lines(&got.answers),
        [
            "www.example.com. A 192.0.2.1",
            "www.example.com.default.svc.cluster.local. CNAME www.example.com."
        ]
    );
    assert_eq!(up.queries.load(Ordering::SeqCst), 1);
    // A name of another namespace (`web.default` typed in `default`): found
    // in the zone at the second search element, nothing goes upstream.
    let got = udp(
        addr,
        "web.default.default.svc.cluster.local.",
        RecordType::A,
        None,
    )
    .await;
    assert_eq!(
        lines(&got.answers),
        [
            "web.default.default.svc.cluster.local. CNAME web.default.svc.cluster.local.",
            "web.default.svc.cluster.local. A 10.96.0.10"
        ]
    );
    assert_eq!(up.queries.load(Ordering::SeqCst), 1);
    // Nothing anywhere: the client's own NXDOMAIN, so its walk goes on.
    let got = udp(
        addr,
        "nxname.default.svc.cluster.local.",
        RecordType::A,
        None,
    )
    .await;
    assert_eq!(got.metadata.response_code, ResponseCode::NXDomain);
    assert!(got.answers.is_empty());
    // Over TCP too.
    let got = common::tcp(
        server.tcp_addr(),
        "www.example.com.default.svc.cluster.local.",
        RecordType::A,
    )
    .await;
    assert_eq!(got.answers.len(), 2, "{:?}", lines(&got.answers));
    // Another namespace's search domain is not this client's walk.
    let before = up.queries.load(Ordering::SeqCst);
    let got = udp(
        addr,
        "www.example.com.other.svc.cluster.local.",
        RecordType::A,
        None,
    )
    .await;
    assert_eq!(got.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(up.queries.load(Ordering::SeqCst), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_autopath_the_first_expansion_is_nxdomain() {
    let up = upstream().await;
    let server = start(
        forwarding(up.addr),
        ClusterView::from_snapshot(fixture_with_client_pod()),
    )
    .await;
    let got = udp(
        server.udp_addr(),
        "www.example.com.default.svc.cluster.local.",
        RecordType::A,
        None,
    )
    .await;
    assert_eq!(got.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(up.queries.load(Ordering::SeqCst), 0);
}
