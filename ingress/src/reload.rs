//! The reconfiguration loop: every new cluster snapshot is built into a
//! new router and certificate store on a blocking thread, then both are
//! swapped in atomically. Requests in flight keep the generation they
//! started with; connections are never touched.

use std::collections::BTreeSet;
use std::sync::Arc;

use arc_swap::ArcSwap;
use strait_cluster::{ClusterSnapshot, ClusterView};
use tokio::sync::watch;

use crate::build::{BuildReport, Built, ConfigBuilder, Problem};
use crate::events::EventSink;
use crate::metrics::Metrics;
use crate::router::Router;
use crate::status::StatusPlanner;
use crate::tls::CertStore;

/// Where a built configuration is published.
pub(crate) struct Targets {
    pub(crate) router: Arc<ArcSwap<Router>>,
    pub(crate) certs: Arc<ArcSwap<CertStore>>,
    pub(crate) metrics: Arc<Metrics>,
    /// Counts swapped-in configurations (tests and status wait on it).
    pub(crate) swaps: watch::Sender<u64>,
}

impl Targets {
    /// Swaps in `built`.
    pub(crate) fn publish(&self, built: Built) {
        self.metrics
            .reloaded(built.router.rule_count(), built.certs.len());
        self.router.store(Arc::new(built.router));
        self.certs.store(Arc::new(built.certs));
        self.swaps.send_modify(|n| *n += 1);
    }
}

/// Logs what changed in the report: new problems as warnings, solved ones
/// as info, and a summary line. Returns the new problems (for events).
pub(crate) fn log_report(
    report: &BuildReport,
    previous: &mut BTreeSet<Problem>,
    generation: u64,
) -> Vec<Problem> {
    let current: BTreeSet<Problem> = report.problems.iter().cloned().collect();
    let new: Vec<Problem> = current.difference(previous).cloned().collect();
    for p in &new {
        tracing::warn!(ingress = %p.ingress, problem = %p.message, "ingress problem");
    }
    for p in previous.difference(&current) {
        tracing::info!(ingress = %p.ingress, problem = %p.message, "ingress problem resolved");
    }
    tracing::info!(
        generation,
        served = report.served.len(),
        ignored = report.ignored,
        rejected = report.rejected.len(),
        problems = current.len(),
        "ingress configuration built"
    );
    *previous = current;
    new
}

/// Rebuilds on every snapshot until `shutdown` flips. If the view's
/// source stops, the last configuration keeps serving.
pub(crate) async fn run(
    mut view: ClusterView,
    mut builder: ConfigBuilder,
    targets: Targets,
    mut problems: BTreeSet<Problem>,
    status: StatusPlanner,
    events: Option<EventSink>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let changed = tokio::select! {
            changed = view.changed() => changed,
            () = stopped(&mut shutdown) => return,
        };
        let snapshot: ClusterSnapshot = match changed {
            Ok(snapshot) => snapshot,
            Err(error) => {
                tracing::error!(%error, "cluster view stopped; serving the last configuration");
                stopped(&mut shutdown).await;
                return;
            }
        };
        let generation = snapshot.generation();
        let snapshot_for_status = snapshot.clone();
        let job = tokio::task::spawn_blocking(move || {
            let built = builder.build(&snapshot);
            (builder, built)
        });
        let built;
        (builder, built) = match job.await {
            Ok(pair) => pair,
            Err(error) => {
                tracing::error!(%error, "route table build failed; serving the last configuration");
                stopped(&mut shutdown).await;
                return;
            }
        };
        let new = log_report(&built.report, &mut problems, generation);
        if let Some(events) = &events {
            events.problems(&snapshot_for_status, &new);
        }
        status.offer(&snapshot_for_status, &built.report.served);
        targets.publish(built);
    }
}

/// Resolves once shutdown was requested (or its sender is gone).
pub(crate) async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    // The guard is dropped here, so the future stays `Send`.
    let _ = shutdown.wait_for(|stop| *stop).await;
}
