//! The lab's network: an underlay bridge in its own netns, node netns wired
//! to it, and an external client netns on the same underlay. No namespace
//! has a default route, so no packet can leave the lab.
use std::net::Ipv4Addr;

use crate::error::Result;
use crate::netns::{self, ip_in};
use crate::paths::{LabPaths, external_netns, node_netns, underlay_netns};
use crate::state::{LabState, NodeState};

/// The underlay subnet (TEST-NET-1, never routed anywhere).
pub const UNDERLAY_PREFIX: u8 = 24;
/// The external client's underlay address.
pub const EXTERNAL_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
const BRIDGE: &str = "br0";

/// The plan for node `i` (1-based): its name, underlay address and pod CIDR.
pub fn node_plan(i: u8) -> (String, Ipv4Addr, String) {
    (
        format!("node-{i}"),
        Ipv4Addr::new(192, 0, 2, 10 + i),
        format!("10.244.{i}.0/24"),
    )
}

/// Creates the underlay, `nodes` nodes and the external netns, recording each
/// namespace in the state file before it exists.
pub fn create(state: &mut LabState, paths: &LabPaths, nodes: u8) -> Result<()> {
    let underlay = underlay_netns();
    state.record_netns(paths, &underlay)?;
    netns::create(&underlay)?;
    ip_in(&underlay, &["link", "add", BRIDGE, "type", "bridge"])?;
    ip_in(&underlay, &["link", "set", BRIDGE, "up"])?;

    for i in 1..=nodes {
        let (name, addr, cidr) = node_plan(i);
        let ns = node_netns(&name);
        state.nodes.push(NodeState {
            name: name.clone(),
            netns: ns.clone(),
            underlay_ip: addr,
            pod_cidr: cidr,
            cgroup: state.cgroup_root.join("nodes").join(&name),
            bpffs: state.bpffs_root.join(&name),
        });
        state.record_netns(paths, &ns)?;
        netns::create(&ns)?;
        attach_to_underlay(&underlay, &ns, &format!("u-{name}"), addr)?;
        for key in ["net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding"] {
            netns::sysctl(&ns, key, "1")?;
        }
    }
    // Routes to the other nodes' pod CIDRs come from each node's agent
    // (`strait agent --node-routes`), as on a real cluster; `up` waits for
    // them (crate::health::node_routes).
    let external = external_netns();
    state.record_netns(paths, &external)?;
    netns::create(&external)?;
    attach_to_underlay(&underlay, &external, "u-external", EXTERNAL_IP)?;
    state.save(paths)
}

/// A veth from the underlay bridge to `eth0` in `ns`, with `addr`.
fn attach_to_underlay(underlay: &str, ns: &str, port: &str, addr: Ipv4Addr) -> Result<()> {
    ip_in(
        underlay,
        &[
            "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns,
        ],
    )?;
    ip_in(underlay, &["link", "set", port, "master", BRIDGE, "up"])?;
    let cidr = format!("{addr}/{UNDERLAY_PREFIX}");
    ip_in(ns, &["addr", "add", &cidr, "dev", "eth0"])?;
    ip_in(ns, &["link", "set", "eth0", "up"])
}
