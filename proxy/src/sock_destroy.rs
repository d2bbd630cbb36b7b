//! Ends connected UDP sockets whose backend left its service.
//!
//! Socket-level load balancing translates a connected UDP socket once, at
//! connect(2); afterwards its datagrams go straight to the backend and no
//! hook sees them again. A DNS or statsd client would keep sending to a
//! removed backend forever. Like Cilium, the agent destroys such sockets
//! (`SOCK_DESTROY` over sock_diag, the mechanism behind `ss -K`), so the
//! client's next attempt reconnects through the service to a live backend.
//! Sockets are found in every network namespace of a process under the
//! agent's cgroup root, since each pod has its own.
use std::{
    collections::HashSet,
    fs::File,
    io,
    mem::size_of,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    os::unix::fs::MetadataExt,
    path::Path,
};

const SOCK_DIAG_BY_FAMILY: u16 = 20;
const SOCK_DESTROY: u16 = 21;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLMSG_HDR: usize = 16;
const SOCKID_LEN: usize = 48;
const REQ_LEN: usize = 8 + SOCKID_LEN;
/// `inet_diag_msg`: family, state, timer, retrans, id, expires, rqueue,
/// wqueue, uid, inode.
const DIAG_MSG_LEN: usize = 4 + SOCKID_LEN + 20;

/// Opens the network namespaces of every process in `cgroup_root` and its
/// descendants, one handle per namespace.
pub fn netns_under_cgroup(cgroup_root: &Path) -> Vec<File> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    let mut stack = vec![cgroup_root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        if let Ok(procs) = std::fs::read_to_string(dir.join("cgroup.procs")) {
            for pid in procs.lines() {
                let Ok(ns) = File::open(format!("/proc/{pid}/ns/net")) else {
                    continue; // the process exited meanwhile
                };
                if let Ok(meta) = ns.metadata()
                    && seen.insert((meta.dev(), meta.ino()))
                {
                    out.push(ns);
                }
            }
        }
        if let Ok(entries) = std::fs::read_dir(&dir) {
            stack.extend(
                entries
                    .flatten()
                    .filter(|e| e.path().is_dir())
                    .map(|e| e.path()),
            );
        }
    }
    out
}

/// Destroys connected UDP sockets aimed at any of `targets` in each of
/// `namespaces`; returns how many were destroyed.
pub fn destroy_udp_to(namespaces: &[File], targets: &[SocketAddr]) -> io::Result<usize> {
    if targets.is_empty() {
        return Ok(0);
    }
    let mut total = 0;
    for ns in namespaces {
        let ns = ns.try_clone()?;
        let targets = targets.to_vec();
        // setns affects only the calling thread: use a throwaway one.
        total += std::thread::scope(|s| {
            s.spawn(move || -> io::Result<usize> {
                // SAFETY: a valid namespace fd and a namespace type constant.
                if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                    return Err(io::Error::last_os_error());
                }
                destroy_here(&targets)
            })
            .join()
            .map_err(|_| io::Error::other("sock_diag thread panicked"))?
        })?;
    }
    Ok(total)
}

/// Destroys matching sockets in the calling thread's network namespace.
fn destroy_here(targets: &[SocketAddr]) -> io::Result<usize> {
    let sock = Diag::open()?;
    let mut destroyed = 0;
    for family in [libc::AF_INET as u8, libc::AF_INET6 as u8] {
        for (family, id) in sock.dump_udp(family)? {
            let Some(dst) = dst_of(family, &id) else {
                continue;
            };
            if targets.contains(&dst) {
                match sock.destroy(family, &id) {
                    Ok(()) => destroyed += 1,
                    // Closed meanwhile.
                    Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
                    Err(e) => return Err(e),
                }
            }
        }
    }
    Ok(destroyed)
}

/// The connected destination recorded in an `inet_diag_sockid`, with
/// IPv4-mapped IPv6 destinations reported as IPv4.
fn dst_of(family: u8, id: &[u8; SOCKID_LEN]) -> Option<SocketAddr> {
    let dport = u16::from_be_bytes([id[2], id[3]]);
    if dport == 0 {
        return None; // not connected
    }
    let dst = &id[20..36];
    let ip = if family == libc::AF_INET as u8 {
        IpAddr::V4(Ipv4Addr::new(dst[0], dst[1], dst[2], dst[3]))
    } else {
        let mut o = [0u8; 16];
        o.copy_from_slice(dst);
        let v6 = Ipv6Addr::from(o);
        v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4)
    };
    Some(SocketAddr::new(ip, dport))
}

/// A NETLINK_SOCK_DIAG socket.
struct Diag(OwnedFd);

impl Diag {
    fn open() -> io::Result<Diag> {
        // SAFETY: plain socket(2) call.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_SOCK_DIAG,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is a fresh descriptor we own.
        Ok(Diag(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    fn send(&self, msg_type: u16, flags: u16, req: &[u8; REQ_LEN]) -> io::Result<()> {
        let mut buf = Vec::with_capacity(NLMSG_HDR + REQ_LEN);
        buf.extend_from_slice(&((NLMSG_HDR + REQ_LEN) as u32).to_ne_bytes());
        buf.extend_from_slice(&msg_type.to_ne_bytes());
        buf.extend_from_slice(&flags.to_ne_bytes());
        buf.extend_from_slice(&1u32.to_ne_bytes()); // seq
        buf.extend_from_slice(&0u32.to_ne_bytes()); // pid: the kernel
        buf.extend_from_slice(req);
        // SAFETY: buf is valid for its length.
        let n = unsafe { libc::send(self.0.as_raw_fd(), buf.as_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        // SAFETY: buf is valid for writes of its length.
        let n = unsafe { libc::recv(self.0.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n as usize)
    }

    /// Every UDP socket of `family`, as (family, sockid).
    fn dump_udp(&self, family: u8) -> io::Result<Vec<(u8, [u8; SOCKID_LEN])>> {
        let req = request(family, None);
        let flags = (libc::NLM_F_REQUEST | libc::NLM_F_DUMP) as u16;
        self.send(SOCK_DIAG_BY_FAMILY, flags, &req)?;
        let mut out = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = self.recv(&mut buf)?;
            let mut off = 0;
            while off + NLMSG_HDR <= n {
                let len =
                    u32::from_ne_bytes(buf[off..off + 4].try_into().unwrap_or_default()) as usize;
                let kind = u16::from_ne_bytes([buf[off + 4], buf[off + 5]]);
                if len < NLMSG_HDR || off + len > n {
                    return Err(io::Error::other("malformed sock_diag reply"));
                }
                match kind {
                    NLMSG_DONE => return Ok(out),
                    NLMSG_ERROR => return Err(nl_error(&buf[off + NLMSG_HDR..off + len])),
                    _ if len >= NLMSG_HDR + DIAG_MSG_LEN => {
                        let body = &buf[off + NLMSG_HDR..off + len];
                        let mut id = [0u8; SOCKID_LEN];
                        id.copy_from_slice(&body[4..4 + SOCKID_LEN]);
                        out.push((body[0], id));
                    }
                    _ => {}
                }
                off += (len + 3) & !3;
            }
        }
    }

    fn destroy(&self, family: u8, id: &[u8; SOCKID_LEN]) -> io::Result<()> {
        let req = request(family, Some(id));
        let flags = (libc::NLM_F_REQUEST | libc::NLM_F_ACK) as u16;
        self.send(SOCK_DESTROY, flags, &req)?;
        let mut buf = [0u8; 1024];
        let n = self.recv(&mut buf)?;
        if n >= NLMSG_HDR + 4 && u16::from_ne_bytes([buf[4], buf[5]]) == NLMSG_ERROR {
            let e = nl_error(&buf[NLMSG_HDR..n]);
            if e.raw_os_error() == Some(0) {
                return Ok(());
            }
            return Err(e);
        }
        Ok(())
    }
}

/// An `inet_diag_req_v2` for UDP in every state, optionally for one socket.
fn request(family: u8, id: Option<&[u8; SOCKID_LEN]>) -> [u8; REQ_LEN] {
    let mut req = [0u8; REQ_LEN];
    req[0] = family;
    req[1] = libc::IPPROTO_UDP as u8;
    req[4..8].copy_from_slice(&u32::MAX.to_ne_bytes()); // all states
    if let Some(id) = id {
        req[8..].copy_from_slice(id);
    }
    debug_assert_eq!(size_of::<[u8; REQ_LEN]>(), 56);
    req
}

fn nl_error(body: &[u8]) -> io::Error {
    let code = body
        .get(..4)
        .map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
        .unwrap_or(-libc::EIO);
    io::Error::from_raw_os_error(-code)
}
