//! Keep the index in step with the cluster view: apply each new snapshot's
//! changes as soon as it is published, so the next answer sees them.

use std::sync::{Arc, RwLock};

use strait_cluster::{ClusterSnapshot, ClusterView};

use crate::index::Index;
use crate::metrics::Metrics;

/// Apply the view's current snapshot to an empty index (every object is
/// new) and return it: [`follow`] must diff against exactly this snapshot,
/// or changes published in between would be lost.
pub(super) fn apply_current(
    view: &ClusterView,
    index: &RwLock<Index>,
    metrics: &Metrics,
) -> ClusterSnapshot {
    let snapshot = view.snapshot();
    let empty = ClusterSnapshot::empty(snapshot.watched_kinds());
    apply(index, &snapshot, &empty, metrics);
    snapshot
}

fn apply(index: &RwLock<Index>, new: &ClusterSnapshot, old: &ClusterSnapshot, metrics: &Metrics) {
    let changes = new.changes_since(old);
    let mut index = index.write().unwrap_or_else(|e| e.into_inner());
    let was_synced = index.synced();
    index.apply(new, &changes);
    metrics.set_services(index.service_count());
    if index.synced() && !was_synced {
        tracing::info!(
            services = index.service_count(),
            generation = index.generation(),
            "dns index synced"
        );
    }
}

/// Follow `view` until its source stops; `last` is the snapshot the index
/// already holds.
pub(super) async fn follow(
    mut view: ClusterView,
    mut last: ClusterSnapshot,
    index: Arc<RwLock<Index>>,
    metrics: Arc<Metrics>,
) {
    loop {
        let next = match view.changed().await {
            Ok(next) => next,
            Err(error) => {
                tracing::warn!(%error, "cluster view stopped; serving the last state");
                return;
            }
        };
        apply(&index, &next, &last, &metrics);
        last = next;
    }
}
