//! The agent's Prometheus metrics: what it programs, how long a sync takes,
//! how full the maps are and how often syncing failed.
use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};

/// Label of the per-map gauges.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MapLabel {
    /// The map name as in the eBPF object.
    pub map: &'static str,
}

/// Every metric the agent exports, registered once.
pub struct AgentMetrics {
    registry: Registry,
    /// Frontends programmed (VIP, port, protocol).
    pub frontends: Gauge,
    /// Distinct backends programmed.
    pub backends: Gauge,
    /// Wall time of each sync.
    pub sync_duration: Histogram,
    /// Syncs that failed.
    pub sync_errors: Counter,
    /// Entries in use per map.
    pub map_entries: Family<MapLabel, Gauge>,
    /// Capacity per map.
    pub map_capacity: Family<MapLabel, Gauge>,
    /// Routes to other nodes' pod CIDRs installed (`--node-routes`).
    pub node_routes: Gauge,
    /// Node route syncs that failed.
    pub node_route_errors: Counter,
}

impl Default for AgentMetrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("strait_proxy");
        let frontends = Gauge::default();
        let backends = Gauge::default();
        // 100 µs .. ~3 s
        let sync_duration = Histogram::new(
            prometheus_client::metrics::histogram::exponential_buckets(0.0001, 2.0, 16),
        );
        let sync_errors = Counter::default();
        let map_entries = Family::<MapLabel, Gauge>::default();
        let map_capacity = Family::<MapLabel, Gauge>::default();
        registry.register(
            "frontends",
            "Service frontends programmed",
            frontends.clone(),
        );
        registry.register("backends", "Distinct backends programmed", backends.clone());
        registry.register(
            "sync_duration_seconds",
            "Time to bring the maps to the desired state",
            sync_duration.clone(),
        );
        registry.register("sync_errors", "Syncs that failed", sync_errors.clone());
        registry.register("map_entries", "Entries in use per map", map_entries.clone());
        registry.register("map_capacity", "Capacity per map", map_capacity.clone());
        let node_routes = Gauge::default();
        let node_route_errors = Counter::default();
        registry.register(
            "node_routes",
            "Routes to other nodes' pod CIDRs installed",
            node_routes.clone(),
        );
        registry.register(
            "node_route_errors",
            "Node route syncs that failed",
            node_route_errors.clone(),
        );
        Self {
            registry,
            frontends,
            backends,
            sync_duration,
            sync_errors,
            map_entries,
            map_capacity,
            node_routes,
            node_route_errors,
        }
    }
}

impl AgentMetrics {
    /// The Prometheus text exposition of all metrics.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}
