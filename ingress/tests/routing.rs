//! Table-driven routing through the real server, in the style of the
//! ingress-controller-conformance suite: each case is a request (method,
//! host, path, headers) and the echo backend that must answer it, or the
//! status the controller must give.

mod common;

use common::*;
use hyper::{Method, StatusCode};

/// Every backend of the routing fixture.
const BACKENDS: [(&str, u8); 10] = [
    ("web-a", 2),
    ("web-b", 3),
    ("api", 4),
    ("wild", 5),
    ("fallback", 6),
    ("site-default", 7),
    ("old", 8),
    ("new", 9),
    ("named", 10),
    ("any-host", 11),
];

const INGRESSES: &str = r#"
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata:
  name: strait
spec:
  controller: strait.dev/ingress
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: site
  namespace: apps
  creationTimestamp: "2024-01-01T00:00:00Z"
spec:
  ingressClassName: strait
  defaultBackend:
    service: {name: site-default, port: {number: 80}}
  rules:
  - host: foo.example.com
    http:
      paths:
      - {path: /exact, pathType: Exact, backend: {service: {name: web-a, port: {number: 80}}}}
      - {path: /app, pathType: Prefix, backend: {service: {name: web-b, port: {number: 80}}}}
      - {path: /app/v2/, pathType: Prefix, backend: {service: {name: api, port: {number: 80}}}}
      - {path: /Case, pathType: Exact, backend: {service: {name: api, port: {number: 80}}}}
      - {path: /impl, pathType: ImplementationSpecific, backend: {service: {name: api, port: {number: 80}}}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: merge
  namespace: apps
  creationTimestamp: "2024-02-01T00:00:00Z"
spec:
  ingressClassName: strait
  rules:
  - host: foo.example.com
    http:
      paths:
      - {path: /merged, pathType: Prefix, backend: {service: {name: named, port: {name: web}}}}
      - {path: /app, pathType: Prefix, backend: {service: {name: new, port: {number: 80}}}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: wild
  namespace: apps
  creationTimestamp: "2024-02-02T00:00:00Z"
spec:
  ingressClassName: strait
  rules:
  - host: "*.wild.example.com"
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: wild, port: {number: 80}}}}
  - host: exact.wild.example.com
    http:
      paths:
      - {path: /only, pathType: Exact, backend: {service: {name: web-a, port: {number: 80}}}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: catch-all
  namespace: apps
  creationTimestamp: "2024-03-01T00:00:00Z"
spec:
  ingressClassName: strait
  defaultBackend:
    service: {name: fallback, port: {number: 80}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: late-catch-all
  namespace: apps
  creationTimestamp: "2025-03-01T00:00:00Z"
spec:
  ingressClassName: strait
  defaultBackend:
    service: {name: new, port: {number: 80}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: other-class
  namespace: apps
spec:
  ingressClassName: nginx
  rules:
  - host: other.example.com
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: web-a, port: {number: 80}}}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: newer
  namespace: apps
  creationTimestamp: "2025-01-01T00:00:00Z"
spec:
  ingressClassName: strait
  rules:
  - host: conflict.example.com
    http:
      paths:
      - {path: /x, pathType: Prefix, backend: {service: {name: new, port: {number: 80}}}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: older
  namespace: apps
  creationTimestamp: "2023-01-01T00:00:00Z"
spec:
  ingressClassName: strait
  rules:
  - host: conflict.example.com
    http:
      paths:
      - {path: /x/, pathType: Prefix, backend: {service: {name: old, port: {number: 80}}}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: resource
  namespace: apps
spec:
  ingressClassName: strait
  rules:
  - host: res.example.com
    http:
      paths:
      - path: /
        pathType: Prefix
        backend:
          resource: {apiGroup: k8s.example.com, kind: StorageBucket, name: static}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: missing
  namespace: apps
spec:
  ingressClassName: strait
  rules:
  - host: missing.example.com
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: nope, port: {number: 80}}}}
  - host: badport.example.com
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: web-a, port: {number: 81}}}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: any-host
  namespace: apps
spec:
  ingressClassName: strait
  rules:
  - http:
      paths:
      - {path: /anyhost, pathType: Prefix, backend: {service: {name: any-host, port: {number: 80}}}}
"#;

/// What a case expects.
enum Want {
    /// This echo backend answered.
    Pod(&'static str),
    /// This status, with this text in the body.
    Status(StatusCode, &'static str),
}
use Want::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_style_routing_table() {
    let m = Manifests::new();
    let mut backends = Vec::new();
    let mut services = String::new();
    for (name, last) in BACKENDS {
        let b = echo(name, [127, 0, 0, last]).await;
        let port_name = if name == "named" { "web" } else { "http" };
        let port = if name == "named" { 8080 } else { 80 };
        services.push_str(&service("apps", name, port_name, port, &[b.addr]));
        services.push_str("---\n");
        backends.push(b);
    }
    m.write("services.yaml", &services);
    m.write("ingresses.yaml", INGRESSES);
    let ingress = start(&m, config()).await;
    let addr = ingress.http_addr().expect("http addr");

    let cases: &[(&str, &str, Want)] = &[
        // Exact: whole path, case-sensitive, no trailing slash.
        ("foo.example.com", "/exact", Pod("web-a")),
        ("foo.example.com", "/exact/", Pod("site-default")),
        ("foo.example.com", "/EXACT", Pod("site-default")),
        ("foo.example.com", "/exact?query=1", Pod("web-a")),
        // Hosts: case-insensitive, port ignored.
        ("FOO.Example.COM:8080", "/exact", Pod("web-a")),
        ("foo.example.com.", "/exact", Pod("web-a")),
        // Prefix: element-wise.
        ("foo.example.com", "/app", Pod("web-b")),
        ("foo.example.com", "/app/", Pod("web-b")),
        ("foo.example.com", "/app/x/y", Pod("web-b")),
        ("foo.example.com", "/appx", Pod("site-default")),
        // A rule's trailing slash is ignored; the longest prefix wins.
        ("foo.example.com", "/app/v2", Pod("api")),
        ("foo.example.com", "/app/v2/deep?q=1", Pod("api")),
        ("foo.example.com", "/app/v22", Pod("web-b")),
        ("foo.example.com", "/Case", Pod("api")),
        ("foo.example.com", "/case", Pod("site-default")),
        // ImplementationSpecific is Prefix.
        ("foo.example.com", "/impl/x", Pod("api")),
        ("foo.example.com", "/implx", Pod("site-default")),
        // Merged from a second Ingress; the port goes by name.
        ("foo.example.com", "/merged/x", Pod("named")),
        // Wildcards cover exactly one label; exact hosts beat wildcards.
        ("a.wild.example.com", "/anything", Pod("wild")),
        ("A.Wild.Example.Com", "/", Pod("wild")),
        ("b.a.wild.example.com", "/", Pod("fallback")),
        ("wild.example.com", "/", Pod("fallback")),
        ("b.a.wild.example.com", "/anyhost", Pod("any-host")),
        ("exact.wild.example.com", "/only", Pod("web-a")),
        ("exact.wild.example.com", "/other", Pod("fallback")),
        // Rules without a host serve every other host.
        ("unknown.example.org", "/anyhost/x", Pod("any-host")),
        ("", "/anyhost", Pod("any-host")),
        // Nothing matches: the oldest rule-less Ingress's default backend.
        ("unknown.example.org", "/", Pod("fallback")),
        // Other classes are not served.
        ("other.example.com", "/", Pod("fallback")),
        // Conflicts: the oldest Ingress wins (trailing slash is the same path).
        ("conflict.example.com", "/x", Pod("old")),
        ("conflict.example.com", "/x/y", Pod("old")),
        // Backends that cannot be served say why.
        (
            "res.example.com",
            "/",
            Status(StatusCode::SERVICE_UNAVAILABLE, "not supported"),
        ),
        (
            "missing.example.com",
            "/",
            Status(
                StatusCode::SERVICE_UNAVAILABLE,
                "apps/nope:80 has no ready endpoints",
            ),
        ),
        (
            "badport.example.com",
            "/",
            Status(
                StatusCode::SERVICE_UNAVAILABLE,
                "apps/web-a:81 has no ready endpoints (the Service has no port 81)",
            ),
        ),
    ];
    let mut failures = Vec::new();
    for (host, path, want) in cases {
        let reply = get(addr, host, path).await;
        match want {
            Pod(pod) => {
                if reply.status != StatusCode::OK || reply.pod().as_deref() != Some(pod) {
                    failures.push(format!(
                        "{host} {path}: want {pod}, got {} from {:?}: {}",
                        reply.status,
                        reply.pod(),
                        reply.text()
                    ));
                } else {
                    let seen = reply.echo();
                    if seen.path != *path {
                        failures.push(format!("{host} {path}: upstream saw path {}", seen.path));
                    }
                    if seen.host != *host {
                        failures.push(format!("{host} {path}: upstream saw host {}", seen.host));
                    }
                }
            }
            Status(status, text) => {
                if reply.status != *status || !reply.text().contains(text) {
                    failures.push(format!(
                        "{host} {path}: want {status} with {text:?}, got {}: {}",
                        reply.status,
                        reply.text()
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "failing cases:\n{}",
        failures.join("\n")
    );

    // Every method, with headers and body preserved.
    for method in ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"] {
        let m: Method = method.parse().expect("method");
        let req = Req::get("foo.example.com", "/app/items/7?x=y")
            .method(m.clone())
            .header("x-custom", "kept")
            .header("accept", "application/json")
            .body(if m == Method::HEAD || m == Method::GET {
                b""
            } else {
                b"payload"
            });
        let reply = send(addr, &req).await;
        assert_eq!(reply.status, StatusCode::OK, "{method}: {}", reply.text());
        assert_eq!(reply.pod().as_deref(), Some("web-b"), "{method}");
        if m != Method::HEAD {
            let seen = reply.echo();
            assert_eq!(seen.method, method);
            assert_eq!(seen.path, "/app/items/7?x=y");
            assert_eq!(
                seen.headers.get("x-custom").map(String::as_str),
                Some("kept")
            );
            assert_eq!(
                seen.headers.get("accept").map(String::as_str),
                Some("application/json")
            );
        }
    }
    ingress.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_match_is_a_clear_404_and_controller_default_backend_applies() {
    let m = Manifests::new();
    let web = echo("web", [127, 0, 0, 2]).await;
    let dflt = echo("controller-default", [127, 0, 0, 3]).await;
    m.write("svc.yaml", &service("apps", "web", "http", 80, &[web.addr]));
    m.write(
        "svc-default.yaml",
        &service("infra", "default-http", "http", 80, &[dflt.addr]),
    );
    m.write(
        "ing.yaml",
        r#"
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web, namespace: apps}
spec:
  ingressClassName: strait
  rules:
  - host: web.example.com
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
"#,
    );
    let ingress = start(&m, config()).await;
    let addr = ingress.http_addr().expect("addr");
    assert_eq!(
        get(addr, "web.example.com", "/x").await.pod().as_deref(),
        Some("web")
    );
    let reply = get(addr, "nothing.example.com", "/some/path").await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    let body = reply.text();
    assert!(
        body.contains(
            "no Ingress rule matches host \"nothing.example.com\" and path \"/some/path\""
        ),
        "{body}"
    );
    ingress.shutdown().await;

    let mut cfg = config();
    cfg.default_backend = Some("infra/default-http:http".parse().expect("ref"));
    let ingress = start(&m, cfg).await;
    let addr = ingress.http_addr().expect("addr");
    let reply = get(addr, "nothing.example.com", "/").await;
    assert_eq!(
        reply.pod().as_deref(),
        Some("controller-default"),
        "{}",
        reply.text()
    );
    assert_eq!(
        get(addr, "web.example.com", "/").await.pod().as_deref(),
        Some("web")
    );
    ingress.shutdown().await;
}
