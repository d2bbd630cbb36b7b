//! The lab's stand-in for a load balancer (MetalLB in L2 mode): each
//! LoadBalancer IP and external IP is announced by one node, and the
//! external client netns gets a /32 route to it through that node. A
//! Service with `externalTrafficPolicy: Local` is announced by a node that
//! has one of its ready endpoints, as MetalLB does; others by the first node.
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use strait_cluster::{ClusterSnapshot, Object, TrafficPolicy, conditions, service};

use crate::error::Result;
use crate::netns::ip_in;
use crate::paths::external_netns;
use crate::state::LabState;

/// Which node announces each address.
pub fn plan(objects: &[Object], state: &LabState) -> BTreeMap<IpAddr, Ipv4Addr> {
    let snapshot = ClusterSnapshot::from_objects(objects.iter().cloned());
    let mut out = BTreeMap::new();
    let Some(first) = state.nodes.first() else {
        return out;
    };
    for (key, svc) in snapshot.services() {
        let mut addrs = service::external_ips(svc);
        addrs.extend(service::load_balancer_ips(svc));
        if addrs.is_empty() {
            continue;
        }
        let mut via = first.underlay_ip;
        if service::external_traffic_policy(svc) == TrafficPolicy::Local {
            let namespace = key.namespace.as_deref().unwrap_or("default");
            let local = snapshot
                .slices_for(namespace, &key.name)
                .flat_map(|s| s.endpoints.iter())
                .filter(|e| conditions(e).ready)
                .find_map(|e| e.node_name.as_deref().and_then(|n| state.node(n)));
            if let Some(node) = local {
                via = node.underlay_ip;
            }
        }
        for addr in addrs.into_iter().filter(IpAddr::is_ipv4) {
            out.insert(addr, via);
        }
    }
    out
}

/// Makes the external netns routes match `wanted`.
pub fn apply(state: &mut LabState, wanted: BTreeMap<IpAddr, Ipv4Addr>) -> Result<()> {
    let ns = external_netns();
    for (addr, via) in &wanted {
        if state.announced.get(addr) != Some(via) {
            let dst = format!("{addr}/32");
            ip_in(&ns, &["route", "replace", &dst, "via", &via.to_string()])?;
        }
    }
    for addr in state.announced.keys() {
        if !wanted.contains_key(addr) {
            let _ = ip_in(&ns, &["route", "del", &format!("{addr}/32")]);
        }
    }
    state.announced = wanted;
    Ok(())
}
