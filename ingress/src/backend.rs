//! Service backends: turning `service.name` + `service.port` of an Ingress
//! into the ready endpoint addresses the proxy connects to, with the
//! cluster crate's kube-proxy endpoint selection.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use strait_cluster::k8s_openapi::api::core::v1::ServicePort;
use strait_cluster::{ClusterSnapshot, Protocol, Scope, select_endpoints, service};

use crate::affinity::EndpointKey;
use crate::balance::{Balance, EndpointStats, pick_two};
use crate::config::{PortRef, ServiceRef};

/// The endpoints of one Service port, with the round-robin cursor the proxy
/// advances.
///
/// It exists so every route to the same Service port shares one cursor (load
/// spreads across routes) and the cursor survives rebuilds of the route
/// table.
#[derive(Debug)]
pub struct Upstream {
    /// `namespace/name:port`, for logs, metrics and error bodies.
    name: Arc<str>,
    /// Ready endpoints (serving-terminating ones when none is ready).
    endpoints: Vec<SocketAddr>,
    /// The affinity cookie value of each endpoint, in the same order.
    keys: Vec<EndpointKey>,
    /// Why there are no endpoints, when there are none.
    problem: Option<BackendProblem>,
    /// Round-robin cursor, shared with the previous table's copy.
    cursor: Arc<AtomicUsize>,
    /// Latency and load of each endpoint (same order), for EWMA; kept
    /// across rebuilds for endpoints that stay.
    stats: Vec<Arc<EndpointStats>>,
}

/// What an upstream hands to its successor in the next rebuild: the
/// round-robin cursor and the endpoints' statistics.
#[derive(Debug, Clone, Default)]
pub(crate) struct Carry {
    cursor: Arc<AtomicUsize>,
    stats: HashMap<SocketAddr, Arc<EndpointStats>>,
}

impl Upstream {
    /// An upstream with fixed endpoints (tests and benchmarks).
    pub fn fixed(name: &str, endpoints: Vec<SocketAddr>) -> Self {
        Self {
            name: Arc::from(name),
            keys: keys(name, &endpoints),
            stats: endpoints.iter().map(|_| Arc::default()).collect(),
            endpoints,
            problem: None,
            cursor: Arc::default(),
        }
    }

    /// `namespace/name:port`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The endpoint addresses, sorted.
    pub fn endpoints(&self) -> &[SocketAddr] {
        &self.endpoints
    }

    /// Why the upstream has no endpoints (`None` when it has some, or when
    /// the Service simply has no ready pods).
    pub fn problem(&self) -> Option<&BackendProblem> {
        self.problem.as_ref()
    }

    /// The endpoint an affinity cookie names, while it is one of ours.
    pub fn endpoint_for(&self, key: EndpointKey) -> Option<SocketAddr> {
        let i = self.keys.iter().position(|k| *k == key)?;
        self.endpoints.get(i).copied()
    }

    /// The affinity cookie value of `endpoint`.
    pub fn key_of(&self, endpoint: SocketAddr) -> EndpointKey {
        self.endpoints
            .iter()
            .position(|e| *e == endpoint)
            .and_then(|i| self.keys.get(i).copied())
            .unwrap_or_else(|| EndpointKey::new(&self.name, endpoint))
    }

    /// The endpoints in the order to try them for one request (see
    /// [`attempt_indices`](Self::attempt_indices)).
    pub fn attempt_order(
        &self,
        attempts: usize,
        pinned: Option<SocketAddr>,
        balance: Balance,
    ) -> Vec<SocketAddr> {
        self.attempt_indices(attempts, pinned, balance)
            .into_iter()
            .map(|i| self.endpoints[i])
            .collect()
    }

    /// Indices into [`endpoints`](Self::endpoints) in the order to try them
    /// for one request: `pinned` first when it is one of ours (session
    /// affinity), else the one `balance` chooses; then round-robin from the
    /// cursor (for retries), at most `attempts` in all. Indices, so the
    /// caller reaches each endpoint's statistics without a search.
    pub fn attempt_indices(
        &self,
        attempts: usize,
        pinned: Option<SocketAddr>,
        balance: Balance,
    ) -> Vec<usize> {
        let len = self.endpoints.len();
        if len == 0 || attempts == 0 {
            return Vec::new();
        }
        let turn = self.cursor.fetch_add(1, Ordering::Relaxed);
        let start = turn % len;
        let pinned = pinned.and_then(|p| self.endpoints.iter().position(|e| *e == p));
        let first = pinned.or_else(|| match balance {
            Balance::RoundRobin => None,
            Balance::Ewma => {
                let draws = (splitmix(turn as u64), splitmix(!(turn as u64)));
                pick_two(&self.stats, draws)
            }
        });
        let rest = (0..len).map(|i| (start + i) % len);
        first
            .into_iter()
            .chain(rest.filter(|i| Some(*i) != first))
            .take(attempts)
            .collect()
    }

    /// The statistics of the endpoint at `index` in
    /// [`endpoints`](Self::endpoints).
    pub fn stats(&self, index: usize) -> Option<&Arc<EndpointStats>> {
        self.stats.get(index)
    }
}

/// SplitMix64: well-spread draws from a counter, for the EWMA pick (no
/// random number generator needed, and different for each request).
fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Why a Service backend has no usable endpoints, reported in logs and in
/// the body of the 503 the client gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackendProblem {
    /// No Service of that name in the Ingress's namespace.
    NoService,
    /// The Service has no port with that number or name.
    NoPort(PortRef),
    /// The Service port is not TCP.
    NotTcp(PortRef),
    /// ExternalName Services have no endpoints to proxy to.
    ExternalName,
    /// The Ingress backend names no port.
    MissingPort,
}

impl fmt::Display for BackendProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoService => f.write_str("the Service does not exist"),
            Self::NoPort(p) => write!(f, "the Service has no port {p}"),
            Self::NotTcp(p) => write!(f, "Service port {p} is not TCP"),
            Self::ExternalName => f.write_str("ExternalName Services are not supported"),
            Self::MissingPort => f.write_str("the backend names no Service port"),
        }
    }
}

/// Builds [`Upstream`]s for one rebuild, sharing one per Service port and
/// carrying round-robin cursors and endpoint statistics over from the
/// previous table.
pub(crate) struct UpstreamResolver<'a> {
    snapshot: &'a ClusterSnapshot,
    previous: &'a HashMap<Arc<str>, Carry>,
    built: HashMap<Arc<str>, Arc<Upstream>>,
}

impl<'a> UpstreamResolver<'a> {
    /// A resolver over `snapshot`; `previous` holds what the last table's
    /// upstreams carry over, by upstream name.
    pub(crate) fn new(
        snapshot: &'a ClusterSnapshot,
        previous: &'a HashMap<Arc<str>, Carry>,
    ) -> Self {
        Self {
            snapshot,
            previous,
            built: HashMap::new(),
        }
    }

    /// The upstream for `service` (one per Service port per rebuild).
    pub(crate) fn resolve(&mut self, service: &ServiceRef) -> Arc<Upstream> {
        let name: Arc<str> = Arc::from(service.to_string());
        if let Some(up) = self.built.get(&name) {
            return up.clone();
        }
        let (endpoints, problem) = match self.endpoints(service) {
            Ok(endpoints) => (endpoints, None),
            Err(problem) => (Vec::new(), Some(problem)),
        };
        let carry = self.previous.get(&name).cloned().unwrap_or_default();
        let stats = endpoints
            .iter()
            .map(|e| carry.stats.get(e).cloned().unwrap_or_default())
            .collect();
        let up = Arc::new(Upstream {
            name: name.clone(),
            keys: keys(&name, &endpoints),
            endpoints,
            problem,
            cursor: carry.cursor,
            stats,
        });
        self.built.insert(name, up.clone());
        up
    }

    /// What this rebuild's upstreams carry over to the next one.
    pub(crate) fn into_carry(self) -> HashMap<Arc<str>, Carry> {
        self.built
            .into_iter()
            .map(|(name, up)| {
                let stats = up
                    .endpoints
                    .iter()
                    .copied()
                    .zip(up.stats.iter().cloned())
                    .collect();
                let carry = Carry {
                    cursor: up.cursor.clone(),
                    stats,
                };
                (name, carry)
            })
            .collect()
    }

    fn endpoints(&self, target: &ServiceRef) -> Result<Vec<SocketAddr>, BackendProblem> {
        let svc = self
            .snapshot
            .service(&target.namespace, &target.name)
            .ok_or(BackendProblem::NoService)?;
        if service::service_type(svc) == strait_cluster::ServiceType::ExternalName {
            return Err(BackendProblem::ExternalName);
        }
        let port = find_port(service::ports(svc), &target.port)
            .ok_or_else(|| BackendProblem::NoPort(target.port.clone()))?;
        if strait_cluster::service_port_protocol(port) != Some(Protocol::Tcp) {
            return Err(BackendProblem::NotTcp(target.port.clone()));
        }
        let slices = self.snapshot.slices_for(&target.namespace, &target.name);
        Ok(select_endpoints(svc, slices, port, &Scope::Cluster)
            .iter()
            .map(|b| b.socket_addr())
            .collect())
    }
}

/// The affinity keys of `endpoints` of upstream `name`.
fn keys(name: &str, endpoints: &[SocketAddr]) -> Vec<EndpointKey> {
    endpoints
        .iter()
        .map(|e| EndpointKey::new(name, *e))
        .collect()
}

/// The Service port an Ingress backend names: `port.number` is the Service
/// port (not the target port), `port.name` a Service port's name.
fn find_port<'s>(ports: &'s [ServicePort], want: &PortRef) -> Option<&'s ServicePort> {
    ports.iter().find(|p| match want {
        PortRef::Number(n) => p.port == i32::from(*n),
        PortRef::Name(name) => p.name.as_deref() == Some(name.as_str()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempt_order_rotates_and_caps() {
        let eps: Vec<SocketAddr> = (1..=3)
            .map(|i| SocketAddr::from(([127, 0, 0, i], 80)))
            .collect();
        let up = Upstream::fixed("ns/s:80", eps.clone());
        assert_eq!(
            up.attempt_order(2, None, Balance::RoundRobin),
            vec![eps[0], eps[1]]
        );
        assert_eq!(
            up.attempt_order(5, None, Balance::RoundRobin),
            vec![eps[1], eps[2], eps[0]]
        );
        // A pinned endpoint goes first and is not tried twice.
        assert_eq!(
            up.attempt_order(3, Some(eps[0]), Balance::RoundRobin),
            vec![eps[0], eps[2], eps[1]]
        );
        assert_eq!(
            up.attempt_order(2, Some(eps[1]), Balance::RoundRobin),
            vec![eps[1], eps[0]]
        );
        let empty = Upstream::fixed("ns/s:80", Vec::new());
        assert!(empty.attempt_order(3, None, Balance::Ewma).is_empty());
        // Affinity keys name endpoints without revealing them.
        let key = up.key_of(eps[2]);
        assert_eq!(up.endpoint_for(key), Some(eps[2]));
        let other = Upstream::fixed("ns/s:80", vec![eps[0]]);
        assert_eq!(other.endpoint_for(key), None);
    }
}
