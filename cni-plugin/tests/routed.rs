//! Routed mode with real namespaces and veths: the plugin binary runs in a
//! node netns exactly as a runtime execs it; pods are test namespaces.

mod common;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use common::{Node, answer, assert_error, ip_json, stderr};
use serde_json::{Value, json};
use strait_cni::names::host_veth;
use strait_tests::{Echo, require_root, tcp_ask};

const ASK: Duration = Duration::from_secs(3);

fn pod_ip(result: &Value, i: usize) -> IpAddr {
    let addr = result["ips"][i]["address"].as_str().expect("address");
    addr.split('/').next().expect("ip").parse().expect("ip")
}

#[test]
fn add_check_del_wires_a_pod_and_removes_everything() {
    if !require_root() {
        return;
    }
    let node = Node::new("cni-node");
    let pod_a = node.pod("cni-pod-a");
    let pod_b = node.pod("cni-pod-b");
    let config = node.v4_config();

    let a = node.add("pod-a", &pod_a, &config);
    let b = node.add("pod-b", &pod_b, &config);
    // The result, per the 1.1 schema.
    assert_eq!(a["cniVersion"], "1.1.0");
    let host = host_veth("pod-a", "eth0");
    assert_eq!(
        a["interfaces"][0],
        json!({"name": host, "mac": "ee:ee:ee:ee:ee:ee"})
    );
    assert_eq!(a["interfaces"][1]["name"], "eth0");
    assert_eq!(
        a["interfaces"][1]["sandbox"],
        pod_a.path().display().to_string()
    );
    assert_eq!(a["ips"][0]["address"], "10.244.1.1/32");
    assert_eq!(a["ips"][0]["gateway"], "169.254.1.1");
    assert_eq!(a["ips"][0]["interface"], 1);
    assert_eq!(
        a["routes"],
        json!([{"dst": "0.0.0.0/0", "gw": "169.254.1.1"}])
    );
    assert_eq!(b["ips"][0]["address"], "10.244.1.2/32");

    // The kernel state: /32 in the pod, default via the link-local
    // gateway, a permanent neighbour for it, the host /32 route.
    let addrs = ip_json(&pod_a, &["-4", "addr", "show", "dev", "eth0"]);
    assert_eq!(addrs[0]["addr_info"][0]["local"], "10.244.1.1");
    assert_eq!(addrs[0]["addr_info"][0]["prefixlen"], 32);
    assert_eq!(addrs[0]["mtu"], 1500);
    let routes = ip_json(&pod_a, &["-4", "route", "show", "default"]);
    assert_eq!(routes[0]["gateway"], "169.254.1.1", "{routes}");
    let neigh = ip_json(&pod_a, &["neigh", "show", "169.254.1.1"]);
    assert_eq!(neigh[0]["lladdr"], "ee:ee:ee:ee:ee:ee");
    assert_eq!(neigh[0]["state"][0], "PERMANENT");
    let host_routes = ip_json(&node.ns, &["-4", "route", "show", "10.244.1.1/32"]);
    assert_eq!(host_routes[0]["dev"], host);
    let proxy_arp = node
        .ns
        .run(|| std::fs::read_to_string(format!("/proc/sys/net/ipv4/conf/{host}/proxy_arp")))
        .expect("proxy_arp");
    assert_eq!(proxy_arp.trim(), "1");
    // The host end has no IPv4 address.
    let host_addrs = ip_json(&node.ns, &["-4", "addr", "show", "dev", &host]);
    assert!(
        host_addrs.as_array().is_none_or(|l| l
            .iter()
            .all(|l| l["addr_info"].as_array().is_none_or(|a| a.is_empty()))),
        "{host_addrs}"
    );

    // Pod to pod, and pod to the node.
    node.ns
        .add_addr("lo", "10.250.0.1/32")
        .expect("node address");
    let echo_b = Echo::start(&pod_b, "pod-b", SocketAddr::new(pod_ip(&b, 0), 0)).expect("echo b");
    let echo_node =
        Echo::start(&node.ns, "node", "10.250.0.1:0".parse().expect("addr")).expect("echo node");
    let reply = pod_a
        .run(|| tcp_ask(echo_b.addr(), ASK))
        .expect("pod a -> pod b");
    assert_eq!(reply.name, "pod-b");
    assert_eq!(reply.peer.ip(), pod_ip(&a, 0));
    let reply = pod_a
        .run(|| tcp_ask(echo_node.addr(), ASK))
        .expect("pod a -> node");
    assert_eq!(reply.peer.ip(), pod_ip(&a, 0));

    // CHECK against the ADD result.
    let mut check = config.clone();
    check["prevResult"] = a.clone();
    node.ok("CHECK", "pod-a", Some(pod_a.path()), &check);

    // DEL removes the veth (both ends) and the addresses; again is fine,
    // and so is a DEL without a netns.
    node.ok("DEL", "pod-a", Some(pod_a.path()), &config);
    assert_eq!(node.host_veths(), vec![host_veth("pod-b", "eth0")]);
    assert!(!pod_a.links().expect("links").contains(&"eth0".to_owned()));
    assert!(
        ip_json(&node.ns, &["-4", "route", "show", "10.244.1.1/32"])
            .as_array()
            .is_none_or(|r| r.is_empty())
    );
    node.ok("DEL", "pod-a", Some(pod_a.path()), &config);
    node.ok("DEL", "pod-a", None, &config);
    node.ok("DEL", "pod-b", None, &config);
    node.ok("DEL", "pod-b", None, &config);
    assert!(node.host_veths().is_empty());
    assert_eq!((node.allocated(), node.indexed()), (0, 0));
    // DEL when the netns is gone.
    let gone = pod_b.path().to_owned();
    drop(echo_b);
    drop(pod_b);
    node.ok("DEL", "pod-b", Some(&gone), &config);
}

#[test]
fn older_spec_versions_get_their_result_shape() {
    if !require_root() {
        return;
    }
    let node = Node::new("cni-old");
    let pod = node.pod("cni-old-pod");
    let config = node.config("0.3.1", json!({"subnet": "10.244.2.0/24"}));
    let result = node.add("old", &pod, &config);
    assert_eq!(result["cniVersion"], "0.3.1");
    assert_eq!(result["ips"][0]["version"], "4");
    node.ok("DEL", "old", Some(pod.path()), &config);
}

#[test]
fn check_reports_each_kind_of_drift() {
    if !require_root() {
        return;
    }
    let node = Node::new("cni-drift");
    let pod = node.pod("cni-drift-pod");
    let config = node.v4_config();
    let result = node.add("drift", &pod, &config);
    let mut check = config.clone();
    check["prevResult"] = result.clone();
    let run_check = || node.call("CHECK", "drift", "eth0", Some(pod.path()), &check);
    let expect_drift = |needle: &str| {
        let json = assert_error(&run_check(), 104);
        assert!(
            json["msg"].as_str().is_some_and(|m| m.contains(needle)),
            "{needle}: {json}"
        );
    };

    // A prevResult that disagrees with the store.
    let mut wrong = check.clone();
    wrong["prevResult"]["ips"][0]["address"] = "10.244.1.77/32".into();
    let json = assert_error(
        &node.call("CHECK", "drift", "eth0", Some(pod.path()), &wrong),
        104,
    );
    assert!(
        json["msg"]
            .as_str()
            .is_some_and(|m| m.contains("10.244.1.1")),
        "{json}"
    );

    // Missing host route.
    node.ns.del_route("10.244.1.1/32").expect("del host route");
    expect_drift("host route 10.244.1.1/32");
    let host = host_veth("drift", "eth0");
    node.ns
        .add_route("10.244.1.1/32", strait_tests::Via::Dev(&host))
        .expect("restore");
    node.ok("CHECK", "drift", Some(pod.path()), &check);

    // Missing default route.
    pod.ip(&["route", "del", "default"]).expect("del default");
    expect_drift("default route via 169.254.1.1");
    pod.ip(&[
        "route",
        "add",
        "default",
        "via",
        "169.254.1.1",
        "dev",
        "eth0",
        "onlink",
    ])
    .expect("restore");
    node.ok("CHECK", "drift", Some(pod.path()), &check);

    // Wrong address.
    pod.ip(&["addr", "del", "10.244.1.1/32", "dev", "eth0"])
        .expect("del addr");
    expect_drift("address 10.244.1.1/32 is missing");
    pod.ip(&["addr", "add", "10.244.1.1/32", "dev", "eth0"])
        .expect("restore");
    pod.ip(&[
        "route",
        "add",
        "default",
        "via",
        "169.254.1.1",
        "dev",
        "eth0",
        "onlink",
    ])
    .expect("restore route");
    node.ok("CHECK", "drift", Some(pod.path()), &check);

    // Wrong MTU.
    pod.ip(&["link", "set", "eth0", "mtu", "1400"])
        .expect("mtu");
    expect_drift("MTU 1400, expected 1500");
    pod.ip(&["link", "set", "eth0", "mtu", "1500"])
        .expect("restore mtu");
    node.ok("CHECK", "drift", Some(pod.path()), &check);

    // Missing interface (deleting the host end removes both).
    node.ns.ip(&["link", "del", &host]).expect("del veth");
    expect_drift(&format!("host veth {host} is missing"));

    // Unknown attachment.
    let out = node.call("CHECK", "nobody", "eth0", Some(pod.path()), &check);
    let json = assert_error(&out, 104);
    assert!(
        json["msg"]
            .as_str()
            .is_some_and(|m| m.contains("no addresses")),
        "{json}"
    );
    node.ok("DEL", "drift", Some(pod.path()), &config);
}

#[test]
fn failed_add_rolls_back_veth_and_addresses() {
    if !require_root() {
        return;
    }
    let node = Node::new("cni-rollback");
    let pod = node.pod("cni-rollback-pod");
    let config = node.v4_config();

    // The pod already has an eth0: the veth cannot be created.
    pod.ip(&["link", "add", "eth0", "type", "veth", "peer", "name", "x0"])
        .expect("veth eth0");
    let out = node.call("ADD", "clash", "eth0", Some(pod.path()), &config);
    let json = assert_error(&out, 105);
    assert!(json["details"].as_str().is_some(), "{json}");
    assert!(node.host_veths().is_empty(), "{:?}", node.host_veths());
    assert_eq!((node.allocated(), node.indexed()), (0, 0));
    pod.ip(&["link", "del", "eth0"]).expect("del veth");

    // The pod already has a default route: configuring fails after the
    // veth exists, and the veth goes away again.
    pod.ip(&["link", "add", "d0", "type", "veth", "peer", "name", "d1"])
        .expect("veth");
    pod.ip(&["link", "set", "d0", "up"]).expect("up");
    pod.ip(&["route", "add", "default", "dev", "d0"])
        .expect("default");
    let out = node.call("ADD", "late", "eth0", Some(pod.path()), &config);
    assert_error(&out, 105);
    assert!(node.host_veths().is_empty(), "{:?}", node.host_veths());
    assert!(!pod.links().expect("links").contains(&"eth0".to_owned()));
    assert_eq!((node.allocated(), node.indexed()), (0, 0));
    assert!(
        ip_json(&node.ns, &["-4", "route"])
            .as_array()
            .is_none_or(|r| r.is_empty())
    );

    // A netns that does not exist: code 101, nothing left.
    let out = node.call(
        "ADD",
        "nons",
        "eth0",
        Some("/run/netns/strait-t-does-not-exist".as_ref()),
        &config,
    );
    let json = assert_error(&out, 101);
    assert!(
        json["msg"]
            .as_str()
            .is_some_and(|m| m.contains("does-not-exist")),
        "{json}"
    );
    assert_eq!((node.allocated(), node.indexed()), (0, 0));
    // A path that is not a netns.
    let file = node.store.path().join("not-a-netns");
    std::fs::write(&file, "x").expect("file");
    assert_error(&node.call("ADD", "nons", "eth0", Some(&file), &config), 101);
    assert_eq!((node.allocated(), node.indexed()), (0, 0));
}

#[test]
fn exhaustion_is_code_50_for_add_and_status() {
    if !require_root() {
        return;
    }
    let node = Node::new("cni-full");
    // A /30 has two usable addresses.
    let config = node.config("1.1.0", json!({"subnet": "10.244.3.0/30"}));
    node.ok("STATUS", "x", None, &config);
    let pods: Vec<_> = (0..3).map(|i| node.pod(&format!("cni-full-{i}"))).collect();
    node.add("full-0", &pods[0], &config);
    node.add("full-1", &pods[1], &config);
    let json = assert_error(
        &node.call("ADD", "full-2", "eth0", Some(pods[2].path()), &config),
        50,
    );
    assert!(
        json["msg"]
            .as_str()
            .is_some_and(|m| m.contains("10.244.3.0/30")),
        "{json}"
    );
    assert_eq!(node.host_veths().len(), 2);
    let json = assert_error(&node.call("STATUS", "x", "eth0", None, &config), 50);
    assert!(
        json["msg"]
            .as_str()
            .is_some_and(|m| m.contains("no IP addresses left")),
        "{json}"
    );
    node.ok("DEL", "full-0", None, &config);
    node.ok("STATUS", "x", None, &config);
    node.add("full-2", &pods[2], &config);
    let _ = stderr;
}

#[test]
fn runtime_config_ips_pins_the_pod_address() {
    if !require_root() {
        return;
    }
    let node = Node::new("cni-ips");
    let mut config = node.v4_config();
    config["runtimeConfig"] = json!({"ips": ["10.244.1.200/24"]});
    let pod = node.pod("cni-ips-a");
    let result = node.add("ips-a", &pod, &config);
    assert_eq!(pod_ip(&result, 0).to_string(), "10.244.1.200", "{result}");
    let addrs = ip_json(&pod, &["-4", "addr", "show", "dev", "eth0"]);
    assert!(addrs.to_string().contains("10.244.1.200"), "{addrs}");
    // A second container asking for the same address gets a clear error.
    let other = node.pod("cni-ips-b");
    let json = assert_error(
        &node.call("ADD", "ips-b", "eth0", Some(other.path()), &config),
        106,
    );
    assert!(
        json["msg"].as_str().is_some_and(|m| m.contains("ips-a")),
        "{json}"
    );
    config["runtimeConfig"] = json!({"ips": ["192.0.2.7"]});
    assert_error(
        &node.call("ADD", "ips-b", "eth0", Some(other.path()), &config),
        7,
    );
    assert!(node.host_veths().len() == 1, "failed ADDs leave no veth");
    node.ok("DEL", "ips-a", Some(pod.path()), &config);
    assert_eq!(node.allocated(), 0);
}

#[test]
fn gc_releases_attachments_not_listed_as_valid() {
    if !require_root() {
        return;
    }
    let node = Node::new("cni-gc");
    let config = node.v4_config();
    let pods: Vec<_> = (0..3).map(|i| node.pod(&format!("cni-gc-{i}"))).collect();
    for (i, pod) in pods.iter().enumerate() {
        node.add(&format!("gc-{i}"), pod, &config);
    }
    let mut gc = config.clone();
    gc["cni.dev/valid-attachments"] = json!([{"containerID": "gc-1", "ifname": "eth0"}]);
    node.ok("GC", "x", None, &gc);
    assert_eq!(node.host_veths(), vec![host_veth("gc-1", "eth0")]);
    assert_eq!((node.allocated(), node.indexed()), (1, 1));
    // An empty list releases everything.
    let mut gc = config.clone();
    gc["cni.dev/valid-attachments"] = json!([]);
    node.ok("GC", "x", None, &gc);
    assert!(node.host_veths().is_empty());
    assert_eq!((node.allocated(), node.indexed()), (0, 0));
    let _ = answer;
}

#[test]
fn dual_stack_pods_reach_each_other_over_ipv4_and_ipv6() {
    if !require_root() {
        return;
    }
    let node = Node::new("cni-v6");
    let config = node.config(
        "1.0.0",
        json!({"ranges": [[{"subnet": "10.244.6.0/24"}], [{"subnet": "fd00:10:244:6::/64"}]]}),
    );
    let pod_a = node.pod("cni-v6-a");
    let pod_b = node.pod("cni-v6-b");
    let a = node.add("v6-a", &pod_a, &config);
    let b = node.add("v6-b", &pod_b, &config);
    assert_eq!(a["ips"][1]["address"], "fd00:10:244:6::1/128");
    assert_eq!(a["ips"][1]["gateway"], "fe80::1");
    assert_eq!(b["ips"][1]["address"], "fd00:10:244:6::2/128");
    assert_eq!(
        a["routes"],
        json!([{"dst": "0.0.0.0/0", "gw": "169.254.1.1"}, {"dst": "::/0", "gw": "fe80::1"}])
    );
    let routes = ip_json(&pod_a, &["-6", "route", "show", "default"]);
    assert_eq!(routes[0]["gateway"], "fe80::1", "{routes}");
    let reach_b = |what: &str| {
        for i in [0, 1] {
            let echo =
                Echo::start(&pod_b, "pod-b", SocketAddr::new(pod_ip(&b, i), 0)).expect("echo");
            let reply = pod_a
                .run(|| tcp_ask(echo.addr(), ASK))
                .unwrap_or_else(|e| panic!("a -> b family {i} ({what}): {e}"));
            assert_eq!(reply.name, "pod-b");
            assert_eq!(reply.peer.ip(), pod_ip(&a, i));
        }
    };
    reach_b("permanent gateway entries");
    // With the pod's permanent gateway entries gone, the pod has to resolve
    // the gateways: the host end answers by proxy ARP and proxy NDP. Proxy
    // ARP only answers for an address the host routes out another link,
    // which a real node's default route does; this test node has none, so
    // it routes the gateway into a veth pair that stays inside the node.
    node.ns.trust_links_created_by_product();
    node.ns
        .ip(&[
            "link", "add", "name", "gwsink", "type", "veth", "peer", "name", "gwsink2",
        ])
        .expect("veth pair inside the node");
    node.ns
        .ip(&["link", "set", "dev", "gwsink", "up"])
        .expect("up");
    node.ns
        .ip(&["route", "add", "169.254.1.1/32", "dev", "gwsink"])
        .expect("gateway route");
    for (family, gw) in [("-4", "169.254.1.1"), ("-6", "fe80::1")] {
        pod_a
            .ip(&[family, "neigh", "del", gw, "dev", "eth0"])
            .expect("delete the pod's gateway entry");
    }
    reach_b("gateways resolved by proxy ARP/NDP");
    let resolved = ip_json(&pod_a, &["-6", "neigh", "show", "fe80::1"]);
    assert!(
        resolved[0]["lladdr"]
            .as_str()
            .is_some_and(|mac| !mac.is_empty()),
        "fe80::1 was not resolved again: {resolved}"
    );
    let mut check = config.clone();
    check["prevResult"] = a;
    node.ok("CHECK", "v6-a", Some(pod_a.path()), &check);
    pod_a
        .ip(&["-6", "route", "del", "default"])
        .expect("del v6 default");
    let json = assert_error(
        &node.call("CHECK", "v6-a", "eth0", Some(pod_a.path()), &check),
        104,
    );
    assert!(
        json["msg"].as_str().is_some_and(|m| m.contains("fe80::1")),
        "{json}"
    );
    node.ok("DEL", "v6-a", Some(pod_a.path()), &config);
    node.ok("DEL", "v6-b", Some(pod_b.path()), &config);
    assert!(node.host_veths().is_empty());
    assert!(
        ip_json(&node.ns, &["-6", "route", "show", "fd00:10:244:6::/64"])
            .as_array()
            .is_none_or(|r| r.is_empty())
    );
}

#[test]
fn pods_on_two_nodes_reach_each_other_over_the_underlay() {
    if !require_root() {
        return;
    }
    // Two nodes on one L2 underlay (10.250.0.1 and .2), each with its own
    // pod CIDR and a direct route to the other's, as the agent programs
    // them on a flat underlay.
    let net = strait_tests::two_hosts().expect("two nodes");
    let node_a = Node::from_ns(net.a.clone());
    let node_b = Node::from_ns(net.b.clone());
    node_a
        .ns
        .add_route("10.244.21.0/24", strait_tests::Via::Gateway("10.250.0.2"))
        .expect("route a -> b");
    node_b
        .ns
        .add_route("10.244.20.0/24", strait_tests::Via::Gateway("10.250.0.1"))
        .expect("route b -> a");
    let config_a = node_a.config("1.1.0", json!({"subnet": "10.244.20.0/24"}));
    let config_b = node_b.config("1.1.0", json!({"subnet": "10.244.21.0/24"}));
    let pod_a = node_a.pod("cni-2n-a");
    let pod_b = node_b.pod("cni-2n-b");
    let a = node_a.add("two-a", &pod_a, &config_a);
    let b = node_b.add("two-b", &pod_b, &config_b);
    let echo_b = Echo::start(&pod_b, "pod-b", SocketAddr::new(pod_ip(&b, 0), 0)).expect("echo b");
    let reply = pod_a
        .run(|| tcp_ask(echo_b.addr(), ASK))
        .expect("pod a -> pod b across nodes");
    assert_eq!(reply.name, "pod-b");
    assert_eq!(reply.peer.ip(), pod_ip(&a, 0), "no NAT on the way");
    node_a.ok("DEL", "two-a", Some(pod_a.path()), &config_a);
    node_b.ok("DEL", "two-b", Some(pod_b.path()), &config_b);
}
