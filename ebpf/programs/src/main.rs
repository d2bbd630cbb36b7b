//! Strait's socket-level load balancer: cgroup sock_addr programs that
//! translate a service VIP to a backend when a socket connects (or, for
//! unconnected UDP, sends), so the packet path carries no NAT and needs no
//! conntrack. Replies and getpeername() are mapped back to the VIP.
#![no_std]
#![no_main]

mod lb;
mod maps;
mod nodeport;

use aya_ebpf::{
    bindings::bpf_sock_addr,
    helpers::{bpf_get_socket_cookie, bpf_set_retval},
    macros::{cgroup_sock_addr, classifier},
    programs::{SockAddrContext, TcContext},
};
use strait_ebpf_common::{FAMILY_V4, FAMILY_V6, PROTO_TCP, PROTO_UDP, RevNatKey};

use crate::lb::{Verdict, select};

/// Let the call proceed (translated or not).
const ALLOW: i32 = 1;
/// Refuse the call.
const REJECT: i32 = 0;
/// errno for a service without endpoints, as kube-proxy's REJECT rule gives.
const ECONNREFUSED: i32 = 111;

/// The `user_ip6` words of an IPv4-mapped IPv6 address have this third word.
const V4_MAPPED_WORD: u32 = u32::from_ne_bytes([0, 0, 0xff, 0xff]);

/// Where a call is headed, read from the context in map representation.
struct Dest {
    addr: [u32; 4],
    family: u8,
    /// Came in as an IPv4-mapped address on an IPv6 socket.
    mapped: bool,
}

fn dest4(sa: &bpf_sock_addr) -> Dest {
    Dest {
        addr: [sa.user_ip4, 0, 0, 0],
        family: FAMILY_V4,
        mapped: false,
    }
}

fn dest6(sa: &bpf_sock_addr) -> Dest {
    let w = sa.user_ip6;
    if w[0] == 0 && w[1] == 0 && w[2] == V4_MAPPED_WORD {
        Dest {
            addr: [w[3], 0, 0, 0],
            family: FAMILY_V4,
            mapped: true,
        }
    } else {
        Dest {
            addr: w,
            family: FAMILY_V6,
            mapped: false,
        }
    }
}

fn write_addr(sa: &mut bpf_sock_addr, v6_socket: bool, mapped: bool, addr: [u32; 4]) {
    if !v6_socket {
        sa.user_ip4 = addr[0];
    } else if mapped {
        sa.user_ip6[0] = 0;
        sa.user_ip6[1] = 0;
        sa.user_ip6[2] = V4_MAPPED_WORD;
        sa.user_ip6[3] = addr[0];
    } else {
        sa.user_ip6[0] = addr[0];
        sa.user_ip6[1] = addr[1];
        sa.user_ip6[2] = addr[2];
        sa.user_ip6[3] = addr[3];
    }
}

/// Translates a connect or sendmsg. A service without backends (or a VIP
/// port the service does not define) fails the call with ECONNREFUSED.
fn forward(ctx: &SockAddrContext, v6_socket: bool) -> i32 {
    // SAFETY: the kernel passes a valid bpf_sock_addr for this program type.
    let sa = unsafe { &mut *ctx.sock_addr };
    let proto = sa.protocol as u8;
    if proto != PROTO_TCP && proto != PROTO_UDP {
        return ALLOW;
    }
    let dest = if v6_socket { dest6(sa) } else { dest4(sa) };
    let port = sa.user_port as u16;
    match select(ctx, dest.addr, dest.family, port, proto) {
        Verdict::Pass => ALLOW,
        Verdict::Refuse => {
            // SAFETY: helper without memory arguments.
            unsafe { bpf_set_retval(-ECONNREFUSED) };
            REJECT
        }
        Verdict::Translate(backend) => {
            write_addr(sa, v6_socket, dest.mapped, backend.addr);
            sa.user_port = u32::from(backend.port);
            let key = RevNatKey {
                // SAFETY: the context pointer is valid for this program type.
                cookie: unsafe { bpf_get_socket_cookie(ctx.sock_addr.cast()) },
                addr: backend.addr,
                port: backend.port,
                pad: [0; 6],
            };
            let value = strait_ebpf_common::RevNatValue {
                addr: dest.addr,
                port,
                pad: [0; 6],
            };
            // A full LRU evicts the oldest entry; failure only affects
            // what getpeername() reports, never where traffic goes.
            let _ = maps::REVNAT.insert(key, value, 0);
            ALLOW
        }
    }
}

/// Maps a reply source (recvmsg) or peer (getpeername) back to the VIP.
fn reverse(ctx: &SockAddrContext, v6_socket: bool) -> i32 {
    // SAFETY: the kernel passes a valid bpf_sock_addr for this program type.
    let sa = unsafe { &mut *ctx.sock_addr };
    let dest = if v6_socket { dest6(sa) } else { dest4(sa) };
    let key = RevNatKey {
        // SAFETY: the context pointer is valid for this program type.
        cookie: unsafe { bpf_get_socket_cookie(ctx.sock_addr.cast()) },
        addr: dest.addr,
        port: sa.user_port as u16,
        pad: [0; 6],
    };
    // SAFETY: plain-data value, copied out at once.
    if let Some(vip) = unsafe { maps::REVNAT.get(key) } {
        let (addr, port) = (vip.addr, vip.port);
        write_addr(sa, v6_socket, dest.mapped, addr);
        sa.user_port = u32::from(port);
    }
    ALLOW
}

/// connect(2) on an IPv4 socket: TCP and connected UDP.
#[cgroup_sock_addr(connect4)]
pub fn strait_connect4(ctx: SockAddrContext) -> i32 {
    forward(&ctx, false)
}

/// connect(2) on an IPv6 socket, including IPv4-mapped destinations.
#[cgroup_sock_addr(connect6)]
pub fn strait_connect6(ctx: SockAddrContext) -> i32 {
    forward(&ctx, true)
}

/// sendto/sendmsg on an unconnected IPv4 UDP socket.
#[cgroup_sock_addr(sendmsg4)]
pub fn strait_sendmsg4(ctx: SockAddrContext) -> i32 {
    forward(&ctx, false)
}

/// sendto/sendmsg on an unconnected IPv6 UDP socket.
#[cgroup_sock_addr(sendmsg6)]
pub fn strait_sendmsg6(ctx: SockAddrContext) -> i32 {
    forward(&ctx, true)
}

/// recvfrom/recvmsg on an IPv4 UDP socket: replies appear to come from the VIP.
#[cgroup_sock_addr(recvmsg4)]
pub fn strait_recvmsg4(ctx: SockAddrContext) -> i32 {
    reverse(&ctx, false)
}

/// recvfrom/recvmsg on an IPv6 UDP socket.
#[cgroup_sock_addr(recvmsg6)]
pub fn strait_recvmsg6(ctx: SockAddrContext) -> i32 {
    reverse(&ctx, true)
}

/// getpeername(2) on an IPv4 socket reports the VIP, as with kube-proxy.
#[cgroup_sock_addr(getpeername4)]
pub fn strait_getpeername4(ctx: SockAddrContext) -> i32 {
    reverse(&ctx, false)
}

/// getpeername(2) on an IPv6 socket.
#[cgroup_sock_addr(getpeername6)]
pub fn strait_getpeername6(ctx: SockAddrContext) -> i32 {
    reverse(&ctx, true)
}

#[cfg(not(test))]
/// NodePort / LoadBalancer / externalIP traffic entering the node.
#[classifier]
pub fn strait_tc_ingress(ctx: TcContext) -> i32 {
    nodeport::ingress(&ctx)
}

/// Replies of external flows to node-local backends leaving the node.
#[classifier]
pub fn strait_tc_egress(ctx: TcContext) -> i32 {
    nodeport::egress(&ctx)
}

#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

/// The kernel requires a GPL-compatible license for several helpers.
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
