//! strait-netlink: netlink through netlink-packet-route on a small
//! synchronous socket: the few link, address, route and neighbour operations
//! the CNI plugin and the agent need. No async runtime, so the plugin stays
//! fast to exec.

pub mod addr;
mod family;
pub mod link;
pub mod neigh;
pub mod proto_route;
pub mod route;
pub mod socket;
pub mod watch;

pub use socket::{Netlink, NetlinkError};
pub use watch::AddressWatch;
