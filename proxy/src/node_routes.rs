//! Node routes (routed mode on a flat L2 underlay): a route to every other
//! node's pod CIDRs via that node's InternalIP, so pods on different nodes
//! reach each other without encapsulation — what Calico's BGP-less mode or
//! Cilium's `auto-direct-node-routes` do.
//!
//! Our routes carry the routing protocol [`ROUTE_PROTOCOL`], so the agent
//! recognises them in the main table: a sync replaces the desired ones,
//! deletes ours that are no longer desired, and never touches any other
//! route. This needs every node on one L2 segment (the next hop must be
//! directly reachable); across routers, use the VXLAN wiring instead.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnetwork::IpNetwork;
use strait_cluster::ClusterSnapshot;
use strait_cluster::k8s_openapi::api::core::v1::Node;
use strait_netlink::proto_route::{self, ProtoRoute};
use strait_netlink::{Netlink, NetlinkError};

/// The routing protocol number (`rtm_protocol`, `ip route ... proto 212`)
/// that marks Strait's node routes.
///
/// Why 212: the kernel's uapi (`rtnetlink.h`) names protocols up to 192
/// (`RTPROT_EIGRP`), iproute2's `rt_protos` lists nothing between 192 and
/// 255, and the values other CNIs use (Calico's 80, kube-router's 17,
/// bird's 12) are below it. A value nobody else uses is what lets the agent
/// delete exactly its own routes.
pub const ROUTE_PROTOCOL: u8 = 212;

/// The routes the agent wants: each destination pod CIDR, and the next hop
/// plus the node it belongs to (for logs).
pub type DesiredRoutes = BTreeMap<IpNetwork, (IpAddr, String)>;

/// A Node whose routes cannot be computed, and why (logged once).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Skipped {
    /// The Node's name.
    pub node: String,
    /// What is missing.
    pub reason: &'static str,
}

/// Every other node's pod CIDRs via its InternalIP of the same family.
/// `this_node` is skipped (its pods are reached through the /32 routes the
/// CNI plugin installs). Nodes without a pod CIDR, or without an
/// InternalIP of a CIDR's family, are returned in the second list.
pub fn desired(snapshot: &ClusterSnapshot, this_node: &str) -> (DesiredRoutes, Vec<Skipped>) {
    let mut routes = DesiredRoutes::new();
    let mut skipped = Vec::new();
    for node in snapshot.nodes().values() {
        let name = node.metadata.name.clone().unwrap_or_default();
        if name == this_node {
            continue;
        }
        let cidrs = pod_cidrs(node);
        if cidrs.is_empty() {
            skipped.push(Skipped {
                node: name,
                reason: "no spec.podCIDR(s)",
            });
            continue;
        }
        let addresses = internal_ips(node);
        for cidr in cidrs {
            match addresses.iter().find(|a| a.is_ipv4() == cidr.is_ipv4()) {
                Some(via) => {
                    routes.insert(cidr, (*via, name.clone()));
                }
                None => skipped.push(Skipped {
                    node: name.clone(),
                    reason: if cidr.is_ipv4() {
                        "no IPv4 InternalIP"
                    } else {
                        "no IPv6 InternalIP"
                    },
                }),
            }
        }
    }
    (routes, skipped)
}

/// `spec.podCIDRs`, or `spec.podCIDR` when the list is empty, parsed and
/// normalised to the network address; unparsable entries are dropped.
pub fn pod_cidrs(node: &Node) -> Vec<IpNetwork> {
    let Some(spec) = node.spec.as_ref() else {
        return Vec::new();
    };
    let listed = spec.pod_cidrs.iter().flatten();
    let raw: Vec<&String> = match spec.pod_cidrs.as_ref() {
        Some(list) if !list.is_empty() => listed.collect(),
        _ => spec.pod_cidr.iter().collect(),
    };
    raw.into_iter()
        .filter_map(|s| s.parse::<IpNetwork>().ok())
        .filter_map(|n| IpNetwork::new(n.network(), n.prefix()).ok())
        .collect()
}

fn internal_ips(node: &Node) -> Vec<IpAddr> {
    node.status
        .as_ref()
        .and_then(|s| s.addresses.as_ref())
        .into_iter()
        .flatten()
        .filter(|a| a.type_ == "InternalIP")
        .filter_map(|a| a.address.parse().ok())
        .collect()
}

/// What one sync changed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RouteStats {
    /// Routes installed or moved to a new next hop.
    pub replaced: usize,
    /// Routes of ours deleted because no node wants them any more.
    pub removed: usize,
    /// Routes of ours in the table after the sync.
    pub installed: usize,
}

/// Every route in the main table tagged with [`ROUTE_PROTOCOL`], both
/// families.
pub fn list_ours(nl: &mut Netlink) -> Result<Vec<ProtoRoute>, NetlinkError> {
    let mut out = proto_route::list(nl, IpAddr::from([0u8; 4]), ROUTE_PROTOCOL)?;
    match proto_route::list(nl, IpAddr::from([0u8; 16]), ROUTE_PROTOCOL) {
        Ok(v6) => out.extend(v6),
        // IPv6 disabled in this namespace: there are no routes of ours.
        Err(e) if e.errno() == Some(libc::EAFNOSUPPORT) => {}
        Err(e) => return Err(e),
    }
    Ok(out)
}

/// Brings our routes to `desired`: replaces the missing or moved ones,
/// deletes ours that are not desired. Routes of other protocols are never
/// listed, so never deleted.
pub fn sync(nl: &mut Netlink, desired: &DesiredRoutes) -> Result<RouteStats, NetlinkError> {
    let current = list_ours(nl)?;
    let mut stats = RouteStats::default();
    for (cidr, (via, node)) in desired {
        let route = ProtoRoute {
            dst: cidr.network(),
            prefix: cidr.prefix(),
            gateway: Some(*via),
            protocol: ROUTE_PROTOCOL,
        };
        if !current.contains(&route) {
            proto_route::replace(nl, &route)?;
            tracing::info!(%cidr, %via, node = %node, "node route installed");
            stats.replaced += 1;
        }
    }
    for route in &current {
        let wanted = IpNetwork::new(route.dst, route.prefix)
            .ok()
            .is_some_and(|cidr| desired.contains_key(&cidr));
        if !wanted {
            proto_route::delete(nl, route)?;
            tracing::info!(dst = %route.dst, prefix = route.prefix, via = ?route.gateway, "node route removed");
            stats.removed += 1;
        }
    }
    stats.installed = desired.len();
    Ok(stats)
}

/// Deletes every route tagged with [`ROUTE_PROTOCOL`] (`strait agent
/// cleanup`); returns how many.
pub fn cleanup(nl: &mut Netlink) -> Result<usize, NetlinkError> {
    let ours = list_ours(nl)?;
    for route in &ours {
        proto_route::delete(nl, route)?;
    }
    Ok(ours.len())
}

#[cfg(test)]
mod tests {
    use strait_cluster::Object;
    use strait_cluster::k8s_openapi::api::core::v1::{NodeAddress, NodeSpec, NodeStatus};
    use strait_cluster::k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;

    fn node(name: &str, cidrs: &[&str], addrs: &[(&str, &str)]) -> Object {
        Object::Node(Node {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            spec: Some(NodeSpec {
                pod_cidr: cidrs.first().map(|c| (*c).to_owned()),
                pod_cidrs: Some(cidrs.iter().map(|c| (*c).to_owned()).collect()),
                ..Default::default()
            }),
            status: Some(NodeStatus {
                addresses: Some(
                    addrs
                        .iter()
                        .map(|(t, a)| NodeAddress {
                            type_: (*t).into(),
                            address: (*a).into(),
                        })
                        .collect(),
                ),
                ..Default::default()
            }),
        })
    }

    fn net(s: &str) -> IpNetwork {
        s.parse().unwrap()
    }

    #[test]
    fn dual_stack_routes_per_family_and_self_skipped() {
        let snap = ClusterSnapshot::from_objects([
            node("a", &["10.1.0.0/24"], &[("InternalIP", "192.168.0.1")]),
            node(
                "b",
                &["10.1.1.0/24", "fd00:1:1::/64"],
                &[
                    ("Hostname", "b"),
                    ("InternalIP", "fc00::2"),
                    ("InternalIP", "192.168.0.2"),
                ],
            ),
        ]);
        let (routes, skipped) = desired(&snap, "a");
        assert!(skipped.is_empty());
        assert_eq!(routes.len(), 2);
        assert_eq!(
            routes[&net("10.1.1.0/24")].0,
            "192.168.0.2".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            routes[&net("fd00:1:1::/64")].0,
            "fc00::2".parse::<IpAddr>().unwrap()
        );
        assert_eq!(routes[&net("10.1.1.0/24")].1, "b");
    }

    #[test]
    fn missing_address_or_cidr_is_skipped() {
        let snap = ClusterSnapshot::from_objects([
            node("a", &["10.1.0.0/24"], &[("InternalIP", "192.168.0.1")]),
            node(
                "b",
                &["10.1.1.0/24", "fd00:1:1::/64"],
                &[("InternalIP", "192.168.0.2")],
            ),
            node("c", &[], &[("InternalIP", "192.168.0.3")]),
            node("d", &["10.1.3.0/24"], &[("ExternalIP", "1.2.3.4")]),
        ]);
        let (routes, skipped) = desired(&snap, "a");
        assert_eq!(
            routes.keys().copied().collect::<Vec<_>>(),
            vec![net("10.1.1.0/24")]
        );
        let names: Vec<_> = skipped
            .iter()
            .map(|s| (s.node.as_str(), s.reason))
            .collect();
        assert_eq!(
            names,
            vec![
                ("b", "no IPv6 InternalIP"),
                ("c", "no spec.podCIDR(s)"),
                ("d", "no IPv4 InternalIP"),
            ]
        );
    }

    #[test]
    fn single_pod_cidr_field_and_normalisation() {
        let Object::Node(mut n) = node("b", &[], &[]) else {
            unreachable!()
        };
        n.spec = Some(NodeSpec {
            pod_cidr: Some("10.1.1.7/24".into()),
            ..Default::default()
        });
        assert_eq!(pod_cidrs(&n), vec![net("10.1.1.0/24")]);
    }
}
