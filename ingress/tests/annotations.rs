//! ingress-nginx annotations through the real server: each honoured one
//! changes behaviour, an invalid value or a refused annotation takes only
//! its own Ingress out of service.

mod common;

use std::time::Duration;

use common::*;
use hyper::{Method, StatusCode};
use strait_ingress::annotations::migration_report;

fn annotated(name: &str, host: &str, path: &str, annotations: &[(&str, &str)]) -> String {
    let annotations: String = annotations
        .iter()
        .map(|(k, v)| format!("    {k}: \"{v}\"\n"))
        .collect();
    let annotations = if annotations.is_empty() {
        String::new()
    } else {
        format!("  annotations:\n{annotations}")
    };
    format!(
        "apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: {name}
  namespace: apps
{annotations}spec:
  ingressClassName: strait
  rules:
  - host: {host}
    http:
      paths:
      - {{path: {path}, pathType: Prefix, backend: {{service: {{name: web, port: {{number: 80}}}}}}}}
---
"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn annotations_change_behaviour_and_invalid_ones_reject_only_their_ingress() {
    let m = Manifests::new();
    let web = echo("web", [127, 0, 0, 2]).await;
    m.write("svc.yaml", &service("apps", "web", "http", 80, &[web.addr]));
    let p = "nginx.ingress.kubernetes.io/";
    let body_size = format!("{p}proxy-body-size");
    let rewrite = format!("{p}rewrite-target");
    let allow = format!("{p}whitelist-source-range");
    let force = format!("{p}force-ssl-redirect");
    let read = format!("{p}proxy-read-timeout");
    let snippet = format!("{p}configuration-snippet");
    m.write(
        "ing.yaml",
        &[
            annotated("limited", "limited.test", "/", &[(&body_size, "1k")]),
            annotated("rewritten", "rewrite.test", "/api", &[(&rewrite, "/v2")]),
            annotated("allowed", "allowed.test", "/", &[(&allow, "127.0.0.0/8")]),
            annotated(
                "denied",
                "denied.test",
                "/",
                &[(&allow, "10.0.0.0/8, 192.0.2.1")],
            ),
            annotated("forced", "forced.test", "/", &[(&force, "true")]),
            annotated("timeouts", "timeouts.test", "/", &[(&read, "5")]),
            annotated("invalid", "invalid.test", "/", &[(&body_size, "huge")]),
            annotated("snippet", "snippet.test", "/", &[(&snippet, "return 200;")]),
            annotated(
                "ignored",
                "ignored.test",
                "/",
                &[("nginx.ingress.kubernetes.io/affinity", "cookie")],
            ),
        ]
        .concat(),
    );
    let ingress = start(&m, config()).await;
    let addr = ingress.http_addr().expect("addr");

    // proxy-body-size: a declared length over the limit is refused; under it passes.
    let reply = send(
        addr,
        &Req::get("limited.test", "/")
            .method(Method::POST)
            .body(&[b'x'; 2048]),
    )
    .await;
    assert_eq!(
        reply.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "{}",
        reply.text()
    );
    assert!(reply.text().contains("proxy-body-size"), "{}", reply.text());
    let reply = send(
        addr,
        &Req::get("limited.test", "/")
            .method(Method::POST)
            .body(&[b'x'; 512]),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);

    // rewrite-target replaces the matched prefix, keeping the rest and the query.
    let reply = get(addr, "rewrite.test", "/api/users/7?full=1").await;
    assert_eq!(reply.echo().path, "/v2/users/7?full=1");
    assert_eq!(get(addr, "rewrite.test", "/api").await.echo().path, "/v2");

    // whitelist-source-range: the test client is 127.0.0.1.
    assert_eq!(get(addr, "allowed.test", "/").await.status, StatusCode::OK);
    let reply = get(addr, "denied.test", "/").await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert!(
        reply.text().contains("whitelist-source-range"),
        "{}",
        reply.text()
    );

    // force-ssl-redirect redirects even without TLS.
    assert_eq!(
        get(addr, "forced.test", "/").await.status,
        StatusCode::PERMANENT_REDIRECT
    );
    assert_eq!(get(addr, "timeouts.test", "/").await.status, StatusCode::OK);

    // Invalid and refused annotations take their Ingress out (404 here),
    // ignored ones do not.
    assert_eq!(
        get(addr, "invalid.test", "/").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get(addr, "snippet.test", "/").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(get(addr, "ignored.test", "/").await.status, StatusCode::OK);

    // Fixing the value brings the Ingress back without a restart.
    m.write(
        "fixed.yaml",
        &annotated("invalid", "invalid.test", "/", &[(&body_size, "10m")]),
    );
    m.write(
        "ing.yaml",
        &annotated("limited", "limited.test", "/", &[(&body_size, "1k")]),
    );
    eventually("the fixed Ingress serves", || async {
        get(addr, "invalid.test", "/").await.status == StatusCode::OK
    })
    .await;
    ingress.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_ingress_read_timeout_gives_504() {
    let m = Manifests::new();
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let silent_addr = silent.local_addr().expect("addr");
    let _hold = Task(tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = silent.accept().await {
            held.push(s);
        }
    }));
    m.write(
        "svc.yaml",
        &service("apps", "web", "http", 80, &[silent_addr]),
    );
    m.write(
        "ing.yaml",
        &annotated(
            "slow",
            "slow.test",
            "/",
            &[("nginx.ingress.kubernetes.io/proxy-read-timeout", "1")],
        ),
    );
    let mut cfg = config();
    cfg.timeouts.read = Duration::from_secs(600);
    let ingress = start(&m, cfg).await;
    let addr = ingress.http_addr().expect("addr");
    let reply = tokio::time::timeout(Duration::from_secs(20), get(addr, "slow.test", "/"))
        .await
        .expect("the annotation's 1 s applies, not the controller's 600 s");
    assert_eq!(reply.status, StatusCode::GATEWAY_TIMEOUT);
    assert!(reply.text().contains("within 1s"), "{}", reply.text());
    ingress.shutdown().await;
}

#[test]
fn migration_report_gives_a_verdict_for_every_nginx_annotation() {
    let a: std::collections::BTreeMap<String, String> = [
        ("nginx.ingress.kubernetes.io/ssl-redirect", "false"),
        ("nginx.ingress.kubernetes.io/proxy-body-size", "8m"),
        (
            "nginx.ingress.kubernetes.io/server-snippet",
            "location / {}",
        ),
        ("nginx.ingress.kubernetes.io/affinity", "cookie"),
        ("nginx.ingress.kubernetes.io/session-cookie-max-age", "3600"),
        ("nginx.ingress.kubernetes.io/proxy-read-timeout", "never"),
        ("nginx.ingress.kubernetes.io/rewrite-target", "/$1"),
        ("nginx.ingress.kubernetes.io/backend-protocol", "GRPC"),
        ("kubernetes.io/ingress.class", "strait"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let lines = migration_report([("apps/shop".to_owned(), Some(&a))]);
    let verdicts: Vec<(&str, &str)> = lines
        .iter()
        .map(|l| (l.key.as_str(), l.verdict.as_str()))
        .collect();
    assert_eq!(verdicts.len(), 8, "{verdicts:?}");
    let of = |k: &str| {
        verdicts
            .iter()
            .find(|(key, _)| key.ends_with(k))
            .map(|(_, v)| *v)
            .unwrap_or("missing")
    };
    assert_eq!(of("/ssl-redirect"), "honoured");
    assert!(of("/proxy-body-size").starts_with("honoured, with a difference"));
    assert!(of("/server-snippet").starts_with("refused, the Ingress is not served"));
    assert!(of("/affinity").starts_with("honoured, with a difference"));
    assert!(of("/session-cookie-max-age").starts_with("refused, ignored"));
    assert!(of("/proxy-read-timeout").contains("whole seconds"));
    // Judged on its own, a capture group needs use-regex.
    assert!(of("/rewrite-target").contains("use-regex"));
    assert!(of("/backend-protocol").starts_with("refused, the Ingress is not served"));
}
