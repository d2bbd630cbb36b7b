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
    ClusterSnapshot, ObjectKey, Protocol, Scope, ServiceType, k8s_openapi::api::core::v1::Service,
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
    /// `loadBalancerSourceRanges` of a LoadBalancer IP frontend, sorted
    /// (with `SVC_F_SOURCE_RANGES`); empty: every client.
    pub source_ranges: Vec<ipnetwork::Ipv4Network>,
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
    for sp in service::ports(svc) {
        let (Some(port), Some(proto)) = (
            strait_cluster::port_number(sp.port),
            strait_cluster::service_port_protocol(sp).and_then(proto_number),
        ) else {
            continue;
        };
        let backends: Vec<SocketAddr> =
            select_endpoints(svc, snapshot.slices_for(namespace, &key.name), sp, &scope)
                .iter()
                .map(strait_cluster::Backend::socket_addr)
                .collect();
        for vip in &vips {
            let spec = FrontendSpec {
                backends: backends
                    .iter()
                    .filter(|b| b.is_ipv4() == vip.is_ipv4())
                    .copied()
                    .collect(),
                affinity_timeout,
                external_flags: 0,
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
    }
    out.extend(external_frontends(snapshot, namespace, key, svc, node_name));
    out
}

/// NodePort, LoadBalancer-IP and externalIP frontends (IPv4: the tc
/// datapath is IPv4-only for now), balancing over the endpoints that
/// `externalTrafficPolicy` allows from this node.
fn external_frontends(
    snapshot: &ClusterSnapshot,
    namespace: &str,
    key: &ObjectKey,
    svc: &Service,
    node_name: &str,
) -> Vec<(Frontend, FrontendSpec)> {
    let mut out = Vec::new();
    let node_port_type = matches!(
        service::service_type(svc),
        ServiceType::NodePort | ServiceType::LoadBalancer
    );
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
    addresses.retain(|(ip, _)| ip.is_ipv4());
    let mut ranges: Vec<ipnetwork::Ipv4Network> = svc
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
    if !node_port_type && addresses.is_empty() {
        return out;
    }
    let scope = Scope::external(svc, node_name);
    let mut flags = SVC_F_EXTERNAL;
    if matches!(scope, Scope::NodeLocal(_)) {
        flags |= SVC_F_EXT_LOCAL;
    }
    for sp in service::ports(svc) {
        let (Some(port), Some(proto)) = (
            strait_cluster::port_number(sp.port),
            strait_cluster::service_port_protocol(sp).and_then(proto_number),
        ) else {
            continue;
        };
        let backends: Vec<SocketAddr> =
            select_endpoints(svc, snapshot.slices_for(namespace, &key.name), sp, &scope)
                .iter()
                .map(strait_cluster::Backend::socket_addr)
                .filter(SocketAddr::is_ipv4)
                .collect();
        let spec = |extra: u16, source_ranges: Vec<ipnetwork::Ipv4Network>| FrontendSpec {
            backends: backends.clone(),
            // ClientIP affinity holds for external clients too (by address).
            affinity_timeout: service::session_affinity_timeout(svc),
            external_flags: flags
                | extra
                | if source_ranges.is_empty() {
                    0
                } else {
                    SVC_F_SOURCE_RANGES
                },
            source_ranges,
        };
        if node_port_type && let Some(node_port) = sp.node_port.and_then(|p| u16::try_from(p).ok())
        {
            let wildcard = Frontend {
                vip: IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
                port: node_port,
                proto,
            };
            out.push((wildcard, spec(SVC_F_NODEPORT, Vec::new())));
        }
        for (addr, load_balancer) in &addresses {
            let source_ranges = if *load_balancer {
                ranges.clone()
            } else {
                Vec::new()
            };
            out.push((
                Frontend {
                    vip: *addr,
                    port,
                    proto,
                },
                spec(0, source_ranges),
            ));
        }
    }
    out
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
}
