//! Routes tagged with a routing protocol number (`rtm_protocol`): how a
//! daemon recognises its own routes in the main table, lists them, replaces
//! them and removes the ones it no longer wants without touching anyone
//! else's.

use std::net::IpAddr;

use netlink_packet_core::{NLM_F_CREATE, NLM_F_REPLACE};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

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

fn family(ip: IpAddr) -> AddressFamily {
    match ip {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    }
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
    match nl.request(
        || format!("deleting route {}/{}", route.dst, route.prefix),
        RouteNetlinkMessage::DelRoute(message(route)),
        0,
    ) {
        Err(e) if !e.is_not_found() => Err(e),
        _ => Ok(()),
    }
}

/// Every main-table route of `family_of`'s address family that carries
/// `protocol`.
pub fn list(
    nl: &mut Netlink,
    family_of: IpAddr,
    protocol: u8,
) -> Result<Vec<ProtoRoute>, NetlinkError> {
    let mut req = RouteMessage::default();
    req.header.address_family = family(family_of);
    let all = nl.dump(
        || format!("listing routes of protocol {protocol}"),
        RouteNetlinkMessage::GetRoute(req),
    )?;
    let unspecified = match family_of {
        IpAddr::V4(_) => IpAddr::from([0u8; 4]),
        IpAddr::V6(_) => IpAddr::from([0u8; 16]),
    };
    Ok(all
        .iter()
        .filter_map(|m| match m {
            RouteNetlinkMessage::NewRoute(r)
                if r.header.table == RouteHeader::RT_TABLE_MAIN
                    && u8::from(r.header.protocol) == protocol =>
            {
                let mut route = ProtoRoute {
                    dst: unspecified,
                    prefix: r.header.destination_prefix_length,
                    gateway: None,
                    protocol,
                };
                for attr in &r.attributes {
                    match attr {
                        RouteAttribute::Destination(a) => {
                            if let Some(ip) = route_ip(a) {
                                route.dst = ip;
                            }
                        }
                        RouteAttribute::Gateway(a) => route.gateway = route_ip(a),
                        _ => {}
                    }
                }
                Some(route)
            }
            _ => None,
        })
        .collect())
}

fn route_ip(addr: &RouteAddress) -> Option<IpAddr> {
    match addr {
        RouteAddress::Inet(v4) => Some(IpAddr::V4(*v4)),
        RouteAddress::Inet6(v6) => Some(IpAddr::V6(*v6)),
        _ => None,
    }
}
