//! strait-cni as a non-first plugin of a conflist, driven the way a
//! runtime drives a chain: each plugin exec'd in turn with the previous
//! plugin's result as `prevResult` (ADD), the chain's final result as
//! `prevResult` (CHECK, DEL in reverse order). The plugins before it are
//! the real reference plugins (`loopback`; `bridge` + `host-local`).

mod common;

use std::path::Path;
use std::process::Output;

use common::{Node, answer, assert_error, ip_json, reference_plugin, stderr, vars};
use serde_json::{Value, json};
use strait_cni::names::host_veth;
use strait_tests::{NetNs, require_root};

/// Run a reference plugin for attachment (`id`, eth0) in `pod`.
fn reference(
    node: &Node,
    bin: &str,
    command: &str,
    id: &str,
    pod: &Path,
    config: &Value,
) -> Output {
    let mut env = vars(command, id, "eth0", Some(pod));
    for (k, v) in &mut env {
        if *k == "CNI_PATH" {
            *v = common::REFERENCE_PLUGINS.to_owned();
        }
    }
    node.exec_bin(bin, &env, &config.to_string())
}

fn with_prev(config: &Value, prev: &Value) -> Value {
    let mut c = config.clone();
    c["prevResult"] = prev.clone();
    c
}

fn names(result: &Value) -> Vec<String> {
    result["interfaces"]
        .as_array()
        .expect("interfaces")
        .iter()
        .map(|i| i["name"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// `loopback` then strait: the loopback result is passed through, ours
/// follows with shifted indexes; CHECK and DEL work with the chain's
/// result; both plugins accept the final result.
#[test]
fn chained_after_loopback_passes_the_previous_result_through() {
    if !require_root() {
        return;
    }
    let Some(loopback) = reference_plugin("loopback") else {
        return;
    };
    let node = Node::new("cni-chain");
    for (version, pod_tag, id) in [
        ("1.1.0", "cni-chain-a", "chain-a"),
        ("0.4.0", "cni-chain-b", "chain-b"),
    ] {
        let pod = node.pod(pod_tag);
        // libcni rewrites every plugin's cniVersion to the list's; the
        // reference plugins here speak at most 1.0.0.
        let lo_version = if version == "1.1.0" { "1.0.0" } else { version };
        let lo_config =
            json!({"cniVersion": lo_version, "name": common::NETWORK, "type": "loopback"});
        let out = reference(&node, &loopback, "ADD", id, pod.path(), &lo_config);
        assert!(out.status.success(), "loopback ADD: {}", stderr(&out));
        let lo_result = answer(&out);

        let config = node.config(version, json!({"subnet": "10.244.40.0/24"}));
        let result = node.add(id, &pod, &with_prev(&config, &lo_result));
        assert_eq!(result["cniVersion"], version);
        assert_eq!(
            names(&result),
            ["lo", &host_veth(id, "eth0"), "eth0"],
            "{result}"
        );
        let ips = result["ips"].as_array().expect("ips");
        assert_eq!(ips.len(), 3, "{result}");
        assert_eq!(ips[0]["address"], "127.0.0.1/8");
        assert_eq!(ips[0]["interface"], 0);
        assert_eq!(ips[2]["interface"], 2, "our index is shifted past lo");
        assert_eq!(ips[2]["gateway"], "169.254.1.1");
        let ours = ips[2]["address"].as_str().expect("address").to_owned();
        if version == "0.4.0" {
            assert!(ips.iter().all(|ip| ip.get("version").is_some()), "{result}");
        } else {
            assert!(ips.iter().all(|ip| ip.get("version").is_none()), "{result}");
        }
        assert_eq!(
            result["routes"],
            json!([{"dst": "0.0.0.0/0", "gw": "169.254.1.1"}])
        );
        // The kernel agrees: eth0 has our address, lo is untouched and up.
        let addrs = ip_json(&pod, &["-4", "addr", "show", "dev", "eth0"]);
        assert!(
            addrs.to_string().contains(ours.trim_end_matches("/32")),
            "{addrs}"
        );
        let lo = ip_json(&pod, &["-4", "addr", "show", "dev", "lo"]);
        assert!(lo.to_string().contains("127.0.0.1"), "{lo}");

        // CHECK through the whole chain with the final result.
        let out = reference(
            &node,
            &loopback,
            "CHECK",
            id,
            pod.path(),
            &with_prev(&lo_config, &result),
        );
        assert!(out.status.success(), "loopback CHECK: {}", stderr(&out));
        node.ok("CHECK", id, Some(pod.path()), &with_prev(&config, &result));

        // DEL in reverse order, with the final result.
        node.ok("DEL", id, Some(pod.path()), &with_prev(&config, &result));
        assert!(!node.host_veths().contains(&host_veth(id, "eth0")));
        let out = reference(
            &node,
            &loopback,
            "DEL",
            id,
            pod.path(),
            &with_prev(&lo_config, &result),
        );
        assert!(out.status.success(), "loopback DEL: {}", stderr(&out));
    }
    assert_eq!((node.allocated(), node.indexed()), (0, 0));
}

/// CHECK reads what to expect from the chain's result: our interface by
/// name and sandbox, the addresses listed on it, the MACs listed.
#[test]
fn check_validates_against_the_chained_prev_result() {
    if !require_root() {
        return;
    }
    let Some(loopback) = reference_plugin("loopback") else {
        return;
    };
    let node = Node::new("cni-chk");
    let pod = node.pod("cni-chk-pod");
    let lo_config = json!({"cniVersion": "1.0.0", "name": common::NETWORK, "type": "loopback"});
    let out = reference(&node, &loopback, "ADD", "chk", pod.path(), &lo_config);
    assert!(out.status.success(), "loopback ADD: {}", stderr(&out));
    let config = node.config("1.0.0", json!({"subnet": "10.244.41.0/24"}));
    let result = node.add("chk", &pod, &with_prev(&config, &answer(&out)));
    node.ok(
        "CHECK",
        "chk",
        Some(pod.path()),
        &with_prev(&config, &result),
    );

    let check = |prev: &Value| {
        node.call(
            "CHECK",
            "chk",
            "eth0",
            Some(pod.path()),
            &with_prev(&config, prev),
        )
    };
    let expect_drift = |prev: Value, needle: &str| {
        let json = assert_error(&check(&prev), 104);
        assert!(
            json["msg"].as_str().is_some_and(|m| m.contains(needle)),
            "{needle}: {json}"
        );
    };
    // Our address dropped from the result.
    let mut dropped = result.clone();
    dropped["ips"].as_array_mut().expect("ips").remove(2);
    expect_drift(
        dropped,
        "allocated address 10.244.41.1 is not in prevResult",
    );
    // Our address listed on lo instead of eth0.
    let mut moved = result.clone();
    moved["ips"][2]["interface"] = 0.into();
    expect_drift(moved, "allocated address 10.244.41.1 is not in prevResult");
    // An address on our interface that the store never gave us.
    let mut extra = result.clone();
    extra["ips"]
        .as_array_mut()
        .expect("ips")
        .push(json!({"address": "10.244.41.99/32", "interface": 2}));
    expect_drift(
        extra,
        "prevResult address 10.244.41.99 on eth0 is not allocated",
    );
    // A wrong prefix for routed mode.
    let mut prefix = result.clone();
    prefix["ips"][2]["address"] = "10.244.41.1/24".into();
    expect_drift(prefix, "should have prefix /32");
    // MACs that are not the links'.
    let mut pod_mac = result.clone();
    pod_mac["interfaces"][2]["mac"] = "02:11:22:33:44:55".into();
    expect_drift(pod_mac, "eth0 in the pod has MAC");
    let mut host_mac = result.clone();
    host_mac["interfaces"][1]["mac"] = "02:11:22:33:44:55".into();
    expect_drift(host_mac, "on the node has MAC");
    // A result that is not this attachment's (only loopback's part, or
    // eth0 in another sandbox).
    let mut lo_only = result.clone();
    lo_only["interfaces"]
        .as_array_mut()
        .expect("list")
        .truncate(1);
    lo_only["ips"].as_array_mut().expect("list").truncate(2);
    expect_drift(lo_only, "lists no interface eth0");
    let mut elsewhere = result.clone();
    elsewhere["interfaces"][2]["sandbox"] = "/run/netns/strait-t-elsewhere".into();
    expect_drift(elsewhere, "lists no interface eth0");
    // Malformed: code 6.
    let mut bad = result.clone();
    bad["ips"][2]["address"] = "nope".into();
    assert_error(&check(&bad), 6);
    // Another plugin's extra entries are not ours to judge.
    let mut more = result.clone();
    more["interfaces"]
        .as_array_mut()
        .expect("list")
        .push(json!({"name": "net1", "sandbox": pod.path().display().to_string()}));
    more["ips"]
        .as_array_mut()
        .expect("list")
        .push(json!({"address": "192.0.2.5/24", "interface": 3}));
    node.ok("CHECK", "chk", Some(pod.path()), &with_prev(&config, &more));
    // And the kernel is still checked: delete the pod's route.
    pod.ip(&["route", "del", "default"]).expect("del default");
    let json = assert_error(&check(&result), 104);
    assert!(
        json["msg"]
            .as_str()
            .is_some_and(|m| m.contains("default route")),
        "{json}"
    );
    node.ok("DEL", "chk", None, &config);
}

/// After an interface plugin that already made eth0 (`bridge` with
/// `host-local`), strait refuses with code 7 before allocating or creating
/// anything; the runtime's DEL of the chain leaves the other plugin's
/// interface alone.
#[test]
fn chained_after_another_interface_plugin_is_refused_with_code_7() {
    if !require_root() {
        return;
    }
    let (Some(bridge), Some(_)) = (reference_plugin("bridge"), reference_plugin("host-local"))
    else {
        return;
    };
    let node = Node::new("cni-clash");
    let pod = node.pod("cni-clash-pod");
    let host_local = tempfile::tempdir().expect("host-local dir");
    let br_config = json!({
        "cniVersion": "1.0.0", "name": common::NETWORK, "type": "bridge", "bridge": "refbr0",
        "ipam": {"type": "host-local", "subnet": "10.244.42.0/24",
                 "dataDir": host_local.path().display().to_string()},
    });
    let out = reference(&node, &bridge, "ADD", "clash", pod.path(), &br_config);
    assert!(
        out.status.success(),
        "bridge ADD: {} {}",
        String::from_utf8_lossy(&out.stdout),
        stderr(&out)
    );
    let br_result = answer(&out);

    let config = node.config("1.0.0", json!({"subnet": "10.244.43.0/24"}));
    let out = node.call(
        "ADD",
        "clash",
        "eth0",
        Some(pod.path()),
        &with_prev(&config, &br_result),
    );
    let json = assert_error(&out, 7);
    assert!(
        json["msg"].as_str().is_some_and(|m| m.contains("eth0")),
        "{json}"
    );
    assert!(
        json["details"]
            .as_str()
            .is_some_and(|d| d.contains("first plugin")),
        "{json}"
    );
    assert!(node.host_veths().is_empty(), "{:?}", node.host_veths());
    assert_eq!((node.allocated(), node.indexed()), (0, 0));
    // The bridge plugin's eth0 is untouched.
    let addrs = ip_json(&pod, &["-4", "addr", "show", "dev", "eth0"]);
    assert!(addrs.to_string().contains("10.244.42."), "{addrs}");

    // The runtime cleans the failed chain up in reverse order.
    node.ok(
        "DEL",
        "clash",
        Some(pod.path()),
        &with_prev(&config, &br_result),
    );
    assert!(pod.links().expect("links").contains(&"eth0".to_owned()));
    let out = reference(
        &node,
        &bridge,
        "DEL",
        "clash",
        pod.path(),
        &with_prev(&br_config, &br_result),
    );
    assert!(out.status.success(), "bridge DEL: {}", stderr(&out));
    assert!(!pod.links().expect("links").contains(&"eth0".to_owned()));
}

/// A malformed prevResult on ADD is a decoding failure (6), with nothing
/// allocated; DEL never needs prevResult and ignores what it lists.
#[test]
fn malformed_prev_result_on_add_is_code_6_and_del_ignores_prev_result() {
    if !require_root() {
        return;
    }
    let node = Node::new("cni-badprev");
    let pod: NetNs = node.pod("cni-badprev-pod");
    let config = node.config("1.1.0", json!({"subnet": "10.244.44.0/24"}));
    for bad in [
        json!({"interfaces": "lo"}),
        json!({"ips": [{"address": "10.0.0.1"}]}),
        json!({"ips": [{"address": "10.0.0.1/8", "interface": 4}]}),
    ] {
        let out = node.call(
            "ADD",
            "bad",
            "eth0",
            Some(pod.path()),
            &with_prev(&config, &bad),
        );
        assert_error(&out, 6);
    }
    assert!(node.host_veths().is_empty());
    assert_eq!((node.allocated(), node.indexed()), (0, 0));
    // An empty previous result (a chain whose earlier plugins reported
    // nothing) is simply ours.
    let result = node.add(
        "bad",
        &pod,
        &with_prev(&config, &json!({"cniVersion": "1.1.0"})),
    );
    assert_eq!(
        names(&result),
        [host_veth("bad", "eth0"), "eth0".to_owned()]
    );
    assert_eq!(result["ips"][0]["interface"], 1);
    // DEL with a result listing someone else's interfaces still removes ours.
    let foreign = json!({"interfaces": [{"name": "weird0"}], "ips": []});
    node.ok(
        "DEL",
        "bad",
        Some(pod.path()),
        &with_prev(&config, &foreign),
    );
    assert!(node.host_veths().is_empty());
    assert_eq!((node.allocated(), node.indexed()), (0, 0));
}
