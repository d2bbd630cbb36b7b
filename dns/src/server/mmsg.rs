//! Batched datagram I/O with `recvmmsg(2)` / `sendmmsg(2)`. Under load most
//! of a DNS server's time is system calls, not answering: one call per
//! datagram each way costs more than the lookup. Moving up to [`BATCH`]
//! datagrams per call is what lets one core keep up with a busy node.

use std::io;
use std::mem;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::RawFd;

/// Datagrams per system call.
pub(super) const BATCH: usize = 32;

/// Receive buffers for one batch, reused for every call.
pub(super) struct RecvBatch {
    bufs: Vec<Vec<u8>>,
    addrs: Vec<libc::sockaddr_storage>,
    lens: Vec<usize>,
    count: usize,
}

impl RecvBatch {
    /// [`BATCH`] buffers of `size` bytes each.
    pub(super) fn new(size: usize) -> RecvBatch {
        RecvBatch {
            bufs: vec![vec![0; size]; BATCH],
            // SAFETY: all zeros is a valid (empty) sockaddr_storage.
            addrs: vec![unsafe { mem::zeroed() }; BATCH],
            lens: vec![0; BATCH],
            count: 0,
        }
    }

    /// Reads whatever is queued, up to [`BATCH`] datagrams, without
    /// blocking (`WouldBlock` when nothing is). Returns how many.
    pub(super) fn recv(&mut self, fd: RawFd) -> io::Result<usize> {
        // SAFETY: all zeros is a valid iovec / mmsghdr; every pointer set
        // below points into buffers that outlive the call.
        let mut iovs: [libc::iovec; BATCH] = unsafe { mem::zeroed() };
        let mut hdrs: [libc::mmsghdr; BATCH] = unsafe { mem::zeroed() };
        for (i, (iov, hdr)) in iovs.iter_mut().zip(hdrs.iter_mut()).enumerate() {
            iov.iov_base = self.bufs[i].as_mut_ptr().cast();
            iov.iov_len = self.bufs[i].len();
            hdr.msg_hdr.msg_name = std::ptr::from_mut(&mut self.addrs[i]).cast();
            hdr.msg_hdr.msg_namelen = socklen::<libc::sockaddr_storage>();
            hdr.msg_hdr.msg_iov = iov;
            hdr.msg_hdr.msg_iovlen = 1;
        }
        // SAFETY: `hdrs` holds BATCH initialised headers whose buffers and
        // address slots are owned by `self` and live through the call.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                hdrs.as_mut_ptr(),
                BATCH as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        let n = usize::try_from(n).map_err(|_| io::Error::last_os_error())?;
        for (len, hdr) in self.lens.iter_mut().zip(&hdrs).take(n) {
            *len = hdr.msg_len as usize;
        }
        self.count = n;
        Ok(n)
    }

    /// Datagram `i` of the last [`RecvBatch::recv`] and its sender (`None`
    /// for a sender that is not IPv4 or IPv6).
    pub(super) fn get(&self, i: usize) -> Option<(&[u8], SocketAddr)> {
        if i >= self.count {
            return None;
        }
        let bytes = self.bufs[i].get(..self.lens[i])?;
        Some((bytes, from_storage(&self.addrs[i])?))
    }
}

/// Sends as many of `replies` as the socket takes in one call without
/// blocking; returns how many went (the caller sends the rest one by one).
pub(super) fn send(fd: RawFd, replies: &[(Vec<u8>, SocketAddr)]) -> io::Result<usize> {
    let replies = &replies[..replies.len().min(BATCH)];
    if replies.is_empty() {
        return Ok(0);
    }
    let addrs: Vec<socket2::SockAddr> = replies.iter().map(|(_, to)| (*to).into()).collect();
    // SAFETY: as in `recv`; the pointers go into `replies` and `addrs`,
    // which outlive the call, and the kernel only reads through them.
    let mut iovs: [libc::iovec; BATCH] = unsafe { mem::zeroed() };
    let mut hdrs: [libc::mmsghdr; BATCH] = unsafe { mem::zeroed() };
    for (i, ((bytes, _), addr)) in replies.iter().zip(&addrs).enumerate() {
        iovs[i].iov_base = bytes.as_ptr().cast_mut().cast();
        iovs[i].iov_len = bytes.len();
        hdrs[i].msg_hdr.msg_name = addr.as_ptr().cast_mut().cast();
        hdrs[i].msg_hdr.msg_namelen = addr.len();
        hdrs[i].msg_hdr.msg_iov = &mut iovs[i];
        hdrs[i].msg_hdr.msg_iovlen = 1;
    }
    // SAFETY: the first `replies.len()` headers are initialised above.
    let n = unsafe {
        libc::sendmmsg(
            fd,
            hdrs.as_mut_ptr(),
            replies.len() as libc::c_uint,
            libc::MSG_DONTWAIT,
        )
    };
    usize::try_from(n).map_err(|_| io::Error::last_os_error())
}

fn socklen<T>() -> libc::socklen_t {
    mem::size_of::<T>() as libc::socklen_t
}

fn from_storage(storage: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match i32::from(storage.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in,
            // which is smaller than sockaddr_storage and less aligned.
            let sin: &libc::sockaddr_in = unsafe { &*std::ptr::from_ref(storage).cast() };
            Some(SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)),
                u16::from_be(sin.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: as above, for sockaddr_in6.
            let sin6: &libc::sockaddr_in6 = unsafe { &*std::ptr::from_ref(storage).cast() };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(sin6.sin6_addr.s6_addr),
                u16::from_be(sin6.sin6_port),
                sin6.sin6_flowinfo,
                sin6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use std::net::UdpSocket;
    use std::os::fd::AsRawFd;
    use std::time::Duration;

    use super::*;

    /// Datagrams from several senders, queued before the read, come back
    /// from one call each with its own bytes and sender; replies sent in
    /// one call reach each sender.
    #[test]
    fn one_call_moves_many_datagrams_each_with_its_peer() {
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        let senders: Vec<UdpSocket> = (0..5)
            .map(|_| UdpSocket::bind("127.0.0.1:0").unwrap())
            .collect();
        for (i, s) in senders.iter().enumerate() {
            s.send_to(
                format!("query {i}").as_bytes(),
                server.local_addr().unwrap(),
            )
            .unwrap();
        }
        let mut batch = RecvBatch::new(512);
        let n = batch.recv(server.as_raw_fd()).unwrap();
        assert_eq!(n, senders.len(), "all queued datagrams in one call");
        let mut replies = Vec::new();
        for (i, s) in senders.iter().enumerate() {
            let (bytes, peer) = batch.get(i).unwrap();
            assert_eq!(bytes, format!("query {i}").as_bytes());
            assert_eq!(peer, s.local_addr().unwrap());
            replies.push((format!("answer {i}").into_bytes(), peer));
        }
        assert!(batch.get(n).is_none());
        assert_eq!(send(server.as_raw_fd(), &replies).unwrap(), senders.len());
        for (i, s) in senders.iter().enumerate() {
            s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            let mut buf = [0u8; 64];
            let len = s.recv(&mut buf).unwrap();
            assert_eq!(&buf[..len], format!("answer {i}").as_bytes());
        }
        // Nothing queued: WouldBlock, not a hang.
        let err = batch.recv(server.as_raw_fd()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
    }

    #[test]
    fn ipv6_senders_keep_their_address() {
        let Ok(server) = UdpSocket::bind("[::1]:0") else {
            eprintln!("SKIPPED: no IPv6 loopback on this machine");
            return;
        };
        let sender = UdpSocket::bind("[::1]:0").unwrap();
        sender.send_to(b"q", server.local_addr().unwrap()).unwrap();
        let mut batch = RecvBatch::new(64);
        assert_eq!(batch.recv(server.as_raw_fd()).unwrap(), 1);
        assert_eq!(batch.get(0).unwrap().1, sender.local_addr().unwrap());
    }
}
