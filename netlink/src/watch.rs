//! A socket subscribed to the kernel's address notifications (both
//! families), so the agent learns at once that a node address appeared or
//! went, instead of polling for it.
use std::io;
use std::os::fd::{AsRawFd, RawFd};

use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};

/// `RTMGRP_IPV4_IFADDR`: IPv4 address added or removed.
const RTMGRP_IPV4_IFADDR: u32 = 0x10;
/// `RTMGRP_IPV6_IFADDR`: IPv6 address added or removed.
const RTMGRP_IPV6_IFADDR: u32 = 0x100;

/// A non-blocking socket that becomes readable when an address of either
/// family is added to or removed from any interface of the network
/// namespace it was opened in.
pub struct AddressWatch {
    socket: Socket,
    buf: Vec<u8>,
}

impl AddressWatch {
    /// Subscribes in the calling thread's network namespace.
    pub fn open() -> io::Result<Self> {
        let mut socket = Socket::new(NETLINK_ROUTE)?;
        socket.bind(&SocketAddr::new(0, RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR))?;
        socket.set_non_blocking(true)?;
        Ok(Self {
            socket,
            buf: Vec::with_capacity(64 * 1024),
        })
    }

    /// Reads every notification waiting and returns how many datagrams
    /// there were. A receive queue that overflowed (`ENOBUFS`: changes
    /// were lost) counts as one, so the caller re-reads the addresses
    /// either way.
    pub fn drain(&mut self) -> io::Result<usize> {
        let mut n = 0;
        loop {
            self.buf.clear();
            match self.socket.recv(&mut self.buf, 0) {
                Ok(_) => n += 1,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(n),
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => n += 1,
                Err(e) => return Err(e),
            }
        }
    }
}

impl AsRawFd for AddressWatch {
    fn as_raw_fd(&self) -> RawFd {
        self.socket.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// In a test namespace: quiet before any change, and an address added
    /// there is reported.
    #[test]
    fn reports_an_address_added_in_its_namespace() {
        if !strait_tests::require_root() {
            return;
        }
        let ns = strait_tests::NetNs::new("addr-watch").expect("netns");
        ns.run(|| {
            let mut watch = AddressWatch::open().expect("subscribe");
            assert_eq!(watch.drain().expect("drain"), 0, "quiet before any change");
            let mut nl = crate::Netlink::open().expect("netlink");
            let lo = crate::link::get(&mut nl, "lo")
                .expect("lo")
                .expect("lo exists")
                .index;
            crate::addr::add(&mut nl, lo, "192.0.2.7".parse().unwrap(), 32).expect("add address");
            let mut seen = 0;
            for _ in 0..100 {
                seen += watch.drain().expect("drain");
                if seen > 0 {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            assert!(seen > 0, "the new address was reported");
        });
    }
}
