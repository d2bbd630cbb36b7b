//! VXLAN mode: pods are wired exactly as in routed mode, and the node
//! reaches other nodes' pod CIDRs through a VXLAN device, for underlays
//! that do not route pod addresses (the flannel `vxlan` model).
//!
//! ```json
//! "mode": "vxlan",
//! "vxlan": {"localIP": "192.0.2.11", "vni": 1, "port": 4789, "device": "vxlan-strait",
//!           "peers": [{"podCIDR": "10.244.2.0/24", "nodeIP": "192.0.2.12"}]}
//! ```
//!
//! Every `ADD` makes sure (idempotently: create if missing, replace
//! entries) that the device exists and is up, and that for each peer:
//!
//! - a route `podCIDR via <podCIDR network address> dev <device> onlink`;
//! - a permanent neighbour entry for that gateway with the peer's device
//!   MAC, which is derived from its node IP ([`names::vtep_mac`]), so no
//!   ARP crosses the tunnel;
//! - a permanent fdb entry sending that MAC to the peer's node IP.
//!
//! The device is the node's, not a pod's: `DEL` and `GC` leave it. IPv4
//! only for now (pod CIDRs and node IPs).

use std::net::{IpAddr, Ipv4Addr};

use ipnetwork::Ipv4Network;
use serde::Deserialize;
use serde_json::Value;

use crate::error::{CniError, ErrorCode};
use crate::names;
use strait_netlink::link::{self, Vxlan};
use strait_netlink::route::{self, Route};
use strait_netlink::{Netlink, neigh};

use super::routed::netlink_error;

/// Default VXLAN device name (not `strait*`, which names pod veths).
pub const DEFAULT_DEVICE: &str = "vxlan-strait";
/// Default VXLAN network identifier.
pub const DEFAULT_VNI: u32 = 1;
/// Default UDP port (IANA's VXLAN port).
pub const DEFAULT_PORT: u16 = 4789;

/// Another node: its pod CIDR and the underlay address to tunnel to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    /// The pods of that node.
    pub pod_cidr: Ipv4Network,
    /// The node's underlay address.
    pub node_ip: Ipv4Addr,
}

/// The validated `vxlan` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VxlanConfig {
    /// Device name.
    pub device: String,
    /// VXLAN network identifier (1..=16777215).
    pub vni: u32,
    /// UDP port.
    pub port: u16,
    /// This node's underlay address.
    pub local_ip: Ipv4Addr,
    /// The other nodes (an entry for this node itself is skipped).
    pub peers: Vec<Peer>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawPeer {
    #[serde(rename = "podCIDR")]
    pod_cidr: String,
    #[serde(rename = "nodeIP")]
    node_ip: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawVxlan {
    device: Option<String>,
    vni: Option<u32>,
    port: Option<u16>,
    #[serde(rename = "localIP")]
    local_ip: Option<String>,
    #[serde(default)]
    peers: Vec<RawPeer>,
}

fn invalid(msg: String) -> CniError {
    CniError::new(ErrorCode::INVALID_NETWORK_CONFIG, msg).with_details(
        "vxlan needs {\"localIP\": \"<node IPv4>\", \"peers\": [{\"podCIDR\": \"10.244.2.0/24\", \"nodeIP\": \"<IPv4>\"}]}, optional vni, port, device",
    )
}

fn ipv4(what: &str, s: &str) -> Result<Ipv4Addr, CniError> {
    s.parse()
        .map_err(|e| invalid(format!("vxlan {what} {s:?}: {e} (IPv4 only)")))
}

impl VxlanConfig {
    /// Parse the `vxlan` value of the configuration (required in vxlan
    /// mode).
    pub fn parse(value: Option<&Value>) -> Result<Self, CniError> {
        let value = value.ok_or_else(|| invalid("mode vxlan needs a \"vxlan\" section".into()))?;
        let raw = RawVxlan::deserialize(value).map_err(|e| invalid(format!("vxlan: {e}")))?;
        let device = raw.device.unwrap_or_else(|| DEFAULT_DEVICE.to_owned());
        crate::env::validate_ifname(&device).map_err(|e| invalid(format!("vxlan device: {e}")))?;
        if device.starts_with(names::HOST_VETH_PREFIX) {
            return Err(invalid(format!(
                "vxlan device {device:?} must not start with {:?} (pod veths' prefix)",
                names::HOST_VETH_PREFIX
            )));
        }
        let vni = raw.vni.unwrap_or(DEFAULT_VNI);
        if !(1..=0x00ff_ffff).contains(&vni) {
            return Err(invalid(format!("vxlan vni {vni} is not in 1..16777215")));
        }
        let port = raw.port.unwrap_or(DEFAULT_PORT);
        if port == 0 {
            return Err(invalid("vxlan port 0".into()));
        }
        let local_ip = ipv4(
            "localIP",
            raw.local_ip
                .as_deref()
                .ok_or_else(|| invalid("vxlan has no \"localIP\"".into()))?,
        )?;
        let mut peers = Vec::with_capacity(raw.peers.len());
        for p in &raw.peers {
            let pod_cidr: Ipv4Network = p.pod_cidr.parse().map_err(|e| {
                invalid(format!(
                    "vxlan peer podCIDR {:?}: {e} (IPv4 only)",
                    p.pod_cidr
                ))
            })?;
            let node_ip = ipv4("peer nodeIP", &p.node_ip)?;
            if node_ip != local_ip {
                peers.push(Peer { pod_cidr, node_ip });
            }
        }
        Ok(Self {
            device,
            vni,
            port,
            local_ip,
            peers,
        })
    }

    /// The route to a peer's pods: via its CIDR's network address, which
    /// the permanent neighbour entry resolves to the peer's device MAC.
    fn route(peer: &Peer, index: u32) -> Route {
        Route {
            dst: IpAddr::V4(peer.pod_cidr.network()),
            prefix: peer.pod_cidr.prefix(),
            gateway: Some(IpAddr::V4(peer.pod_cidr.network())),
            oif: index,
        }
    }
}

/// Make sure the node's VXLAN device and every peer's route, neighbour
/// and fdb entry exist (create or replace: safe to run on every `ADD`,
/// concurrently too).
pub fn ensure(nl: &mut Netlink, cfg: &VxlanConfig, mtu: u32) -> Result<(), CniError> {
    let dev = match link::get(nl, &cfg.device).map_err(netlink_error)? {
        Some(d) => d,
        None => {
            match link::create_vxlan(
                nl,
                &Vxlan {
                    name: &cfg.device,
                    mac: names::vtep_mac(cfg.local_ip),
                    mtu,
                    vni: cfg.vni,
                    local: cfg.local_ip,
                    port: cfg.port,
                },
            ) {
                // A concurrent ADD made it first.
                Err(e) if !e.is_exists() => return Err(netlink_error(e)),
                _ => {}
            }
            link::get(nl, &cfg.device)
                .map_err(netlink_error)?
                .ok_or_else(|| {
                    CniError::new(
                        ErrorCode::NETLINK_FAILED,
                        format!("vxlan device {} vanished", cfg.device),
                    )
                })?
        }
    };
    if dev.kind != "vxlan" {
        return Err(CniError::new(
            ErrorCode::INTERFACE_EXISTS,
            format!(
                "{} exists but is a {:?}, not a vxlan device",
                cfg.device, dev.kind
            ),
        )
        .with_details("choose another vxlan.device name in the network config"));
    }
    if !dev.up {
        link::set_up(nl, dev.index).map_err(netlink_error)?;
    }
    for peer in &cfg.peers {
        let gw = IpAddr::V4(peer.pod_cidr.network());
        let mac = names::vtep_mac(peer.node_ip);
        neigh::add_permanent(nl, dev.index, gw, mac).map_err(netlink_error)?;
        neigh::replace_fdb(nl, dev.index, mac, IpAddr::V4(peer.node_ip)).map_err(netlink_error)?;
        route::replace(nl, &VxlanConfig::route(peer, dev.index)).map_err(netlink_error)?;
    }
    Ok(())
}

/// `CHECK`: the device is up and every peer's route goes through it.
pub fn verify(nl: &mut Netlink, cfg: &VxlanConfig) -> Result<(), CniError> {
    let drift = |msg: String| CniError::new(ErrorCode::CHECK_DRIFT, msg);
    let dev = link::get(nl, &cfg.device)
        .map_err(netlink_error)?
        .ok_or_else(|| drift(format!("vxlan device {} is missing", cfg.device)))?;
    if dev.kind != "vxlan" || !dev.up {
        return Err(drift(format!(
            "vxlan device {} is not an up vxlan device (kind {:?}, up {})",
            cfg.device, dev.kind, dev.up
        )));
    }
    let routes = route::list(nl, IpAddr::V4(cfg.local_ip)).map_err(netlink_error)?;
    for peer in &cfg.peers {
        let want = VxlanConfig::route(peer, dev.index);
        if !routes.contains(&want) {
            return Err(drift(format!(
                "route {} via {} dev {} (to node {}) is missing",
                peer.pod_cidr,
                peer.pod_cidr.network(),
                cfg.device,
                peer.node_ip
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn parse_defaults_and_skips_this_node() {
        let c = VxlanConfig::parse(Some(&json!({
            "localIP": "10.250.0.1",
            "peers": [{"podCIDR": "10.244.2.0/24", "nodeIP": "10.250.0.2"},
                      {"podCIDR": "10.244.1.0/24", "nodeIP": "10.250.0.1"}],
        })))
        .expect("ok");
        assert_eq!(
            (c.device.as_str(), c.vni, c.port),
            (DEFAULT_DEVICE, DEFAULT_VNI, DEFAULT_PORT)
        );
        assert_eq!(c.peers.len(), 1, "this node's own entry is skipped");
        assert_eq!(c.peers[0].pod_cidr.to_string(), "10.244.2.0/24");
    }

    #[test]
    fn bad_sections_are_code_7() {
        for bad in [
            None,
            Some(json!("x")),
            Some(json!({})),
            Some(json!({"localIP": "fd00::1"})),
            Some(json!({"localIP": "10.0.0.1", "vni": 0})),
            Some(json!({"localIP": "10.0.0.1", "vni": 16_777_216})),
            Some(json!({"localIP": "10.0.0.1", "port": 0})),
            Some(json!({"localIP": "10.0.0.1", "device": "strait-vx"})),
            Some(json!({"localIP": "10.0.0.1", "device": "a/b"})),
            Some(
                json!({"localIP": "10.0.0.1", "peers": [{"podCIDR": "fd00::/64", "nodeIP": "10.0.0.2"}]}),
            ),
            Some(json!({"localIP": "10.0.0.1", "peers": [{"podCIDR": "10.1.0.0/24"}]})),
            Some(json!({"localIP": "10.0.0.1", "typo": 1})),
        ] {
            let err = VxlanConfig::parse(bad.as_ref()).expect_err("bad");
            assert_eq!(err.code, ErrorCode::INVALID_NETWORK_CONFIG, "{bad:?}");
        }
    }
}
