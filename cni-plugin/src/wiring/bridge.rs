//! Bridge mode, for people who want plain L2: pods share a Linux bridge on
//! the node and their subnet; the bridge holds each subnet's gateway
//! address, and pods route through it.

use std::net::IpAddr;

use crate::error::{CniError, ErrorCode};
use crate::ipam::RangeSet;
use crate::names;
use crate::netns::Netns;
use strait_netlink::link::{self, LinkState, VethEnd};
use strait_netlink::route::{self, Route};
use strait_netlink::{Netlink, addr};

use super::routed::{Wired, netlink_error};

/// Where one pod address sits: its subnet prefix and gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OnLink {
    /// The pod address.
    pub ip: IpAddr,
    /// The subnet's prefix length (the pod's address prefix).
    pub prefix: u8,
    /// The gateway on the bridge.
    pub gateway: IpAddr,
}

/// Place each address in its range's subnet; the options guarantee every
/// bridge-mode range has a gateway.
pub fn on_link(ips: &[IpAddr], sets: &[RangeSet]) -> Result<Vec<OnLink>, CniError> {
    ips.iter()
        .map(|&ip| {
            sets.iter()
                .flat_map(|s| &s.ranges)
                .find(|r| r.subnet.contains(ip))
                .and_then(|r| {
                    Some(OnLink {
                        ip,
                        prefix: r.subnet.prefix(),
                        gateway: r.gateway?,
                    })
                })
                .ok_or_else(|| {
                    CniError::new(
                        ErrorCode::INVALID_NETWORK_CONFIG,
                        format!("address {ip} is in no configured subnet with a gateway"),
                    )
                })
        })
        .collect()
}

/// The bridge, created (up, with each gateway address) if missing.
pub fn ensure_bridge(
    nl: &mut Netlink,
    name: &str,
    mtu: u32,
    addrs: &[OnLink],
) -> Result<LinkState, CniError> {
    let bridge = match link::get(nl, name).map_err(netlink_error)? {
        Some(b) => b,
        None => {
            // Two concurrent ADDs may both try: the loser finds it made.
            match link::create_bridge(nl, name, mtu) {
                Err(e) if !e.is_exists() => return Err(netlink_error(e)),
                _ => {}
            }
            link::get(nl, name).map_err(netlink_error)?.ok_or_else(|| {
                CniError::new(ErrorCode::NETLINK_FAILED, format!("bridge {name} vanished"))
            })?
        }
    };
    if bridge.kind != "bridge" {
        return Err(CniError::new(
            ErrorCode::INTERFACE_EXISTS,
            format!("{name} exists but is a {:?}, not a bridge", bridge.kind),
        )
        .with_details("choose another \"bridge\" name in the network config"));
    }
    if !bridge.up {
        link::set_up(nl, bridge.index).map_err(netlink_error)?;
    }
    for a in addrs {
        match addr::add(nl, bridge.index, a.gateway, a.prefix) {
            Err(e) if !e.is_exists() => return Err(netlink_error(e)),
            _ => {}
        }
    }
    Ok(bridge)
}

/// Create the veth, host end enslaved to `bridge`, pod end in `pod_ns`.
pub fn create_veth(
    host_nl: &mut Netlink,
    pod_ns: &Netns,
    bridge: &LinkState,
    container_id: &str,
    ifname: &str,
    mtu: u32,
) -> Result<Wired, CniError> {
    let host = names::host_veth(container_id, ifname);
    let pod_mac = names::pod_mac(container_id, ifname);
    link::create_veth(
        host_nl,
        &VethEnd {
            name: &host,
            // Bridge ports need distinct MACs: let the kernel pick.
            mac: None,
            netns_fd: None,
            controller: Some(bridge.index),
        },
        &VethEnd {
            name: ifname,
            mac: Some(pod_mac),
            netns_fd: Some(pod_ns.raw_fd()),
            controller: None,
        },
        mtu,
    )
    .map_err(netlink_error)?;
    Ok(Wired { host, pod_mac })
}

fn unspecified(ip: IpAddr) -> IpAddr {
    if ip.is_ipv4() {
        IpAddr::from([0u8; 4])
    } else {
        IpAddr::from([0u8; 16])
    }
}

/// Configure the pod end: up, its addresses, a default route per family
/// via the bridge's gateway.
pub fn configure(pod_nl: &mut Netlink, ifname: &str, addrs: &[OnLink]) -> Result<(), CniError> {
    let pod = link::get(pod_nl, ifname)
        .map_err(netlink_error)?
        .ok_or_else(|| {
            CniError::new(
                ErrorCode::NETLINK_FAILED,
                format!("{ifname} vanished from the pod"),
            )
        })?;
    link::set_up(pod_nl, pod.index).map_err(netlink_error)?;
    for a in addrs {
        addr::add(pod_nl, pod.index, a.ip, a.prefix).map_err(netlink_error)?;
        route::add(
            pod_nl,
            &Route {
                dst: unspecified(a.ip),
                prefix: 0,
                gateway: Some(a.gateway),
                oif: pod.index,
            },
        )
        .map_err(netlink_error)?;
    }
    Ok(())
}

/// `CHECK` in bridge mode: the host veth is a port of the bridge, the pod
/// has its addresses and default routes.
pub fn verify(
    host_nl: &mut Netlink,
    pod_nl: &mut Netlink,
    bridge_name: &str,
    container_id: &str,
    ifname: &str,
    addrs: &[OnLink],
) -> Result<(), CniError> {
    let drift = |msg: String| CniError::new(ErrorCode::CHECK_DRIFT, msg);
    let bridge = link::get(host_nl, bridge_name)
        .map_err(netlink_error)?
        .ok_or_else(|| drift(format!("bridge {bridge_name} is missing")))?;
    let host_name = names::host_veth(container_id, ifname);
    let host = link::get(host_nl, &host_name)
        .map_err(netlink_error)?
        .ok_or_else(|| drift(format!("host veth {host_name} is missing")))?;
    if host.controller != Some(bridge.index) {
        return Err(drift(format!(
            "host veth {host_name} is not a port of bridge {bridge_name}"
        )));
    }
    let pod = link::get(pod_nl, ifname)
        .map_err(netlink_error)?
        .ok_or_else(|| drift(format!("interface {ifname} is missing in the pod")))?;
    let have = addr::list(pod_nl, pod.index).map_err(netlink_error)?;
    for a in addrs {
        if !have.contains(&(a.ip, a.prefix)) {
            return Err(drift(format!(
                "address {}/{} is missing on {ifname}",
                a.ip, a.prefix
            )));
        }
        let routes = route::list(pod_nl, a.ip).map_err(netlink_error)?;
        if !routes
            .iter()
            .any(|r| r.prefix == 0 && r.gateway == Some(a.gateway) && r.oif == pod.index)
        {
            return Err(drift(format!(
                "default route via {} dev {ifname} is missing in the pod",
                a.gateway
            )));
        }
    }
    Ok(())
}
