//! VXLAN mode: two node namespaces on one underlay bridge that does not
//! route pod addresses; each node's plugin builds a VXLAN device with
//! routes, neighbour and fdb entries to the other node's pod CIDR, and
//! pods on both nodes reach each other through the tunnel.

mod common;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use common::{Node, assert_error, ip_json};
use serde_json::{Value, json};
use strait_tests::{Echo, bridged_hosts, require_root, tcp_ask};

const ASK: Duration = Duration::from_secs(3);
const DEVICE: &str = "vxlan-strait";

fn pod_ip(result: &Value) -> IpAddr {
    let addr = result["ips"][0]["address"].as_str().expect("address");
    addr.split('/').next().expect("ip").parse().expect("ip")
}

/// The same peer list on every node (the agent writes it from the Nodes'
/// podCIDRs); each node skips its own entry.
fn config(node: &Node, pod_cidr: &str, local: &str) -> Value {
    let mut c = node.config("1.1.0", json!({"subnet": pod_cidr}));
    c["mode"] = "vxlan".into();
    c["vxlan"] = json!({
        "localIP": local,
        "vni": 42,
        "peers": [
            {"podCIDR": "10.244.60.0/24", "nodeIP": "10.250.0.1"},
            {"podCIDR": "10.244.61.0/24", "nodeIP": "10.250.0.2"},
        ],
    });
    c
}

fn tx_packets(node: &Node) -> u64 {
    let link = ip_json(&node.ns, &["-s", "link", "show", "dev", DEVICE]);
    link[0]["stats64"]["tx"]["packets"].as_u64().unwrap_or(0)
}

#[test]
fn pods_on_two_nodes_reach_each_other_over_vxlan() {
    if !require_root() {
        return;
    }
    let net = bridged_hosts(2).expect("underlay");
    let node_a = Node::from_ns(net.hosts[0].ns.clone());
    let node_b = Node::from_ns(net.hosts[1].ns.clone());
    let config_a = config(&node_a, "10.244.60.0/24", "10.250.0.1");
    let config_b = config(&node_b, "10.244.61.0/24", "10.250.0.2");
    let pod_a = node_a.pod("cni-vx-a");
    let pod_b = node_b.pod("cni-vx-b");
    let a = node_a.add("vx-a", &pod_a, &config_a);
    let b = node_b.add("vx-b", &pod_b, &config_b);
    assert_eq!(pod_ip(&a).to_string(), "10.244.60.1");
    assert_eq!(pod_ip(&b).to_string(), "10.244.61.1");

    // The node's overlay: the device, its derived MAC, the route via the
    // peer's CIDR address, the static neighbour and fdb entries.
    let dev = ip_json(&node_a.ns, &["-d", "link", "show", "dev", DEVICE]);
    assert_eq!(dev[0]["linkinfo"]["info_kind"], "vxlan", "{dev}");
    assert_eq!(dev[0]["linkinfo"]["info_data"]["id"], 42, "{dev}");
    assert_eq!(dev[0]["address"], "02:53:0a:fa:00:01");
    assert_eq!(dev[0]["mtu"], 1450);
    let routes = ip_json(&node_a.ns, &["-4", "route", "show", "10.244.61.0/24"]);
    assert_eq!(routes[0]["gateway"], "10.244.61.0", "{routes}");
    assert_eq!(routes[0]["dev"], DEVICE, "{routes}");
    assert!(
        ip_json(&node_a.ns, &["-4", "route", "show", "10.244.60.0/24"])
            .as_array()
            .is_none_or(|r| r.is_empty()),
        "no route to this node's own CIDR over the tunnel"
    );
    let neigh = ip_json(&node_a.ns, &["neigh", "show", "dev", DEVICE]);
    assert_eq!(neigh[0]["dst"], "10.244.61.0", "{neigh}");
    assert_eq!(neigh[0]["lladdr"], "02:53:0a:fa:00:02", "{neigh}");
    let fdb = node_a
        .ns
        .run(|| {
            std::process::Command::new("bridge")
                .args(["-j", "fdb", "show", "dev", DEVICE])
                .output()
        })
        .expect("bridge fdb");
    let fdb: Value = serde_json::from_slice(&fdb.stdout).expect("fdb json");
    assert!(
        fdb.as_array().is_some_and(|l| l
            .iter()
            .any(|e| e["mac"] == "02:53:0a:fa:00:02" && e["dst"] == "10.250.0.2")),
        "{fdb}"
    );

    // Pod to pod across nodes, both ways, without NAT, through the tunnel.
    let before = tx_packets(&node_a);
    let echo_b = Echo::start(&pod_b, "pod-b", SocketAddr::new(pod_ip(&b), 0)).expect("echo b");
    let reply = pod_a
        .run(|| tcp_ask(echo_b.addr(), ASK))
        .expect("pod a -> pod b over vxlan");
    assert_eq!(reply.name, "pod-b");
    assert_eq!(reply.peer.ip(), pod_ip(&a));
    let echo_a = Echo::start(&pod_a, "pod-a", SocketAddr::new(pod_ip(&a), 0)).expect("echo a");
    let reply = pod_b
        .run(|| tcp_ask(echo_a.addr(), ASK))
        .expect("pod b -> pod a over vxlan");
    assert_eq!(reply.name, "pod-a");
    assert_eq!(reply.peer.ip(), pod_ip(&b));
    assert!(
        tx_packets(&node_a) > before,
        "traffic went through {DEVICE}"
    );

    // CHECK covers the overlay; a lost route is drift, and the next ADD
    // puts it back (every ADD re-applies the overlay idempotently).
    let mut check = config_a.clone();
    check["prevResult"] = a.clone();
    node_a.ok("CHECK", "vx-a", Some(pod_a.path()), &check);
    node_a.ns.del_route("10.244.61.0/24").expect("del route");
    let json = assert_error(
        &node_a.call("CHECK", "vx-a", "eth0", Some(pod_a.path()), &check),
        104,
    );
    assert!(
        json["msg"]
            .as_str()
            .is_some_and(|m| m.contains("10.244.61.0/24")),
        "{json}"
    );
    let index = ip_json(&node_a.ns, &["link", "show", "dev", DEVICE])[0]["ifindex"].clone();
    let pod_a2 = node_a.pod("cni-vx-a2");
    node_a.add("vx-a2", &pod_a2, &config_a);
    assert_eq!(
        ip_json(&node_a.ns, &["link", "show", "dev", DEVICE])[0]["ifindex"],
        index,
        "the device is reused, not re-created"
    );
    node_a.ok("CHECK", "vx-a", Some(pod_a.path()), &check);

    // DEL removes the pods and keeps the node's overlay.
    for (node, id, config) in [
        (&node_a, "vx-a", &config_a),
        (&node_a, "vx-a2", &config_a),
        (&node_b, "vx-b", &config_b),
    ] {
        node.ok("DEL", id, None, config);
    }
    assert!(node_a.host_veths().is_empty() && node_b.host_veths().is_empty());
    assert!(
        node_a
            .ns
            .links()
            .expect("links")
            .contains(&DEVICE.to_owned())
    );
    assert_eq!((node_a.allocated(), node_b.allocated()), (0, 0));
}

#[test]
fn a_name_clash_with_the_vxlan_device_is_refused_and_rolled_back() {
    if !require_root() {
        return;
    }
    let node = Node::new("cni-vx-clash");
    // Something else already holds the device name.
    node.ns
        .ip(&["link", "add", DEVICE, "type", "bridge"])
        .expect("bridge");
    let config = config(&node, "10.244.60.0/24", "10.250.0.1");
    let pod = node.pod("cni-vx-clash-pod");
    let json = assert_error(
        &node.call("ADD", "clash", "eth0", Some(pod.path()), &config),
        105,
    );
    assert!(
        json["msg"]
            .as_str()
            .is_some_and(|m| m.contains("not a vxlan")),
        "{json}"
    );
    assert!(node.host_veths().is_empty());
    assert_eq!((node.allocated(), node.indexed()), (0, 0));
}
