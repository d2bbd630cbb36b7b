//! Reconfiguration without reload: configuration swaps during keep-alive
//! sequences and long-running requests drop nothing, and graceful shutdown
//! lets in-flight requests finish.

mod common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use common::*;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::{Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

fn route_to(service: &str) -> String {
    format!(
        "apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: web
  namespace: apps
spec:
  ingressClassName: strait
  rules:
  - host: web.example.com
    http:
      paths:
      - {{path: /, pathType: Prefix, backend: {{service: {{name: {service}, port: {{number: 80}}}}}}}}
"
    )
}

/// An upstream that answers `slow` after `delay`, counting the requests
/// it has received.
async fn slow_backend(delay: Duration) -> (SocketAddr, Arc<AtomicUsize>, Task) {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    let received = Arc::new(AtomicUsize::new(0));
    let counter = received.clone();
    let task = tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            let counter = counter.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |_req| {
                    counter.fetch_add(1, Ordering::SeqCst);
                    async move {
                        tokio::time::sleep(delay).await;
                        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"slow"))))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(s), svc)
                    .await;
            });
        }
    });
    (addr, received, Task(task))
}

/// Waits until `counter` reached `n`.
async fn reached(counter: &AtomicUsize, n: usize) {
    eventually("the upstream received the request", || async {
        counter.load(Ordering::SeqCst) >= n
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_swaps_during_a_keep_alive_sequence_drop_nothing() {
    let m = Manifests::new();
    let v1 = echo("v1", [127, 0, 0, 2]).await;
    let v2 = echo("v2", [127, 0, 0, 3]).await;
    m.write("v1.yaml", &service("apps", "v1", "http", 80, &[v1.addr]));
    m.write("v2.yaml", &service("apps", "v2", "http", 80, &[v2.addr]));
    m.write("ing.yaml", &route_to("v1"));
    let ingress = start(&m, config()).await;
    let addr = ingress.http_addr().expect("addr");
    let swaps_before = ingress.config_swaps();

    // One client connection for the whole sequence: a dropped connection
    // would fail a send.
    let mut client = H1::connect(addr).await;
    for i in 0..120 {
        if i % 20 == 10 {
            let target = if (i / 20) % 2 == 0 { "v2" } else { "v1" };
            m.write("ing.yaml", &route_to(target));
        }
        let reply = client
            .send(&Req::get("web.example.com", "/seq"))
            .await
            .unwrap_or_else(|e| panic!("request {i} failed on the kept-alive connection: {e}"));
        assert_eq!(
            reply.status,
            StatusCode::OK,
            "request {i}: {}",
            reply.text()
        );
        assert!(
            matches!(reply.pod().as_deref(), Some("v1" | "v2")),
            "request {i}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Settle on v2 and check the same connection sees it.
    m.write("ing.yaml", &route_to("v2"));
    let deadline = tokio::time::Instant::now() + SETTLE;
    loop {
        let reply = client
            .send(&Req::get("web.example.com", "/"))
            .await
            .expect("request on the kept-alive connection");
        if reply.pod().as_deref() == Some("v2") {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "v2 never served");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        ingress.config_swaps() > swaps_before,
        "configurations were swapped"
    );
    ingress.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_request_survives_a_config_swap() {
    let m = Manifests::new();
    let (slow, received, _slow) = slow_backend(Duration::from_millis(3000)).await;
    m.write("slow.yaml", &service("apps", "slow", "http", 80, &[slow]));
    m.write("ing.yaml", &route_to("slow"));
    let ingress = start(&m, config()).await;
    let addr = ingress.http_addr().expect("addr");

    let in_flight = tokio::spawn(async move { get(addr, "web.example.com", "/long").await });
    reached(&received, 1).await;
    // Remove the route and the Service while the request is in flight.
    m.remove("ing.yaml");
    m.remove("slow.yaml");
    // Watch the router rather than probing with requests, which would hit
    // the slow backend until the swap.
    eventually("the route is gone", || async {
        ingress.router().route("web.example.com", "/").is_none()
    })
    .await;
    assert_eq!(
        get(addr, "web.example.com", "/").await.status,
        StatusCode::NOT_FOUND,
        "new requests see the new configuration"
    );
    assert!(
        !in_flight.is_finished(),
        "the swap happened while the request was in flight"
    );
    let reply = in_flight.await.expect("task");
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(reply.text(), "slow");
    ingress.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_drains_in_flight_requests() {
    let m = Manifests::new();
    let (slow, received, _slow) = slow_backend(Duration::from_millis(800)).await;
    m.write("slow.yaml", &service("apps", "slow", "http", 80, &[slow]));
    m.write("ing.yaml", &route_to("slow"));
    let mut cfg = config();
    cfg.metrics = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
    let ingress = start(&m, cfg).await;
    let addr = ingress.http_addr().expect("addr");

    let health = get(
        ingress.metrics_addr().expect("metrics"),
        "admin",
        "/healthz",
    )
    .await;
    assert_eq!(health.status, StatusCode::OK);
    let metrics = get(
        ingress.metrics_addr().expect("metrics"),
        "admin",
        "/metrics",
    )
    .await;
    assert!(
        metrics
            .text()
            .contains("strait_ingress_config_reloads_total"),
        "{}",
        metrics.text()
    );

    let in_flight = tokio::spawn(async move { get(addr, "web.example.com", "/drain").await });
    reached(&received, 1).await;
    tokio::time::timeout(SETTLE, ingress.shutdown())
        .await
        .expect("shutdown finishes after draining");
    let reply = in_flight.await.expect("task");
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "the in-flight request completed"
    );
    assert_eq!(reply.text(), "slow");
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "no new connections after shutdown"
    );
}
