//! Prometheus metrics: requests by route and status, latency by route,
//! upstream connect failures and configuration reloads.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// The route a request matched: the rule's host and path, never the
/// client's (so cardinality stays bounded by the configuration).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    /// `namespace/name` of the Ingress, `-` when nothing matched.
    pub ingress: Arc<str>,
    /// The rule host, `*` for rules without one, `-` when nothing matched.
    pub host: Arc<str>,
    /// The rule path, `-` when nothing matched.
    pub path: Arc<str>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    ingress: Arc<str>,
    host: Arc<str>,
    path: Arc<str>,
    status: u16,
}

/// The controller's metrics and the registry `/metrics` renders.
///
/// It exists so the request path, the upstream client and the reload loop
/// count into one place.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<StatusLabels, Counter>,
    latency: Family<RouteLabels, Histogram>,
    connect_failures: Counter,
    reloads: Counter,
    rules: Gauge,
    certificates: Gauge,
}

/// 100 µs .. ~100 s.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.000_1, 4.0, 11))
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Metrics registered under the `strait_ingress` prefix.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("strait_ingress");
        let requests = Family::<StatusLabels, Counter>::default();
        let latency = Family::<RouteLabels, Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        let connect_failures = Counter::default();
        let reloads = Counter::default();
        let rules = Gauge::default();
        let certificates = Gauge::default();
        registry.register(
            "requests",
            "HTTP requests answered, by Ingress, rule host, rule path and status",
            requests.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "Time from request to response head, by Ingress, rule host and rule path",
            latency.clone(),
        );
        registry.register(
            "upstream_connect_failures",
            "Connections to upstream endpoints that failed (the next endpoint is tried)",
            connect_failures.clone(),
        );
        registry.register(
            "config_reloads",
            "Route table and certificate rebuilds swapped in",
            reloads.clone(),
        );
        registry.register("rules", "Host/path rules in the route table", rules.clone());
        registry.register(
            "certificates",
            "TLS hosts with a configured certificate",
            certificates.clone(),
        );
        Self {
            registry,
            requests,
            latency,
            connect_failures,
            reloads,
            rules,
            certificates,
        }
    }

    /// Counts one answered request.
    pub fn request(&self, route: &RouteLabels, status: u16, took: Duration) {
        self.requests
            .get_or_create(&StatusLabels {
                ingress: route.ingress.clone(),
                host: route.host.clone(),
                path: route.path.clone(),
                status,
            })
            .inc();
        self.latency
            .get_or_create(route)
            .observe(took.as_secs_f64());
    }

    /// Counts a failed upstream connect.
    pub fn connect_failure(&self) {
        self.connect_failures.inc();
    }

    /// Records a swapped-in configuration.
    pub fn reloaded(&self, rules: usize, certificates: usize) {
        self.reloads.inc();
        self.rules.set(i64::try_from(rules).unwrap_or(i64::MAX));
        self.certificates
            .set(i64::try_from(certificates).unwrap_or(i64::MAX));
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
