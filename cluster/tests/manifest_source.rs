//! The manifest-directory source: loading, reloading on change, error
//! handling that keeps each file's last good state, duplicates, unknown
//! kinds and Endpoints mirroring.

use std::path::Path;
use std::time::Duration;

use strait_cluster::k8s_openapi::api::core::v1::Service;
use strait_cluster::{
    ClusterError, ClusterSnapshot, ClusterView, Component, Kind, KindSet, ManifestError,
    ManifestLoader, ManifestSource, Object, ObjectKey, Scope, Trim, load_dir, select_endpoints,
};

/// Writes atomically (hidden temp file, then rename) so a running source
/// never sees a half-written file.
fn write(dir: &Path, name: &str, text: &str) {
    let path = dir.join(name);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    let tmp = path.with_file_name(format!(
        ".tmp-{}",
        path.file_name().unwrap().to_string_lossy()
    ));
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, &path).unwrap();
}

fn service(name: &str, ip: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\nspec:\n  clusterIP: {ip}\n  ports:\n  - port: 80\n"
    )
}

fn cluster_ip(s: &ClusterSnapshot, ns: &str, name: &str) -> Option<String> {
    s.service(ns, name)?.spec.as_ref()?.cluster_ip.clone()
}

const WEB: &str = r#"# a multi-document file with a kind the view does not carry
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: shop
spec:
  selector: {app: web}
  clusterIP: 10.96.0.20
  ports:
  - name: http
    port: 80
    targetPort: http
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
spec:
  replicas: 2
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-abcde
  namespace: shop
  labels:
    kubernetes.io/service-name: web
addressType: IPv4
ports:
- name: http
  port: 8080
  protocol: TCP
endpoints:
- addresses: ["10.244.1.5"]
  nodeName: n1
  conditions: {ready: true}
- addresses: ["10.244.2.7"]
  nodeName: n2
  conditions: {ready: false}
"#;

const LIST: &str = r#"apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Node
  metadata:
    name: n1
  spec:
    podCIDR: 10.244.1.0/24
- apiVersion: v1
  kind: ConfigMap
  metadata:
    name: settings
  data: {a: b}
- apiVersion: v1
  kind: Pod
  metadata:
    name: web-1
    namespace: shop
    labels: {app: web}
  spec:
    nodeName: n1
    containers:
    - name: web
      image: strait
      ports:
      - name: http
        containerPort: 8080
"#;

const INGRESS_JSON: &str = r#"{
  "apiVersion": "networking.k8s.io/v1",
  "kind": "Ingress",
  "metadata": {"name": "shop", "namespace": "shop"},
  "spec": {
    "ingressClassName": "strait",
    "rules": [{"host": "shop.example", "http": {"paths": [
      {"path": "/", "pathType": "Prefix",
       "backend": {"service": {"name": "web", "port": {"name": "http"}}}}
    ]}}]
  }
}
"#;

const EXTERNAL: &str = r#"apiVersion: v1
kind: Service
metadata:
  name: legacy-db
spec:
  clusterIP: 10.96.0.30
  ports:
  - name: pg
    port: 5432
---
apiVersion: v1
kind: Endpoints
metadata:
  name: legacy-db
subsets:
- addresses:
  - ip: 192.0.2.10
  - ip: 2001:db8::10
  notReadyAddresses:
  - ip: 192.0.2.11
  ports:
  - name: pg
    port: 5432
"#;

#[test]
fn loads_a_directory_recursively() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "web.yaml", WEB);
    write(dir.path(), "cluster/list.yml", LIST);
    write(dir.path(), "ingress.json", INGRESS_JSON);
    write(dir.path(), "external.yaml", EXTERNAL);
    write(dir.path(), ".hidden.yaml", "this: [is not valid");
    write(dir.path(), ".git/config.yaml", "nor: [this");
    write(dir.path(), "README.md", "# not a manifest");

    let report = ManifestSource::load_once(dir.path());
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(report.files, 4);
    assert_eq!(report.skipped, 2, "Deployment and ConfigMap are skipped");

    let snap = load_dir(dir.path()).unwrap();
    assert!(snap.synced());
    assert_eq!(
        cluster_ip(&snap, "shop", "web").as_deref(),
        Some("10.96.0.20")
    );
    assert!(snap.nodes().contains_key(&ObjectKey::cluster("n1")));
    assert!(
        snap.pods()
            .contains_key(&ObjectKey::namespaced("shop", "web-1"))
    );
    assert!(
        snap.ingresses()
            .contains_key(&ObjectKey::namespaced("shop", "shop"))
    );
    // namespace defaulted like kubectl
    assert!(snap.service("default", "legacy-db").is_some());

    // the slice index and endpoint selection work on loaded objects
    let web = snap.service("shop", "web").unwrap();
    let port = &web.spec.as_ref().unwrap().ports.as_ref().unwrap()[0];
    let backends = select_endpoints(web, snap.slices_for("shop", "web"), port, &Scope::Cluster);
    let addrs: Vec<String> = backends
        .iter()
        .map(|b| b.socket_addr().to_string())
        .collect();
    assert_eq!(addrs, ["10.244.1.5:8080"]);

    // Endpoints of a selector-less Service are mirrored into slices
    let db = snap.service("default", "legacy-db").unwrap();
    let port = &db.spec.as_ref().unwrap().ports.as_ref().unwrap()[0];
    let slices: Vec<_> = snap.slices_for("default", "legacy-db").collect();
    assert_eq!(slices.len(), 2, "one slice per address family");
    let backends = select_endpoints(db, slices.iter().copied(), port, &Scope::Cluster);
    let addrs: Vec<String> = backends
        .iter()
        .map(|b| b.socket_addr().to_string())
        .collect();
    assert_eq!(addrs, ["192.0.2.10:5432", "[2001:db8::10]:5432"]);
}

#[test]
fn endpoints_of_a_service_with_selector_are_not_mirrored() {
    let report = ManifestLoader::parse_str(
        "embedded.yaml",
        &format!(
            "{}---\napiVersion: v1\nkind: Endpoints\nmetadata:\n  name: web\n  namespace: shop\nsubsets:\n- addresses: [{{ip: 10.0.0.1}}]\n  ports: [{{port: 80}}]\n",
            WEB
        ),
    );
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    let snap = report.to_snapshot();
    let names: Vec<_> = snap
        .slices_for("shop", "web")
        .map(|s| s.metadata.name.clone().unwrap())
        .collect();
    assert_eq!(names, ["web-abcde"]);
}

#[test]
fn bad_yaml_keeps_the_files_last_good_state() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "a.yaml", &service("a", "10.96.0.1"));
    write(
        dir.path(),
        "b.yaml",
        &format!(
            "{}---\n{}",
            service("b1", "10.96.0.2"),
            service("b2", "10.96.0.3")
        ),
    );
    let mut loader = ManifestLoader::new(dir.path());
    let first = loader.reload();
    assert!(first.errors.is_empty());
    assert_eq!(first.to_snapshot().services().len(), 3);

    // break document 2 of b.yaml (line 14 of the file), change a.yaml
    write(
        dir.path(),
        "b.yaml",
        &format!(
            "{}---\napiVersion: v1\nkind: Service\nmetadata:\n  name: b2\nspec:\n  clusterIP: 10.96.0.9\n  ports:\n  - port: eighty\n",
            service("b1", "10.96.0.99")
        ),
    );
    write(dir.path(), "a.yaml", &service("a", "10.96.0.11"));
    let report = loader.reload();
    let snap = report.to_snapshot();
    match &report.errors[..] {
        [
            ManifestError::Document {
                path,
                document,
                line,
                message,
                ..
            },
        ] => {
            assert!(path.ends_with("b.yaml"), "{path:?}");
            assert_eq!(*document, 2);
            assert_eq!(*line, Some(17), "{message}");
            let shown = report.errors[0].to_string();
            assert!(shown.contains("b.yaml: document 2 (line 17"), "{shown}");
        }
        other => panic!("expected one error for b.yaml, got {other:?}"),
    }
    // b.yaml: the whole last good state, including b1's old address
    assert_eq!(
        cluster_ip(&snap, "default", "b1").as_deref(),
        Some("10.96.0.2")
    );
    assert_eq!(
        cluster_ip(&snap, "default", "b2").as_deref(),
        Some("10.96.0.3")
    );
    // other files still update
    assert_eq!(
        cluster_ip(&snap, "default", "a").as_deref(),
        Some("10.96.0.11")
    );

    // the error persists while the file stays bad, and load_dir fails
    assert_eq!(loader.reload().errors.len(), 1);
    let err = load_dir(dir.path()).unwrap_err();
    assert!(matches!(err, ClusterError::Manifests(_)));
    assert!(err.to_string().contains("b.yaml"), "{err}");

    // fixing it applies the new contents
    write(dir.path(), "b.yaml", &service("b1", "10.96.0.99"));
    let report = loader.reload();
    assert!(report.errors.is_empty());
    let snap = report.to_snapshot();
    assert_eq!(
        cluster_ip(&snap, "default", "b1").as_deref(),
        Some("10.96.0.99")
    );
    assert!(snap.service("default", "b2").is_none());
}

#[test]
fn a_file_that_was_never_valid_contributes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "a.yaml",
        &format!("{}---\nkind: [oops\n", service("a", "10.96.0.1")),
    );
    write(dir.path(), "bin.yaml", "");
    std::fs::write(dir.path().join("latin1.yaml"), [0x66, 0x6f, 0xe9, 0x0a]).unwrap();
    let report = ManifestSource::load_once(dir.path());
    assert_eq!(report.errors.len(), 2, "{:?}", report.errors);
    assert!(
        report.errors.iter().any(
            |e| matches!(e, ManifestError::Read { path, .. } if path.ends_with("latin1.yaml"))
        )
    );
    assert!(report.objects.is_empty());
}

#[test]
fn duplicate_objects_name_both_files_and_the_first_wins() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "10-first.yaml", &service("web", "10.96.0.1"));
    write(dir.path(), "20-second.yaml", &service("web", "10.96.0.2"));
    let report = ManifestSource::load_once(dir.path());
    match &report.errors[..] {
        [
            ManifestError::Duplicate {
                kind,
                key,
                first,
                second,
            },
        ] => {
            assert_eq!(kind, "Service");
            assert_eq!(key, &ObjectKey::namespaced("default", "web"));
            assert!(first.ends_with("10-first.yaml"));
            assert!(second.ends_with("20-second.yaml"));
            let shown = report.errors[0].to_string();
            assert!(
                shown.contains("10-first.yaml") && shown.contains("20-second.yaml"),
                "{shown}"
            );
        }
        other => panic!("expected one duplicate error, got {other:?}"),
    }
    let snap = report.to_snapshot();
    assert_eq!(
        cluster_ip(&snap, "default", "web").as_deref(),
        Some("10.96.0.1")
    );
}

#[test]
fn missing_directory_is_reported() {
    let report = ManifestSource::load_once("/nonexistent/strait-manifests");
    assert!(matches!(
        report.errors[..],
        [ManifestError::Directory { .. }]
    ));
}

/// Waits until `pred` holds for the view's snapshot, using `changed()`.
async fn wait_for(
    view: &mut ClusterView,
    what: &str,
    pred: impl Fn(&ClusterSnapshot) -> bool,
) -> ClusterSnapshot {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let mut snap = view.snapshot();
    while !pred(&snap) {
        snap = tokio::time::timeout_at(deadline, view.changed())
            .await
            .unwrap_or_else(|_| panic!("timed out waiting for: {what}; last snapshot {snap:?}"))
            .expect("source stopped");
    }
    snap
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_source_reloads_on_change() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "a.yaml", &service("a", "10.96.0.1"));
    write(dir.path(), "b.yaml", &service("b", "10.96.0.2"));
    let source = ManifestSource::new(dir.path()).with_rescan_interval(None);
    let mut status = source.status();
    let mut view = ClusterView::spawn(source);
    let s0 = view.wait_synced().await.unwrap();
    assert_eq!(s0.services().len(), 2);

    // edit
    write(dir.path(), "a.yaml", &service("a", "10.96.0.11"));
    let s1 = wait_for(&mut view, "edited a", |s| {
        cluster_ip(s, "default", "a").as_deref() == Some("10.96.0.11")
    })
    .await;
    let changes = s1.changes_since(&s0);
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!(changes[0].key, ObjectKey::namespaced("default", "a"));

    // add a file in a new subdirectory
    write(dir.path(), "more/c.yml", &service("c", "10.96.0.3"));
    wait_for(&mut view, "added c", |s| {
        s.service("default", "c").is_some()
    })
    .await;

    // delete a file
    std::fs::remove_file(dir.path().join("b.yaml")).unwrap();
    let s3 = wait_for(&mut view, "deleted b", |s| {
        s.service("default", "b").is_none()
    })
    .await;
    assert!(s3.changes_since(&s1).iter().any(|c| c.kind == Kind::Service
        && c.key == ObjectKey::namespaced("default", "b")
        && c.op == strait_cluster::ChangeOp::Deleted));

    // break c.yml: the error is exposed and c keeps its last good state
    write(
        dir.path(),
        "more/c.yml",
        "apiVersion: v1\nkind: Service\nmetadata: {name: c\n",
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let current = status.borrow_and_update().clone();
        if let Some(e) = current.errors.first() {
            match e {
                ManifestError::Document {
                    path, document: 1, ..
                } => assert!(path.ends_with("more/c.yml")),
                other => panic!("unexpected error {other:?}"),
            }
            break;
        }
        tokio::time::timeout_at(deadline, status.changed())
            .await
            .expect("timed out waiting for the load error")
            .unwrap();
    }
    let snap = view.snapshot();
    assert_eq!(
        cluster_ip(&snap, "default", "c").as_deref(),
        Some("10.96.0.3")
    );
    assert_eq!(
        cluster_ip(&snap, "default", "a").as_deref(),
        Some("10.96.0.11")
    );

    // reading the files must not trigger more reloads (no self-inflicted loop)
    tokio::time::sleep(Duration::from_millis(400)).await;
    let loads = status.borrow().loads;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        status.borrow().loads,
        loads,
        "the source keeps reloading an unchanged directory"
    );
}

#[tokio::test]
async fn source_on_a_missing_directory_stops() {
    let mut view = ClusterView::spawn(ManifestSource::new("/nonexistent/strait-manifests"));
    let result = tokio::time::timeout(Duration::from_secs(5), view.changed())
        .await
        .unwrap();
    assert!(matches!(result, Err(ClusterError::SourceStopped)));
}

#[test]
fn services_decode_exactly() {
    let report = ManifestLoader::parse_str("x.yaml", WEB);
    let snap = report.to_snapshot();
    let svc: &Service = snap.service("shop", "web").unwrap();
    assert_eq!(
        svc.spec.as_ref().unwrap().selector.as_ref().unwrap()["app"],
        "web"
    );
}

/// A source with kinds and a trim provides only those kinds, cut down, and
/// counts as synced once they loaded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trimmed_source_provides_its_kinds_trimmed() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "web.yaml", WEB);
    write(dir.path(), "list.yaml", LIST);
    let kinds = KindSet::only(Kind::Service).with(Kind::EndpointSlice);
    let source = ManifestSource::new(dir.path())
        .with_rescan_interval(None)
        .with_kinds(kinds)
        .with_trim(Trim::for_component(Component::Dns));
    assert_eq!(strait_cluster::ClusterSource::kinds(&source), kinds);
    let mut view = ClusterView::spawn(source);
    let snapshot = view.wait_synced().await.unwrap();
    assert_eq!(snapshot.watched_kinds(), kinds);
    let untrimmed = load_dir(dir.path()).unwrap();
    assert_eq!((untrimmed.pods().len(), untrimmed.nodes().len()), (1, 1));
    assert_eq!((snapshot.pods().len(), snapshot.nodes().len()), (0, 0));
    let mut want: Vec<Object> = untrimmed
        .services()
        .values()
        .map(|s| Object::Service((**s).clone()))
        .chain(
            untrimmed
                .endpoint_slices()
                .values()
                .map(|s| Object::EndpointSlice((**s).clone())),
        )
        .collect();
    let trim = Trim::for_component(Component::Dns);
    want.iter_mut().for_each(|o| trim.apply(o));
    let got: Vec<Object> = snapshot
        .services()
        .values()
        .map(|s| Object::Service((**s).clone()))
        .chain(
            snapshot
                .endpoint_slices()
                .values()
                .map(|s| Object::EndpointSlice((**s).clone())),
        )
        .collect();
    assert!(!got.is_empty());
    assert_eq!(got, want);
}
