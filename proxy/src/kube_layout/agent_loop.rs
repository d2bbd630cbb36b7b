//! `strait agent --mode iptables|nftables`: the agent without eBPF. It waits
//! for a synced cluster view, then writes the whole kube-proxy layout on
//! every change that alters the service ports (one atomic restore or
//! transaction each, as a kube-proxy full sync), again on every resync tick
//! to repair drift, and serves /healthz, /metrics and the health check
//! node ports like the eBPF agent. On shutdown the rules stay, as
//! kube-proxy's do; `strait agent cleanup --mode …` removes them.
use std::collections::BTreeSet;
use std::future::Future;
use std::time::{Instant, SystemTime};

use strait_cluster::{ClusterSnapshot, ClusterView};
use tokio::sync::watch;

use super::model::{Options, ServicePort};
use super::program::{self, RulesMode};
use crate::ProxyError;
use crate::agent::{AgentConfig, AgentMetrics, Health};

/// The state the loop carries between writes.
struct Writer<'a> {
    mode: RulesMode,
    options: &'a Options,
    node: &'a str,
    metrics: &'a AgentMetrics,
    health: &'a watch::Sender<Health>,
    /// What the last successful write programmed.
    written: Option<Vec<ServicePort>>,
}

impl Writer<'_> {
    /// Writes the layout of `snapshot` (skipped on a change that leaves the
    /// service ports as written). Returns the error of a failed write.
    async fn write(
        &mut self,
        snapshot: &ClusterSnapshot,
        reason: &'static str,
    ) -> Result<(), program::RulesError> {
        let started = Instant::now();
        let ports = super::convert::service_ports(snapshot, self.node);
        if reason == "change" && self.written.as_ref() == Some(&ports) {
            tracing::debug!("the change leaves the service ports as written");
            return Ok(());
        }
        let (mode, options, todo) = (self.mode, self.options.clone(), ports.clone());
        let result = tokio::task::spawn_blocking(move || program::sync(mode, &todo, &options))
            .await
            .unwrap_or_else(|e| {
                Err(program::RulesError::Parse {
                    program: "the rules writer",
                    detail: format!("it panicked: {e}"),
                })
            });
        match result {
            Ok(report) => {
                let took = started.elapsed();
                self.metrics.sync_duration.observe(took.as_secs_f64());
                self.metrics.frontends.set(ports.len() as i64);
                let endpoints: BTreeSet<_> = ports
                    .iter()
                    .flat_map(|p| p.cluster_endpoints.iter().chain(&p.local_endpoints))
                    .collect();
                self.metrics.backends.set(endpoints.len() as i64);
                if reason != "reconcile" || report.stale > 0 {
                    tracing::info!(
                        reason,
                        mode = mode.name(),
                        service_ports = report.service_ports,
                        stale = report.stale,
                        bytes = report.bytes,
                        took_us = took.as_micros() as u64,
                        "rules synced"
                    );
                }
                self.health
                    .send_modify(|h| h.last_synced = Some(SystemTime::now()));
                self.written = Some(ports);
                Ok(())
            }
            Err(e) => {
                self.metrics.sync_errors.inc();
                tracing::error!(reason, error = %e, "writing the rules failed; retrying on the next change or resync");
                self.written = None;
                Err(e)
            }
        }
    }
}

/// Runs the rules agent until `shutdown` completes. The first write must
/// succeed (a node that cannot program its rules should not report
/// healthy); later failures are logged and retried.
pub(crate) async fn run(
    config: &AgentConfig,
    mode: RulesMode,
    mut view: ClusterView,
    shutdown: impl Future<Output = ()>,
    metrics: &AgentMetrics,
    health: &watch::Sender<Health>,
) -> Result<(), ProxyError> {
    tracing::info!(
        mode = mode.name(),
        "waiting for the cluster view to sync (no eBPF in this mode)"
    );
    let snapshot = view.wait_synced().await.map_err(ProxyError::ClusterView)?;
    let mut writer = Writer {
        mode,
        options: &config.rules,
        node: &config.node_name,
        metrics,
        health,
        written: None,
    };
    writer.write(&snapshot, "initial").await?;

    let mut health_checks = crate::health_check::HealthChecks::default();
    health_checks
        .apply(crate::health_check::desired(&snapshot, &config.node_name))
        .await;

    let mut resync = tokio::time::interval(config.resync);
    resync.tick().await;
    tokio::pin!(shutdown);
    let mut current = snapshot;
    let mut view_alive = true;
    loop {
        tokio::select! {
            () = &mut shutdown => {
                tracing::info!(
                    "shutting down; the {} rules stay (remove them with `strait agent cleanup --mode {}`)",
                    mode.name(),
                    mode.name()
                );
                return Ok(());
            }
            changed = view.changed(), if view_alive => match changed {
                Ok(next) => {
                    health.send_modify(|h| h.last_change = Some(SystemTime::now()));
                    if next.synced() {
                        let _ = writer.write(&next, "change").await;
                    }
                    health_checks
                        .apply(crate::health_check::desired(&next, &config.node_name))
                        .await;
                    current = next;
                }
                Err(e) => {
                    tracing::error!(error = %e, "cluster view stopped; keeping the last known rules");
                    view_alive = false;
                }
            },
            _ = resync.tick() => {
                if current.synced() {
                    let _ = writer.write(&current, "reconcile").await;
                }
            }
        }
    }
}
