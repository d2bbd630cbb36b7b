//! Shared fixtures for the netns tests: a node namespace in which the
//! plugin binary runs exactly as a runtime execs it, pods as test
//! namespaces, and an IPAM store in a tempdir.
#![allow(dead_code)]

use std::io::Write;
use std::path::Path;
use std::process::{Output, Stdio};

use serde_json::{Value, json};
use strait_tests::NetNs;

/// The plugin binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_strait-cni");

/// The standalone IPAM plugin binary under test.
pub const IPAM_BIN: &str = env!("CARGO_BIN_EXE_strait-ipam");

/// Where Debian's containernetworking-plugins installs the reference
/// plugins (`loopback`, `bridge`, `host-local`, ...).
pub const REFERENCE_PLUGINS: &str = "/usr/lib/cni";

/// The path of reference plugin `name`, or `None` (with a loud note, and a
/// failure in CI) when it is not installed.
pub fn reference_plugin(name: &str) -> Option<String> {
    let path = format!("{REFERENCE_PLUGINS}/{name}");
    if Path::new(&path).is_file() {
        return Some(path);
    }
    let why =
        format!("{path} is missing: install containernetworking-plugins (scripts/setup does)");
    assert!(!strait_tests::in_ci(), "{why}");
    eprintln!("\n!!!!! SKIPPED: {why} !!!!!\n");
    None
}

/// The network name every test config uses.
pub const NETWORK: &str = "strait-test";

/// A node: a test netns with forwarding on, where the plugin runs and the
/// host veths live, plus a private IPAM store.
pub struct Node {
    /// The node's namespace.
    pub ns: NetNs,
    /// The IPAM data directory (removed on drop).
    pub store: tempfile::TempDir,
}

impl Node {
    /// A fresh node.
    pub fn new(tag: &str) -> Node {
        Node::from_ns(NetNs::new(tag).expect("node netns"))
    }

    /// A node made of an existing test namespace (one host of a topology).
    pub fn from_ns(ns: NetNs) -> Node {
        ns.trust_links_created_by_product();
        ns.sysctl("net.ipv4.ip_forward", "1").expect("ip_forward");
        ns.sysctl("net.ipv6.conf.all.forwarding", "1")
            .expect("v6 forwarding");
        let store = tempfile::tempdir().expect("store tempdir");
        Node { ns, store }
    }

    /// A pod namespace (the plugin creates its interface).
    pub fn pod(&self, tag: &str) -> NetNs {
        let pod = NetNs::new(tag).expect("pod netns");
        pod.trust_links_created_by_product();
        pod
    }

    /// A network configuration with this node's store and `ipam` ranges.
    pub fn config(&self, version: &str, mut ipam: Value) -> Value {
        ipam["type"] = "strait-ipam".into();
        ipam["dataDir"] = self.store.path().display().to_string().into();
        json!({"cniVersion": version, "name": NETWORK, "type": "strait-cni", "ipam": ipam})
    }

    /// The usual IPv4 config on 10.244.1.0/24.
    pub fn v4_config(&self) -> Value {
        self.config("1.1.0", json!({"subnet": "10.244.1.0/24"}))
    }

    /// Run the plugin inside the node with exactly these variables.
    pub fn exec(&self, vars: &[(&str, String)], stdin: &str) -> Output {
        self.exec_bin(BIN, vars, stdin)
    }

    /// Run any plugin binary (ours or a reference plugin) inside the node
    /// with exactly these variables and this stdin, as a runtime does.
    pub fn exec_bin(&self, bin: &str, vars: &[(&str, String)], stdin: &str) -> Output {
        let mut cmd = self.ns.command(bin);
        cmd.as_command_mut()
            .env_clear()
            .envs(vars.iter().map(|(k, v)| (*k, v.as_str())));
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn strait-cni");
        let mut pipe = child.child_mut().stdin.take().expect("stdin");
        let _ = pipe.write_all(stdin.as_bytes());
        drop(pipe);
        child
            .into_child()
            .wait_with_output()
            .expect("wait strait-cni")
    }

    /// Run `command` for attachment (`id`, `ifname`) in `netns`.
    pub fn call(
        &self,
        command: &str,
        id: &str,
        ifname: &str,
        netns: Option<&Path>,
        config: &Value,
    ) -> Output {
        self.exec(&vars(command, id, ifname, netns), &config.to_string())
    }

    /// ADD that must succeed; returns the result.
    pub fn add(&self, id: &str, pod: &NetNs, config: &Value) -> Value {
        let out = self.call("ADD", id, "eth0", Some(pod.path()), config);
        let result = answer(&out);
        assert!(out.status.success(), "ADD {id}: {result} {}", stderr(&out));
        result
    }

    /// A command that must succeed with no output (DEL, CHECK, GC, STATUS).
    pub fn ok(&self, command: &str, id: &str, netns: Option<&Path>, config: &Value) {
        let out = self.call(command, id, "eth0", netns, config);
        assert!(
            out.status.success() && out.stdout.is_empty(),
            "{command} {id}: {:?} {}",
            String::from_utf8_lossy(&out.stdout),
            stderr(&out)
        );
    }

    /// The node's links whose names start with `strait`.
    pub fn host_veths(&self) -> Vec<String> {
        self.ns
            .links()
            .expect("links")
            .into_iter()
            .filter(|l| l.starts_with("strait"))
            .collect()
    }

    /// How many addresses the store holds.
    pub fn allocated(&self) -> usize {
        let dir = self.store.path().join(NETWORK).join("ips");
        std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
    }

    /// How many attachments the store's index holds.
    pub fn indexed(&self) -> usize {
        let dir = self.store.path().join(NETWORK).join("ids");
        std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
    }
}

/// The `CNI_*` variables a runtime sets.
pub fn vars(
    command: &str,
    id: &str,
    ifname: &str,
    netns: Option<&Path>,
) -> Vec<(&'static str, String)> {
    let mut v = vec![
        ("CNI_COMMAND", command.to_owned()),
        ("CNI_CONTAINERID", id.to_owned()),
        ("CNI_IFNAME", ifname.to_owned()),
        ("CNI_PATH", "/opt/cni/bin".to_owned()),
        (
            "CNI_ARGS",
            "IgnoreUnknown=1;K8S_POD_NAMESPACE=default".to_owned(),
        ),
    ];
    if let Some(ns) = netns {
        v.push(("CNI_NETNS", ns.display().to_string()));
    }
    v
}

/// stdout as one JSON document.
pub fn answer(out: &Output) -> Value {
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(&text).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {text:?}; stderr: {}",
            stderr(out)
        )
    })
}

/// stderr as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The call failed with `code`; returns the error JSON.
pub fn assert_error(out: &Output, code: u32) -> Value {
    let json = answer(out);
    assert!(!out.status.success(), "must fail: {json}");
    assert_eq!(json["code"], code, "{json}");
    assert!(
        json["msg"].as_str().is_some_and(|m| !m.is_empty()),
        "{json}"
    );
    json
}

/// `ip -j` output of `args` inside `ns`.
pub fn ip_json(ns: &NetNs, args: &[&str]) -> Value {
    let mut full = vec!["-j"];
    full.extend_from_slice(args);
    let text = ns.ip(&full).expect("ip");
    serde_json::from_str(if text.trim().is_empty() { "[]" } else { &text }).expect("ip -j")
}
