//! Calling `strait-cni` exactly as a container runtime does: CNI_* variables,
//! the network configuration on stdin, run in the node's network namespace,
//! the result (or error) as JSON on stdout.
use std::io::Write;
use std::net::IpAddr;
use std::process::{Command, Stdio};

use serde_json::{Value, json};
use strait_cni::conflist::ConflistSpec;

use crate::error::{LabError, Result};
use crate::netns::netns_path;
use crate::paths::LabPaths;
use crate::process::confine;
use crate::state::{LabState, NodeState, PodState};

/// The CNI network name of the lab.
pub const NETWORK: &str = "strait-lab";

/// The node's network configuration list, as `/etc/cni/net.d` would hold it:
/// the same rendering the agent's `--write-cni-config` writes on a real
/// node, with the lab's name, CNI 1.1.0 and a per-node IPAM directory.
pub fn conflist(paths: &LabPaths, node: &NodeState) -> Value {
    ConflistSpec {
        name: NETWORK.into(),
        cni_version: "1.1.0".into(),
        data_dir: paths.ipam_dir(&node.name).display().to_string(),
        ..ConflistSpec::node(vec![node.pod_cidr.clone()])
    }
    .render()
}

/// The single-plugin configuration a runtime derives from the list for one
/// call: `cniVersion` and `name` copied in, runtime config added.
fn plugin_config(list: &Value, pinned_ip: Option<IpAddr>) -> Value {
    let mut config = list["plugins"][0].clone();
    config["cniVersion"] = list["cniVersion"].clone();
    config["name"] = list["name"].clone();
    if let Some(ip) = pinned_ip {
        config["runtimeConfig"] = json!({"ips": [ip.to_string()]});
    }
    config
}

/// ADD: wires the pod's netns and returns its address.
pub fn add(
    state: &LabState,
    paths: &LabPaths,
    node: &NodeState,
    pod: &PodState,
    pinned_ip: Option<IpAddr>,
) -> Result<IpAddr> {
    let config = plugin_config(&conflist(paths, node), pinned_ip);
    let result = call(state, node, pod, "ADD", &config)?;
    result["ips"]
        .as_array()
        .and_then(|ips| ips.first())
        .and_then(|ip| ip["address"].as_str())
        .and_then(|a| a.split('/').next())
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| LabError::Cni {
            command: "ADD",
            pod: pod.key(),
            code: 0,
            msg: format!("the result has no address: {result}"),
            details: String::new(),
        })
}

/// DEL: releases the pod's address and removes its veth. Succeeds when the
/// pod is already gone, as the spec requires.
pub fn del(state: &LabState, paths: &LabPaths, node: &NodeState, pod: &PodState) -> Result<()> {
    let config = plugin_config(&conflist(paths, node), None);
    call(state, node, pod, "DEL", &config).map(|_| ())
}

fn call(
    state: &LabState,
    node: &NodeState,
    pod: &PodState,
    command: &'static str,
    config: &Value,
) -> Result<Value> {
    let cni_dir = state
        .cni_bin
        .parent()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let mut cmd = Command::new(&state.cni_bin);
    cmd.env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("CNI_COMMAND", command)
        .env("CNI_CONTAINERID", &pod.container_id)
        .env("CNI_NETNS", netns_path(&pod.netns))
        .env("CNI_IFNAME", "eth0")
        .env("CNI_PATH", cni_dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // The plugin runs in the node's netns (the runtime's host namespace)
    // and in the lab's own cgroup.
    confine(
        &mut cmd,
        Some(&node.netns),
        &state.cgroup_root.join("system"),
    )?;
    let display = format!("CNI_COMMAND={command} {}", state.cni_bin.display());
    let mut child = cmd.spawn().map_err(|e| LabError::Command {
        command: display.clone(),
        detail: e.to_string(),
    })?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(config.to_string().as_bytes());
    }
    let out = child.wait_with_output().map_err(|e| LabError::Command {
        command: display.clone(),
        detail: e.to_string(),
    })?;
    let stdout: Value = if out.stdout.iter().all(u8::is_ascii_whitespace) {
        Value::Null
    } else {
        serde_json::from_slice(&out.stdout).map_err(|e| LabError::Command {
            command: display.clone(),
            detail: format!(
                "printed something that is not JSON ({e}); stderr: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        })?
    };
    if out.status.success() {
        return Ok(stdout);
    }
    let details = stdout["details"]
        .as_str()
        .filter(|d| !d.is_empty())
        .map(|d| format!("; {d}"))
        .unwrap_or_default();
    Err(LabError::Cni {
        command,
        pod: pod.key(),
        code: stdout["code"].as_u64().unwrap_or(0),
        msg: stdout["msg"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| format!("exit {}", out.status)),
        details,
    })
}
