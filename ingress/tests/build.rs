//! The configuration build on its own (no sockets): admission order,
//! merge and conflict reports, TLS problems and match kinds.

mod common;

use common::*;
use strait_ingress::tls::provider;
use strait_ingress::{ConfigBuilder, IngressConfig, MatchKind, Target};

const MANIFESTS: &str = r#"
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: young, namespace: a, creationTimestamp: "2025-05-05T00:00:00Z"}
spec:
  ingressClassName: strait
  rules:
  - host: shop.test
    http:
      paths:
      - {path: /cart, pathType: Prefix, backend: {service: {name: young, port: {number: 80}}}}
      - {path: "bad path", pathType: Prefix, backend: {service: {name: young, port: {number: 80}}}}
      - {path: /x, pathType: Sometimes, backend: {service: {name: young, port: {number: 80}}}}
  - host: "*.*.test"
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: young, port: {number: 80}}}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: old, namespace: b, creationTimestamp: "2020-01-01T00:00:00Z"}
spec:
  ingressClassName: strait
  tls:
  - hosts: [shop.test]
    secretName: missing-secret
  defaultBackend: {service: {name: old-default, port: {number: 80}}}
  rules:
  - host: shop.test
    http:
      paths:
      - {path: /cart/, pathType: Prefix, backend: {service: {name: old, port: {number: 80}}}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: undated, namespace: a}
spec:
  ingressClassName: strait
  rules:
  - host: other.test
    http:
      paths:
      - {path: /, pathType: Exact, backend: {service: {name: x}}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: foreign, namespace: a}
spec:
  ingressClassName: somebody-else
  rules:
  - host: shop.test
"#;

#[test]
fn build_reports_merges_conflicts_and_problems() {
    let m = Manifests::new();
    m.write("all.yaml", MANIFESTS);
    let snapshot = strait_cluster::load_dir(m.path()).expect("manifests load");
    let mut builder = ConfigBuilder::new(IngressConfig::default(), provider()).expect("builder");
    let built = builder.build(&snapshot);
    let report = &built.report;
    assert_eq!(
        report.served,
        ["b/old", "a/young", "a/undated"],
        "oldest first, undated last"
    );
    assert_eq!(report.ignored, 1);
    let problems: Vec<String> = report.problems.iter().map(ToString::to_string).collect();
    let has = |needle: &str| {
        assert!(
            problems.iter().any(|p| p.contains(needle)),
            "no problem mentions {needle:?}: {problems:#?}"
        )
    };
    has(
        "ingress a/young: path \"/cart\" (Prefix) on host \"shop.test\" is also defined by the older ingress b/old",
    );
    has("path skipped: path \"bad path\" must be absolute");
    has("unknown pathType \"Sometimes\"");
    has("rule skipped: host \"*.*.test\"");
    has(
        "TLS secret \"missing-secret\" not used, its hosts get the default certificate: secret not found",
    );
    has("ingress a/undated: service x: the backend names no port");
    has("backend b/old-default:80: the Service does not exist");

    let router = &built.router;
    let (route, kind) = router.route("shop.test", "/cart/items").expect("cart");
    assert_eq!((&*route.ingress, kind), ("b/old", MatchKind::Rule));
    let (route, kind) = router
        .route("shop.test", "/elsewhere")
        .expect("host default");
    assert_eq!((&*route.ingress, kind), ("b/old", MatchKind::HostDefault));
    assert!(matches!(&route.target, Target::Service(up) if up.name() == "b/old-default:80"));
    assert!(router.route("nowhere.test", "/").is_none());
    let (route, _) = router.route("other.test", "/").expect("undated");
    assert!(matches!(&route.target, Target::Unavailable(m) if m.contains("names no port")));
    // No valid certificate: no redirect.
    assert!(
        !router
            .route("shop.test", "/cart")
            .expect("cart")
            .0
            .https_redirect
    );
    assert!(built.certs.is_empty());
}

#[test]
fn invalid_regexes_reject_their_ingress_and_stray_canaries_are_reported() {
    let p = "nginx.ingress.kubernetes.io/";
    let (use_regex, canary, weight) = (
        format!("{p}use-regex"),
        format!("{p}canary"),
        format!("{p}canary-weight"),
    );
    let m = Manifests::new();
    m.write(
        "all.yaml",
        &[
            ingress_yaml(
                "broken",
                &[(&use_regex, "true")],
                &[
                    ("r.test", "/ok/.*", "Prefix", "web"),
                    ("r.test", "/broken(", "ImplementationSpecific", "web"),
                ],
            ),
            ingress_yaml("main", &[], &[("c.test", "/", "Prefix", "web")]),
            ingress_yaml(
                "main-canary",
                &[(&canary, "true"), (&weight, "10")],
                &[("c.test", "/", "Prefix", "web-next")],
            ),
            ingress_yaml(
                "stray-canary",
                &[(&canary, "true")],
                &[("nobody.test", "/x", "Exact", "web-next")],
            ),
        ]
        .concat(),
    );
    let snapshot = strait_cluster::load_dir(m.path()).expect("manifests load");
    let mut builder = ConfigBuilder::new(IngressConfig::default(), provider()).expect("builder");
    let built = builder.build(&snapshot);
    assert_eq!(built.report.rejected, ["apps/broken"]);
    let problems: Vec<String> = built
        .report
        .problems
        .iter()
        .map(ToString::to_string)
        .collect();
    let has = |needle: &str| {
        assert!(
            problems.iter().any(|p| p.contains(needle)),
            "no problem mentions {needle:?}: {problems:#?}"
        )
    };
    has("ingress apps/broken: rejected: path \"/broken(\" is not a valid regular expression");
    has("ingress apps/stray-canary: canary for host \"nobody.test\" path \"/x\" ignored");
    assert!(built.router.route("r.test", "/ok/1").is_none());
    let (route, _) = built.router.route("c.test", "/").expect("main");
    assert_eq!(&*route.ingress, "apps/main");
    let canary = route.canary.as_ref().expect("the canary is attached");
    assert_eq!(&*canary.ingress, "apps/main-canary");
    assert_eq!(canary.settings.weight, 10);
    assert!(built.router.route("nobody.test", "/x").is_none());
}
