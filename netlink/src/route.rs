//! Routes: the pod's default route via the link-local gateway and the
//! host's route to the pod; listing for `CHECK`.

use std::net::IpAddr;

use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteFlags, RouteHeader, RouteMessage, RouteProtocol, RouteScope,
    RouteType,
};

use super::family::family;
use super::{Netlink, NetlinkError};

/// A route as the plugin installs and checks it: destination prefix, an
/// optional gateway, and the output link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// Destination network address (`0.0.0.0` / `::` for default).
    pub dst: IpAddr,
    /// Destination prefix length.
    pub prefix: u8,
    /// Next hop, `None` for a route straight out of the link.
    pub gateway: Option<IpAddr>,
    /// Output interface index.
    pub oif: u32,
}

fn message(route: &Route) -> RouteMessage {
    let mut msg = RouteMessage::default();
    msg.header.address_family = family(route.dst);
    msg.header.destination_prefix_length = route.prefix;
    msg.header.table = RouteHeader::RT_TABLE_MAIN;
    msg.header.protocol = RouteProtocol::Boot;
    msg.header.kind = RouteType::Unicast;
    msg.header.scope = if route.gateway.is_some() {
        RouteScope::Universe
    } else {
        RouteScope::Link
    };
    if route.prefix > 0 {
        msg.attributes
            .push(RouteAttribute::Destination(RouteAddress::from(route.dst)));
    }
    if let Some(gw) = route.gateway {
        msg.attributes
            .push(RouteAttribute::Gateway(RouteAddress::from(gw)));
        // The IPv4 gateway (169.254.1.1) is on no subnet of the pod: it
        // is reachable because we say so. IPv6 link-local needs no flag.
        if gw.is_ipv4() {
            msg.header.flags = RouteFlags::Onlink;
        }
    }
    msg.attributes.push(RouteAttribute::Oif(route.oif));
    msg
}

/// Install a route (fails with `EEXIST` if it is already there).
pub fn add(nl: &mut Netlink, route: &Route) -> Result<(), NetlinkError> {
    nl.request(
        || format!("adding route {}/{}", route.dst, route.prefix),
        RouteNetlinkMessage::NewRoute(message(route)),
        NLM_F_CREATE | NLM_F_EXCL,
    )
}

/// Install a route, replacing one to the same destination (idempotent).
pub fn replace(nl: &mut Netlink, route: &Route) -> Result<(), NetlinkError> {
    nl.request(
        || format!("replacing route {}/{}", route.dst, route.prefix),
        RouteNetlinkMessage::NewRoute(message(route)),
        NLM_F_CREATE | NLM_F_REPLACE,
    )
}

/// Remove a route; a missing route is success.
pub fn delete(nl: &mut Netlink, route: &Route) -> Result<(), NetlinkError> {
    delete_message(nl, message(route), || {
        format!("deleting route {}/{}", route.dst, route.prefix)
    })
}

/// Every route of the main table in `family_of`'s address family.
pub fn list(nl: &mut Netlink, family_of: IpAddr) -> Result<Vec<Route>, NetlinkError> {
    Ok(list_main(nl, family_of, || "listing routes".to_owned())?
        .into_iter()
        .map(|(route, _protocol)| route)
        .collect())
}

/// The main table's routes of `family_of`'s family with the protocol
/// number each carries: one parser for [`list`] and
/// [`crate::proto_route::list`].
pub(crate) fn list_main(
    nl: &mut Netlink,
    family_of: IpAddr,
    what: impl Fn() -> String,
) -> Result<Vec<(Route, u8)>, NetlinkError> {
    let mut req = RouteMessage::default();
    req.header.address_family = family(family_of);
    let all = nl.dump(what, RouteNetlinkMessage::GetRoute(req))?;
    let unspecified = match family_of {
        IpAddr::V4(_) => IpAddr::from([0u8; 4]),
        IpAddr::V6(_) => IpAddr::from([0u8; 16]),
    };
    Ok(all
        .iter()
        .filter_map(|m| match m {
            RouteNetlinkMessage::NewRoute(r) if r.header.table == RouteHeader::RT_TABLE_MAIN => {
                let mut route = Route {
                    dst: unspecified,
                    prefix: r.header.destination_prefix_length,
                    gateway: None,
                    oif: 0,
                };
                for attr in &r.attributes {
                    match attr {
                        RouteAttribute::Destination(a) => {
                            if let Some(ip) = route_ip(a) {
                                route.dst = ip;
                            }
                        }
                        RouteAttribute::Gateway(a) => route.gateway = route_ip(a),
                        RouteAttribute::Oif(i) => route.oif = *i,
                        _ => {}
                    }
                }
                Some((route, u8::from(r.header.protocol)))
            }
            _ => None,
        })
        .collect())
}

/// Sends a route deletion; a route already gone is success.
pub(crate) fn delete_message(
    nl: &mut Netlink,
    msg: RouteMessage,
    what: impl FnOnce() -> String,
) -> Result<(), NetlinkError> {
    match nl.request(what, RouteNetlinkMessage::DelRoute(msg), 0) {
        Err(e) if !e.is_not_found() => Err(e),
        _ => Ok(()),
    }
}

fn route_ip(addr: &RouteAddress) -> Option<IpAddr> {
    match addr {
        RouteAddress::Inet(v4) => Some(IpAddr::V4(*v4)),
        RouteAddress::Inet6(v6) => Some(IpAddr::V6(*v6)),
        _ => None,
    }
}
