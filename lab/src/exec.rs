//! `strait lab exec POD -- CMD`: runs a command as if inside the pod — its
//! netns, its cgroup (so the node's socket hooks translate Service VIPs) and
//! its resolv.conf (through `ip netns exec`, which bind-mounts
//! /etc/netns/<netns>/resolv.conf).
use std::process::Command;

use crate::error::{LabError, Result};
use crate::paths::{LabPaths, external_netns};

/// The name `lab exec` takes for the client outside the cluster.
pub const EXTERNAL: &str = "external";
use crate::process::confine;
use crate::state::LabState;

/// The command to run for `lab exec`; the caller execs or waits for it.
pub fn command(paths: &LabPaths, pod: &str, argv: &[String]) -> Result<Command> {
    let state = LabState::load(paths)?.ok_or_else(|| {
        LabError::State("no lab is running; start one with `strait lab up`".into())
    })?;
    let Some((program, args)) = argv.split_first() else {
        return Err(LabError::State(
            "nothing to run: strait lab exec POD -- COMMAND [ARGS...]".into(),
        ));
    };
    // `external` is the client outside the cluster: its netns only.
    let (netns, cgroup) = if pod == EXTERNAL {
        (external_netns(), state.cgroup_root.join("system"))
    } else {
        let pod = state.find_pod(pod)?;
        (pod.netns.clone(), pod.cgroup.clone())
    };
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", &netns, program]).args(args);
    // Only the cgroup here: `ip netns exec` enters the netns itself, after
    // setting up the mount namespace that carries the resolv.conf.
    confine(&mut cmd, None, &cgroup)?;
    Ok(cmd)
}
