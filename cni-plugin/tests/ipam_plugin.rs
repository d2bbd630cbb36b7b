//! `strait-ipam`, the standalone CNI IPAM plugin: exec'd directly the way
//! an interface plugin execs `host-local` (same `CNI_*` variables, the
//! whole network configuration on stdin), and delegated to by the real
//! reference `bridge` plugin in a node netns.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::{IPAM_BIN, NETWORK, Node, answer, assert_error, reference_plugin, stderr};
use serde_json::{Value, json};
use strait_tests::{Echo, require_root, tcp_ask};

/// Run strait-ipam with the runtime's variables for (`id`, eth0). The
/// plugin never touches the network, so the netns path is only passed on.
fn ipam(command: &str, id: &str, config: &Value) -> Output {
    let mut child = Command::new(IPAM_BIN)
        .env_clear()
        .envs([
            ("CNI_COMMAND", command),
            ("CNI_CONTAINERID", id),
            ("CNI_NETNS", "/var/run/netns/strait-t-ipam-unused"),
            ("CNI_IFNAME", "eth0"),
            ("CNI_PATH", "/opt/cni/bin"),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn strait-ipam");
    let mut pipe = child.stdin.take().expect("stdin");
    let _ = pipe.write_all(config.to_string().as_bytes());
    drop(pipe);
    child.wait_with_output().expect("wait strait-ipam")
}

fn ok(command: &str, id: &str, config: &Value) {
    let out = ipam(command, id, config);
    assert!(
        out.status.success() && out.stdout.is_empty(),
        "{command} {id}: {:?} {}",
        String::from_utf8_lossy(&out.stdout),
        stderr(&out)
    );
}

fn add(id: &str, config: &Value) -> Value {
    let out = ipam("ADD", id, config);
    let result = answer(&out);
    assert!(out.status.success(), "ADD {id}: {result} {}", stderr(&out));
    result
}

/// A delegating plugin's configuration: the IPAM section is ours.
fn config(store: &Path, version: &str, ipam: Value) -> Value {
    let mut ipam = ipam;
    ipam["type"] = "strait-ipam".into();
    ipam["dataDir"] = store.display().to_string().into();
    json!({"cniVersion": version, "name": NETWORK, "type": "bridge", "ipam": ipam})
}

fn allocated(store: &Path) -> usize {
    std::fs::read_dir(store.join(NETWORK).join("ips")).map_or(0, |d| d.count())
}

#[test]
fn add_check_del_gc_status_version_when_invoked_directly() {
    let store = tempfile::tempdir().expect("store");
    let conf = config(
        store.path(),
        "1.1.0",
        json!({
            "ranges": [[{"subnet": "10.244.30.0/24", "gateway": "10.244.30.1"}],
                       [{"subnet": "fd00:10:244:30::/64"}]],
            "routes": [{"dst": "0.0.0.0/0"}, {"dst": "10.96.0.0/12", "gw": "10.244.30.1"}],
        }),
    );
    // ADD: host-local's result shape, no interfaces.
    let a = add("ipam-a", &conf);
    assert_eq!(
        a,
        json!({
            "cniVersion": "1.1.0",
            "ips": [{"address": "10.244.30.2/24", "gateway": "10.244.30.1"},
                    {"address": "fd00:10:244:30::1/64"}],
            "routes": [{"dst": "0.0.0.0/0"}, {"dst": "10.96.0.0/12", "gw": "10.244.30.1"}],
        })
    );
    let b = add("ipam-b", &conf);
    assert_eq!(b["ips"][0]["address"], "10.244.30.3/24");
    // A repeated ADD of the same attachment gets the same addresses.
    assert_eq!(add("ipam-a", &conf)["ips"], a["ips"]);
    assert_eq!(allocated(store.path()), 4);

    // CHECK: the allocation matches prevResult's addresses in our ranges;
    // other plugins' addresses (lo) are ignored.
    let mut check = conf.clone();
    let mut prev = a.clone();
    prev["ips"]
        .as_array_mut()
        .expect("ips")
        .push(json!({"address": "127.0.0.1/8"}));
    check["prevResult"] = prev;
    ok("CHECK", "ipam-a", &check);
    let json = assert_error(&ipam("CHECK", "ipam-b", &check), 104);
    assert!(
        json["msg"]
            .as_str()
            .is_some_and(|m| m.contains("10.244.30.3")),
        "{json}"
    );
    let mut missing = conf.clone();
    missing["prevResult"] = json!({"cniVersion": "1.1.0", "ips": [a["ips"][0].clone()]});
    let json = assert_error(&ipam("CHECK", "ipam-a", &missing), 104);
    assert!(
        json["msg"]
            .as_str()
            .is_some_and(|m| m.contains("fd00:10:244:30::1")),
        "{json}"
    );
    let json = assert_error(&ipam("CHECK", "nobody", &check), 104);
    assert!(
        json["msg"]
            .as_str()
            .is_some_and(|m| m.contains("no addresses")),
        "{json}"
    );
    // CHECK without prevResult is invalid config, as for any plugin.
    assert_error(&ipam("CHECK", "ipam-a", &conf), 7);

    // runtimeConfig.ips pins an address.
    let mut pinned = conf.clone();
    pinned["runtimeConfig"] = json!({"ips": ["10.244.30.200/24"]});
    let c = add("ipam-c", &pinned);
    assert_eq!(c["ips"][0]["address"], "10.244.30.200/24");
    assert_error(&ipam("ADD", "ipam-d", &pinned), 106);

    // STATUS, GC, DEL, VERSION.
    ok("STATUS", "x", &conf);
    let mut gc = conf.clone();
    gc["cni.dev/valid-attachments"] = json!([{"containerID": "ipam-a", "ifname": "eth0"}]);
    ok("GC", "x", &gc);
    assert_eq!(allocated(store.path()), 2, "only ipam-a's two addresses");
    ok("DEL", "ipam-a", &conf);
    ok("DEL", "ipam-a", &conf);
    assert_eq!(allocated(store.path()), 0);
    let out = ipam("VERSION", "x", &json!({"cniVersion": "1.0.0"}));
    assert_eq!(
        answer(&out)["supportedVersions"].as_array().map(Vec::len),
        Some(5)
    );
}

#[test]
fn old_versions_exhaustion_and_bad_config() {
    let store = tempfile::tempdir().expect("store");
    // A /30 has two addresses.
    let conf = config(store.path(), "0.3.1", json!({"subnet": "10.244.31.0/30"}));
    let a = add("old-a", &conf);
    assert_eq!(a["cniVersion"], "0.3.1");
    assert_eq!(
        a["ips"],
        json!([{"version": "4", "address": "10.244.31.1/30"}])
    );
    add("old-b", &conf);
    let json = assert_error(&ipam("ADD", "old-c", &conf), 50);
    assert!(
        json["msg"]
            .as_str()
            .is_some_and(|m| m.contains("10.244.31.0/30")),
        "{json}"
    );
    let mut status = conf.clone();
    status["cniVersion"] = "1.1.0".into();
    assert_error(&ipam("STATUS", "x", &status), 50);
    ok("DEL", "old-a", &conf);
    ok("STATUS", "x", &status);
    // Bad ipam sections are code 7; a bad route too.
    for bad in [
        json!({}),
        json!({"subnet": "nope"}),
        json!({"subnet": "10.0.0.0/24", "routes": [{"dst": "x"}]}),
    ] {
        assert_error(&ipam("ADD", "bad", &config(store.path(), "1.0.0", bad)), 7);
    }
}

/// The reference `bridge` plugin delegating to strait-ipam, exactly as it
/// delegates to host-local: pods get our addresses and reach each other;
/// bridge's CHECK and DEL reach our CHECK and DEL.
#[test]
fn reference_bridge_plugin_delegates_to_strait_ipam() {
    if !require_root() {
        return;
    }
    let Some(bridge) = reference_plugin("bridge") else {
        return;
    };
    let node = Node::new("cni-ipam-br");
    // The runtime's CNI_PATH: bridge finds strait-ipam by its type.
    let bin_dir = tempfile::tempdir().expect("bin dir");
    std::os::unix::fs::symlink(IPAM_BIN, bin_dir.path().join("strait-ipam")).expect("symlink");
    let mut conf = node.config(
        "1.0.0",
        json!({"subnet": "10.244.32.0/24", "gateway": "10.244.32.1"}),
    );
    conf["type"] = "bridge".into();
    conf["bridge"] = "ipambr0".into();
    conf["isGateway"] = true.into();
    let call = |command: &str, id: &str, pod: &Path, config: &Value| {
        let mut env = common::vars(command, id, "eth0", Some(pod));
        for (k, v) in &mut env {
            if *k == "CNI_PATH" {
                *v = bin_dir.path().display().to_string();
            }
        }
        node.exec_bin(&bridge, &env, &config.to_string())
    };
    let pod_a = node.pod("cni-ipam-a");
    let pod_b = node.pod("cni-ipam-b");
    let mut results = Vec::new();
    for (id, pod) in [("br-ipam-a", &pod_a), ("br-ipam-b", &pod_b)] {
        let out = call("ADD", id, pod.path(), &conf);
        let result = answer(&out);
        assert!(
            out.status.success(),
            "bridge ADD {id}: {result} {}",
            stderr(&out)
        );
        results.push(result);
    }
    assert_eq!(
        results[0]["ips"][0]["address"], "10.244.32.2/24",
        "{}",
        results[0]
    );
    assert_eq!(results[0]["ips"][0]["gateway"], "10.244.32.1");
    assert_eq!(results[1]["ips"][0]["address"], "10.244.32.3/24");
    assert_eq!(node.allocated(), 2);

    // Pod to pod over the bridge, with strait-ipam's addresses.
    let echo = Echo::start(&pod_b, "pod-b", "10.244.32.3:0".parse().expect("addr")).expect("echo");
    let reply = pod_a
        .run(|| tcp_ask(echo.addr(), Duration::from_secs(3)))
        .expect("pod a -> pod b");
    assert_eq!(reply.name, "pod-b");
    assert_eq!(reply.peer.ip().to_string(), "10.244.32.2");

    // bridge CHECK calls our CHECK with its prevResult.
    let mut check = conf.clone();
    check["prevResult"] = results[0].clone();
    let out = call("CHECK", "br-ipam-a", pod_a.path(), &check);
    assert!(
        out.status.success(),
        "bridge CHECK: {} {}",
        String::from_utf8_lossy(&out.stdout),
        stderr(&out)
    );
    // Released behind bridge's back: our CHECK fails, and bridge says so.
    let ipam_conf = conf.clone();
    ok_in_node(&node, "DEL", "br-ipam-a", &ipam_conf);
    let out = call("CHECK", "br-ipam-a", pod_a.path(), &check);
    assert!(!out.status.success(), "bridge CHECK must fail");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("no addresses"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // bridge DEL releases through us; twice is fine.
    for (id, pod) in [("br-ipam-a", &pod_a), ("br-ipam-b", &pod_b)] {
        for _ in 0..2 {
            let out = call("DEL", id, pod.path(), &conf);
            assert!(out.status.success(), "bridge DEL {id}: {}", stderr(&out));
        }
    }
    assert_eq!((node.allocated(), node.indexed()), (0, 0));
}

/// strait-ipam DEL in the node, as a plugin would exec it.
fn ok_in_node(node: &Node, command: &str, id: &str, config: &Value) {
    let out = node.exec_bin(
        IPAM_BIN,
        &common::vars(command, id, "eth0", None),
        &config.to_string(),
    );
    assert!(out.status.success(), "{command}: {}", stderr(&out));
}
