//! Routes tagged with a routing protocol number (`rtm_protocol`): how a
//! daemon recognises its own routes in the main table, lists them, replaces
//! them and removes the ones it no longer wants without touching anyone
//! else's.

use std::net::IpAddr;

use netlink_packet_core::{NLM_F_CREATE, NLM_F_REPLACE};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};

use super::family::family;
use super::{Netlink, NetlinkError};

/// A route to a prefix via a gateway in the main table, tagged with a
/// routing protocol number; the kernel picks the output link from the
/// gateway, so the caller needs no interface name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProtoRoute {
    /// Destination network address.
    pub dst: IpAddr,
    /// Destination prefix length.
    pub prefix: u8,
    /// Next hop; `None` only for routes listed without one.
    pub gateway: Option<IpAddr>,
    /// The routing protocol number (`rtm_protocol`) the route carries.
    pub protocol: u8,
}

fn message(route: &ProtoRoute) -> RouteMessage {
    let mut msg = RouteMessage::default();
    msg.header.address_family = family(route.dst);
    msg.header.destination_prefix_length = route.prefix;
    msg.header.table = RouteHeader::RT_TABLE_MAIN;
    msg.header.protocol = RouteProtocol::from(route.protocol);
    msg.header.kind = RouteType::Unicast;
    msg.header.scope = RouteScope::Universe;
    msg.attributes
        .push(RouteAttribute::Destination(RouteAddress::from(route.dst)));
    if let Some(gw) = route.gateway {
        msg.attributes
            .push(RouteAttribute::Gateway(RouteAddress::from(gw)));
    }
    msg
}

/// Install a route, replacing any route to the same destination and
/// prefix in the main table (idempotent).
pub fn replace(nl: &mut Netlink, route: &ProtoRoute) -> Result<(), NetlinkError> {
    nl.request(
        || {
            format!(
                "replacing route {}/{} via {:?} proto {}",
                route.dst, route.prefix, route.gateway, route.protocol
            )
        },
        RouteNetlinkMessage::NewRoute(message(route)),
        NLM_F_CREATE | NLM_F_REPLACE,
    )
}

/// Remove a route with this destination, prefix and protocol; a missing
/// route is success. The protocol in the request makes the kernel refuse
/// to delete a route with the same destination that someone else owns.
pub fn delete(nl: &mut Netlink, route: &ProtoRoute) -> Result<(), NetlinkError> {
    super::route::delete_message(nl, message(route), || {
        format!("deleting route {}/{}", route.dst, route.prefix)
    })
}

/// Every main-table route of `family_of`'s address family that carries
/// `protocol`.
pub fn list(
    nl: &mut Netlink,
    family_of: IpAddr,
    protocol: u8,
) -> Result<Vec<ProtoRoute>, NetlinkError> {
    Ok(super::route::list_main(nl, family_of, || {
        format!("listing routes of protocol {protocol}")
    })?
    .into_iter()
    .filter(|(_, p)| *p == protocol)
    .map(|(r, _)| ProtoRoute {
        dst: r.dst,
        prefix: r.prefix,
        gateway: r.gateway,
        protocol,
    })
    .collect())
}
