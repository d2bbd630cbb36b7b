//! TLS through real clients: SNI certificate selection from Secrets in the
//! Ingress's own namespace, the default certificate, live Secret rotation,
//! bad certificates isolated to their Ingress, the 308 redirect, TLS 1.2
//! and 1.3, and h2 negotiated with ALPN.

mod common;

use common::*;
use hyper::StatusCode;

const INGRESSES: &str = r#"
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: tls-a, namespace: apps}
spec:
  ingressClassName: strait
  tls:
  - hosts: [a.example.com]
    secretName: a-tls
  rules:
  - host: a.example.com
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: a, port: {number: 80}}}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: tls-b, namespace: apps}
spec:
  ingressClassName: strait
  tls:
  - hosts: ["*.b.example.com"]
    secretName: b-tls
  rules:
  - host: "*.b.example.com"
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: b, port: {number: 80}}}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: no-redirect
  namespace: apps
  annotations:
    nginx.ingress.kubernetes.io/ssl-redirect: "false"
spec:
  ingressClassName: strait
  tls:
  - hosts: [c.example.com]
    secretName: c-tls
  rules:
  - host: c.example.com
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: plain, port: {number: 80}}}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: plain, namespace: apps}
spec:
  ingressClassName: strait
  rules:
  - host: plain.example.com
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: plain, port: {number: 80}}}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: cross-namespace, namespace: apps}
spec:
  ingressClassName: strait
  tls:
  - hosts: [x.example.com]
    secretName: only-in-other
  rules:
  - host: x.example.com
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: plain, port: {number: 80}}}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: bad-cert, namespace: apps}
spec:
  ingressClassName: strait
  tls:
  - hosts: [bad.example.com]
    secretName: bad-tls
  rules:
  - host: bad.example.com
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: plain, port: {number: 80}}}}
"#;

struct Fixture {
    m: Manifests,
    a: (String, String),
    b: (String, String),
    c: (String, String),
    other: (String, String),
    _backends: Vec<Backend>,
}

async fn fixture() -> Fixture {
    let m = Manifests::new();
    let a = echo("a", [127, 0, 0, 2]).await;
    let b = echo("b", [127, 0, 0, 3]).await;
    let plain = echo("plain", [127, 0, 0, 4]).await;
    m.write("svc-a.yaml", &service("apps", "a", "http", 80, &[a.addr]));
    m.write("svc-b.yaml", &service("apps", "b", "http", 80, &[b.addr]));
    m.write(
        "svc-plain.yaml",
        &service("apps", "plain", "http", 80, &[plain.addr]),
    );
    let ca = cert(&["a.example.com"]);
    let cb = cert(&["*.b.example.com"]);
    let cc = cert(&["c.example.com"]);
    let other = cert(&["x.example.com"]);
    let (_, wrong_key) = cert(&["bad.example.com"]);
    m.write("secret-a.yaml", &tls_secret("apps", "a-tls", &ca.0, &ca.1));
    m.write("secret-b.yaml", &tls_secret("apps", "b-tls", &cb.0, &cb.1));
    m.write("secret-c.yaml", &tls_secret("apps", "c-tls", &cc.0, &cc.1));
    m.write(
        "secret-other.yaml",
        &tls_secret("other", "only-in-other", &other.0, &other.1),
    );
    m.write(
        "secret-bad.yaml",
        &tls_secret("apps", "bad-tls", &ca.0, &wrong_key),
    );
    m.write("ingresses.yaml", INGRESSES);
    Fixture {
        m,
        a: ca,
        b: cb,
        c: cc,
        other,
        _backends: vec![a, b, plain],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sni_selects_certificates_from_the_ingress_namespace() {
    let f = fixture().await;
    let ingress = start(&f.m, config()).await;
    let tls = ingress.https_addr().expect("https addr");

    let (reply, leaf) = https(tls, Some("a.example.com"), &Req::get("a.example.com", "/x")).await;
    assert_eq!(
        leaf,
        der(&f.a.0),
        "a.example.com gets its Secret's certificate"
    );
    assert_eq!(reply.pod().as_deref(), Some("a"));
    let seen = reply.echo();
    assert_eq!(
        seen.headers.get("x-forwarded-proto").map(String::as_str),
        Some("https")
    );

    let (reply, leaf) = https(
        tls,
        Some("api.b.example.com"),
        &Req::get("api.b.example.com", "/"),
    )
    .await;
    assert_eq!(leaf, der(&f.b.0), "wildcard TLS host");
    assert_eq!(reply.pod().as_deref(), Some("b"));

    let (reply, leaf) = https(tls, Some("c.example.com"), &Req::get("c.example.com", "/")).await;
    assert_eq!(leaf, der(&f.c.0));
    assert_eq!(reply.pod().as_deref(), Some("plain"));

    // Unknown SNI, no SNI, a Secret from another namespace and a broken
    // Secret all get the default certificate; the broken one still serves.
    let (reply, default_leaf) = https(
        tls,
        Some("unknown.example.org"),
        &Req::get("unknown.example.org", "/"),
    )
    .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    let known = [der(&f.a.0), der(&f.b.0), der(&f.c.0), der(&f.other.0)];
    assert!(!default_leaf.is_empty() && !known.contains(&default_leaf));
    let (_, leaf) = https(tls, None, &Req::get("a.example.com", "/")).await;
    assert_eq!(leaf, default_leaf, "no SNI: default certificate");
    let (_, leaf) = https(tls, Some("deep.api.b.example.com"), &Req::get("x", "/")).await;
    assert_eq!(leaf, default_leaf, "a wildcard covers one label only");
    let (reply, leaf) = https(tls, Some("x.example.com"), &Req::get("x.example.com", "/")).await;
    assert_eq!(
        leaf, default_leaf,
        "Secrets of other namespaces are never used"
    );
    assert_eq!(reply.pod().as_deref(), Some("plain"));
    let (reply, leaf) = https(
        tls,
        Some("bad.example.com"),
        &Req::get("bad.example.com", "/"),
    )
    .await;
    assert_eq!(leaf, default_leaf, "a mismatched key is refused");
    assert_eq!(
        reply.pod().as_deref(),
        Some("plain"),
        "and the Ingress still serves"
    );

    ingress.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_to_tls_hosts_is_redirected() {
    let f = fixture().await;
    let ingress = start(&f.m, config()).await;
    let http = ingress.http_addr().expect("http");
    let https_port = ingress.https_addr().expect("https").port();

    let reply = get(http, "a.example.com", "/path/x?q=1").await;
    assert_eq!(reply.status, StatusCode::PERMANENT_REDIRECT);
    assert_eq!(
        reply.headers.get("location").and_then(|v| v.to_str().ok()),
        Some(format!("https://a.example.com:{https_port}/path/x?q=1").as_str())
    );
    let reply = get(http, "x.b.example.com:80", "/").await;
    assert_eq!(
        reply.status,
        StatusCode::PERMANENT_REDIRECT,
        "wildcard TLS host"
    );
    // ssl-redirect: "false" turns it off; hosts without TLS are not redirected.
    assert_eq!(
        get(http, "c.example.com", "/").await.pod().as_deref(),
        Some("plain")
    );
    assert_eq!(
        get(http, "plain.example.com", "/").await.pod().as_deref(),
        Some("plain")
    );
    // A host whose certificate is broken keeps serving plain HTTP.
    assert_eq!(
        get(http, "bad.example.com", "/").await.pod().as_deref(),
        Some("plain")
    );
    ingress.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_versions_and_alpn() {
    let f = fixture().await;
    let ingress = start(&f.m, config()).await;
    let tls = ingress.https_addr().expect("https");

    for (versions, want) in [
        (
            &[&rustls::version::TLS12][..],
            rustls::ProtocolVersion::TLSv1_2,
        ),
        (
            &[&rustls::version::TLS13][..],
            rustls::ProtocolVersion::TLSv1_3,
        ),
    ] {
        let c = tls_connect(tls, Some("a.example.com"), &[b"http/1.1"], versions)
            .await
            .expect("handshake");
        assert_eq!(c.version, Some(want));
        assert_eq!(c.leaf, der(&f.a.0));
        let mut h1 = H1::over(c.stream).await;
        let reply = h1
            .send(&Req::get("a.example.com", "/"))
            .await
            .expect("request");
        assert_eq!(reply.pod().as_deref(), Some("a"));
    }

    let c = tls_connect(
        tls,
        Some("a.example.com"),
        &[b"h2", b"http/1.1"],
        ALL_VERSIONS,
    )
    .await
    .expect("handshake");
    assert_eq!(c.alpn.as_deref(), Some(&b"h2"[..]), "h2 preferred");
    let c = tls_connect(tls, Some("a.example.com"), &[b"http/1.1"], ALL_VERSIONS)
        .await
        .expect("handshake");
    assert_eq!(c.alpn.as_deref(), Some(&b"http/1.1"[..]));

    // h2 end to end: the upstream (HTTP/1.1) sees the :authority as Host.
    let (reply, alpn) = https_h2(
        tls,
        "a.example.com",
        &Req::get("a.example.com", "/h2/path?x=1").header("x-h2", "yes"),
    )
    .await;
    assert_eq!(alpn.as_deref(), Some(&b"h2"[..]));
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let seen = reply.echo();
    assert_eq!(seen.pod, "a");
    assert_eq!(seen.host, "a.example.com");
    assert_eq!(seen.path, "/h2/path?x=1");
    assert_eq!(seen.headers.get("x-h2").map(String::as_str), Some("yes"));
    ingress.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_rotation_takes_effect_without_restart() {
    let f = fixture().await;
    let ingress = start(&f.m, config()).await;
    let tls = ingress.https_addr().expect("https");
    let (_, leaf) = https(tls, Some("a.example.com"), &Req::get("a.example.com", "/")).await;
    assert_eq!(leaf, der(&f.a.0));

    let rotated = cert(&["a.example.com"]);
    f.m.write(
        "secret-a.yaml",
        &tls_secret("apps", "a-tls", &rotated.0, &rotated.1),
    );
    let want = der(&rotated.0);
    eventually("the rotated certificate is served", || {
        let want = want.clone();
        async move {
            let c = tls_connect(tls, Some("a.example.com"), &[b"http/1.1"], ALL_VERSIONS)
                .await
                .expect("handshake");
            c.leaf == want
        }
    })
    .await;
    // Fixing the broken Secret makes its host use its own certificate.
    let fixed = cert(&["bad.example.com"]);
    f.m.write(
        "secret-bad.yaml",
        &tls_secret("apps", "bad-tls", &fixed.0, &fixed.1),
    );
    let want = der(&fixed.0);
    eventually("the repaired certificate is served", || {
        let want = want.clone();
        async move {
            let c = tls_connect(tls, Some("bad.example.com"), &[b"http/1.1"], ALL_VERSIONS)
                .await
                .expect("handshake");
            c.leaf == want
        }
    })
    .await;
    ingress.shutdown().await;
}

/// curl, a client we did not write, negotiates h2 and gets the right
/// backend (skipped when curl is not installed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_speaks_h2_through_the_proxy() {
    if std::process::Command::new("curl")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("curl not installed; skipping");
        return;
    }
    let f = fixture().await;
    let ingress = start(&f.m, config()).await;
    let port = ingress.https_addr().expect("https").port();
    let out = tokio::process::Command::new("curl")
        .args([
            "-sS",
            "-k",
            "--http2",
            "--max-time",
            "10",
            "--resolve",
            &format!("a.example.com:{port}:127.0.0.1"),
            "-w",
            "\n%{http_version} %{http_code}",
            &format!("https://a.example.com:{port}/from-curl"),
        ])
        .output()
        .await
        .expect("run curl");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "curl failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (body, tail) = stdout.rsplit_once('\n').expect("curl output");
    assert_eq!(tail, "2 200", "{stdout}");
    let seen: strait_echo::EchoReply = serde_json::from_str(body).expect("echo json");
    assert_eq!(seen.pod, "a");
    assert_eq!(seen.path, "/from-curl");
    ingress.shutdown().await;
}
