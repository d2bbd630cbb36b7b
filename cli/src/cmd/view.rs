//! Where a component's cluster view comes from: `--manifests DIR` when given,
//! otherwise the API server (in-cluster config or KUBECONFIG).
use std::path::Path;

use anyhow::Context;
use strait_cluster::{ClusterView, KindSet, KubeConfig, KubeSource, ManifestSource};

/// Starts the cluster view for a component that watches `kinds`. Pods are
/// watched for `node` only, when a node is given.
pub async fn cluster_view(
    manifests: Option<&Path>,
    kinds: KindSet,
    node: Option<&str>,
) -> anyhow::Result<ClusterView> {
    if let Some(dir) = manifests {
        anyhow::ensure!(
            dir.is_dir(),
            "--manifests {} is not a directory; point it at a folder of Kubernetes YAML",
            dir.display()
        );
        tracing::info!(dir = %dir.display(), "cluster view from manifests");
        return Ok(ClusterView::spawn(ManifestSource::new(dir)));
    }
    let mut config = KubeConfig::new(kinds);
    if let Some(node) = node {
        config = config.with_node_name(node);
    }
    let source = KubeSource::try_default(config).await.context(
        "connecting to the Kubernetes API (no in-cluster config or KUBECONFIG); \
         pass --manifests DIR to run from a manifest directory instead",
    )?;
    tracing::info!("cluster view from the Kubernetes API");
    Ok(ClusterView::spawn(source))
}
