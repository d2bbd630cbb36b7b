//! The immutable routing decision structure the request path reads: rule
//! routes, per-host default backends, the catch-all default backend and the
//! controller-wide default backend, in that order.

use std::sync::Arc;

use crate::annotations::IngressSettings;
use crate::backend::Upstream;
use crate::canary::Canary;
use crate::matching::RouteTable;

pub use crate::rewrite::Rewrite;

/// Where a matched request goes.
#[derive(Debug, Clone)]
pub enum Target {
    /// Proxy to the endpoints of a Service port.
    Service(Arc<Upstream>),
    /// The route exists but cannot be served (a Resource backend, a
    /// backend without a port); the client gets a 503 with this message.
    Unavailable(Arc<str>),
}

/// One routing decision: which Ingress it came from, where it goes, and how
/// plain HTTP is treated.
///
/// It exists as the value of the route table, shared by `Arc` between the
/// table and in-flight requests.
#[derive(Debug, Clone)]
pub struct Route {
    /// `namespace/name` of the Ingress (or a label for the controller-wide
    /// default), for logs, metrics and response bodies.
    pub ingress: Arc<str>,
    /// The rule's host as written (`*` for none), for metrics and logs.
    pub rule_host: Arc<str>,
    /// The rule's path as written (`-` for default backends), for metrics.
    pub rule_path: Arc<str>,
    /// The destination.
    pub target: Target,
    /// Plain-HTTP requests get a 308 to https.
    pub https_redirect: bool,
    /// The Ingress's annotation settings (shared by its routes).
    pub settings: Arc<IngressSettings>,
    /// `rewrite-target`, for rule routes of Ingresses that set it.
    pub rewrite: Option<Rewrite>,
    /// A canary Ingress's backend for the same host and path, which takes
    /// part of the traffic.
    pub canary: Option<Arc<Canary>>,
}

/// Which part of the router answered, for access logs and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchKind {
    /// A host/path rule.
    Rule,
    /// The `defaultBackend` of the Ingress that owns the request's host.
    HostDefault,
    /// The `defaultBackend` of an Ingress without rules.
    CatchAll,
    /// The controller's `--default-backend`.
    ControllerDefault,
}

/// The full routing structure of one configuration generation.
///
/// It exists so a request is routed with lock-free reads of one immutable
/// value, which the rebuild replaces atomically.
#[derive(Debug, Clone, Default)]
pub struct Router {
    pub(crate) rules: RouteTable<Arc<Route>>,
    pub(crate) host_defaults: RouteTable<Arc<Route>>,
    pub(crate) catch_all: Option<Arc<Route>>,
    pub(crate) controller_default: Option<Arc<Route>>,
}

impl Router {
    /// The route for a request's Host (or `:authority`) and request target,
    /// or `None` when nothing serves it (the 404 case).
    pub fn route(&self, host: &str, target: &str) -> Option<(&Arc<Route>, MatchKind)> {
        if let Some(r) = self.rules.pick(host, target) {
            return Some((r, MatchKind::Rule));
        }
        if let Some(r) = self.host_defaults.pick(host, target) {
            return Some((r, MatchKind::HostDefault));
        }
        if let Some(r) = &self.catch_all {
            return Some((r, MatchKind::CatchAll));
        }
        self.controller_default
            .as_ref()
            .map(|r| (r, MatchKind::ControllerDefault))
    }

    /// Number of host/path rules.
    pub fn rule_count(&self) -> usize {
        self.rules.len()
    }
}
