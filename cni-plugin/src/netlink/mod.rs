//! Netlink through netlink-packet-route on a small synchronous socket: the
//! few link, address, route and neighbour operations the plugin needs.

pub mod addr;
pub mod link;
pub mod neigh;
pub mod route;
pub mod socket;

pub use socket::{Netlink, NetlinkError};
