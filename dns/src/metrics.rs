//! Prometheus metrics: queries by type and response code, answer latency,
//! and forward-cache hits and misses.

use std::time::Duration;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Labels of the query counter. Both values are static strings, so
/// counting a query never allocates once its series exists.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueryLabels {
    qtype: &'static str,
    rcode: &'static str,
}

/// Labels of the request counter by transport.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TransportLabels {
    transport: &'static str,
}

/// The server's metrics and the registry that exposes them.
///
/// It exists so every part of the server counts into one place that
/// `/metrics` renders.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    queries: Family<QueryLabels, Counter>,
    requests: Family<TransportLabels, Counter>,
    latency: Histogram,
    cache_hits: Counter,
    cache_misses: Counter,
    stale_answers: Counter,
    autopath_answers: Counter,
    services: Gauge,
}

/// The response code as the metric label (and as dig prints it).
pub fn rcode_label(rcode: ResponseCode) -> &'static str {
    match rcode {
        ResponseCode::NoError => "NOERROR",
        ResponseCode::FormErr => "FORMERR",
        ResponseCode::ServFail => "SERVFAIL",
        ResponseCode::NXDomain => "NXDOMAIN",
        ResponseCode::NotImp => "NOTIMP",
        ResponseCode::Refused => "REFUSED",
        ResponseCode::BADVERS => "BADVERS",
        _ => "OTHER",
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Metrics registered under the `strait_dns` prefix.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("strait_dns");
        let queries = Family::<QueryLabels, Counter>::default();
        let requests = Family::<TransportLabels, Counter>::default();
        // 10 µs .. ~5 s.
        let latency = Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
            0.000_01, 3.0, 12,
        ));
        let cache_hits = Counter::default();
        let cache_misses = Counter::default();
        let stale_answers = Counter::default();
        let autopath_answers = Counter::default();
        let services = Gauge::default();
        registry.register(
            "queries",
            "DNS queries answered, by query type and response code",
            queries.clone(),
        );
        registry.register(
            "requests",
            "DNS requests received, by transport",
            requests.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "Time from receiving a query to having its answer",
            latency.clone(),
        );
        registry.register(
            "cache_hits",
            "Forwarded queries answered from the cache",
            cache_hits.clone(),
        );
        registry.register(
            "cache_misses",
            "Forwarded queries sent upstream",
            cache_misses.clone(),
        );
        registry.register(
            "stale_answers",
            "Answers served from expired cache entries because upstreams failed (RFC 8767)",
            stale_answers.clone(),
        );
        registry.register(
            "autopath_answers",
            "Search-list expansions answered with a CNAME to the name that exists (autopath)",
            autopath_answers.clone(),
        );
        registry.register(
            "services",
            "Services in the cluster-zone index",
            services.clone(),
        );
        Metrics {
            registry,
            queries,
            requests,
            latency,
            cache_hits,
            cache_misses,
            stale_answers,
            autopath_answers,
            services,
        }
    }

    /// Count one answered query.
    pub fn query(&self, qtype: RecordType, rcode: ResponseCode, took: Duration) {
        self.queries
            .get_or_create(&QueryLabels {
                qtype: qtype.into(),
                rcode: rcode_label(rcode),
            })
            .inc();
        self.latency.observe(took.as_secs_f64());
    }

    /// Count one request received over `transport` (`udp` or `tcp`).
    pub fn request(&self, transport: &'static str) {
        self.requests
            .get_or_create(&TransportLabels { transport })
            .inc();
    }

    /// Count a forward-cache hit.
    pub fn cache_hit(&self) {
        self.cache_hits.inc();
    }

    /// Count a forward-cache miss.
    pub fn cache_miss(&self) {
        self.cache_misses.inc();
    }

    /// Count a stale answer.
    pub fn stale_answer(&self) {
        self.stale_answers.inc();
    }

    /// Count an autopath answer.
    pub fn autopath_answer(&self) {
        self.autopath_answers.inc();
    }

    /// Record the index size.
    pub fn set_services(&self, count: usize) {
        self.services.set(i64::try_from(count).unwrap_or(i64::MAX));
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
