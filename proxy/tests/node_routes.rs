//! `--node-routes` against a real kernel, inside test namespaces: the agent's
//! sync installs routes to the other nodes' pod CIDRs tagged with its
//! protocol, moves and removes them as Nodes change, and never touches a
//! route it does not own; cleanup removes only its own.

use strait_cluster::k8s_openapi::api::core::v1::{Node, NodeAddress, NodeSpec, NodeStatus};
use strait_cluster::k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use strait_cluster::{ClusterSnapshot, Object};
use strait_netlink::Netlink;
use strait_proxy::node_routes::{self, ROUTE_PROTOCOL, RouteStats};
use strait_tests::{NetNs, VethPair, require_root};

fn node(name: &str, cidrs: &[&str], addrs: &[&str]) -> Object {
    Object::Node(Node {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        spec: Some(NodeSpec {
            pod_cidrs: Some(cidrs.iter().map(|c| (*c).to_owned()).collect()),
            ..Default::default()
        }),
        status: Some(NodeStatus {
            addresses: Some(
                addrs
                    .iter()
                    .map(|a| NodeAddress {
                        type_: "InternalIP".into(),
                        address: (*a).into(),
                    })
                    .collect(),
            ),
            ..Default::default()
        }),
    })
}

/// `(dst, gateway, protocol)` of every main-table route, both families.
fn routes(ns: &NetNs) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for family in ["-4", "-6"] {
        let text = ns.ip(&["-j", family, "route", "show"]).unwrap();
        let list: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
        for r in list {
            let field = |k: &str| r[k].as_str().unwrap_or_default().to_owned();
            out.push((field("dst"), field("gateway"), field("protocol")));
        }
    }
    out
}

fn ours(ns: &NetNs) -> Vec<(String, String)> {
    let mut v: Vec<_> = routes(ns)
        .into_iter()
        .filter(|(_, _, p)| *p == ROUTE_PROTOCOL.to_string())
        .map(|(d, g, _)| (d, g))
        .collect();
    v.sort();
    v
}

fn pair(d: &str, g: &str) -> (String, String) {
    (d.to_owned(), g.to_owned())
}

fn sync(ns: &NetNs, snapshot: &ClusterSnapshot) -> RouteStats {
    let (desired, _) = node_routes::desired(snapshot, "self");
    ns.run(|| {
        let mut nl = Netlink::open().unwrap();
        node_routes::sync(&mut nl, &desired).unwrap()
    })
}

#[test]
fn node_routes_follow_nodes_and_leave_other_routes_alone() {
    if !require_root() {
        return;
    }
    let a = NetNs::new("nroutes-a").unwrap();
    let b = NetNs::new("nroutes-b").unwrap();
    let link = VethPair::builder(&a, &b)
        .addr_a("192.0.2.1/24")
        .addr_b("192.0.2.2/24")
        .create()
        .unwrap();
    a.ip(&["addr", "add", "fd00:9::1/64", "dev", link.a_name(), "nodad"])
        .unwrap();
    // Someone else's route, in the same style: not ours, never touched.
    a.ip(&[
        "route",
        "add",
        "10.99.0.0/24",
        "via",
        "192.0.2.50",
        "proto",
        "static",
    ])
    .unwrap();
    let foreign = pair("10.99.0.0/24", "192.0.2.50");

    let this = node("self", &["10.1.0.0/24"], &["192.0.2.1"]);
    let n2 = node(
        "n2",
        &["10.1.2.0/24", "fd00:1:2::/64"],
        &["192.0.2.2", "fd00:9::2"],
    );
    let n3 = node("n3", &["10.1.3.0/24"], &["192.0.2.3"]);
    let stats = sync(
        &a,
        &ClusterSnapshot::from_objects([this.clone(), n2.clone(), n3]),
    );
    assert_eq!((stats.replaced, stats.removed, stats.installed), (3, 0, 3));
    assert_eq!(
        ours(&a),
        vec![
            pair("10.1.2.0/24", "192.0.2.2"),
            pair("10.1.3.0/24", "192.0.2.3"),
            pair("fd00:1:2::/64", "fd00:9::2"),
        ]
    );
    // A second sync with nothing changed writes nothing.
    let again = sync(
        &a,
        &ClusterSnapshot::from_objects([
            this.clone(),
            n2.clone(),
            node("n3", &["10.1.3.0/24"], &["192.0.2.3"]),
        ]),
    );
    assert_eq!((again.replaced, again.removed), (0, 0));

    // n3's pod CIDR changes: the route moves.
    let n3_moved = node("n3", &["10.1.33.0/24"], &["192.0.2.3"]);
    sync(
        &a,
        &ClusterSnapshot::from_objects([this.clone(), n2, n3_moved.clone()]),
    );
    assert_eq!(
        ours(&a),
        vec![
            pair("10.1.2.0/24", "192.0.2.2"),
            pair("10.1.33.0/24", "192.0.2.3"),
            pair("fd00:1:2::/64", "fd00:9::2"),
        ]
    );

    // n2 is deleted: both of its routes go.
    let stats = sync(&a, &ClusterSnapshot::from_objects([this, n3_moved]));
    assert_eq!(stats.removed, 2);
    assert_eq!(ours(&a), vec![pair("10.1.33.0/24", "192.0.2.3")]);
    let all: Vec<_> = routes(&a).into_iter().map(|(d, g, _)| (d, g)).collect();
    assert!(all.contains(&foreign), "{all:?}");

    // Cleanup removes ours only.
    let removed = a.run(|| node_routes::cleanup(&mut Netlink::open().unwrap()).unwrap());
    assert_eq!(removed, 1);
    assert!(ours(&a).is_empty());
    let all: Vec<_> = routes(&a).into_iter().map(|(d, g, _)| (d, g)).collect();
    assert!(all.contains(&foreign), "{all:?}");
}
