//! `strait lab status`: the topology and each component's health, checked
//! live (processes alive, agents' /healthz, DNS /ready, pods listening).
use std::fmt::Write;
use std::net::SocketAddr;

use crate::error::{LabError, Result};
use crate::health::{http_status, listening};
use crate::netns;
use crate::paths::LabPaths;
use crate::process;
use crate::state::LabState;
use crate::up::AGENT_HEALTH_PORT;

/// One line per node, component and pod, with a verdict.
pub fn report(paths: &LabPaths) -> Result<(String, bool)> {
    let state = LabState::load(paths)?.ok_or_else(|| {
        LabError::State("no lab is running; start one with `strait lab up`".into())
    })?;
    let mut out = String::new();
    let mut healthy = true;
    let mut verdict = |ok: bool| {
        healthy &= ok;
        if ok { "ok" } else { "FAILING" }
    };
    let _ = writeln!(out, "manifests: {}", state.manifests.display());
    let _ = writeln!(out, "proxy:     {}", state.proxy.describe());
    let _ = writeln!(out, "\nNODES");
    for node in &state.nodes {
        let agent = state.processes.get(&format!("agent-{}", node.name));
        let addr = SocketAddr::from(([127, 0, 0, 1], AGENT_HEALTH_PORT));
        let ok = netns::exists(&node.netns)
            && agent.is_some_and(process::alive)
            && http_status(&node.netns, addr, "/healthz") == Some(200);
        let _ = writeln!(
            out,
            "  {:<10} {:<14} pods {:<16} agent {}",
            node.name,
            node.underlay_ip,
            node.pod_cidr,
            verdict(ok)
        );
    }
    let controller = state
        .processes
        .get("controller")
        .is_some_and(process::alive);
    let _ = writeln!(
        out,
        "  controller (follows manifest edits): {}",
        verdict(controller)
    );
    let _ = writeln!(out, "\nPODS");
    for pod in state.pods.values() {
        let serving = match &pod.process {
            Some(p) => process::alive(p) && pod.ports.iter().all(|port| listening(p.pid, *port)),
            None => true,
        };
        let mut ok = serving && pod.ip.is_some();
        if pod.run == "dns" {
            let addr = SocketAddr::from(([127, 0, 0, 1], 9153));
            ok &= http_status(&pod.netns, addr, "/ready") == Some(200);
        }
        let ip = pod.ip.map(|i| i.to_string()).unwrap_or_else(|| "-".into());
        let _ = writeln!(
            out,
            "  {:<32} {:<8} {:<15} {:<8} {}",
            pod.key(),
            pod.node,
            ip,
            pod.run,
            verdict(ok)
        );
    }
    Ok((out, healthy))
}
