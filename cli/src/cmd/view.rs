//! Where a component's cluster view comes from: `--manifests DIR` when given,
//! otherwise the API server (in-cluster config or KUBECONFIG).
use std::path::Path;

use anyhow::Context;
use strait_cluster::{
    ClusterView, Component, KindSet, KubeConfig, KubeSource, ManifestSource, Trim,
};

/// Starts the cluster view for a component that watches `kinds`. Pods are
/// watched for `node` only, when a node is given. Objects are complete (and
/// a manifest directory provides every kind).
pub async fn cluster_view(
    manifests: Option<&Path>,
    kinds: KindSet,
    node: Option<&str>,
) -> anyhow::Result<ClusterView> {
    spawn(manifests, kinds, node, None).await
}

/// Starts the cluster view for `component` holding only what it reads: its
/// kinds (from a manifest directory too; the optional ones only when
/// `optional` says a flag turned them on), each object cut down with
/// [`Trim::for_component`].
pub async fn trimmed_cluster_view(
    manifests: Option<&Path>,
    component: Component,
    node: Option<&str>,
    optional: bool,
) -> anyhow::Result<ClusterView> {
    let trim = Trim::for_component(component);
    let mut kinds = component.kinds();
    if !optional {
        for kind in component.optional_kinds().iter() {
            kinds.remove(kind);
        }
    }
    spawn(manifests, kinds, node, Some(trim)).await
}

async fn spawn(
    manifests: Option<&Path>,
    kinds: KindSet,
    node: Option<&str>,
    trim: Option<Trim>,
) -> anyhow::Result<ClusterView> {
    if let Some(dir) = manifests {
        anyhow::ensure!(
            dir.is_dir(),
            "--manifests {} is not a directory; point it at a folder of Kubernetes YAML",
            dir.display()
        );
        tracing::info!(dir = %dir.display(), trimmed = trim.is_some(), "cluster view from manifests");
        let source = ManifestSource::new(dir);
        let source = match trim {
            Some(trim) => source.with_kinds(kinds).with_trim(trim),
            None => source,
        };
        return Ok(ClusterView::spawn(source));
    }
    let mut config = KubeConfig::new(kinds);
    if let Some(node) = node {
        config = config.with_node_name(node);
    }
    if let Some(trim) = trim {
        config = config.with_trim(trim);
    }
    let source = KubeSource::try_default(config).await.context(
        "connecting to the Kubernetes API (no in-cluster config or KUBECONFIG); \
         pass --manifests DIR to run from a manifest directory instead",
    )?;
    tracing::info!(
        trimmed = trim.is_some(),
        "cluster view from the Kubernetes API"
    );
    Ok(ClusterView::spawn(source))
}
