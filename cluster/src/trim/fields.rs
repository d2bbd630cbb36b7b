//! The per-kind cuts behind [`Trim`](super::Trim).

use k8s_openapi::api::core::v1::{
    Node, NodeSpec, NodeStatus, Pod, PodSpec, PodStatus, Service, ServiceStatus,
};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::access::Component;

/// Keeps name, namespace and labels.
pub(super) fn identity_meta(meta: &mut ObjectMeta) {
    let ObjectMeta {
        name,
        namespace,
        labels,
        ..
    } = std::mem::take(meta);
    *meta = ObjectMeta {
        name,
        namespace,
        labels,
        ..ObjectMeta::default()
    };
}

/// Keeps the spec (with lists shrunk) and, for the agent, the load
/// balancer status.
pub(super) fn service(service: &mut Service, component: Component) {
    if let Some(spec) = service.spec.as_mut() {
        shrink(&mut spec.ports);
        shrink(&mut spec.cluster_ips);
        shrink(&mut spec.external_ips);
        shrink(&mut spec.ip_families);
    }
    let status = service.status.take();
    if component == Component::Agent {
        service.status = status.map(|s| ServiceStatus {
            load_balancer: s.load_balancer,
            conditions: None,
        });
    }
}

/// Keeps the address type, ports and what the consumers read of each
/// endpoint; the agent also keeps `targetRef` (its backends carry it).
pub(super) fn endpoint_slice(slice: &mut EndpointSlice, component: Component) {
    shrink(&mut slice.ports);
    for endpoint in &mut slice.endpoints {
        let Endpoint {
            mut addresses,
            conditions,
            hostname,
            node_name,
            target_ref,
            zone,
            ..
        } = std::mem::take(endpoint);
        addresses.shrink_to_fit();
        *endpoint = Endpoint {
            addresses,
            conditions,
            hostname,
            node_name,
            target_ref: target_ref.filter(|_| component == Component::Agent),
            zone,
            ..Endpoint::default()
        };
    }
    slice.endpoints.shrink_to_fit();
}

/// Keeps the Pod's placement and names, and its phase, addresses and
/// conditions.
pub(super) fn pod(pod: &mut Pod) {
    if let Some(spec) = pod.spec.take() {
        pod.spec = Some(PodSpec {
            node_name: spec.node_name,
            hostname: spec.hostname,
            subdomain: spec.subdomain,
            host_network: spec.host_network,
            ..PodSpec::default()
        });
    }
    if let Some(status) = pod.status.take() {
        let mut pod_ips = status.pod_ips;
        shrink(&mut pod_ips);
        let mut conditions = status.conditions;
        shrink(&mut conditions);
        pod.status = Some(PodStatus {
            phase: status.phase,
            pod_ip: status.pod_ip,
            pod_ips,
            conditions,
            ..PodStatus::default()
        });
    }
}

fn shrink<T>(list: &mut Option<Vec<T>>) {
    if let Some(list) = list {
        list.shrink_to_fit();
    }
}

/// Keeps what the agent's node routes read: the pod CIDRs and the node's
/// addresses (the next hop). Conditions, images and capacity go: on a real
/// node they are most of the object.
pub(super) fn node(node: &mut Node) {
    node.spec = node.spec.take().map(|s| NodeSpec {
        pod_cidr: s.pod_cidr,
        pod_cidrs: s.pod_cidrs,
        ..NodeSpec::default()
    });
    node.status = node.status.take().map(|s| NodeStatus {
        addresses: s.addresses,
        ..NodeStatus::default()
    });
}
