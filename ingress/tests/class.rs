//! IngressClass filtering through the real server, including a live change
//! of the default class.

mod common;

use common::*;
use hyper::StatusCode;

fn ingress_yaml(
    name: &str,
    host: &str,
    class_field: Option<&str>,
    class_annotation: Option<&str>,
) -> String {
    let field = class_field
        .map(|c| format!("  ingressClassName: {c}\n"))
        .unwrap_or_default();
    let annotation = class_annotation
        .map(|c| format!("  annotations:\n    kubernetes.io/ingress.class: {c}\n"))
        .unwrap_or_default();
    format!(
        "apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: {name}
  namespace: apps
{annotation}spec:
{field}  rules:
  - host: {host}
    http:
      paths:
      - {{path: /, pathType: Prefix, backend: {{service: {{name: web, port: {{number: 80}}}}}}}}
---
"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_our_classes_are_served() {
    let m = Manifests::new();
    let web = echo("web", [127, 0, 0, 2]).await;
    m.write("svc.yaml", &service("apps", "web", "http", 80, &[web.addr]));
    m.write(
        "classes.yaml",
        &[
            ingress_class("mine", "strait.dev/ingress", true),
            ingress_class("nginx", "k8s.io/ingress-nginx", false),
        ]
        .join("---\n"),
    );
    m.write(
        "ingresses.yaml",
        &[
            ingress_yaml("by-field", "field.test", Some("mine"), None),
            ingress_yaml("by-annotation", "annotation.test", None, Some("mine")),
            ingress_yaml("classless", "classless.test", None, None),
            ingress_yaml("nginx-field", "nginx-field.test", Some("nginx"), None),
            ingress_yaml(
                "nginx-annotation",
                "nginx-annotation.test",
                None,
                Some("nginx"),
            ),
            ingress_yaml("unknown-class", "unknown.test", Some("unknown"), None),
        ]
        .concat(),
    );
    let ingress = start(&m, config()).await;
    let addr = ingress.http_addr().expect("addr");
    let served = |host: &'static str| async move {
        let reply = get(addr, host, "/").await;
        match reply.status {
            StatusCode::OK => true,
            StatusCode::NOT_FOUND => false,
            other => panic!("{host}: unexpected {other}: {}", reply.text()),
        }
    };
    assert!(served("field.test").await);
    assert!(served("annotation.test").await);
    assert!(served("classless.test").await, "our class is the default");
    assert!(!served("nginx-field.test").await);
    assert!(!served("nginx-annotation.test").await);
    assert!(!served("unknown.test").await);

    // Our class stops being the default: classless Ingresses are dropped live.
    m.write(
        "classes.yaml",
        &[
            ingress_class("mine", "strait.dev/ingress", false),
            ingress_class("nginx", "k8s.io/ingress-nginx", true),
        ]
        .join("---\n"),
    );
    eventually("classless Ingress no longer served", || async {
        !served("classless.test").await
    })
    .await;
    assert!(served("field.test").await);

    // The --class name is served without an IngressClass object of that name.
    m.write(
        "more.yaml",
        &ingress_yaml("by-name", "by-name.test", Some("strait"), None),
    );
    eventually("--class served by name", || async {
        served("by-name.test").await
    })
    .await;
    ingress.shutdown().await;
}
