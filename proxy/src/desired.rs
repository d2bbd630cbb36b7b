//! Turns the cluster view into the frontends and backends the socket load
//! balancer should hold on one node, following kube-proxy's rules: proxyable
//! services only, ready endpoints with the terminating fallback, and
//! `internalTrafficPolicy: Local` restricted to this node's endpoints.
use std::{
    collections::BTreeMap,
    net::{IpAddr, SocketAddrV4},
};

use strait_cluster::{ClusterSnapshot, Protocol, Scope, select_endpoints, service};
use strait_ebpf_common::{PROTO_TCP, PROTO_UDP};

use crate::Frontend4;

/// What the maps should contain: each frontend with its backends in a stable
/// (sorted) order, so an unchanged service produces no map writes.
pub type DesiredState = BTreeMap<Frontend4, Vec<SocketAddrV4>>;

/// Computes the desired IPv4 cluster-IP state for `node_name`.
pub fn desired_state(snapshot: &ClusterSnapshot, node_name: &str) -> DesiredState {
    let mut out = DesiredState::new();
    for (key, svc) in snapshot.services() {
        if !service::is_proxyable(svc) {
            continue;
        }
        let Some(namespace) = key.namespace.as_deref() else {
            continue;
        };
        let vips: Vec<_> = service::cluster_ips(svc)
            .into_iter()
            .filter_map(|ip| match ip {
                IpAddr::V4(v4) => Some(v4),
                IpAddr::V6(_) => None,
            })
            .collect();
        if vips.is_empty() {
            continue;
        }
        let scope = Scope::internal(svc, node_name);
        let ports = svc
            .spec
            .as_ref()
            .and_then(|s| s.ports.as_deref())
            .unwrap_or_default();
        for sp in ports {
            let (Some(port), Some(proto)) = (
                strait_cluster::port_number(sp.port),
                strait_cluster::service_port_protocol(sp).and_then(proto_number),
            ) else {
                continue;
            };
            let backends: Vec<SocketAddrV4> =
                select_endpoints(svc, snapshot.slices_for(namespace, &key.name), sp, &scope)
                    .into_iter()
                    .filter_map(|b| match b.ip {
                        IpAddr::V4(ip) => Some(SocketAddrV4::new(ip, b.port)),
                        IpAddr::V6(_) => None,
                    })
                    .collect();
            for vip in &vips {
                out.insert(
                    Frontend4 {
                        vip: *vip,
                        port,
                        proto,
                    },
                    backends.clone(),
                );
            }
        }
    }
    out
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

    fn fe(vip: [u8; 4], port: u16, proto: u8) -> Frontend4 {
        Frontend4 {
            vip: Ipv4Addr::from(vip),
            port,
            proto,
        }
    }

    #[test]
    fn follows_kube_proxy_service_rules() {
        let report = ManifestLoader::parse_str("t.yaml", MANIFEST);
        assert!(report.errors.is_empty(), "{:?}", report.errors);
        let state = desired_state(&report.to_snapshot(), "node-1");
        let be = |a: [u8; 4], p| SocketAddrV4::new(Ipv4Addr::from(a), p);
        let want: DesiredState = [
            (
                fe([10, 96, 0, 100], 80, PROTO_TCP),
                vec![be([10, 244, 1, 2], 8080)],
            ),
            (
                fe([10, 96, 0, 100], 53, PROTO_UDP),
                vec![be([10, 244, 1, 2], 5353)],
            ),
            (
                fe([10, 96, 0, 101], 80, PROTO_TCP),
                vec![be([10, 244, 1, 3], 8080)],
            ),
        ]
        .into_iter()
        .collect();
        assert_eq!(state, want);
        // The same view from node-2 keeps only node-2's local endpoint.
        let state = desired_state(&report.to_snapshot(), "node-2");
        assert_eq!(
            state[&fe([10, 96, 0, 101], 80, PROTO_TCP)],
            vec![be([10, 244, 2, 3], 8080)]
        );
    }
}
