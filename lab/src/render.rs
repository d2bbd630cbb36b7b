//! The cluster as the lab's components see it. The lab plays the parts of a
//! cluster it has no processes for: the kubelet (pod IPs and readiness in
//! Pod status), the node controller (Node objects with pod CIDRs), the
//! EndpointSlice controller, and cert-manager for missing TLS Secrets. The
//! result is one manifest file the agents, DNS and ingress read with
//! `--manifests`, replaced atomically so a reader never sees half of it.
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::net::IpAddr;

use strait_cluster::k8s_openapi::api::core::v1::{
    Node, NodeAddress, NodeSpec, NodeStatus, Pod, PodCondition, PodIP, PodStatus,
};
use strait_cluster::k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use strait_cluster::{ClusterSnapshot, Object, ObjectKey};

use crate::endpoint_slices::compute_endpoint_slices;
use crate::error::{LabError, Result};
use crate::paths::LabPaths;
use crate::readiness::pod_ready;
use crate::state::{LabState, create_dir};
use crate::tls::lab_tls_secret;

/// The file the components read.
pub const CLUSTER_FILE: &str = "cluster.yaml";

/// Builds the rendered object set from the manifests' objects and the lab's
/// state.
pub fn render(objects: &[Object], state: &LabState, paths: &LabPaths) -> Result<Vec<Object>> {
    let mut out: Vec<Object> = Vec::new();
    let mut secrets: BTreeSet<(String, String)> = BTreeSet::new();
    for object in objects {
        match object {
            // Nodes are the lab's own.
            Object::Node(_) => {}
            // The lab computes slices for selector Services; mirrored or
            // hand-written ones pass through.
            Object::Pod(pod) => out.push(Object::Pod(with_status(pod, state))),
            Object::Secret(s) => {
                secrets.insert((
                    s.metadata.namespace.clone().unwrap_or_default(),
                    s.metadata.name.clone().unwrap_or_default(),
                ));
                out.push(object.clone());
            }
            other => out.push(other.clone()),
        }
    }
    for node in &state.nodes {
        out.push(Object::Node(Node {
            metadata: ObjectMeta {
                name: Some(node.name.clone()),
                ..ObjectMeta::default()
            },
            spec: Some(NodeSpec {
                pod_cidr: Some(node.pod_cidr.clone()),
                pod_cidrs: Some(vec![node.pod_cidr.clone()]),
                ..NodeSpec::default()
            }),
            status: Some(NodeStatus {
                addresses: Some(vec![NodeAddress {
                    type_: "InternalIP".into(),
                    address: node.underlay_ip.to_string(),
                }]),
                ..NodeStatus::default()
            }),
        }));
    }
    for object in objects {
        let Object::Ingress(ingress) = object else {
            continue;
        };
        let namespace = ingress
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        for tls in ingress.spec.iter().flat_map(|s| s.tls.iter().flatten()) {
            let Some(name) = tls.secret_name.clone() else {
                continue;
            };
            if secrets.insert((namespace.clone(), name.clone())) {
                let hosts = tls.hosts.clone().unwrap_or_default();
                out.push(Object::Secret(lab_tls_secret(
                    paths, &namespace, &name, &hosts,
                )?));
            }
        }
    }
    let snapshot = ClusterSnapshot::from_objects(out.iter().cloned());
    let ips: BTreeMap<ObjectKey, IpAddr> = state
        .pods
        .values()
        .filter_map(|p| Some((ObjectKey::namespaced(&p.namespace, &p.name), p.ip?)))
        .collect();
    for slice in compute_endpoint_slices(&snapshot, &|key| ips.get(key).copied()) {
        out.push(Object::EndpointSlice(slice));
    }
    Ok(out)
}

/// The pod as the kubelet would report it: phase, IPs, host IP, Ready.
fn with_status(pod: &Pod, state: &LabState) -> Pod {
    let key = format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or("default"),
        pod.metadata.name.as_deref().unwrap_or_default()
    );
    let mut pod = pod.clone();
    let lab = state.pods.get(&key);
    let ip = lab.and_then(|p| p.ip);
    let host_ip = lab
        .and_then(|p| state.node(&p.node))
        .map(|n| n.underlay_ip.to_string());
    if let (Some(spec), Some(lab)) = (pod.spec.as_mut(), lab) {
        spec.node_name = Some(lab.node.clone());
    }
    let ready = ip.is_some() && pod_ready(&pod);
    pod.status = Some(PodStatus {
        phase: Some(if ip.is_some() { "Running" } else { "Pending" }.into()),
        pod_ip: ip.map(|i| i.to_string()),
        pod_ips: ip.map(|i| vec![PodIP { ip: i.to_string() }]),
        host_ip,
        conditions: Some(vec![PodCondition {
            type_: "Ready".into(),
            status: if ready { "True" } else { "False" }.into(),
            ..PodCondition::default()
        }]),
        ..PodStatus::default()
    });
    pod
}

/// Writes the objects as one multi-document YAML file, atomically.
pub fn write(paths: &LabPaths, objects: &[Object]) -> Result<()> {
    let dir = paths.cluster_dir();
    create_dir(&dir)?;
    let mut text =
        String::from("# Generated by strait lab: the cluster as the components see it.\n");
    for object in objects {
        let yaml = match object {
            Object::Service(o) => serde_yaml_ng::to_string(o),
            Object::EndpointSlice(o) => serde_yaml_ng::to_string(o),
            Object::Ingress(o) => serde_yaml_ng::to_string(o),
            Object::IngressClass(o) => serde_yaml_ng::to_string(o),
            Object::Secret(o) => serde_yaml_ng::to_string(o),
            Object::Node(o) => serde_yaml_ng::to_string(o),
            Object::Pod(o) => serde_yaml_ng::to_string(o),
        }
        .map_err(|e| LabError::State(format!("encoding {:?} as YAML: {e}", object.kind())))?;
        text.push_str("---\n");
        text.push_str(&yaml);
    }
    let path = dir.join(CLUSTER_FILE);
    // The temp file must not end in .yaml, or readers could load it.
    let tmp = dir.join(format!(".{CLUSTER_FILE}.tmp"));
    fs::write(&tmp, text).map_err(LabError::io("writing the lab cluster view", &tmp))?;
    fs::rename(&tmp, &path).map_err(LabError::io("writing the lab cluster view", &path))
}
