//! Bridge mode with real namespaces: pods on a Linux bridge in the node,
//! the subnet's gateway address on the bridge.

mod common;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use common::{Node, assert_error, ip_json};
use serde_json::{Value, json};
use strait_cni::names::host_veth;
use strait_tests::{Echo, require_root, tcp_ask};

const ASK: Duration = Duration::from_secs(3);

fn ip_of(result: &Value) -> IpAddr {
    let addr = result["ips"][0]["address"].as_str().expect("address");
    addr.split('/').next().expect("ip").parse().expect("ip")
}

#[test]
fn bridge_mode_pods_share_a_bridge_and_reach_the_gateway() {
    if !require_root() {
        return;
    }
    let node = Node::new("cni-br");
    let mut config = node.config("1.1.0", json!({"subnet": "10.244.8.0/24"}));
    config["mode"] = "bridge".into();
    config["bridge"] = "stbr0".into();
    let pod_a = node.pod("cni-br-a");
    let pod_b = node.pod("cni-br-b");
    let a = node.add("br-a", &pod_a, &config);
    let b = node.add("br-b", &pod_b, &config);
    assert_eq!(a["interfaces"][0]["name"], "stbr0");
    assert_eq!(a["interfaces"][1]["name"], host_veth("br-a", "eth0"));
    assert_eq!(a["ips"][0]["address"], "10.244.8.2/24", "{a}");
    assert_eq!(a["ips"][0]["gateway"], "10.244.8.1");
    assert_eq!(a["ips"][0]["interface"], 2);
    assert_eq!(b["ips"][0]["address"], "10.244.8.3/24");
    let bridge_addrs = ip_json(&node.ns, &["-4", "addr", "show", "dev", "stbr0"]);
    assert_eq!(bridge_addrs[0]["addr_info"][0]["local"], "10.244.8.1");

    let echo_b = Echo::start(&pod_b, "pod-b", SocketAddr::new(ip_of(&b), 0)).expect("echo b");
    let reply = pod_a.run(|| tcp_ask(echo_b.addr(), ASK)).expect("a -> b");
    assert_eq!(reply.peer.ip(), ip_of(&a));
    let echo_gw =
        Echo::start(&node.ns, "node", "10.244.8.1:0".parse().expect("addr")).expect("echo gw");
    let reply = pod_a
        .run(|| tcp_ask(echo_gw.addr(), ASK))
        .expect("a -> node");
    assert_eq!(reply.peer.ip(), ip_of(&a));

    let mut check = config.clone();
    check["prevResult"] = a.clone();
    node.ok("CHECK", "br-a", Some(pod_a.path()), &check);
    node.ns
        .ip(&["link", "set", &host_veth("br-a", "eth0"), "nomaster"])
        .expect("nomaster");
    let json = assert_error(
        &node.call("CHECK", "br-a", "eth0", Some(pod_a.path()), &check),
        104,
    );
    assert!(
        json["msg"]
            .as_str()
            .is_some_and(|m| m.contains("not a port")),
        "{json}"
    );

    node.ok("DEL", "br-a", Some(pod_a.path()), &config);
    node.ok("DEL", "br-b", Some(pod_b.path()), &config);
    node.ok("DEL", "br-b", None, &config);
    assert!(node.host_veths().is_empty());
    assert_eq!((node.allocated(), node.indexed()), (0, 0));
    // The bridge stays for the next pod.
    assert!(
        node.ns
            .links()
            .expect("links")
            .contains(&"stbr0".to_owned())
    );
}
