//! Many plugin processes at once, and a plugin killed half way: the IPAM
//! store must never hand out an address twice or leak one.

mod common;

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{BIN, Node, answer, stderr, vars};
use serde_json::json;
use strait_cni::names::host_veth;
use strait_tests::{ChildGuard, NetNs, require_root};

const PODS: usize = 100;

#[test]
fn hundred_concurrent_adds_get_distinct_addresses_and_dels_leave_nothing() {
    if !require_root() {
        return;
    }
    let node = Node::new("cni-100");
    let pods: Vec<NetNs> = (0..PODS).map(|i| node.pod(&format!("p{i}"))).collect();
    let config = node
        .config("1.1.0", json!({"subnet": "10.244.4.0/24"}))
        .to_string();
    // One command, checked once, spawned 100 times: every child enters
    // the node netns between fork and exec.
    let run_all = |command: &str| -> Vec<std::process::Output> {
        let mut cmd = node.ns.command(BIN);
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let started = Instant::now();
        let children: Vec<ChildGuard> = pods
            .iter()
            .enumerate()
            .map(|(i, pod)| {
                let raw = cmd.as_command_mut();
                raw.env_clear();
                raw.envs(vars(command, &format!("c{i}"), "eth0", Some(pod.path())));
                let mut child = ChildGuard::spawn(raw).expect("spawn");
                let mut stdin = child.child_mut().stdin.take().expect("stdin");
                stdin.write_all(config.as_bytes()).expect("write config");
                child
            })
            .collect();
        let outs: Vec<_> = children
            .into_iter()
            .map(|c| c.into_child().wait_with_output().expect("wait"))
            .collect();
        eprintln!("{PODS} concurrent {command}s took {:?}", started.elapsed());
        outs
    };

    let outs = run_all("ADD");
    let mut addresses = HashSet::new();
    for (i, out) in outs.iter().enumerate() {
        let result = answer(out);
        assert!(out.status.success(), "ADD c{i}: {result} {}", stderr(out));
        let ip = result["ips"][0]["address"]
            .as_str()
            .expect("address")
            .to_owned();
        assert!(addresses.insert(ip.clone()), "{ip} given twice");
    }
    assert_eq!(addresses.len(), PODS);
    assert_eq!(node.host_veths().len(), PODS);
    assert_eq!((node.allocated(), node.indexed()), (PODS, PODS));

    for (i, out) in run_all("DEL").iter().enumerate() {
        assert!(
            out.status.success() && out.stdout.is_empty(),
            "DEL c{i}: {}",
            stderr(out)
        );
    }
    assert!(node.host_veths().is_empty(), "{:?}", node.host_veths());
    assert_eq!((node.allocated(), node.indexed()), (0, 0));
}

/// Start an ADD that pauses at `stage`, wait until it says so, kill -9 it.
fn kill_add_at(node: &Node, pod: &NetNs, id: &str, stage: &str, config: &str) {
    let mut cmd = node.ns.command(BIN);
    let raw = cmd.as_command_mut();
    raw.env_clear()
        .envs(vars("ADD", id, "eth0", Some(pod.path())))
        .env(strait_cni::testhook::PAUSE_ENV, stage)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = ChildGuard::spawn(raw).expect("spawn");
    child
        .child_mut()
        .stdin
        .take()
        .expect("stdin")
        .write_all(config.as_bytes())
        .expect("config");
    let err = child.child_mut().stderr.take().expect("stderr");
    let mut line = String::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut reader = BufReader::new(err);
    while !line.contains("paused at") && Instant::now() < deadline {
        line.clear();
        if reader.read_line(&mut line).expect("read stderr") == 0 {
            break;
        }
    }
    assert!(
        line.contains(&format!("paused at {stage}")),
        "{id}: {line:?}"
    );
    let status = child.kill().expect("kill -9");
    assert!(!status.success());
}

#[test]
fn kill_9_mid_add_then_gc_leaks_nothing_and_reuses_nothing() {
    if !require_root() {
        return;
    }
    let node = Node::new("cni-crash");
    let config = node.config("1.1.0", json!({"subnet": "10.244.5.0/24"}));
    let text = config.to_string();
    let keep = node.pod("keep");
    let kept = node.add("keep", &keep, &config);
    let kept_ip = kept["ips"][0]["address"].clone();

    // Killed at each stage: after the index is written, after the
    // addresses are reserved, after the veth exists.
    let victims: Vec<(NetNs, &str, &str)> = vec![
        (node.pod("v1"), "v1", "ipam-indexed"),
        (node.pod("v2"), "v2", "ipam-allocated"),
        (node.pod("v3"), "v3", "veth-created"),
    ];
    for (pod, id, stage) in &victims {
        kill_add_at(&node, pod, id, stage, &text);
    }
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    // Only the ADD killed after creating its veth left one.
    assert_eq!(
        sorted(node.host_veths()),
        sorted(vec![host_veth("keep", "eth0"), host_veth("v3", "eth0")])
    );
    // The half-done ADDs hold addresses: a new ADD meanwhile gets a fresh one.
    let fresh_pod = node.pod("fresh");
    let fresh = node.add("fresh", &fresh_pod, &config);
    let mut seen: HashSet<String> = HashSet::new();
    for ip in [&kept_ip, &fresh["ips"][0]["address"]] {
        assert!(seen.insert(ip.to_string()), "{ip} twice");
    }

    // GC with the valid attachments cleans every killed ADD.
    let mut gc = config.clone();
    gc["cni.dev/valid-attachments"] = json!([
        {"containerID": "keep", "ifname": "eth0"},
        {"containerID": "fresh", "ifname": "eth0"},
    ]);
    node.ok("GC", "x", None, &gc);
    assert_eq!(
        sorted(node.host_veths()),
        sorted(vec![host_veth("keep", "eth0"), host_veth("fresh", "eth0")])
    );
    assert_eq!((node.allocated(), node.indexed()), (2, 2));
    // The survivors are intact.
    let mut check = config.clone();
    check["prevResult"] = kept;
    node.ok("CHECK", "keep", Some(keep.path()), &check);
    // And a retried ADD of a victim works from scratch with a new address.
    let (pod, id, _) = &victims[2];
    let again = node.add(id, pod, &config);
    assert!(
        seen.insert(again["ips"][0]["address"].to_string()),
        "{again}"
    );
}
