//! The agent's node-route follower (`--node-routes`): syncs the routes to
//! the other nodes' pod CIDRs at start, on every view change that touches
//! Nodes, and on the periodic reconcile (which repairs routes someone
//! deleted by hand). Runs as its own task, the same in every proxy mode.

use std::{collections::BTreeSet, sync::Arc, time::Duration};

use strait_cluster::{ClusterSnapshot, ClusterView, Kind};
use strait_netlink::Netlink;

use super::AgentMetrics;
use crate::node_routes::{self, Skipped};

/// Follows `view` until it stops, keeping this namespace's node routes
/// equal to what the Nodes ask for.
pub(crate) async fn follow(
    mut view: ClusterView,
    node: String,
    resync: Duration,
    metrics: Arc<AgentMetrics>,
) {
    let Ok(mut current) = view.wait_synced().await else {
        return;
    };
    let mut logged = BTreeSet::new();
    sync(&current, &node, &metrics, &mut logged, "initial");
    let mut tick = tokio::time::interval(resync);
    tick.tick().await;
    loop {
        tokio::select! {
            changed = view.changed() => {
                let Ok(next) = changed else {
                    tracing::warn!("cluster view stopped; node routes keep their last state");
                    return;
                };
                let touches_nodes = next.kind_changed_since(&current, Kind::Node);
                current = next;
                if touches_nodes && current.synced() {
                    sync(&current, &node, &metrics, &mut logged, "change");
                }
            }
            _ = tick.tick() => {
                if current.synced() {
                    sync(&current, &node, &metrics, &mut logged, "reconcile");
                }
            }
        }
    }
}

fn sync(
    snapshot: &ClusterSnapshot,
    node: &str,
    metrics: &AgentMetrics,
    logged: &mut BTreeSet<Skipped>,
    reason: &'static str,
) {
    let (desired, skipped) = node_routes::desired(snapshot, node);
    for s in &skipped {
        if !logged.contains(s) {
            tracing::debug!(node = %s.node, reason = s.reason, "no node route for this node");
        }
    }
    *logged = skipped.into_iter().collect();
    let result = Netlink::open().and_then(|mut nl| node_routes::sync(&mut nl, &desired));
    match result {
        Ok(stats) => {
            metrics.node_routes.set(stats.installed as i64);
            if stats.replaced + stats.removed > 0 || reason != "reconcile" {
                tracing::info!(
                    reason,
                    routes = stats.installed,
                    replaced = stats.replaced,
                    removed = stats.removed,
                    "node routes synced"
                );
            }
        }
        Err(e) => {
            metrics.node_route_errors.inc();
            tracing::error!(reason, error = %e, "node route sync failed; retrying on the next change or reconcile");
        }
    }
}
