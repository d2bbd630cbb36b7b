//! Code 11 ("try again later"): a store lock held by someone else is waited
//! for, but only for `ipam.lockTimeoutMs`; then every command that changes
//! the store answers 11 and has changed nothing in the store (a DEL has
//! already removed the veth, which its retry or GC completes). The test holds the lock
//! itself, exactly as another plugin process would (`flock(2)` on the
//! store's lock file).

mod common;

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use common::{BIN, IPAM_BIN, NETWORK, Node, answer, assert_error, stderr, vars};
use serde_json::{Value, json};
use strait_tests::{ChildGuard, require_root};

/// Take the store's lock the way a plugin does.
fn hold_lock(store: &Path) -> File {
    let dir = store.join(NETWORK);
    std::fs::create_dir_all(&dir).expect("store dir");
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join("lock"))
        .expect("lock file");
    file.lock().expect("flock");
    file
}

fn busy(json: &Value) {
    assert!(
        json["msg"]
            .as_str()
            .is_some_and(|m| m.contains("locked by another process")),
        "{json}"
    );
    assert!(
        json["details"]
            .as_str()
            .is_some_and(|d| d.contains("retry")),
        "{json}"
    );
}

#[test]
fn a_held_store_lock_is_code_11_and_changes_nothing() {
    if !require_root() {
        return;
    }
    let node = Node::new("cni-lock");
    let pod = node.pod("cni-lock-pod");
    let config = node.config(
        "1.1.0",
        json!({"subnet": "10.244.50.0/24", "lockTimeoutMs": 200}),
    );
    // One pod exists before the lock is taken.
    let before = node.add("lock-a", &pod, &config);
    let held = hold_lock(node.store.path());

    let other = node.pod("cni-lock-other");
    busy(&assert_error(
        &node.call("ADD", "lock-b", "eth0", Some(other.path()), &config),
        11,
    ));
    assert_eq!(
        node.host_veths().len(),
        1,
        "the refused ADD created no veth"
    );
    assert_eq!((node.allocated(), node.indexed()), (1, 1));
    // CHECK only reads (atomically renamed files): it needs no lock.
    let mut check = config.clone();
    check["prevResult"] = before;
    node.ok("CHECK", "lock-a", Some(pod.path()), &check);
    busy(&assert_error(
        &node.call("DEL", "lock-a", "eth0", None, &config),
        11,
    ));
    // DEL removes the veth before it takes the lock (the kernel's part is
    // slow and needs no lock); the addresses stay until the retry.
    assert!(
        node.host_veths().is_empty(),
        "the refused DEL still removed the veth"
    );
    assert_eq!((node.allocated(), node.indexed()), (1, 1));
    let mut gc = config.clone();
    gc["cni.dev/valid-attachments"] = json!([]);
    busy(&assert_error(&node.call("GC", "x", "eth0", None, &gc), 11));
    busy(&assert_error(
        &node.call("STATUS", "x", "eth0", None, &config),
        11,
    ));
    // The standalone IPAM plugin shares the store and the rule.
    let out = node.exec_bin(
        IPAM_BIN,
        &vars("ADD", "lock-c", "eth0", Some(other.path())),
        &config.to_string(),
    );
    busy(&assert_error(&out, 11));
    assert_eq!((node.allocated(), node.indexed()), (1, 1));

    // Released: the runtime's retry succeeds.
    drop(held);
    node.add("lock-b", &other, &config);
    node.ok("DEL", "lock-a", None, &config);
    node.ok("DEL", "lock-b", None, &config);
    assert!(node.host_veths().is_empty());
    assert_eq!((node.allocated(), node.indexed()), (0, 0));
}

#[test]
fn a_briefly_held_lock_is_waited_for() {
    if !require_root() {
        return;
    }
    let node = Node::new("cni-wait");
    let pod = node.pod("cni-wait-pod");
    // The default wait (no lockTimeoutMs).
    let config = node.config("1.1.0", json!({"subnet": "10.244.51.0/24"}));
    let held = hold_lock(node.store.path());
    let mut cmd = node.ns.command(BIN);
    let raw = cmd.as_command_mut();
    raw.env_clear()
        .envs(vars("ADD", "wait", "eth0", Some(pod.path())))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = ChildGuard::spawn(raw).expect("spawn");
    child
        .child_mut()
        .stdin
        .take()
        .expect("stdin")
        .write_all(config.to_string().as_bytes())
        .expect("config");
    // Let it reach the lock (if it has not yet, it simply finds it free).
    std::thread::sleep(Duration::from_millis(300));
    drop(held);
    let out = child.into_child().wait_with_output().expect("wait");
    let result = answer(&out);
    assert!(out.status.success(), "{result} {}", stderr(&out));
    assert_eq!(result["ips"][0]["address"], "10.244.51.1/32");
    node.ok("DEL", "wait", Some(pod.path()), &config);
}
