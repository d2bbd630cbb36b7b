//! Turns the cluster view into the frontends and backends the socket load
//! balancer should hold on one node, following kube-proxy's rules: proxyable
//! services only (not headless, not ExternalName, not claimed by another
//! proxy), ready endpoints with the terminating fallback,
//! `internalTrafficPolicy: Local` restricted to this node's endpoints, and
//! ClientIP session affinity.
use std::{
    collections::BTreeMap,
    net::{IpAddr, SocketAddr},
};

use strait_cluster::{
    ClusterSnapshot, ObjectKey, Protocol, Scope, ServiceType,
    k8s_openapi::api::core::v1::{Service, ServicePort},
    select_endpoints, service,
};
use strait_ebpf_common::{
    PROTO_TCP, PROTO_UDP, SVC_F_EXT_LOCAL, SVC_F_EXTERNAL, SVC_F_NODEPORT, SVC_F_SOURCE_RANGES,
};

use crate::Frontend;

/// What one frontend should hold.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FrontendSpec {
    /// Backends in a stable (sorted) order, so an unchanged service produces
    /// no map writes. Same family as the frontend.
    pub backends: Vec<SocketAddr>,
    /// `sessionAffinity: ClientIP` timeout in seconds, if enabled.
    pub affinity_timeout: Option<u32>,
    /// For traffic from outside the node (served by the tc programs):
    /// `SVC_F_EXTERNAL`, plus `SVC_F_EXT_LOCAL` and `SVC_F_NODEPORT`; 0 for a
    /// ClusterIP frontend.
    pub external_flags: u16,
    /// External frontends: the backends traffic from outside the node is
    /// balanced over (`externalTrafficPolicy` applied), sorted. `backends`
    /// then holds what pods and the node itself reach through the socket
    /// hooks: the service's cluster-wide set, as kube-proxy sends
    /// in-cluster traffic to external addresses. Empty for ClusterIPs.
    pub external_backends: Vec<SocketAddr>,
    /// `loadBalancerSourceRanges` of a LoadBalancer IP frontend, sorted
    /// (with `SVC_F_SOURCE_RANGES`), of the frontend's family; empty:
    /// every client.
    pub source_ranges: Vec<ipnetwork::IpNetwork>,
}

impl FrontendSpec {
    /// How the frontend's backend slots are laid out: the socket hooks'
    /// backends, then the external ones unless they are the same set (then
    /// the external window covers the same slots). Borrowed, so checking an
    /// unchanged frontend on every reconcile copies nothing.
    pub fn slot_layout(&self) -> SlotLayout<'_> {
        if self.external_flags == 0 {
            return SlotLayout {
                shared: &self.backends,
                external: &[],
                ext_offset: 0,
                ext_count: 0,
            };
        }
        let ext_count = self.external_backends.len() as u16;
        if self.external_backends == self.backends {
            return SlotLayout {
                shared: &self.backends,
                external: &[],
                ext_offset: 0,
                ext_count,
            };
        }
        SlotLayout {
            shared: &self.backends,
            external: &self.external_backends,
            ext_offset: self.backends.len() as u16,
            ext_count,
        }
    }
}

/// The slots of one frontend (see [`FrontendSpec::slot_layout`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotLayout<'a> {
    /// The first slots: the socket hooks' backends.
    shared: &'a [SocketAddr],
    /// Slots after them: the external backends, when they differ.
    external: &'a [SocketAddr],
    /// The slot before the first one external traffic uses.
    pub ext_offset: u16,
    /// How many slots external traffic uses.
    pub ext_count: u16,
}

impl SlotLayout<'_> {
    /// Every slot's backend, in slot order.
    pub fn slots(&self) -> impl Iterator<Item = &SocketAddr> {
        self.shared.iter().chain(self.external)
    }

    /// The number of slots.
    pub fn len(&self) -> usize {
        self.shared.len() + self.external.len()
    }

    /// Whether there are no slots.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The frontend flags that describe external traffic.
pub const EXTERNAL_FLAGS: u16 =
    SVC_F_EXTERNAL | SVC_F_EXT_LOCAL | SVC_F_NODEPORT | SVC_F_SOURCE_RANGES;

/// What the maps should contain, by frontend.
pub type DesiredState = BTreeMap<Frontend, FrontendSpec>;

/// Computes the desired cluster-IP state (IPv4 and IPv6) for `node_name`.
pub fn desired_state(snapshot: &ClusterSnapshot, node_name: &str) -> DesiredState {
    let mut out = DesiredState::new();
    for (key, svc) in snapshot.services() {
        out.extend(service_frontends(snapshot, key, svc, node_name));
    }
    out
}

/// The frontends one Service contributes (none when it is not proxyable).
pub fn service_frontends(
    snapshot: &ClusterSnapshot,
    key: &ObjectKey,
    svc: &Service,
    node_name: &str,
) -> Vec<(Frontend, FrontendSpec)> {
    let mut out = Vec::new();
    if !service::is_proxyable(svc) {
        return out;
    }
    let Some(namespace) = key.namespace.as_deref() else {
        return out;
    };
    let vips = service::cluster_ips(svc);
    if vips.is_empty() {
        return out;
    }
    let scope = Scope::internal(svc, node_name);
    let affinity_timeout = service::session_affinity_timeout(svc);
    let mut ports = Vec::new();
    for sp in service::ports(svc) {
        let (Some(port), Some(proto)) = (
            strait_cluster::port_number(sp.port),
            strait_cluster::service_port_protocol(sp).and_then(proto_number),
        ) else {
            continue;
        };
        let backends = backends_in(snapshot, namespace, key, svc, sp, &scope);
        for vip in &vips {
            let spec = FrontendSpec {
                backends: of_family(&backends, vip.is_ipv4()),
                affinity_timeout,
                external_flags: 0,
                external_backends: Vec::new(),
                source_ranges: Vec::new(),
            };
            out.push((
                Frontend {
                    vip: *vip,
                    port,
                    proto,
                },
                spec,
            ));
        }
        ports.push(PortBackends {
            sp,
            port,
            proto,
            internal: backends,
        });
    }
    let cluster = ClusterSide {
        namespace,
        vips: &vips,
        ports: &ports,
        scope: &scope,
    };
    out.extend(external_frontends(snapshot, key, svc, node_name, &cluster));
    out
}

/// The backends of Service port `sp` within `scope` (the cluster crate's
/// kube-proxy endpoint selection), as socket addresses.
fn backends_in(
    snapshot: &ClusterSnapshot,
    namespace: &str,
    key: &ObjectKey,
    svc: &Service,
    sp: &ServicePort,
    scope: &Scope,
) -> Vec<SocketAddr> {
    select_endpoints(svc, snapshot.slices_for(namespace, &key.name), sp, scope)
        .iter()
        .map(strait_cluster::Backend::socket_addr)
        .collect()
}

/// The backends of `list` in the IPv4 (`v4`) or IPv6 family.
fn of_family(list: &[SocketAddr], v4: bool) -> Vec<SocketAddr> {
    list.iter().filter(|b| b.is_ipv4() == v4).copied().collect()
}

/// One proxied Service port and the backends its cluster IPs balance over
/// (`internalTrafficPolicy` applied), computed once for both the ClusterIP
/// and the external frontends.
struct PortBackends<'a> {
    sp: &'a ServicePort,
    port: u16,
    proto: u8,
    internal: Vec<SocketAddr>,
}

/// What [`service_frontends`] already knows when it turns to the external
/// frontends.
struct ClusterSide<'a> {
    namespace: &'a str,
    vips: &'a [IpAddr],
    ports: &'a [PortBackends<'a>],
    /// The internal scope the ports' backends were chosen with.
    scope: &'a Scope,
}

/// NodePort, LoadBalancer-IP and externalIP frontends of both families,
/// balancing external traffic over the endpoints `externalTrafficPolicy`
/// allows from this node. Like kube-proxy's per-family proxiers, a family
/// is served only when the service has a cluster IP of it.
fn external_frontends(
    snapshot: &ClusterSnapshot,
    key: &ObjectKey,
    svc: &Service,
    node_name: &str,
    cluster: &ClusterSide<'_>,
) -> Vec<(Frontend, FrontendSpec)> {
    let mut out = Vec::new();
    let node_port_type = matches!(
        service::service_type(svc),
        ServiceType::NodePort | ServiceType::LoadBalancer
    );
    let families: Vec<bool> = {
        let mut f: Vec<bool> = cluster.vips.iter().map(IpAddr::is_ipv4).collect();
        f.dedup();
        f
    };
    // externalIPs, then LoadBalancer IPs: only the latter are subject to
    // loadBalancerSourceRanges, as in kube-proxy.
    let mut addresses: Vec<(IpAddr, bool)> = service::external_ips(svc)
        .into_iter()
        .map(|ip| (ip, false))
        .collect();
    if service::service_type(svc) == ServiceType::LoadBalancer {
        addresses.extend(
            service::load_balancer_ips(svc)
                .into_iter()
                .map(|ip| (ip, true)),
        );
    }
    addresses.retain(|(ip, _)| families.contains(&ip.is_ipv4()));
    if !node_port_type && addresses.is_empty() {
        return out;
    }
    let ranges = source_ranges(key, svc);
    let external_scope = Scope::external(svc, node_name);
    let mut flags = SVC_F_EXTERNAL;
    if matches!(external_scope, Scope::NodeLocal(_)) {
        flags |= SVC_F_EXT_LOCAL;
    }
    let affinity_timeout = service::session_affinity_timeout(svc);
    for PortBackends {
        sp,
        port,
        proto,
        internal,
    } in cluster.ports
    {
        let (sp, port, proto) = (*sp, *port, *proto);
        // With the same scope on both sides the sets are the same.
        let external = if external_scope == *cluster.scope {
            internal.clone()
        } else {
            backends_in(snapshot, cluster.namespace, key, svc, sp, &external_scope)
        };
        let spec = |v4: bool, extra: u16, source_ranges: Vec<ipnetwork::IpNetwork>| {
            FrontendSpec {
                backends: of_family(internal, v4),
                external_backends: of_family(&external, v4),
                // ClientIP affinity holds for external clients too (by address).
                affinity_timeout,
                external_flags: flags
                    | extra
                    | if source_ranges.is_empty() {
                        0
                    } else {
                        SVC_F_SOURCE_RANGES
                    },
                source_ranges,
            }
        };
        if node_port_type && let Some(node_port) = sp.node_port.and_then(|p| u16::try_from(p).ok())
        {
            for v4 in &families {
                let wildcard = Frontend {
                    vip: if *v4 {
                        IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)
                    } else {
                        IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED)
                    },
                    port: node_port,
                    proto,
                };
                out.push((wildcard, spec(*v4, SVC_F_NODEPORT, Vec::new())));
            }
        }
        for (addr, load_balancer) in &addresses {
            let source_ranges = if *load_balancer {
                ranges
                    .iter()
                    .filter(|r| r.is_ipv4() == addr.is_ipv4())
                    .copied()
                    .collect()
            } else {
                Vec::new()
            };
            out.push((
                Frontend {
                    vip: *addr,
                    port,
                    proto,
                },
                spec(addr.is_ipv4(), 0, source_ranges),
            ));
        }
    }
    out
}

/// The service's `loadBalancerSourceRanges`, parsed, sorted and without
/// duplicates; unparsable entries are logged and skipped.
fn source_ranges(key: &ObjectKey, svc: &Service) -> Vec<ipnetwork::IpNetwork> {
    let mut ranges: Vec<ipnetwork::IpNetwork> = svc
        .spec
        .as_ref()
        .and_then(|s| s.load_balancer_source_ranges.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|r| match r.trim().parse() {
            Ok(net) => Some(net),
            Err(_) => {
                tracing::warn!(service = %key.name, range = %r, "ignoring an unparsable loadBalancerSourceRanges entry");
                None
            }
        })
        .collect();
    ranges.sort();
    ranges.dedup();
    ranges
}

/// The VIPs of `state`, for callers that need to know which addresses are
/// services (e.g. `explain`).
pub fn vips(state: &DesiredState) -> Vec<IpAddr> {
    let mut v: Vec<IpAddr> = state.keys().map(|f| f.vip).collect();
    v.dedup();
    v
}

fn proto_number(p: Protocol) -> Option<u8> {
    match p {
        Protocol::Tcp => Some(PROTO_TCP),
        Protocol::Udp => Some(PROTO_UDP),
        Protocol::Sctp => None,
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use strait_cluster::ManifestLoader;

    use super::*;

    const MANIFEST: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  clusterIP: 10.96.0.100
  ports:
    - {name: http, port: 80, targetPort: http}
    - {name: dns, port: 53, protocol: UDP}
---
apiVersion: v1
kind: Service
metadata: {name: local, namespace: default}
spec:
  clusterIP: 10.96.0.101
  internalTrafficPolicy: Local
  ports: [{name: http, port: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: headless, namespace: default}
spec:
  clusterIP: None
  ports: [{name: http, port: 80}]
---
apiVersion: v1
kind: Service
metadata:
  name: other-proxy
  namespace: default
  labels: {service.kubernetes.io/service-proxy-name: someone-else}
spec:
  clusterIP: 10.96.0.102
  ports: [{name: http, port: 80}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-1
  namespace: default
  labels: {kubernetes.io/service-name: web}
addressType: IPv4
ports: [{name: http, port: 8080}, {name: dns, port: 5353, protocol: UDP}]
endpoints:
  - addresses: [10.244.1.2]
    nodeName: node-1
  - addresses: [10.244.2.2]
    conditions: {ready: false}
    nodeName: node-2
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: local-1
  namespace: default
  labels: {kubernetes.io/service-name: local}
addressType: IPv4
ports: [{name: http, port: 8080}]
endpoints:
  - addresses: [10.244.1.3]
    nodeName: node-1
  - addresses: [10.244.2.3]
    nodeName: node-2
"#;

    fn fe(vip: [u8; 4], port: u16, proto: u8) -> Frontend {
        Frontend {
            vip: IpAddr::V4(Ipv4Addr::from(vip)),
            port,
            proto,
        }
    }

    fn spec(backends: Vec<SocketAddr>) -> FrontendSpec {
        FrontendSpec {
            backends,
            affinity_timeout: None,
            external_flags: 0,
            external_backends: Vec::new(),
            source_ranges: Vec::new(),
        }
    }

    #[test]
    fn follows_kube_proxy_service_rules() {
        let report = ManifestLoader::parse_str("t.yaml", MANIFEST);
        assert!(report.errors.is_empty(), "{:?}", report.errors);
        let state = desired_state(&report.to_snapshot(), "node-1");
        let be = |a: [u8; 4], p| SocketAddr::new(IpAddr::V4(Ipv4Addr::from(a)), p);
        let want: DesiredState = [
            (
                fe([10, 96, 0, 100], 80, PROTO_TCP),
                spec(vec![be([10, 244, 1, 2], 8080)]),
            ),
            (
                fe([10, 96, 0, 100], 53, PROTO_UDP),
                spec(vec![be([10, 244, 1, 2], 5353)]),
            ),
            (
                fe([10, 96, 0, 101], 80, PROTO_TCP),
                spec(vec![be([10, 244, 1, 3], 8080)]),
            ),
        ]
        .into_iter()
        .collect();
        assert_eq!(state, want);
        // The same view from node-2 keeps only node-2's local endpoint.
        let state = desired_state(&report.to_snapshot(), "node-2");
        assert_eq!(
            state[&fe([10, 96, 0, 101], 80, PROTO_TCP)],
            spec(vec![be([10, 244, 2, 3], 8080)])
        );
    }

    /// External frontends keep both sets: pods and the node reach a Local
    /// service's NodePort cluster-wide, outside traffic only node-local
    /// endpoints; IPv6 NodePorts exist for the service's IPv6 family only.
    #[test]
    fn external_frontends_carry_both_backend_sets_per_family() {
        let yaml = r#"
apiVersion: v1
kind: Service
metadata: {name: edge, namespace: default}
spec:
  type: NodePort
  externalTrafficPolicy: Local
  ipFamilies: [IPv4, IPv6]
  clusterIPs: [10.96.0.50, "fd00:96::50"]
  ports: [{name: http, port: 80, targetPort: 8080, nodePort: 30050}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: edge-4, namespace: default, labels: {kubernetes.io/service-name: edge}}
addressType: IPv4
ports: [{name: http, port: 8080}]
endpoints:
  - {addresses: [10.244.1.5], nodeName: node-1}
  - {addresses: [10.244.2.5], nodeName: node-2}
"#;
        let report = ManifestLoader::parse_str("t.yaml", yaml);
        assert!(report.errors.is_empty(), "{:?}", report.errors);
        let state = desired_state(&report.to_snapshot(), "node-2");
        let be = |a: [u8; 4]| SocketAddr::new(IpAddr::V4(Ipv4Addr::from(a)), 8080);
        let wildcard = |vip: IpAddr| Frontend {
            vip,
            port: 30050,
            proto: PROTO_TCP,
        };
        let v4 = &state[&wildcard(IpAddr::V4(Ipv4Addr::UNSPECIFIED))];
        assert_eq!(v4.backends, vec![be([10, 244, 1, 5]), be([10, 244, 2, 5])]);
        assert_eq!(v4.external_backends, vec![be([10, 244, 2, 5])]);
        assert_eq!(
            v4.external_flags,
            SVC_F_EXTERNAL | SVC_F_EXT_LOCAL | SVC_F_NODEPORT
        );
        // Slots: both for sockets, then node-2's for outside traffic.
        let layout = v4.slot_layout();
        assert_eq!(
            (
                layout.slots().copied().collect::<Vec<_>>(),
                layout.ext_offset,
                layout.ext_count
            ),
            (
                vec![
                    be([10, 244, 1, 5]),
                    be([10, 244, 2, 5]),
                    be([10, 244, 2, 5])
                ],
                2,
                1
            )
        );
        // The IPv6 NodePort exists (the service has an IPv6 cluster IP) and
        // has no IPv6 endpoints.
        let v6 = &state[&wildcard(IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED))];
        assert!(v6.backends.is_empty() && v6.external_backends.is_empty());
        // With the Cluster policy both sets are equal and share the slots.
        let cluster = yaml.replace("externalTrafficPolicy: Local", "");
        let report = ManifestLoader::parse_str("t.yaml", &cluster);
        let state = desired_state(&report.to_snapshot(), "node-2");
        let v4 = &state[&wildcard(IpAddr::V4(Ipv4Addr::UNSPECIFIED))];
        let layout = v4.slot_layout();
        assert_eq!(
            (
                layout.slots().copied().collect::<Vec<_>>(),
                layout.ext_offset,
                layout.ext_count
            ),
            (v4.backends.clone(), 0, 2)
        );
    }
}
