//! The lab's stand-in for the EndpointSlice controller: it selects pods by
//! Service selector, resolves (named) target ports per pod and writes the
//! slices that the proxy, DNS and ingress consume, exactly as on a cluster.
use std::{collections::BTreeMap, net::IpAddr};

use strait_cluster::{
    ClusterSnapshot, ObjectKey,
    k8s_openapi::{
        api::{
            core::v1::{ObjectReference, Pod, Service},
            discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice},
        },
        apimachinery::pkg::apis::meta::v1::ObjectMeta,
    },
    resolve_target_port,
    service::is_headless,
    service_port_protocol,
};

use crate::readiness::pod_ready;

/// Value of `endpointslice.kubernetes.io/managed-by` on slices the lab
/// writes, so they are never confused with hand-written or mirrored ones.
pub const MANAGED_BY: &str = "lab.strait.dev";

/// One EndpointSlice per Service with a selector and per address family,
/// further split by the resolved port numbers (pods of one Service may name
/// different container ports, as the real controller allows).
///
/// `pod_ip` gives each pod's address as assigned by the CNI plugin; pods
/// without one yet are left out, like pods without `status.podIPs`.
pub fn compute_endpoint_slices(
    snapshot: &ClusterSnapshot,
    pod_ip: &dyn Fn(&ObjectKey) -> Option<IpAddr>,
) -> Vec<EndpointSlice> {
    let mut out = Vec::new();
    for (key, service) in snapshot.services() {
        let Some(selector) = service.spec.as_ref().and_then(|s| s.selector.as_ref()) else {
            continue;
        };
        if selector.is_empty() {
            continue;
        }
        let namespace = key.namespace.clone().unwrap_or_else(|| "default".into());
        // (family, resolved ports) -> endpoints
        let mut groups: BTreeMap<(bool, Vec<Option<u16>>), Vec<Endpoint>> = BTreeMap::new();
        for (pod_key, pod) in snapshot.pods() {
            if pod_key.namespace.as_deref() != Some(namespace.as_str()) {
                continue;
            }
            let labels = pod.metadata.labels.clone().unwrap_or_default();
            if !selector.iter().all(|(k, v)| labels.get(k) == Some(v)) {
                continue;
            }
            let Some(ip) = pod_ip(pod_key) else { continue };
            let ports = strait_cluster::service::ports(service)
                .iter()
                .map(|sp| resolve_target_port(sp, pod))
                .collect();
            groups
                .entry((ip.is_ipv6(), ports))
                .or_default()
                .push(endpoint(service, pod, &pod_key.name, &namespace, ip));
        }
        for (index, ((v6, ports), endpoints)) in groups.into_iter().enumerate() {
            out.push(slice(
                service, key, &namespace, index, v6, &ports, endpoints,
            ));
        }
    }
    out
}

fn endpoint(service: &Service, pod: &Pod, name: &str, namespace: &str, ip: IpAddr) -> Endpoint {
    let terminating = pod.metadata.deletion_timestamp.is_some();
    let serving = pod_ready(pod);
    let ready = serving && !terminating;
    let spec = pod.spec.as_ref();
    // A pod's hostname is published only under the Service its subdomain names.
    let hostname = spec
        .and_then(|s| s.hostname.clone())
        .filter(|_| spec.and_then(|s| s.subdomain.as_deref()) == service.metadata.name.as_deref());
    Endpoint {
        addresses: vec![ip.to_string()],
        conditions: Some(EndpointConditions {
            ready: Some(ready),
            serving: Some(serving),
            terminating: Some(terminating),
        }),
        hostname,
        node_name: spec.and_then(|s| s.node_name.clone()),
        target_ref: Some(ObjectReference {
            kind: Some("Pod".into()),
            name: Some(name.into()),
            namespace: Some(namespace.into()),
            uid: pod.metadata.uid.clone(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn slice(
    service: &Service,
    key: &ObjectKey,
    namespace: &str,
    index: usize,
    v6: bool,
    ports: &[Option<u16>],
    endpoints: Vec<Endpoint>,
) -> EndpointSlice {
    let family = if v6 { "IPv6" } else { "IPv4" };
    let endpoint_ports = strait_cluster::service::ports(service)
        .iter()
        .zip(ports)
        .filter_map(|(sp, port)| {
            Some(EndpointPort {
                name: Some(sp.name.clone().unwrap_or_default()),
                port: Some(i32::from((*port)?)),
                protocol: Some(service_port_protocol(sp)?.as_str().into()),
                app_protocol: sp.app_protocol.clone(),
            })
        })
        .collect();
    let labels: BTreeMap<String, String> = [
        ("kubernetes.io/service-name".to_string(), key.name.clone()),
        (
            "endpointslice.kubernetes.io/managed-by".to_string(),
            MANAGED_BY.to_string(),
        ),
    ]
    .into_iter()
    .chain(
        is_headless(service).then(|| ("service.kubernetes.io/headless".to_string(), String::new())),
    )
    .collect();
    EndpointSlice {
        metadata: ObjectMeta {
            name: Some(format!(
                "{}-{}-{index}",
                key.name,
                family.to_ascii_lowercase()
            )),
            namespace: Some(namespace.into()),
            labels: Some(labels),
            ..Default::default()
        },
        address_type: family.into(),
        endpoints,
        ports: Some(endpoint_ports),
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use strait_cluster::{Object, Scope, SnapshotBuilder, select_endpoints};

    use super::*;
    use crate::default_cluster;

    /// Pod IPs as the CNI would hand them out: a deterministic address per pod.
    fn ips(key: &ObjectKey) -> Option<IpAddr> {
        let n = key
            .name
            .bytes()
            .fold(0u8, |a, b| a.wrapping_mul(31).wrapping_add(b));
        Some(IpAddr::V4(Ipv4Addr::new(10, 244, 1, n.max(2))))
    }

    fn cluster_with_slices() -> ClusterSnapshot {
        let report = default_cluster().expect("default manifest parses");
        let base = report.to_snapshot();
        let slices = compute_endpoint_slices(&base, &ips);
        let mut builder = SnapshotBuilder::from_snapshot(&base);
        for s in slices {
            builder.apply(Object::from(s));
        }
        builder.build()
    }

    fn backends(snap: &ClusterSnapshot, ns: &str, svc: &str, port: &str) -> Vec<String> {
        let service = snap.service(ns, svc).expect("service exists");
        let sp = strait_cluster::service::ports(service)
            .iter()
            .find(|p| p.name.as_deref() == Some(port))
            .expect("port exists");
        select_endpoints(service, snap.slices_for(ns, svc), sp, &Scope::Cluster)
            .into_iter()
            .map(|b| b.socket_addr().to_string())
            .collect()
    }

    #[test]
    fn named_target_port_resolves_and_not_ready_pod_is_left_out() {
        let snap = cluster_with_slices();
        let web1 = ips(&ObjectKey::namespaced("default", "web-1")).unwrap();
        let web2 = ips(&ObjectKey::namespaced("default", "web-2")).unwrap();
        let mut want = vec![format!("{web1}:8080"), format!("{web2}:8080")];
        want.sort();
        assert_eq!(backends(&snap, "default", "web", "http"), want);
        // The numeric targetPort maps to the metrics port on the same pods.
        assert_eq!(backends(&snap, "default", "web", "metrics").len(), 2);
        // web-3 is in a slice, but as not ready.
        let web3 = ips(&ObjectKey::namespaced("default", "web-3"))
            .unwrap()
            .to_string();
        let not_ready: Vec<_> = snap
            .slices_for("default", "web")
            .flat_map(|s| s.endpoints.iter())
            .filter(|e| e.addresses.contains(&web3))
            .collect();
        assert_eq!(not_ready.len(), 1);
        assert_eq!(not_ready[0].conditions.as_ref().unwrap().ready, Some(false));
    }

    #[test]
    fn headless_endpoints_carry_hostnames() {
        let snap = cluster_with_slices();
        let mut hosts: Vec<_> = snap
            .slices_for("default", "db")
            .flat_map(|s| s.endpoints.iter())
            .filter_map(|e| e.hostname.clone())
            .collect();
        hosts.sort();
        assert_eq!(hosts, ["db-0", "db-1"]);
    }

    #[test]
    fn selectorless_service_uses_mirrored_endpoints_only() {
        let snap = cluster_with_slices();
        assert_eq!(
            backends(&snap, "default", "legacy", "http"),
            ["10.244.2.200:8080"]
        );
        assert!(
            snap.slices_for("default", "legacy").all(|s| s
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("endpointslice.kubernetes.io/managed-by"))
                .map(String::as_str)
                != Some(MANAGED_BY)),
            "the lab must not write slices for a selector-less service"
        );
    }

    #[test]
    fn pods_without_an_address_are_left_out() {
        let base = default_cluster().unwrap().to_snapshot();
        let slices = compute_endpoint_slices(&base, &|_| None);
        assert!(slices.is_empty());
    }
}
