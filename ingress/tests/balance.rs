//! `load-balance`: round-robin spreads requests evenly over a Service's
//! endpoints; `ewma` (the annotation, or the controller's default) sends
//! nearly all of them to the endpoint that answers faster, through the real
//! server and real upstream connections.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use hyper::StatusCode;
use strait_ingress::balance::Balance;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// An HTTP/1.1 upstream on `ip`:0 that answers every request after
/// `delay`, naming itself in `x-strait-pod` as the echo backends do.
async fn slow_upstream(ip: [u8; 4], name: &'static str, delay: Duration) -> (SocketAddr, Task) {
    let listener = TcpListener::bind(SocketAddr::from((ip, 0)))
        .await
        .expect("bind slow upstream");
    let addr = listener.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    // One request head at a time (the proxy sends GETs
                    // without bodies); keep-alive until the peer closes.
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match conn.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or(0) + 4;
                    buf.drain(..end);
                    tokio::time::sleep(delay).await;
                    let reply = format!(
                        "HTTP/1.1 200 OK\r\nx-strait-pod: {name}\r\ncontent-length: 2\r\n\r\nok"
                    );
                    if conn.write_all(reply.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (addr, Task(task))
}

/// A fast echo backend and a 30 ms upstream, the two endpoints of Service
/// `apps/api`; both stop when the returned values drop.
async fn fast_and_slow(m: &Manifests) -> (Backend, Task) {
    let fast = echo("fast", [127, 0, 0, 2]).await;
    let (slow, task) = slow_upstream([127, 0, 0, 3], "slow", Duration::from_millis(30)).await;
    m.write(
        "svc.yaml",
        &service("apps", "api", "http", 80, &[fast.addr, slow]),
    );
    (fast, task)
}

/// Sends `n` requests one after another; returns how many the fast
/// endpoint answered.
async fn answered_by_fast(addr: SocketAddr, host: &str, n: usize) -> usize {
    let mut fast = 0;
    for i in 0..n {
        let reply = send(addr, &Req::get(host, "/")).await;
        assert_eq!(reply.status, StatusCode::OK, "{i}: {}", reply.text());
        if reply.pod().as_deref() == Some("fast") {
            fast += 1;
        }
    }
    fast
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ewma_prefers_the_faster_endpoint_and_round_robin_alternates() {
    let m = Manifests::new();
    let _backends = fast_and_slow(&m).await;
    let lb = "nginx.ingress.kubernetes.io/load-balance";
    m.write(
        "ing.yaml",
        &[
            ingress_yaml("rr", &[], &[("rr.test", "/", "Prefix", "api")]),
            ingress_yaml(
                "ewma",
                &[(lb, "ewma")],
                &[("ewma.test", "/", "Prefix", "api")],
            ),
            ingress_yaml(
                "bad",
                &[(lb, "chash")],
                &[("bad.test", "/", "Prefix", "api")],
            ),
        ]
        .concat(),
    );
    let ingress = start(&m, config()).await;
    let addr = ingress.http_addr().expect("addr");

    let n = 40;
    let rr = answered_by_fast(addr, "rr.test", n).await;
    assert!(
        (n * 4 / 10..=n * 6 / 10).contains(&rr),
        "round-robin: {rr} of {n} to the fast endpoint"
    );
    let ewma = answered_by_fast(addr, "ewma.test", n).await;
    assert!(
        ewma >= n * 8 / 10,
        "ewma: {ewma} of {n} to the fast endpoint"
    );
    // An unknown value refuses the Ingress rather than guessing.
    let refused = send(addr, &Req::get("bad.test", "/")).await;
    assert_eq!(refused.status, StatusCode::NOT_FOUND, "{}", refused.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_controller_default_applies_to_ingresses_without_the_annotation() {
    let m = Manifests::new();
    let _backends = fast_and_slow(&m).await;
    m.write(
        "ing.yaml",
        &ingress_yaml("plain", &[], &[("plain.test", "/", "Prefix", "api")]),
    );
    let config = strait_ingress::config::IngressConfig {
        load_balance: Balance::Ewma,
        ..config()
    };
    let ingress = start(&m, config).await;
    let addr = ingress.http_addr().expect("addr");
    let n = 40;
    let fast_share = answered_by_fast(addr, "plain.test", n).await;
    assert!(
        fast_share >= n * 8 / 10,
        "{fast_share} of {n} to the fast endpoint"
    );
}
