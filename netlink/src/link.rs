//! Links: create the pod's veth pair, look links up, delete them.

use std::os::fd::RawFd;

use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::RouteNetlinkMessage;
use std::net::Ipv4Addr;

use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVeth, InfoVxlan, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};

use super::{Netlink, NetlinkError};

/// What the plugin needs to know about an existing link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkState {
    /// The interface index.
    pub index: u32,
    /// The link kind (`veth`, `bridge`, ...), empty when the kernel gave none.
    pub kind: String,
    /// The hardware address.
    pub mac: Vec<u8>,
    /// Whether the link is administratively up.
    pub up: bool,
    /// The MTU.
    pub mtu: u32,
    /// The index of the bridge the link is enslaved to, if any.
    pub controller: Option<u32>,
}

/// One end of a veth pair to create.
#[derive(Debug, Clone)]
pub struct VethEnd<'a> {
    /// Interface name.
    pub name: &'a str,
    /// Hardware address, `None` to let the kernel pick one.
    pub mac: Option<[u8; 6]>,
    /// The namespace to create the end in (an open netns fd), `None` for
    /// the socket's own namespace.
    pub netns_fd: Option<RawFd>,
    /// The bridge to enslave the end to, by index.
    pub controller: Option<u32>,
}

fn up_header(msg: &mut LinkMessage) {
    msg.header.flags = LinkFlags::Up;
    msg.header.change_mask = LinkFlags::Up;
}

fn end_attributes(end: &VethEnd<'_>, mtu: u32) -> Vec<LinkAttribute> {
    let mut attrs = vec![
        LinkAttribute::IfName(end.name.to_owned()),
        LinkAttribute::Mtu(mtu),
    ];
    if let Some(mac) = end.mac {
        attrs.push(LinkAttribute::Address(mac.to_vec()));
    }
    if let Some(fd) = end.netns_fd {
        attrs.push(LinkAttribute::NetNsFd(fd));
    }
    if let Some(index) = end.controller {
        attrs.push(LinkAttribute::Controller(index));
    }
    attrs
}

/// Create a veth pair in one request, the host end up; the peer may be
/// created straight inside another namespace, so its name never clashes
/// with the host's links. The peer cannot be brought up in the same
/// request (the kernel opens it before the pair is linked: `ENOTCONN`), so
/// the caller sets it up with [`set_up`] from the peer's namespace.
pub fn create_veth(
    nl: &mut Netlink,
    host: &VethEnd<'_>,
    peer: &VethEnd<'_>,
    mtu: u32,
) -> Result<(), NetlinkError> {
    let mut peer_msg = LinkMessage::default();
    peer_msg.attributes = end_attributes(peer, mtu);
    let mut msg = LinkMessage::default();
    up_header(&mut msg);
    msg.attributes = end_attributes(host, mtu);
    msg.attributes.push(LinkAttribute::LinkInfo(vec![
        LinkInfo::Kind(InfoKind::Veth),
        LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer_msg))),
    ]));
    nl.request(
        || format!("creating veth {} (peer {})", host.name, peer.name),
        RouteNetlinkMessage::NewLink(msg),
        NLM_F_CREATE | NLM_F_EXCL,
    )
}

/// Create a Linux bridge, up. `EEXIST` when another call made it first.
pub fn create_bridge(nl: &mut Netlink, name: &str, mtu: u32) -> Result<(), NetlinkError> {
    let mut msg = LinkMessage::default();
    up_header(&mut msg);
    msg.attributes = vec![
        LinkAttribute::IfName(name.to_owned()),
        LinkAttribute::Mtu(mtu),
        LinkAttribute::LinkInfo(vec![LinkInfo::Kind(InfoKind::Bridge)]),
    ];
    nl.request(
        || format!("creating bridge {name}"),
        RouteNetlinkMessage::NewLink(msg),
        NLM_F_CREATE | NLM_F_EXCL,
    )
}

/// A VXLAN device to create: the node's tunnel endpoint.
#[derive(Debug, Clone, Copy)]
pub struct Vxlan<'a> {
    /// Interface name.
    pub name: &'a str,
    /// Hardware address (peers' neighbour entries point at it).
    pub mac: [u8; 6],
    /// MTU.
    pub mtu: u32,
    /// VXLAN network identifier.
    pub vni: u32,
    /// Source address of the encapsulated packets (the node's IP).
    pub local: Ipv4Addr,
    /// UDP destination port.
    pub port: u16,
}

/// Create a VXLAN device, up, with learning off (every remote MAC is a
/// static fdb entry). `EEXIST` when another call made it first.
pub fn create_vxlan(nl: &mut Netlink, vxlan: &Vxlan<'_>) -> Result<(), NetlinkError> {
    let mut msg = LinkMessage::default();
    up_header(&mut msg);
    msg.attributes = vec![
        LinkAttribute::IfName(vxlan.name.to_owned()),
        LinkAttribute::Mtu(vxlan.mtu),
        LinkAttribute::Address(vxlan.mac.to_vec()),
        LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Vxlan),
            LinkInfo::Data(InfoData::Vxlan(vec![
                InfoVxlan::Id(vxlan.vni),
                InfoVxlan::Local(vxlan.local),
                InfoVxlan::Port(vxlan.port),
                InfoVxlan::Learning(false),
            ])),
        ]),
    ];
    nl.request(
        || format!("creating vxlan {}", vxlan.name),
        RouteNetlinkMessage::NewLink(msg),
        NLM_F_CREATE | NLM_F_EXCL,
    )
}

/// Bring link `index` up.
pub fn set_up(nl: &mut Netlink, index: u32) -> Result<(), NetlinkError> {
    let mut msg = LinkMessage::default();
    msg.header.index = index;
    up_header(&mut msg);
    nl.request(
        || format!("setting link {index} up"),
        RouteNetlinkMessage::SetLink(msg),
        0,
    )
}

/// Look a link up by name; `Ok(None)` when there is none.
pub fn get(nl: &mut Netlink, name: &str) -> Result<Option<LinkState>, NetlinkError> {
    let mut msg = LinkMessage::default();
    msg.attributes.push(LinkAttribute::IfName(name.to_owned()));
    match nl.get(
        || format!("looking up link {name}"),
        RouteNetlinkMessage::GetLink(msg),
    ) {
        Ok(RouteNetlinkMessage::NewLink(link)) => Ok(Some(state(&link))),
        Ok(_) => Err(NetlinkError::Decode(format!(
            "unexpected answer looking up {name}"
        ))),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

/// The state of a link from the kernel's message.
pub fn state(link: &LinkMessage) -> LinkState {
    let mut out = LinkState {
        index: link.header.index,
        kind: String::new(),
        mac: Vec::new(),
        up: link.header.flags.contains(LinkFlags::Up),
        mtu: 0,
        controller: None,
    };
    for attr in &link.attributes {
        match attr {
            LinkAttribute::Address(mac) => out.mac.clone_from(mac),
            LinkAttribute::Mtu(mtu) => out.mtu = *mtu,
            LinkAttribute::Controller(c) if *c != 0 => out.controller = Some(*c),
            LinkAttribute::LinkInfo(infos) => {
                for info in infos {
                    if let LinkInfo::Kind(kind) = info {
                        out.kind = kind.to_string();
                    }
                }
            }
            _ => {}
        }
    }
    out
}

/// The names of every link in the namespace.
pub fn names(nl: &mut Netlink) -> Result<Vec<String>, NetlinkError> {
    let links = nl.dump(
        || "listing links".to_owned(),
        RouteNetlinkMessage::GetLink(LinkMessage::default()),
    )?;
    Ok(links
        .iter()
        .filter_map(|m| match m {
            RouteNetlinkMessage::NewLink(link) => link.attributes.iter().find_map(|a| match a {
                LinkAttribute::IfName(n) => Some(n.clone()),
                _ => None,
            }),
            _ => None,
        })
        .collect())
}

/// Delete a link by name. Returns whether it existed: deleting a link
/// that is already gone is success, so `DEL` can run twice.
pub fn delete(nl: &mut Netlink, name: &str) -> Result<bool, NetlinkError> {
    let mut msg = LinkMessage::default();
    msg.attributes.push(LinkAttribute::IfName(name.to_owned()));
    match nl.request(
        || format!("deleting link {name}"),
        RouteNetlinkMessage::DelLink(msg),
        0,
    ) {
        Ok(()) => Ok(true),
        Err(e) if e.is_not_found() => Ok(false),
        Err(e) => Err(e),
    }
}
