//! Neighbour entries: the pod's permanent entry for its link-local gateway,
//! so it never has to resolve it, and the host's proxy entry that answers
//! for the gateway if the pod does.

use std::net::IpAddr;

use netlink_packet_core::{NLM_F_CREATE, NLM_F_REPLACE};
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use super::family::family;
use super::{Netlink, NetlinkError};

/// A neighbour message for `ip` on link `index`, state and flags left to
/// the caller.
fn message(index: u32, ip: IpAddr) -> NeighbourMessage {
    let mut msg = NeighbourMessage::default();
    msg.header.family = family(ip);
    msg.header.ifindex = index;
    msg.attributes
        .push(NeighbourAttribute::Destination(address(ip)));
    msg
}

fn address(ip: IpAddr) -> NeighbourAddress {
    match ip {
        IpAddr::V4(v4) => NeighbourAddress::Inet(v4),
        IpAddr::V6(v6) => NeighbourAddress::Inet6(v6),
    }
}

/// Install (or replace) a permanent neighbour entry `ip -> mac` on link
/// `index`.
pub fn add_permanent(
    nl: &mut Netlink,
    index: u32,
    ip: IpAddr,
    mac: [u8; 6],
) -> Result<(), NetlinkError> {
    let mut msg = message(index, ip);
    msg.header.state = NeighbourState::Permanent;
    msg.attributes
        .push(NeighbourAttribute::LinkLayerAddress(mac.to_vec()));
    nl.request(
        || format!("adding neighbour {ip}"),
        RouteNetlinkMessage::NewNeighbour(msg),
        NLM_F_CREATE | NLM_F_REPLACE,
    )
}

/// Answer neighbour solicitations for `ip` on link `index` on the pod's
/// behalf (`ip -6 neigh replace proxy <ip> dev <link>`): the IPv6 half of
/// proxy ARP, for a pod whose permanent gateway entry was flushed.
pub fn add_proxy(nl: &mut Netlink, index: u32, ip: IpAddr) -> Result<(), NetlinkError> {
    let mut msg = message(index, ip);
    msg.header.flags = NeighbourFlags::Proxy;
    nl.request(
        || format!("adding proxy neighbour {ip}"),
        RouteNetlinkMessage::NewNeighbour(msg),
        NLM_F_CREATE | NLM_F_REPLACE,
    )
}

/// Install (or replace) a permanent forwarding entry on VXLAN device
/// `index`: frames for `mac` are encapsulated to `remote` (`bridge fdb
/// replace <mac> dev <vxlan> dst <remote> self permanent`).
pub fn replace_fdb(
    nl: &mut Netlink,
    index: u32,
    mac: [u8; 6],
    remote: IpAddr,
) -> Result<(), NetlinkError> {
    let mut msg = NeighbourMessage::default();
    msg.header.family = AddressFamily::Bridge;
    msg.header.ifindex = index;
    msg.header.state = NeighbourState::Permanent;
    msg.header.flags = NeighbourFlags::Own;
    msg.attributes
        .push(NeighbourAttribute::LinkLayerAddress(mac.to_vec()));
    msg.attributes
        .push(NeighbourAttribute::Destination(address(remote)));
    nl.request(
        || format!("adding fdb entry to {remote}"),
        RouteNetlinkMessage::NewNeighbour(msg),
        NLM_F_CREATE | NLM_F_REPLACE,
    )
}
