//! TLS through real clients: SNI certificate selection from Secrets in the
//! Ingress's own namespace, the default certificate, live Secret rotation,
//! bad certificates isolated to their Ingress, the 308 redirect, TLS 1.2
//! and 1.3, and h2 negotiated with ALPN.

mod common;

use common::*;
use hyper::StatusCode;
use strait_ingress::RunningIngress;

/// An Ingress `apps/name` sending `host` to the Service `svc`, over TLS
/// with the Secret `secret`.
fn site(name: &str, host: &str, secret: &str, svc: &str) -> String {
    tls_ingress_yaml(name, &[], &[(host, secret)], &[(host, "/", "Prefix", svc)])
}

/// The Ingresses of every test: TLS hosts, a wildcard, one with
/// `ssl-redirect` off, one without TLS, one naming a Secret of another
/// namespace and one whose Secret is broken.
fn ingresses() -> String {
    [
        site("tls-a", "a.example.com", "a-tls", "a"),
        site("tls-b", "*.b.example.com", "b-tls", "b"),
        tls_ingress_yaml(
            "no-redirect",
            &[("nginx.ingress.kubernetes.io/ssl-redirect", "false")],
            &[("c.example.com", "c-tls")],
            &[("c.example.com", "/", "Prefix", "plain")],
        ),
        ingress_yaml(
            "plain",
            &[],
            &[("plain.example.com", "/", "Prefix", "plain")],
        ),
        site("cross-namespace", "x.example.com", "only-in-other", "plain"),
        site("bad-cert", "bad.example.com", "bad-tls", "plain"),
    ]
    .concat()
}

/// The manifests, with the DER of the certificates in the Secrets `a-tls`,
/// `b-tls`, `c-tls` and `other/only-in-other`.
struct Fixture {
    m: Manifests,
    a: Vec<u8>,
    b: Vec<u8>,
    c: Vec<u8>,
    other: Vec<u8>,
    _backends: Vec<Backend>,
}

/// The manifests and the controller started on them.
async fn fixture() -> (Fixture, RunningIngress) {
    let m = Manifests::new();
    let backends = echo_services(&m, &["a", "b", "plain"]).await;
    let (a, _) = m.self_signed_secret("apps", "a-tls", &["a.example.com"]);
    let (b, _) = m.self_signed_secret("apps", "b-tls", &["*.b.example.com"]);
    let (c, _) = m.self_signed_secret("apps", "c-tls", &["c.example.com"]);
    let (other, _) = m.self_signed_secret("other", "only-in-other", &["x.example.com"]);
    let (_, wrong_key) = cert(&["bad.example.com"]);
    m.write_tls_secret("apps", "bad-tls", &a, &wrong_key);
    m.write("ingresses.yaml", &ingresses());
    let ingress = start(&m, config()).await;
    let f = Fixture {
        m,
        a: der(&a),
        b: der(&b),
        c: der(&c),
        other: der(&other),
        _backends: backends,
    };
    (f, ingress)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sni_selects_certificates_from_the_ingress_namespace() {
    let (f, ingress) = fixture().await;
    let tls = ingress.https_addr().expect("https addr");

    let (reply, leaf) = https_get(tls, "a.example.com", "/x").await;
    assert_eq!(leaf, f.a, "a.example.com gets its Secret's certificate");
    assert_eq!(reply.pod().as_deref(), Some("a"));
    let seen = reply.echo();
    assert_eq!(
        seen.headers.get("x-forwarded-proto").map(String::as_str),
        Some("https")
    );

    let (reply, leaf) = https_get(tls, "api.b.example.com", "/").await;
    assert_eq!(leaf, f.b, "wildcard TLS host");
    assert_eq!(reply.pod().as_deref(), Some("b"));

    let (reply, leaf) = https_get(tls, "c.example.com", "/").await;
    assert_eq!(leaf, f.c);
    assert_eq!(reply.pod().as_deref(), Some("plain"));

    // Unknown SNI, no SNI, a Secret from another namespace and a broken
    // Secret all get the default certificate; the broken one still serves.
    let (reply, default_leaf) = https_get(tls, "unknown.example.org", "/").await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    let known = [&f.a, &f.b, &f.c, &f.other];
    assert!(!default_leaf.is_empty() && !known.contains(&&default_leaf));
    let (_, leaf) = https(tls, None, &Req::get("a.example.com", "/")).await;
    assert_eq!(leaf, default_leaf, "no SNI: default certificate");
    let (_, leaf) = https(tls, Some("deep.api.b.example.com"), &Req::get("x", "/")).await;
    assert_eq!(leaf, default_leaf, "a wildcard covers one label only");
    let (reply, leaf) = https_get(tls, "x.example.com", "/").await;
    assert_eq!(
        leaf, default_leaf,
        "Secrets of other namespaces are never used"
    );
    assert_eq!(reply.pod().as_deref(), Some("plain"));
    let (reply, leaf) = https_get(tls, "bad.example.com", "/").await;
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
    let (_f, ingress) = fixture().await;
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
    // ssl-redirect: "false" turns it off; hosts without TLS are not
    // redirected; a host whose certificate is broken keeps serving plain HTTP.
    for host in ["c.example.com", "plain.example.com", "bad.example.com"] {
        let reply = get(http, host, "/").await;
        assert_eq!(reply.pod().as_deref(), Some("plain"), "{host}");
    }
    ingress.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_versions_and_alpn() {
    let (f, ingress) = fixture().await;
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
        let c = tls_connect(tls, Some("a.example.com"), &[b"http/1.1"], versions).await;
        assert_eq!(c.version, Some(want));
        assert_eq!(c.leaf, f.a);
        let mut h1 = H1::over(c.stream).await;
        let reply = h1
            .send(&Req::get("a.example.com", "/"))
            .await
            .expect("request");
        assert_eq!(reply.pod().as_deref(), Some("a"));
    }

    // h2 is preferred when offered.
    for (offered, want) in [
        (&[&b"h2"[..], b"http/1.1"][..], &b"h2"[..]),
        (&[&b"http/1.1"[..]][..], &b"http/1.1"[..]),
    ] {
        let c = tls_connect(tls, Some("a.example.com"), offered, ALL_VERSIONS).await;
        assert_eq!(c.alpn.as_deref(), Some(want), "offered {offered:?}");
    }

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
    let (f, ingress) = fixture().await;
    let tls = ingress.https_addr().expect("https");
    let (_, leaf) = https_get(tls, "a.example.com", "/").await;
    assert_eq!(leaf, f.a);

    let (rotated, _) = f.m.self_signed_secret("apps", "a-tls", &["a.example.com"]);
    eventually_presents(tls, "a.example.com", &der(&rotated)).await;
    // Fixing the broken Secret makes its host use its own certificate.
    let (fixed, _) =
        f.m.self_signed_secret("apps", "bad-tls", &["bad.example.com"]);
    eventually_presents(tls, "bad.example.com", &der(&fixed)).await;
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
    let (_f, ingress) = fixture().await;
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
