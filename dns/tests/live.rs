//! The server as deployed: fed from a manifest directory that changes under
//! it, queried by `dig`, probed over HTTP.

mod common;

use std::time::{Duration, Instant};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use strait_cluster::{ClusterView, Component, Kind, ManifestSource, Trim};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use common::{config, fixture, lines, start, udp};

fn service_yaml(name: &str, ip: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: live}}\n\
         spec: {{clusterIP: {ip}, ports: [{{name: http, port: 80}}]}}\n"
    )
}

/// Poll `name` until `want(answer lines, rcode)` holds; returns how long it
/// took, failing after one second.
async fn within_a_second(
    server: std::net::SocketAddr,
    name: &str,
    want: impl Fn(&[String], ResponseCode) -> bool,
) -> Duration {
    let started = Instant::now();
    loop {
        let got = udp(server, name, RecordType::A, None).await;
        if want(&lines(&got.answers), got.metadata.response_code) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{name}: still {:?} {:?} after 1 s",
            got.metadata.response_code,
            lines(&got.answers)
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manifest_edits_are_answered_within_a_second() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("base.yaml"),
        service_yaml("base", "10.96.1.1"),
    )
    .unwrap();
    // as `strait dns --manifests` runs it: DNS kinds, trimmed
    let source = ManifestSource::new(dir.path())
        .with_debounce(Duration::from_millis(20))
        .with_kinds(Component::Dns.kinds().without(Kind::Pod))
        .with_trim(Trim::for_component(Component::Dns));
    let mut view = ClusterView::spawn(source);
    view.wait_synced().await.unwrap();
    let server = start(config(), view).await;
    let addr = server.udp_addr();
    let name = "api.live.svc.cluster.local.";
    let got = udp(addr, name, RecordType::A, None).await;
    assert_eq!(got.metadata.response_code, ResponseCode::NXDomain);

    // Created.
    let file = dir.path().join("api.yaml");
    std::fs::write(&file, service_yaml("api", "10.96.1.2")).unwrap();
    let took = within_a_second(addr, name, |a, rc| {
        rc == ResponseCode::NoError && a == ["api.live.svc.cluster.local. A 10.96.1.2"]
    })
    .await;
    eprintln!("create visible after {took:?}");
    // Changed.
    std::fs::write(&file, service_yaml("api", "10.96.1.3")).unwrap();
    let took = within_a_second(addr, name, |a, _| {
        a == ["api.live.svc.cluster.local. A 10.96.1.3"]
    })
    .await;
    eprintln!("change visible after {took:?}");
    // Deleted.
    std::fs::remove_file(&file).unwrap();
    let took = within_a_second(addr, name, |_, rc| rc == ResponseCode::NXDomain).await;
    eprintln!("delete visible after {took:?}");
    // The reverse record went with it.
    let got = udp(addr, "3.1.96.10.in-addr.arpa.", RecordType::PTR, None).await;
    assert_eq!(got.metadata.response_code, ResponseCode::Refused);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dig_gets_answers_over_udp_and_tcp() {
    if std::process::Command::new("dig")
        .arg("-v")
        .output()
        .is_err()
    {
        assert!(
            std::env::var("CI").is_err(),
            "dig is missing (scripts/setup installs dnsutils)"
        );
        eprintln!("SKIPPED (needs dig from dnsutils; run scripts/setup)");
        return;
    }
    let server = start(config(), ClusterView::from_snapshot(fixture())).await;
    let port = server.udp_addr().port().to_string();
    let dig = |args: &'static [&'static str]| {
        let port = port.clone();
        tokio::task::spawn_blocking(move || {
            let out = std::process::Command::new("dig")
                .args(["@127.0.0.1", "-p", &port, "+time=2", "+tries=1"])
                .args(args)
                .output()
                .expect("run dig");
            String::from_utf8_lossy(&out.stdout).into_owned()
        })
    };
    let short = dig(&["+short", "web.default.svc.cluster.local", "A"])
        .await
        .unwrap();
    assert_eq!(short.trim(), "10.96.0.10");
    let short = dig(&[
        "+short",
        "+tcp",
        "_pg._tcp.db.data.svc.cluster.local",
        "SRV",
    ])
    .await
    .unwrap();
    assert_eq!(short.lines().count(), 3, "{short}");
    let full = dig(&["www.example.com.default.svc.cluster.local", "A"])
        .await
        .unwrap();
    assert!(full.contains("status: NXDOMAIN"), "{full}");
    assert!(full.contains("flags: qr aa rd"), "{full}");
    let full = dig(&["-x", "10.96.0.10"]).await.unwrap();
    assert!(
        full.contains("PTR\tweb.default.svc.cluster.local."),
        "{full}"
    );
    // 100 records do not fit in UDP: dig retries over TCP by itself.
    let short = dig(&["+short", "big.data.svc.cluster.local", "A"])
        .await
        .unwrap();
    assert_eq!(short.lines().count(), 100);
}

async fn http_get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
    let mut out = String::new();
    stream.read_to_string(&mut out).await.unwrap();
    let status = out[9..12].parse().unwrap();
    (status, out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_ready_and_metrics() {
    let (mut publisher, view) =
        ClusterView::channel(strait_cluster::KindSet::only(strait_cluster::Kind::Service));
    let mut cfg = config();
    cfg.http = Some("127.0.0.1:0".parse().unwrap());
    let server = start(cfg, view).await;
    let http = server.http_addr().unwrap();
    assert_eq!(http_get(http, "/health").await.0, 200);
    assert_eq!(http_get(http, "/ready").await.0, 503);
    publisher.mark_synced(strait_cluster::Kind::Service);
    let started = Instant::now();
    while http_get(http, "/ready").await.0 != 200 {
        assert!(started.elapsed() < Duration::from_secs(1), "never ready");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let _ = udp(
        server.udp_addr(),
        "nope.default.svc.cluster.local.",
        RecordType::AAAA,
        None,
    )
    .await;
    let (status, body) = http_get(http, "/metrics").await;
    assert_eq!(status, 200);
    assert!(
        body.contains(r#"strait_dns_queries_total{qtype="AAAA",rcode="NXDOMAIN"} 1"#),
        "{body}"
    );
    assert!(
        body.contains("strait_dns_request_duration_seconds_count"),
        "{body}"
    );
    assert!(body.contains("strait_dns_cache_hits_total"), "{body}");
    assert_eq!(http_get(http, "/nope").await.0, 404);
}
