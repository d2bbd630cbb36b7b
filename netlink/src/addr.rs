//! Interface addresses: give the pod its /32 (or /128), list what is there.

use std::net::IpAddr;

use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::address::{AddressAttribute, AddressFlags, AddressMessage};

use super::family::family;
use super::{Netlink, NetlinkError};

/// Add `ip/prefix` to the link `index`. IPv6 addresses skip duplicate
/// address detection: the address is ours by IPAM, and DAD would hold it
/// tentative for a second or more.
pub fn add(nl: &mut Netlink, index: u32, ip: IpAddr, prefix: u8) -> Result<(), NetlinkError> {
    let mut msg = message(index, ip, prefix);
    if ip.is_ipv6() {
        msg.attributes
            .push(AddressAttribute::Flags(AddressFlags::Nodad));
    }
    nl.request(
        || format!("adding address {ip}/{prefix}"),
        RouteNetlinkMessage::NewAddress(msg),
        NLM_F_CREATE | NLM_F_EXCL,
    )
}

/// Remove `ip/prefix` from the link `index`.
pub fn delete(nl: &mut Netlink, index: u32, ip: IpAddr, prefix: u8) -> Result<(), NetlinkError> {
    nl.request(
        || format!("removing address {ip}/{prefix}"),
        RouteNetlinkMessage::DelAddress(message(index, ip, prefix)),
        0,
    )
}

/// The message naming `ip/prefix` on link `index`, for adding or removing.
fn message(index: u32, ip: IpAddr, prefix: u8) -> AddressMessage {
    let mut msg = AddressMessage::default();
    msg.header.family = family(ip);
    msg.header.prefix_len = prefix;
    msg.header.index = index;
    msg.attributes.push(AddressAttribute::Local(ip));
    msg.attributes.push(AddressAttribute::Address(ip));
    msg
}

/// Every address on link `index`, with its prefix length.
pub fn list(nl: &mut Netlink, index: u32) -> Result<Vec<(IpAddr, u8)>, NetlinkError> {
    let all = nl.dump(
        || "listing addresses".to_owned(),
        RouteNetlinkMessage::GetAddress(AddressMessage::default()),
    )?;
    Ok(all
        .iter()
        .filter_map(|m| match m {
            RouteNetlinkMessage::NewAddress(a) if a.header.index == index => {
                a.attributes.iter().find_map(|attr| match attr {
                    AddressAttribute::Address(ip) => Some((*ip, a.header.prefix_len)),
                    _ => None,
                })
            }
            _ => None,
        })
        .collect())
}
