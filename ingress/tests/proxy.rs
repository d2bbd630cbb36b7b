//! Proxying through the real server: forwarding headers, hop-by-hop
//! removal, round-robin spreading, retries, 502/503/504 and WebSocket
//! upgrades.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use hyper::{Method, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn ingress(host: &str, service: &str) -> String {
    format!(
        "apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: {service}
  namespace: apps
spec:
  ingressClassName: strait
  rules:
  - host: {host}
    http:
      paths:
      - {{path: /, pathType: Prefix, backend: {{service: {{name: {service}, port: {{number: 80}}}}}}}}
"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarding_headers_are_set_and_hop_by_hop_headers_removed() {
    let m = Manifests::new();
    let web = echo("web", [127, 0, 0, 2]).await;
    m.write("svc.yaml", &service("apps", "web", "http", 80, &[web.addr]));
    m.write("ing.yaml", &ingress("web.example.com", "web"));
    let ingress = start(&m, config()).await;
    let addr = ingress.http_addr().expect("addr");
    let req = Req::get("web.example.com:8080", "/headers")
        .header("x-forwarded-for", "203.0.113.7")
        .header("x-real-ip", "198.51.100.1")
        .header("x-forwarded-proto", "https")
        .header("connection", "keep-alive, x-hop")
        .header("x-hop", "must not pass")
        .header("keep-alive", "timeout=5")
        .header("te", "trailers")
        .header("proxy-authorization", "Basic c2VjcmV0")
        .header("cookie", "a=1")
        .header("x-end-to-end", "passes");
    let reply = send(addr, &req).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let seen = reply.echo();
    let h: &BTreeMap<String, String> = &seen.headers;
    let get = |k: &str| h.get(k).map(String::as_str);
    assert_eq!(seen.host, "web.example.com:8080", "Host is preserved");
    assert_eq!(get("x-forwarded-for"), Some("203.0.113.7, 127.0.0.1"));
    assert_eq!(get("x-real-ip"), Some("127.0.0.1"));
    assert_eq!(get("x-forwarded-proto"), Some("http"));
    assert_eq!(get("x-forwarded-host"), Some("web.example.com:8080"));
    assert_eq!(
        get("x-forwarded-port"),
        Some(addr.port().to_string().as_str())
    );
    assert_eq!(get("x-end-to-end"), Some("passes"));
    assert_eq!(get("cookie"), Some("a=1"));
    for hop in ["x-hop", "keep-alive", "te", "proxy-authorization"] {
        assert!(get(hop).is_none(), "{hop} reached the upstream: {h:?}");
    }
    // The upstream sees the proxy, not the client.
    let peer: SocketAddr = seen.peer.parse().expect("peer");
    assert!(peer.ip().is_loopback());
    ingress.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_spreads_and_dead_endpoints_are_retried() {
    let m = Manifests::new();
    let mut backends = Vec::new();
    for i in 0..10u8 {
        backends.push(echo(&format!("pod-{i}"), [127, 0, 1, 10 + i]).await);
    }
    let addrs: Vec<SocketAddr> = backends.iter().map(|b| b.addr).collect();
    m.write(
        "spread.yaml",
        &service("apps", "spread", "http", 80, &addrs),
    );
    let alive = echo("alive", [127, 0, 2, 1]).await;
    m.write(
        "half.yaml",
        &service(
            "apps",
            "half",
            "http",
            80,
            &[dead_addr(), alive.addr, dead_addr()],
        ),
    );
    m.write(
        "dead.yaml",
        &service("apps", "dead", "http", 80, &[dead_addr(), dead_addr()]),
    );
    m.write(
        "ing.yaml",
        &[
            ingress("spread.example.com", "spread"),
            ingress("half.example.com", "half"),
            ingress("dead.example.com", "dead"),
        ]
        .join("---\n"),
    );
    let ingress = start(&m, config()).await;
    let addr = ingress.http_addr().expect("addr");

    // 100 requests over 10 endpoints reach all of them, on one keep-alive
    // client connection.
    let mut client = H1::connect(addr).await;
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for _ in 0..100 {
        let reply = client
            .send(&Req::get("spread.example.com", "/"))
            .await
            .expect("request");
        assert_eq!(reply.status, StatusCode::OK);
        *counts.entry(reply.pod().expect("pod")).or_default() += 1;
    }
    assert_eq!(counts.len(), 10, "every endpoint gets traffic: {counts:?}");
    assert!(counts.values().all(|n| *n >= 5), "{counts:?}");

    // Dead endpoints are skipped: every request succeeds, GET and POST.
    for i in 0..20 {
        let req = if i % 2 == 0 {
            Req::get("half.example.com", "/")
        } else {
            Req::get("half.example.com", "/")
                .method(Method::POST)
                .body(b"retry me")
        };
        let reply = send(addr, &req).await;
        assert_eq!(
            reply.status,
            StatusCode::OK,
            "request {i}: {}",
            reply.text()
        );
        assert_eq!(reply.pod().as_deref(), Some("alive"));
    }

    // All endpoints dead: 502 with a clear body.
    let reply = get(addr, "dead.example.com", "/").await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY);
    let body = reply.text();
    assert!(
        body.contains("no endpoint of apps/dead:80 accepted a connection (tried 2)"),
        "{body}"
    );
    let metrics = ingress.render_metrics();
    assert!(
        metrics.contains("strait_ingress_upstream_connect_failures_total"),
        "{metrics}"
    );
    assert!(
        metrics.contains("status=\"502\""),
        "502 counted per route: {metrics}"
    );
    ingress.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_upstream_gets_504_and_empty_service_503() {
    let m = Manifests::new();
    // Accepts connections and never answers.
    let silent = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let silent_addr = silent.local_addr().expect("addr");
    let _hold = Task(tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = silent.accept().await {
            held.push(s);
        }
    }));
    m.write(
        "slow.yaml",
        &service("apps", "slow", "http", 80, &[silent_addr]),
    );
    m.write("empty.yaml", &service("apps", "empty", "http", 80, &[]));
    m.write(
        "ing.yaml",
        &[
            ingress("slow.example.com", "slow"),
            ingress("empty.example.com", "empty"),
        ]
        .join("---\n"),
    );
    let mut cfg = config();
    cfg.timeouts.read = Duration::from_millis(300);
    let ingress = start(&m, cfg).await;
    let addr = ingress.http_addr().expect("addr");
    let reply = get(addr, "slow.example.com", "/").await;
    assert_eq!(
        reply.status,
        StatusCode::GATEWAY_TIMEOUT,
        "{}",
        reply.text()
    );
    assert!(
        reply.text().contains("sent no response within"),
        "{}",
        reply.text()
    );
    let reply = get(addr, "empty.example.com", "/").await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        reply
            .text()
            .contains("apps/empty:80 has no ready endpoints"),
        "{}",
        reply.text()
    );
    ingress.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_streaming_bodies_pass_through() {
    let m = Manifests::new();
    let web = echo("web", [127, 0, 0, 2]).await;
    m.write("svc.yaml", &service("apps", "web", "http", 80, &[web.addr]));
    m.write("ing.yaml", &ingress("web.example.com", "web"));
    let ingress = start(&m, config()).await;
    let addr = ingress.http_addr().expect("addr");
    static BIG: [u8; 300 * 1024] = [b'x'; 300 * 1024];
    let reply = send(
        addr,
        &Req::get("web.example.com", "/upload")
            .method(Method::PUT)
            .body(&BIG),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let seen = reply.echo();
    assert_eq!(seen.method, "PUT");
    assert_eq!(
        seen.headers.get("content-length").map(String::as_str),
        Some("307200")
    );
    ingress.shutdown().await;
}

/// A WebSocket-like upstream: answers the upgrade with 101, then echoes
/// every byte back.
async fn upgrade_upstream() -> (SocketAddr, Task) {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let head = read_head(&mut s).await.to_ascii_lowercase();
                if !head.contains("upgrade: websocket") || !head.contains("connection: upgrade") {
                    let _ = s
                        .write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
                        .await;
                    return;
                }
                let _ = s
                    .write_all(
                        b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
                    )
                    .await;
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    (addr, Task(task))
}

async fn read_head(s: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        match s.read(&mut byte).await {
            Ok(1) => buf.push(byte[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&buf).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_upgrade_is_tunnelled() {
    let m = Manifests::new();
    let (ws_addr, _ws) = upgrade_upstream().await;
    m.write("svc.yaml", &service("apps", "ws", "http", 80, &[ws_addr]));
    m.write("ing.yaml", &ingress("ws.example.com", "ws"));
    let ingress = start(&m, config()).await;
    let addr = ingress.http_addr().expect("addr");
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(
        b"GET /chat HTTP/1.1\r\nHost: ws.example.com\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    )
    .await
    .expect("write");
    let head = tokio::time::timeout(SETTLE, read_head(&mut s))
        .await
        .expect("101 in time");
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(
        head.to_ascii_lowercase().contains("upgrade: websocket"),
        "{head}"
    );
    for msg in [&b"hello"[..], b"second frame", b"\x81\x05bytes"] {
        s.write_all(msg).await.expect("write");
        let mut back = vec![0u8; msg.len()];
        tokio::time::timeout(SETTLE, s.read_exact(&mut back))
            .await
            .expect("echo in time")
            .expect("read");
        assert_eq!(back, msg);
    }
    ingress.shutdown().await;
}
