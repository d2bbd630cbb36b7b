//! The node agent's proxy loop: waits for a synced cluster view, loads and
//! attaches the datapath, then keeps the maps equal to the desired state on
//! every change and on a periodic full reconcile that repairs drift.
//!
//! In [`ProxyMode::Iptables`] and [`ProxyMode::Nftables`] it loads no eBPF
//! and writes kube-proxy's layout instead ([`crate::kube_layout`]), so the
//! same cluster can be compared under both datapaths.
mod addresses;
pub mod cni_config;
pub(crate) mod http;
mod metrics;
mod routes;

use std::{
    future::Future,
    net::SocketAddr,
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant, SystemTime},
};

use strait_cluster::{ClusterSnapshot, ClusterView};
use strait_ebpf_common::maps;
use tokio::sync::watch;

pub use self::http::Health;
pub use self::metrics::AgentMetrics;
use self::metrics::MapLabel;
use crate::kube_layout::{IptablesBackend, RulesMode};
use crate::{Capacity, DesiredState, ProxyError, ServiceMaps, SockLb};

/// Which datapath the agent programs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ProxyMode {
    /// The eBPF socket load balancer and tc programs (the product).
    #[default]
    Ebpf,
    /// kube-proxy's iptables layout, written with one `iptables-restore`.
    Iptables(IptablesBackend),
    /// kube-proxy's nftables layout, written with one `nft -f`.
    Nftables,
}

impl ProxyMode {
    /// The kube-proxy mode this is, if it is one.
    pub fn rules(self) -> Option<RulesMode> {
        match self {
            ProxyMode::Ebpf => None,
            ProxyMode::Iptables(backend) => Some(RulesMode::Iptables(backend)),
            ProxyMode::Nftables => Some(RulesMode::Nftables),
        }
    }

    /// `ebpf`, `iptables` or `nftables`.
    pub fn name(self) -> &'static str {
        self.rules().map_or("ebpf", RulesMode::name)
    }
}

/// Everything the agent needs to know about its node.
#[derive(Clone, Debug)]
pub struct AgentConfig {
    /// This node's name, for node-local traffic policies.
    pub node_name: String,
    /// The cgroup v2 directory whose processes get service translation.
    pub cgroup_root: PathBuf,
    /// Where maps and links are pinned (on a bpffs).
    pub pin_dir: PathBuf,
    /// Address of `/healthz` and `/metrics` (kube-proxy uses :10256).
    pub listen: SocketAddr,
    /// Period of the full reconcile against the kernel maps.
    pub resync: Duration,
    /// Map sizes; `None` derives them from the cluster's object counts.
    pub capacity: Option<Capacity>,
    /// Interfaces where traffic from outside the node arrives (NodePort,
    /// LoadBalancer, externalIPs); the first one's address is the SNAT
    /// source. Empty: no external datapath.
    pub interfaces: Vec<String>,
    /// kube-proxy's `--nodeport-addresses`: only node addresses in these
    /// CIDRs serve NodePorts (empty: all).
    pub nodeport_cidrs: Vec<ipnetwork::IpNetwork>,
    /// The datapath.
    pub mode: ProxyMode,
    /// kube-proxy's settings for the iptables and nftables modes.
    pub rules: crate::kube_layout::Options,
    /// Program routes to the other nodes' pod CIDRs via their InternalIPs
    /// ([`crate::node_routes`]). Needs the nodes on one L2 segment and the
    /// view to include Nodes.
    pub node_routes: bool,
    /// Write this node's CNI conflist here once its Node has pod CIDRs
    /// ([`cni_config`]); needs the view to include Nodes.
    pub write_cni_config: Option<PathBuf>,
}

/// Map sizes that fit `desired` with room to grow: at least the defaults,
/// and twice what is needed today.
pub fn capacity_for(desired: &DesiredState) -> Capacity {
    let frontends = desired.len();
    let slots: usize = desired.values().map(|s| s.slot_layout().len()).sum();
    let vips = crate::vips(desired).len();
    let backends: std::collections::BTreeSet<_> = desired
        .values()
        .flat_map(|s| s.backends.iter().chain(&s.external_backends))
        .collect();
    let grow = |need: usize, default: u32| {
        let want = u32::try_from(need.saturating_mul(2)).unwrap_or(u32::MAX);
        want.max(default)
    };
    // Maglev entries: each external frontend's table, plus a quarter for
    // tables being replaced and growth (not doubled: tables are large).
    let maglev: usize = desired
        .values()
        .filter(|s| s.external_flags != 0 && !s.external_backends.is_empty())
        .map(|s| crate::maglev::maglev_table_size(s.external_backends.len() as u16) as usize)
        .sum();
    let d = Capacity::default();
    Capacity {
        services: grow(frontends + slots + vips, d.services),
        backends: grow(backends.len(), d.backends),
        maglev_entries: u32::try_from(maglev + maglev / 4)
            .unwrap_or(u32::MAX)
            .max(d.maglev_entries),
        ..d
    }
}

/// Runs the agent until `shutdown` completes. The datapath (pinned maps and
/// links) stays in place afterwards, so connections keep working while the
/// agent is restarted.
pub async fn run(
    config: AgentConfig,
    view: ClusterView,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ProxyError> {
    let metrics = Arc::new(AgentMetrics::default());
    let (health_tx, health_rx) = watch::channel(Health::default());
    let (bound, server) = http::serve(config.listen, metrics.clone(), health_rx).await?;
    let _server = AbortOnDrop(server);
    tracing::info!(addr = %bound, mode = config.mode.name(), "serving /healthz and /metrics");
    let _cni_config = config.write_cni_config.clone().map(|path| {
        tracing::info!(path = %path.display(), "writing the CNI config from this Node's pod CIDRs");
        AbortOnDrop(tokio::spawn(cni_config::follow(
            view.clone(),
            config.node_name.clone(),
            path,
        )))
    });
    let _routes = config.node_routes.then(|| {
        tracing::info!(
            protocol = crate::node_routes::ROUTE_PROTOCOL,
            "programming routes to the other nodes' pod CIDRs"
        );
        AbortOnDrop(tokio::spawn(routes::follow(
            view.clone(),
            config.node_name.clone(),
            config.resync,
            metrics.clone(),
        )))
    });
    match config.mode.rules() {
        Some(mode) => {
            crate::kube_layout::agent_loop::run(&config, mode, view, shutdown, &metrics, &health_tx)
                .await
        }
        None => run_ebpf(config, view, shutdown, metrics, health_tx).await,
    }
}

/// The eBPF agent: load, program, attach, then follow the view.
async fn run_ebpf(
    config: AgentConfig,
    mut view: ClusterView,
    shutdown: impl Future<Output = ()>,
    metrics: Arc<AgentMetrics>,
    health_tx: watch::Sender<Health>,
) -> Result<(), ProxyError> {
    tracing::info!("waiting for the cluster view to sync");
    let snapshot = view.wait_synced().await.map_err(ProxyError::ClusterView)?;
    let started = Instant::now();
    let incremental = crate::IncrementalDesired::full(&snapshot, &config.node_name);
    let capacity = config
        .capacity
        .unwrap_or_else(|| capacity_for(incremental.desired()));
    let mut lb = SockLb::load_with(&config.pin_dir, capacity)?;
    let mut maps = lb.service_maps()?;
    // Program the maps before attaching, so a fresh node never translates
    // from empty maps; a restart keeps serving from the pinned ones.
    let mut state = Loop {
        maps: &mut maps,
        metrics: &metrics,
        health: &health_tx,
        node: &config.node_name,
        cgroup_root: &config.cgroup_root,
        capacity,
        incremental,
    };
    state.write_full(started, "initial");
    lb.attach(&config.cgroup_root)?;
    let mut external = match config.interfaces.first() {
        Some(primary) => {
            let mut node = lb.node_maps()?;
            let addrs = crate::node_maps::node_addresses(primary, &config.nodeport_cidrs);
            node.set_addresses(&addrs)?;
            node.set_local_endpoints(&crate::node_maps::local_endpoints(
                &snapshot,
                &config.node_name,
            ))?;
            for interface in &config.interfaces {
                lb.attach_external(interface)?;
            }
            tracing::info!(addrs = ?addrs.all, snat_v4 = ?addrs.primary_v4, snat_v6 = ?addrs.primary_v6, "serving NodePorts on the node addresses");
            Some((node, primary.clone()))
        }
        None => {
            tracing::info!("no --interfaces: NodePort and LoadBalancer traffic is not handled");
            None
        }
    };

    let mut health_checks = crate::health_check::HealthChecks::default();
    health_checks
        .apply(crate::health_check::desired(&snapshot, &config.node_name))
        .await;

    let mut resync = tokio::time::interval(config.resync);
    resync.tick().await;
    // Node addresses come and go (DHCP, a VIP moved here); follow them.
    let mut addresses = addresses::AddressChanges::new();
    tokio::pin!(shutdown);
    let mut current = snapshot;
    let mut view_alive = true;
    loop {
        tokio::select! {
            () = &mut shutdown => {
                tracing::info!("shutting down; the datapath stays attached");
                return Ok(());
            }
            changed = view.changed(), if view_alive => {
                match changed {
                    Ok(next) => {
                        health_tx.send_modify(|h| h.last_change = Some(SystemTime::now()));
                        if next.synced() && current.synced() {
                            state.apply_change(&current, &next);
                        } else if next.synced() {
                            state.sync(&next, "change");
                        }
                        health_checks
                            .apply(crate::health_check::desired(&next, &config.node_name))
                            .await;
                        if let Some((node, _)) = external.as_mut()
                            && let Err(e) = node.set_local_endpoints(
                                &crate::node_maps::local_endpoints(&next, &config.node_name),
                            )
                        {
                            state.metrics.sync_errors.inc();
                            tracing::warn!(error = %e, "updating the node-local endpoint map failed");
                        }
                        current = next;
                    }
                    Err(e) => {
                        // The source stopped: keep serving the last known state.
                        tracing::error!(error = %e, "cluster view stopped; keeping the last known state");
                        view_alive = false;
                    }
                }
            }
            _ = resync.tick() => {
                if let Err(e) = state.maps.reload_from_kernel() {
                    tracing::warn!(error = %e, "reading the kernel maps for the full reconcile failed");
                    state.metrics.sync_errors.inc();
                }
                if current.synced() {
                    state.sync(&current, "reconcile");
                }
                let expired = state.maps.gc_affinity();
                if expired > 0 {
                    tracing::debug!(expired, "removed expired session affinity entries");
                }
                if let Some((node, _)) = external.as_mut() {
                    let maps = &state.maps;
                    let removed = node.gc_conntrack(crate::service_maps::monotonic_ns(), |id| maps.has_backend(id));
                    if removed > 0 {
                        tracing::debug!(removed, "removed idle or orphaned conntrack entries");
                    }
                }
            }
            () = addresses.changed(), if external.is_some() => {
                if let Some((node, primary)) = external.as_mut() {
                    let addrs = crate::node_maps::node_addresses(primary, &config.nodeport_cidrs);
                    match node.set_addresses(&addrs) {
                        Ok(true) => tracing::info!(addrs = ?addrs.all, snat_v4 = ?addrs.primary_v4, snat_v6 = ?addrs.primary_v6, "node addresses changed"),
                        Ok(false) => {}
                        Err(e) => {
                            state.metrics.sync_errors.inc();
                            tracing::warn!(error = %e, "updating the node address map failed");
                        }
                    }
                }
            }
        }
    }
}

/// The mutable state of the agent loop.
struct Loop<'a> {
    maps: &'a mut ServiceMaps,
    metrics: &'a AgentMetrics,
    health: &'a watch::Sender<Health>,
    node: &'a str,
    cgroup_root: &'a std::path::Path,
    capacity: Capacity,
    incremental: crate::IncrementalDesired,
}

impl Loop<'_> {
    /// Connected UDP sockets keep sending to the backend they connected to;
    /// destroy those aimed at removed backends so clients reconnect.
    fn destroy_stale_udp(&self, removed: &[SocketAddr]) {
        if removed.is_empty() {
            return;
        }
        let namespaces = crate::sock_destroy::netns_under_cgroup(self.cgroup_root);
        match crate::sock_destroy::destroy_udp_to(&namespaces, removed) {
            Ok(n) => tracing::info!(
                destroyed = n,
                backends = removed.len(),
                namespaces = namespaces.len(),
                "destroyed connected UDP sockets of removed backends"
            ),
            Err(e) => {
                self.metrics.sync_errors.inc();
                tracing::warn!(error = %e, "destroying stale connected UDP sockets failed");
            }
        }
    }

    /// A change between two synced snapshots: recompute and write only the
    /// services it touches.
    fn apply_change(&mut self, older: &ClusterSnapshot, newer: &ClusterSnapshot) {
        let started = Instant::now();
        let delta = self.incremental.update(older, newer, self.node);
        match self.maps.apply_delta(&delta, self.incremental.desired()) {
            Ok(stats) => {
                self.destroy_stale_udp(&stats.removed_udp_backends);
                let took = started.elapsed();
                self.metrics.sync_duration.observe(took.as_secs_f64());
                tracing::info!(
                    reason = "change",
                    upserted = stats.upserted,
                    removed = stats.removed,
                    took_us = took.as_micros() as u64,
                    "datapath synced"
                );
                self.health
                    .send_modify(|h| h.last_synced = Some(SystemTime::now()));
                self.record_usage();
            }
            Err(e) => {
                self.metrics.sync_errors.inc();
                tracing::error!(error = %e, "incremental sync failed; doing a full sync");
                self.sync(newer, "change");
            }
        }
    }

    /// Recomputes the whole desired state from `snapshot` and syncs to it.
    fn sync(&mut self, snapshot: &ClusterSnapshot, reason: &'static str) {
        let started = Instant::now();
        self.incremental = crate::IncrementalDesired::full(snapshot, self.node);
        self.write_full(started, reason);
    }

    /// Brings the maps to the current desired state with a full comparison.
    fn write_full(&mut self, started: Instant, reason: &'static str) {
        let desired = self.incremental.desired();
        match self.maps.sync(desired) {
            Ok(stats) => {
                self.destroy_stale_udp(&stats.removed_udp_backends);
                let took = started.elapsed();
                self.metrics.sync_duration.observe(took.as_secs_f64());
                if stats.upserted + stats.removed > 0 || reason != "reconcile" {
                    tracing::info!(
                        reason,
                        upserted = stats.upserted,
                        removed = stats.removed,
                        frontends = desired.len(),
                        took_us = took.as_micros() as u64,
                        "datapath synced"
                    );
                }
                if reason == "reconcile" && stats.upserted + stats.removed > 0 {
                    tracing::warn!(
                        repaired = stats.upserted + stats.removed,
                        "full reconcile repaired drift in the kernel maps"
                    );
                }
                self.health
                    .send_modify(|h| h.last_synced = Some(SystemTime::now()));
            }
            Err(e) => {
                self.metrics.sync_errors.inc();
                tracing::error!(reason, error = %e, "sync failed; retrying on the next change or reconcile");
            }
        }
        self.record_usage();
    }

    fn record_usage(&self) {
        let (svc_entries, be_entries) = self.maps.usage();
        self.metrics
            .frontends
            .set(self.maps.frontends().count() as i64);
        self.metrics.backends.set(be_entries as i64);
        let label = |map| MapLabel { map };
        self.metrics
            .map_entries
            .get_or_create(&label(maps::SERVICES))
            .set(svc_entries as i64);
        self.metrics
            .map_entries
            .get_or_create(&label(maps::BACKENDS))
            .set(be_entries as i64);
        self.metrics
            .map_capacity
            .get_or_create(&label(maps::SERVICES))
            .set(i64::from(self.capacity.services));
        self.metrics
            .map_capacity
            .get_or_create(&label(maps::BACKENDS))
            .set(i64::from(self.capacity.backends));
    }
}

/// Aborts a background task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
