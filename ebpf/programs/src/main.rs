//! Strait's socket-level load balancer: cgroup sock_addr programs that
//! translate a service VIP to a backend when a socket connects, so the packet
//! path carries no NAT and needs no conntrack.
#![no_std]
#![no_main]

use aya_ebpf::{
    helpers::bpf_get_prandom_u32,
    macros::{cgroup_sock_addr, map},
    maps::HashMap,
    programs::SockAddrContext,
};
use strait_ebpf_common::{BACKENDS4_MAX, Backend4, SERVICES4_MAX, Service4Key, Service4Value};

/// Let the connect proceed (translated or not).
const ALLOW: i32 = 1;
/// Refuse the connect: the service exists but has no backend.
const REJECT: i32 = 0;

#[map(name = "STRAIT_SVC4")]
static SERVICES4: HashMap<Service4Key, Service4Value> = HashMap::pinned(SERVICES4_MAX, 0);

#[map(name = "STRAIT_BE4")]
static BACKENDS4: HashMap<u32, Backend4> = HashMap::pinned(BACKENDS4_MAX, 0);

/// connect(2) on an IPv4 socket inside the attached cgroup.
#[cgroup_sock_addr(connect4)]
pub fn strait_connect4(ctx: SockAddrContext) -> i32 {
    // SAFETY: the kernel passes a valid bpf_sock_addr for this program type.
    let sa = unsafe { &mut *ctx.sock_addr };
    let Ok(proto) = u8::try_from(sa.protocol) else {
        return ALLOW;
    };
    // user_port holds the port in network byte order in its low 16 bits.
    let mut key = Service4Key {
        addr: sa.user_ip4,
        port: sa.user_port as u16,
        slot: 0,
        proto,
        scope: 0,
        pad: [0; 2],
    };
    // SAFETY: map values are plain data; the reference does not outlive this call.
    let Some(frontend) = (unsafe { SERVICES4.get(key) }) else {
        return ALLOW;
    };
    let count = frontend.count;
    if count == 0 {
        return REJECT;
    }
    // SAFETY: helper without preconditions.
    let pick = unsafe { bpf_get_prandom_u32() } % u32::from(count);
    key.slot = pick as u16 + 1;
    let Some(slot) = (unsafe { SERVICES4.get(key) }) else {
        return REJECT;
    };
    let Some(backend) = (unsafe { BACKENDS4.get(slot.backend_id) }) else {
        return REJECT;
    };
    sa.user_ip4 = backend.addr;
    sa.user_port = u32::from(backend.port);
    ALLOW
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

/// The kernel requires a GPL-compatible license for several helpers.
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
