//! `--write-cni-config`: the agent writes its node's conflist from the Node
//! in a manifest snapshot, waits while the Node has no pod CIDR, and
//! rewrites the file only when the CIDRs change.

use std::time::Duration;

use strait_cluster::{ClusterSnapshot, ClusterView, ManifestSource};
use strait_proxy::agent::cni_config;

const NODES: &str = r#"
apiVersion: v1
kind: Node
metadata:
  name: node-1
spec:
  podCIDRs: ["10.244.1.0/24", "fd00:10:244:1::/64"]
status:
  addresses:
    - type: InternalIP
      address: 192.0.2.11
---
apiVersion: v1
kind: Node
metadata:
  name: node-2
spec: {}
"#;

fn snapshot(dir: &std::path::Path) -> ClusterSnapshot {
    std::fs::write(dir.join("nodes.yaml"), NODES).unwrap();
    let report = ManifestSource::load_once(dir);
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    ClusterSnapshot::from_objects(report.objects)
}

#[test]
fn writes_the_nodes_conflist_once() {
    let manifests = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let path = out.path().join("10-strait.conflist");
    let snap = snapshot(manifests.path());

    assert!(cni_config::write(&snap, "node-1", &path).unwrap());
    let text = std::fs::read_to_string(&path).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["name"], "strait");
    assert_eq!(
        v["plugins"][0]["ipam"]["ranges"],
        serde_json::json!([[{"subnet": "10.244.1.0/24"}], [{"subnet": "fd00:10:244:1::/64"}]])
    );
    // Unchanged: not rewritten.
    assert!(!cni_config::write(&snap, "node-1", &path).unwrap());
    // A Node without pod CIDRs, or no Node at all: nothing is written.
    let other = out.path().join("other.conflist");
    assert!(!cni_config::write(&snap, "node-2", &other).unwrap());
    assert!(!cni_config::write(&snap, "node-9", &other).unwrap());
    assert!(!other.exists());
}

#[tokio::test]
async fn the_agent_task_writes_it_from_the_view() {
    let manifests = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let path = out.path().join("10-strait.conflist");
    let view = ClusterView::from_snapshot(snapshot(manifests.path()));
    let task = tokio::spawn(cni_config::follow(view, "node-1".into(), path.clone()));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !path.exists() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no conflist written"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    task.abort();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("10.244.1.0/24"), "{text}");
}
