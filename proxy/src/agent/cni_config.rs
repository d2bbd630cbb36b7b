//! `--write-cni-config PATH`: once the agent sees its own Node with pod
//! CIDRs, it writes the node's CNI conflist (rendered by
//! [`strait_cni::conflist`]) atomically, and rewrites it only when the
//! CIDRs change. This replaces a ConfigMap of pod CIDRs that operators had
//! to keep in sync with the Nodes by hand.

use std::path::{Path, PathBuf};

use strait_cluster::{ClusterSnapshot, ClusterView, Kind, ObjectKey};
use strait_cni::conflist::{ConflistSpec, write_if_changed};

/// The conflist text for `node`, or `None` while its Node is missing or
/// has no pod CIDR.
pub fn render_for(snapshot: &ClusterSnapshot, node: &str) -> Option<String> {
    let object = snapshot.nodes().get(&ObjectKey::cluster(node))?;
    let cidrs = crate::node_routes::pod_cidrs(object);
    if cidrs.is_empty() {
        return None;
    }
    let spec = ConflistSpec::node(cidrs.iter().map(ToString::to_string).collect());
    Some(spec.render_text())
}

/// Writes the conflist for `node` to `path` when it can be rendered and
/// differs from the file; returns whether it wrote.
pub fn write(snapshot: &ClusterSnapshot, node: &str, path: &Path) -> std::io::Result<bool> {
    match render_for(snapshot, node) {
        Some(text) => write_if_changed(path, &text),
        None => Ok(false),
    }
}

/// Follows `view` until it stops, keeping `path` equal to this node's
/// conflist.
pub async fn follow(mut view: ClusterView, node: String, path: PathBuf) {
    let Ok(mut current) = view.wait_synced().await else {
        return;
    };
    let mut waiting_logged = false;
    loop {
        match write(&current, &node, &path) {
            Ok(true) => tracing::info!(path = %path.display(), node = %node, "CNI config written"),
            Ok(false) => {
                if render_for(&current, &node).is_none() && !waiting_logged {
                    waiting_logged = true;
                    tracing::info!(node = %node, "waiting for this Node's spec.podCIDR(s) to write the CNI config");
                }
            }
            Err(e) => {
                tracing::error!(path = %path.display(), error = %e, "writing the CNI config failed; retrying on the next Node change")
            }
        }
        loop {
            let Ok(next) = view.changed().await else {
                return;
            };
            let touches_nodes = next.kind_changed_since(&current, Kind::Node);
            current = next;
            if touches_nodes && current.synced() {
                break;
            }
        }
    }
}
