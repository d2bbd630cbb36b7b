//! Each consumer sees, through a trimmed view, exactly what it reads from a
//! complete one; and the trim really drops the rest.

use std::fmt::Write as _;

use super::Trim;
use crate::access::Component;
use crate::endpoints::{Scope, conditions, select_endpoints};
use crate::kind::Object;
use crate::manifest::ManifestLoader;
use crate::ports::service_port_protocol;
use crate::service;
use crate::snapshot::{ClusterSnapshot, SERVICE_NAME_LABEL};

const FIXTURE: &str = include_str!("fixture.yaml");

fn objects() -> Vec<Object> {
    let report = ManifestLoader::parse_str("fixture.yaml", FIXTURE);
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(report.objects.len(), 6);
    report.objects
}

fn trimmed(component: Component) -> Vec<Object> {
    let trim = Trim::for_component(component);
    objects()
        .into_iter()
        .map(|mut o| {
            trim.apply(&mut o);
            o
        })
        .collect()
}

fn snapshot(objects: Vec<Object>) -> ClusterSnapshot {
    ClusterSnapshot::from_objects(objects)
}

/// Everything the agent (proxy crate) reads: the Service accessors, the
/// fields it reads directly (health check and node ports, the slice label)
/// and the backends `select_endpoints` yields for every port and scope.
fn agent_reads(s: &ClusterSnapshot) -> String {
    let mut out = String::new();
    for (key, svc) in s.services() {
        let spec = svc.spec.as_ref();
        let _ = writeln!(
            out,
            "{key} proxyable={} type={:?} vips={:?} internal={:?} external={:?} affinity={:?} \
             external_ips={:?} lb={:?} hc={:?}",
            service::is_proxyable(svc),
            service::service_type(svc),
            service::cluster_ips(svc),
            service::internal_traffic_policy(svc),
            service::external_traffic_policy(svc),
            service::session_affinity_timeout(svc),
            service::external_ips(svc),
            service::load_balancer_ips(svc),
            spec.and_then(|s| s.health_check_node_port),
        );
        let ns = key.namespace.as_deref().unwrap();
        for sp in service::ports(svc) {
            let _ = writeln!(
                out,
                "  port {:?} {} {:?} node {:?}",
                sp.name,
                sp.port,
                service_port_protocol(sp),
                sp.node_port
            );
            for scope in [
                Scope::Cluster,
                Scope::internal(svc, "node-a"),
                Scope::external(svc, "node-a"),
                Scope::NodeLocal("node-b".into()),
            ] {
                let backends = select_endpoints(svc, s.slices_for(ns, &key.name), sp, &scope);
                let _ = writeln!(out, "    {scope:?}: {backends:?}");
            }
        }
        for slice in s.slices_for(ns, &key.name) {
            let label = slice.metadata.labels.as_ref().unwrap()[SERVICE_NAME_LABEL].clone();
            let local: Vec<_> = slice
                .endpoints
                .iter()
                .map(|e| (e.node_name.clone(), conditions(e)))
                .collect();
            let _ = writeln!(out, "  slice of {label}: {local:?}");
        }
    }
    out
}

/// Everything the DNS server reads: Service type, addresses, named ports,
/// ExternalName target and publishNotReadyAddresses; the slices' owner
/// label, address type, named ports and endpoints' addresses, readiness and
/// hostnames; the Pods' addresses.
fn dns_reads(s: &ClusterSnapshot) -> String {
    let mut out = String::new();
    for (key, svc) in s.services() {
        let spec = svc.spec.as_ref();
        let ports: Vec<_> = service::ports(svc)
            .iter()
            .map(|p| (&p.name, p.port, &p.protocol))
            .collect();
        let _ = writeln!(
            out,
            "{key} type={:?} headless={} vips={:?} ports={ports:?} external_name={:?} \
             not_ready={}",
            service::service_type(svc),
            service::is_headless(svc),
            service::cluster_ips(svc),
            spec.and_then(|s| s.external_name.as_ref()),
            service::publishes_not_ready_addresses(svc),
        );
    }
    for (key, slice) in s.endpoint_slices() {
        let owner = slice
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(SERVICE_NAME_LABEL));
        let ports: Vec<_> = slice
            .ports
            .iter()
            .flatten()
            .map(|p| (&p.name, p.port, &p.protocol))
            .collect();
        let endpoints: Vec<_> = slice
            .endpoints
            .iter()
            .map(|e| (&e.addresses, conditions(e), &e.hostname))
            .collect();
        let _ = writeln!(
            out,
            "{key} owner={owner:?} {} ports={ports:?} endpoints={endpoints:?}",
            slice.address_type
        );
    }
    for (key, pod) in s.pods() {
        let status = pod.status.as_ref();
        let _ = writeln!(
            out,
            "{key} ip={:?} ips={:?}",
            status.and_then(|s| s.pod_ip.as_ref()),
            status.and_then(|s| s.pod_ips.as_ref()),
        );
    }
    out
}

#[test]
fn agent_reads_the_same_from_a_trimmed_view() {
    let full = agent_reads(&snapshot(objects()));
    assert!(full.contains("hc=Some(31000)"), "{full}");
    assert!(full.contains("target_ref: Some"), "{full}");
    assert_eq!(agent_reads(&snapshot(trimmed(Component::Agent))), full);
}

#[test]
fn dns_reads_the_same_from_a_trimmed_view() {
    let full = dns_reads(&snapshot(objects()));
    assert!(
        full.contains("external_name=Some(\"db.example.com\")"),
        "{full}"
    );
    assert!(full.contains("fd00::1:5"), "{full}");
    assert_eq!(dns_reads(&snapshot(trimmed(Component::Dns))), full);
}

#[test]
fn the_view_indexes_trimmed_slices_and_keeps_every_label() {
    for component in [Component::Agent, Component::Dns] {
        let full = snapshot(objects());
        let trimmed = snapshot(trimmed(component));
        assert_eq!(trimmed.slices_for("shop", "web").count(), 1);
        for (key, svc) in full.services() {
            assert_eq!(trimmed.services()[key].metadata.labels, svc.metadata.labels);
            // the selector decides Endpoints mirroring
            assert_eq!(
                trimmed.services()[key].spec.as_ref().unwrap().selector,
                svc.spec.as_ref().unwrap().selector
            );
        }
        for (key, slice) in full.endpoint_slices() {
            assert_eq!(
                trimmed.endpoint_slices()[key].metadata.labels,
                slice.metadata.labels
            );
        }
    }
}

#[test]
fn pods_keep_placement_names_phase_addresses_and_conditions() {
    let full = snapshot(objects());
    let trimmed = snapshot(trimmed(Component::Dns));
    let before = full.pods().values().next().unwrap();
    let after = trimmed.pods().values().next().unwrap();
    let (spec, trimmed_spec) = (before.spec.as_ref().unwrap(), after.spec.as_ref().unwrap());
    assert_eq!(trimmed_spec.node_name, spec.node_name);
    assert_eq!(trimmed_spec.hostname, spec.hostname);
    assert_eq!(trimmed_spec.subdomain, spec.subdomain);
    assert_eq!(trimmed_spec.host_network, spec.host_network);
    let (status, trimmed_status) = (
        before.status.as_ref().unwrap(),
        after.status.as_ref().unwrap(),
    );
    assert_eq!(trimmed_status.phase, status.phase);
    assert_eq!(trimmed_status.pod_ip, status.pod_ip);
    assert_eq!(trimmed_status.pod_ips, status.pod_ips);
    assert_eq!(trimmed_status.conditions, status.conditions);
    assert_eq!(after.metadata.labels, before.metadata.labels);
}

#[test]
fn what_no_data_plane_reads_is_dropped() {
    for component in [Component::Agent, Component::Dns] {
        let s = snapshot(trimmed(component));
        let svc = s.service("shop", "web").unwrap();
        let meta = &svc.metadata;
        assert_eq!(meta.annotations, None);
        assert_eq!(meta.managed_fields, None);
        assert_eq!(meta.resource_version, None);
        assert_eq!(meta.uid, None);
        assert_eq!(meta.finalizers, None);
        assert_eq!(meta.creation_timestamp, None);
        let status = svc.status.as_ref();
        match component {
            Component::Agent => assert!(status.unwrap().conditions.is_none()),
            _ => assert!(status.is_none()),
        }
        let slice = s.slices_for("shop", "web").next().unwrap();
        assert_eq!(slice.metadata.owner_references, None);
        assert_eq!(slice.metadata.generate_name, None);
        let endpoint = &slice.endpoints[0];
        assert_eq!(endpoint.hints, None);
        assert_eq!(endpoint.deprecated_topology, None);
        assert_eq!(endpoint.target_ref.is_some(), component == Component::Agent);
        let pod = s.pods().values().next().unwrap();
        assert!(pod.spec.as_ref().unwrap().containers.is_empty());
        assert_eq!(pod.spec.as_ref().unwrap().init_containers, None);
        assert_eq!(pod.spec.as_ref().unwrap().volumes, None);
        assert_eq!(pod.status.as_ref().unwrap().container_statuses, None);
        assert_eq!(pod.status.as_ref().unwrap().host_ip, None);
        assert_eq!(pod.metadata.annotations, None);
        assert_eq!(pod.metadata.owner_references, None);
        let secret = s.secrets().values().next().unwrap();
        assert_eq!(secret.metadata.annotations, None);
    }
}

#[test]
fn trimmed_lists_hold_no_spare_room() {
    let mut objects = trimmed(Component::Dns);
    let mut grown = objects.clone();
    for o in &mut grown {
        if let Object::EndpointSlice(slice) = o {
            slice.endpoints.reserve(100);
            slice.endpoints[0].addresses.reserve(100);
        }
    }
    for o in &mut grown {
        Trim::for_component(Component::Dns).apply(o);
    }
    assert_eq!(grown, objects);
    let slice = grown
        .iter()
        .find_map(|o| match o {
            Object::EndpointSlice(s) => Some(s),
            _ => None,
        })
        .unwrap();
    assert_eq!(slice.endpoints.capacity(), slice.endpoints.len());
    assert_eq!(slice.endpoints[0].addresses.capacity(), 1);
    // trimming twice changes nothing
    let again = objects.clone();
    for o in &mut objects {
        Trim::for_component(Component::Dns).apply(o);
    }
    assert_eq!(objects, again);
}

#[test]
fn the_ingress_trim_drops_only_managed_fields() {
    let full = objects();
    let trimmed = trimmed(Component::Ingress);
    assert_eq!(trimmed.len(), full.len());
    for (mut before, after) in full.into_iter().zip(trimmed) {
        before.meta_mut().managed_fields = None;
        assert_eq!(before, after);
    }
}

#[test]
fn trimming_keeps_kind_and_key() {
    for component in Component::ALL {
        for (before, after) in objects().iter().zip(trimmed(component)) {
            assert_eq!(before.kind(), after.kind());
            assert_eq!(before.key(), after.key());
        }
    }
}

/// The agent's node routes and CNI config read a Node's name, pod CIDRs
/// and addresses; those stay, the rest (conditions, images, capacity) goes.
#[test]
fn nodes_keep_name_pod_cidrs_and_addresses_for_the_agent() {
    let yaml = r#"
apiVersion: v1
kind: Node
metadata:
  name: node-1
  annotations: {a: b}
spec:
  podCIDR: 10.244.1.0/24
  podCIDRs: [10.244.1.0/24, "fd00:1::/64"]
  providerID: kind://x
status:
  addresses:
    - {type: InternalIP, address: 192.0.2.11}
  capacity: {cpu: "2"}
  conditions:
    - {type: Ready, status: "True"}
"#;
    let report = ManifestLoader::parse_str("node.yaml", yaml);
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    let mut object = report.objects.into_iter().next().unwrap();
    let before = object.clone();
    Trim::for_component(Component::Agent).apply(&mut object);
    let (Object::Node(before), Object::Node(after)) = (before, object) else {
        panic!("not a Node");
    };
    assert_eq!(after.metadata.name.as_deref(), Some("node-1"));
    assert!(after.metadata.annotations.is_none());
    let (spec, trimmed) = (before.spec.unwrap(), after.spec.unwrap());
    assert_eq!(trimmed.pod_cidr, spec.pod_cidr);
    assert_eq!(trimmed.pod_cidrs, spec.pod_cidrs);
    assert!(trimmed.provider_id.is_none());
    let status = after.status.unwrap();
    assert_eq!(status.addresses, before.status.unwrap().addresses);
    assert!(status.capacity.is_none() && status.conditions.is_none());
}
