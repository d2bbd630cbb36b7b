//! The one trait every source of cluster state implements.

use futures::future::BoxFuture;

use crate::error::ClusterError;
use crate::kind::KindSet;
use crate::view::Publisher;

/// A producer of cluster state (a Kubernetes API server, a manifest
/// directory, a test script).
///
/// It exists so every consumer takes one [`ClusterView`](crate::ClusterView)
/// regardless of where the state comes from; [`ClusterView::spawn`](crate::ClusterView::spawn)
/// runs any source.
pub trait ClusterSource: Send + 'static {
    /// A short name for logs ("kubernetes", "manifests:/etc/strait").
    fn name(&self) -> &str;

    /// The kinds this source provides; the view is synced once each of them
    /// has been marked synced. Defaults to all kinds.
    fn kinds(&self) -> KindSet {
        KindSet::ALL
    }

    /// Runs until the publisher's view is dropped or a fatal error occurs,
    /// publishing every change. Transient errors are logged and retried inside
    /// the source, keeping the last-known state.
    fn run(self: Box<Self>, publisher: Publisher) -> BoxFuture<'static, Result<(), ClusterError>>;
}
