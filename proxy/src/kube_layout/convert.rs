//! The cluster view as [`ServicePort`]s for one node. Endpoints come from
//! the same selection the eBPF datapath uses ([`select_endpoints`]: ready,
//! else serving-and-terminating, node-local for a Local policy); this only
//! keeps both the cluster-wide and the node-local result, because
//! kube-proxy's layout writes a chain for each.
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};

use strait_cluster::{
    ClusterSnapshot, Protocol as ClusterProtocol, Scope, ServiceType, TrafficPolicy,
    select_endpoints, service,
};

use super::model::{Protocol, ServicePort};

fn v4(ip: IpAddr) -> Option<Ipv4Addr> {
    match ip {
        IpAddr::V4(v) => Some(v),
        IpAddr::V6(_) => None,
    }
}

fn v4_endpoints(backends: Vec<strait_cluster::Backend>) -> Vec<SocketAddrV4> {
    let mut out: Vec<SocketAddrV4> = backends
        .iter()
        .filter_map(|b| match b.socket_addr() {
            SocketAddr::V4(a) => Some(a),
            SocketAddr::V6(_) => None,
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The IPv4 service ports `node` programs, sorted by namespace, name, port
/// name and protocol. Not proxyable Services (headless, ExternalName,
/// another proxy's), SCTP ports and IPv6-only Services are skipped, as the
/// eBPF datapath skips them.
pub fn service_ports(snapshot: &ClusterSnapshot, node: &str) -> Vec<ServicePort> {
    let mut out = Vec::new();
    for (key, svc) in snapshot.services() {
        if !service::is_proxyable(svc) {
            continue;
        }
        let Some(namespace) = key.namespace.as_deref() else {
            continue;
        };
        let Some(cluster_ip) = service::cluster_ips(svc).into_iter().find_map(v4) else {
            continue;
        };
        let kind = service::service_type(svc);
        let node_port_type = matches!(kind, ServiceType::NodePort | ServiceType::LoadBalancer);
        let load_balancer_ips: Vec<Ipv4Addr> = if kind == ServiceType::LoadBalancer {
            service::load_balancer_ips(svc)
                .into_iter()
                .filter_map(v4)
                .collect()
        } else {
            Vec::new()
        };
        let external_local = service::external_traffic_policy(svc) == TrafficPolicy::Local;
        let health_check_node_port = svc
            .spec
            .as_ref()
            .and_then(|s| s.health_check_node_port)
            .and_then(|p| u16::try_from(p).ok())
            .filter(|p| *p != 0 && external_local && kind == ServiceType::LoadBalancer);
        let local = Scope::NodeLocal(node.to_owned());
        for sp in service::ports(svc) {
            let (Some(port), Some(protocol)) = (
                strait_cluster::port_number(sp.port),
                strait_cluster::service_port_protocol(sp).and_then(|p| match p {
                    ClusterProtocol::Tcp => Some(Protocol::Tcp),
                    ClusterProtocol::Udp => Some(Protocol::Udp),
                    ClusterProtocol::Sctp => None,
                }),
            ) else {
                continue;
            };
            let slices = || snapshot.slices_for(namespace, &key.name);
            out.push(ServicePort {
                namespace: namespace.to_owned(),
                name: key.name.clone(),
                port_name: sp.name.clone().unwrap_or_default(),
                protocol,
                cluster_ip,
                port,
                node_port: sp
                    .node_port
                    .and_then(|p| u16::try_from(p).ok())
                    .filter(|p| node_port_type && *p != 0),
                external_ips: service::external_ips(svc)
                    .into_iter()
                    .filter_map(v4)
                    .collect(),
                load_balancer_ips: load_balancer_ips.clone(),
                internal_local: service::internal_traffic_policy(svc) == TrafficPolicy::Local,
                external_local,
                affinity_seconds: service::session_affinity_timeout(svc),
                health_check_node_port,
                cluster_endpoints: v4_endpoints(select_endpoints(
                    svc,
                    slices(),
                    sp,
                    &Scope::Cluster,
                )),
                local_endpoints: v4_endpoints(select_endpoints(svc, slices(), sp, &local)),
            });
        }
    }
    out.sort_by(|a, b| a.key().cmp(&b.key()));
    out
}

#[cfg(test)]
mod tests {
    use strait_cluster::ManifestLoader;

    use super::*;

    const MANIFEST: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: kube-dns, namespace: kube-system}
spec:
  clusterIP: 10.96.0.10
  ports:
    - {name: dns, port: 53, protocol: UDP}
    - {name: dns-tcp, port: 53, protocol: TCP}
---
apiVersion: v1
kind: Service
metadata: {name: edge, namespace: default}
spec:
  type: LoadBalancer
  clusterIP: 10.96.0.102
  externalTrafficPolicy: Local
  healthCheckNodePort: 32000
  externalIPs: [192.0.2.50]
  sessionAffinity: ClientIP
  ports: [{name: http, port: 80, targetPort: 8080, nodePort: 30081}]
status:
  loadBalancer: {ingress: [{ip: 192.0.2.100}]}
---
apiVersion: v1
kind: Service
metadata: {name: headless, namespace: default}
spec:
  clusterIP: None
  ports: [{name: http, port: 80}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: kube-dns-1
  namespace: kube-system
  labels: {kubernetes.io/service-name: kube-dns}
addressType: IPv4
ports: [{name: dns, port: 53, protocol: UDP}, {name: dns-tcp, port: 53, protocol: TCP}]
endpoints:
  - {addresses: [10.244.1.5], nodeName: node-1}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: edge-1
  namespace: default
  labels: {kubernetes.io/service-name: edge}
addressType: IPv4
ports: [{name: http, port: 8080}]
endpoints:
  - {addresses: [10.244.1.7], nodeName: node-1}
  - {addresses: [10.244.2.7], nodeName: node-2}
  - {addresses: [10.244.2.8], nodeName: node-2, conditions: {ready: false}}
"#;

    #[test]
    fn converts_every_shape_the_lab_uses() {
        let report = ManifestLoader::parse_str("t.yaml", MANIFEST);
        assert!(report.errors.is_empty(), "{:?}", report.errors);
        let ports = service_ports(&report.to_snapshot(), "node-2");
        let names: Vec<String> = ports
            .iter()
            .map(|p| format!("{}/{}", p.name_string(), p.proto()))
            .collect();
        assert_eq!(
            names,
            [
                "default/edge:http/tcp",
                "kube-system/kube-dns:dns/udp",
                "kube-system/kube-dns:dns-tcp/tcp"
            ]
        );
        let edge = &ports[0];
        assert_eq!(edge.node_port, Some(30081));
        assert_eq!(edge.load_balancer_ips, [Ipv4Addr::new(192, 0, 2, 100)]);
        assert_eq!(edge.external_ips, [Ipv4Addr::new(192, 0, 2, 50)]);
        assert!(edge.external_local && edge.external_policy_local());
        assert_eq!(edge.affinity_seconds, Some(10_800));
        assert_eq!(edge.health_check_node_port, Some(32000));
        let ep = |s: &str| s.parse::<SocketAddrV4>().unwrap();
        assert_eq!(
            edge.cluster_endpoints,
            [ep("10.244.1.7:8080"), ep("10.244.2.7:8080")]
        );
        assert_eq!(
            edge.local_endpoints,
            [ep("10.244.2.7:8080")],
            "the not-ready one is left out"
        );
        let dns = &ports[1];
        assert_eq!((dns.protocol, dns.port), (Protocol::Udp, 53));
        assert_eq!(dns.cluster_endpoints, [ep("10.244.1.5:53")]);
        assert!(dns.local_endpoints.is_empty());
    }
}
