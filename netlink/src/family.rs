//! The address family of an IP address, as every rtnetlink request needs it.

use std::net::IpAddr;

use netlink_packet_route::AddressFamily;

/// `AF_INET` or `AF_INET6` for `ip`.
pub(crate) fn family(ip: IpAddr) -> AddressFamily {
    match ip {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    }
}
