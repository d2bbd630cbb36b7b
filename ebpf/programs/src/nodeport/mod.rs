//! Traffic that enters the node from the network (NodePort, LoadBalancer
//! IPs, externalIPs) never passes through a pod's connect(), so it is
//! translated per packet by tc programs on the node's external interface:
//!
//! - ingress: a packet to a frontend picks a backend (by a hash of its
//!   5-tuple, so every node picks the same one), is DNATed to it and, when
//!   the backend is on another node and the policy is Cluster, SNATed to the
//!   node address with a port chosen free in the conntrack map. Replies of
//!   SNATed flows come back to this interface and are translated back here.
//! - egress: replies of flows to node-local backends (not SNATed) get the
//!   frontend address back as their source.
//!
//! IPv4 and IPv6 take the same path; addresses are four words either way.
//! A frontend without backends is handed to the node's
//! own stack, where nothing listens, so the client gets a TCP RST or ICMP
//! port unreachable instead of a timeout; with `externalTrafficPolicy:
//! Local` and no local backend the packet is dropped, as kube-proxy does.
mod packet;

use aya_ebpf::{
    bindings::{TC_ACT_OK, TC_ACT_SHOT},
    helpers::{bpf_ktime_get_ns, bpf_redirect_neigh},
    maps::lpm_trie::Key,
    programs::TcContext,
};
use strait_ebpf_common::{
    AffinityKey, AffinityValue, CT_DIR_FORWARD, CT_DIR_REPLY, CT_F_CLOSING, CT_F_SNAT, CtKey,
    CtValue, FAMILY_V4, SVC_F_AFFINITY, SVC_F_EXT_LOCAL, SVC_F_EXTERNAL, SVC_F_NODEPORT,
    SVC_F_SOURCE_RANGES, ServiceKey, ServiceValue, maglev_table_size,
};

use self::packet::{Packet, parse, rewrite};
use crate::maps::{
    AFFINITY, BACKENDS, CONNTRACK, CT_SCRATCH, MAGLEV, NODE_CONFIG, SERVICES, SOURCE_RANGES,
    is_local_endpoint, is_node_addr,
};

/// tc verdicts as the program returns them (the bindings type them
/// differently per target).
#[allow(clippy::unnecessary_cast)]
const OK: i32 = TC_ACT_OK as i32;
#[allow(clippy::unnecessary_cast)]
const SHOT: i32 = TC_ACT_SHOT as i32;

/// Top bit of an affinity key's first word: an external client address, not
/// a netns cookie.
const EXTERNAL_CLIENT: u64 = 1 << 63;

/// SNAT source ports: the Linux ephemeral range.
const NAT_PORT_MIN: u32 = 32_768;
const NAT_PORT_SPAN: u32 = 28_232;
const NAT_PORT_TRIES: u32 = 8;

/// A flow hash that every node computes the same way: the client's address
/// and port and the frontend as keyed in the map (a NodePort's wildcard, not
/// the node address the packet happened to reach).
#[inline(always)]
fn flow_hash(p: &Packet, frontend_addr: [u32; 4]) -> u32 {
    let mut h: u32 = 0x9e37_79b9;
    for word in [
        p.saddr[0],
        p.saddr[1],
        p.saddr[2],
        p.saddr[3],
        frontend_addr[0],
        frontend_addr[1],
        frontend_addr[2],
        frontend_addr[3],
        (u32::from(p.sport) << 16) | u32::from(p.dport),
        u32::from(p.proto),
    ] {
        h ^= word;
        h = h.wrapping_mul(0x85eb_ca6b);
        h ^= h >> 13;
        h = h.wrapping_mul(0xc2b2_ae35);
        h ^= h >> 16;
    }
    h
}

/// The external client as an affinity key's first word: its IPv4 address,
/// or an IPv6 address folded to 63 bits (two clients folding alike only
/// share a pin), with [`EXTERNAL_CLIENT`] set.
#[inline(always)]
fn client_id(p: &Packet) -> u64 {
    let a = p.saddr;
    let folded = if p.family == FAMILY_V4 {
        u64::from(a[0])
    } else {
        (u64::from(a[0] ^ a[2]) << 32 | u64::from(a[1] ^ a[3])) & !EXTERNAL_CLIENT
    };
    EXTERNAL_CLIENT | folded
}

/// The conntrack entry of `key`, its last-seen time refreshed in place (and
/// marked closing on a FIN or RST, so the agent expires it soon).
#[inline(always)]
fn touch(key: &CtKey, now: u64, closing: bool) -> Option<CtValue> {
    let ptr = CONNTRACK.get_ptr_mut(key)?;
    // SAFETY: the pointer is into the map value; the kernel keeps it valid
    // for this program run. Concurrent writers only race on the timestamp.
    unsafe {
        (*ptr).last_seen_ns = now;
        if closing {
            (*ptr).flags |= CT_F_CLOSING;
        }
        Some(*ptr)
    }
}

/// Whether the client is in the frontend's `loadBalancerSourceRanges`.
#[inline(always)]
fn source_allowed(fe: &ServiceValue, p: &Packet) -> bool {
    let a = p.saddr;
    let key = Key::new(192, [fe.id, u32::from(p.family), a[0], a[1], a[2], a[3]]);
    SOURCE_RANGES.get(&key).copied().unwrap_or(0) != 0
}

/// The external frontend the packet is addressed to.
#[inline(always)]
fn frontend(p: &Packet) -> Option<(ServiceKey, ServiceValue)> {
    let mut key = ServiceKey {
        addr: p.daddr,
        port: p.dport,
        slot: 0,
        proto: p.proto,
        family: p.family,
        pad: [0; 2],
    };
    // SAFETY: plain-data value, copied out at once.
    if let Some(v) = unsafe { SERVICES.get(key) }.copied()
        && v.flags & SVC_F_EXTERNAL != 0
    {
        return Some((key, v));
    }
    if !is_node_addr(p.daddr, p.family) {
        return None;
    }
    key.addr = [0; 4];
    // SAFETY: as above.
    let v = unsafe { SERVICES.get(key) }.copied()?;
    (v.flags & SVC_F_NODEPORT != 0).then_some((key, v))
}

/// The address this node SNATs flows of `family` to when they did not
/// arrive at a node address: the configured primary address.
#[inline(always)]
fn primary_addr(family: u8) -> Option<[u32; 4]> {
    let cfg = NODE_CONFIG.get(0)?;
    let addr = if family == FAMILY_V4 {
        [cfg.primary_v4, 0, 0, 0]
    } else {
        cfg.primary_v6
    };
    (addr != [0; 4]).then_some(addr)
}

/// tc ingress on the node's external interface.
#[inline(always)]
pub fn ingress(ctx: &TcContext) -> i32 {
    match try_ingress(ctx) {
        Ok(action) => action,
        Err(_) => SHOT,
    }
}

// The conntrack entries are passed to the map helpers by reference on
// purpose: by value they would be copied onto the 512-byte stack.
#[allow(clippy::needless_borrows_for_generic_args)]
#[inline(always)]
fn try_ingress(ctx: &TcContext) -> Result<i32, i64> {
    let Some(p) = parse(ctx) else {
        return Ok(OK);
    };
    // SAFETY: helper without preconditions.
    let now = unsafe { bpf_ktime_get_ns() };
    // An established flow first: the common case costs one conntrack
    // lookup. A packet to a port in the SNAT range is most likely a reply
    // of a SNATed flow, so that direction is tried first.
    // A SYN opening a flow is never a reply: it skips that lookup.
    let reply_first = is_nat_port(p.dport) && !p.opening;
    if reply_first && let Some(action) = snat_reply(ctx, &p, now)? {
        return Ok(action);
    }
    let forward = p.key(CT_DIR_FORWARD);
    if let Some(fv) = touch(&forward, now, p.closing)
        // SAFETY: plain-data value, copied out at once. A removed backend
        // ends the flow; it is placed again below.
        && unsafe { BACKENDS.get(fv.backend_id) }.copied().is_some()
    {
        return translate(ctx, &p, &fv);
    }
    if !reply_first
        && !p.opening
        && let Some(action) = snat_reply(ctx, &p, now)?
    {
        return Ok(action);
    }
    let Some((key, fe)) = frontend(&p) else {
        return Ok(OK);
    };
    if fe.flags & SVC_F_SOURCE_RANGES != 0 && !source_allowed(&fe, &p) {
        return Ok(SHOT);
    }
    if fe.ext_count == 0 {
        if fe.flags & SVC_F_EXT_LOCAL != 0 {
            return Ok(SHOT);
        }
        return reject(ctx, &p);
    }
    let hash = flow_hash(&p, key.addr);
    let affinity = (fe.flags & SVC_F_AFFINITY != 0).then(|| AffinityKey {
        // The client address stands where the socket hooks put the client's
        // netns cookie; the top bit keeps the two kinds of keys apart.
        netns_cookie: client_id(&p),
        frontend_id: fe.id,
        pad: 0,
    });
    let pinned = match affinity {
        Some(akey) => pinned_backend(akey, &fe, now),
        None => None,
    };
    let Some(backend_id) = pinned.or_else(|| pick(key, &fe, hash)) else {
        return reject(ctx, &p);
    };
    if let Some(akey) = affinity {
        let entry = AffinityValue {
            last_used_ns: now,
            backend_id,
            pad: 0,
        };
        let _ = AFFINITY.insert(akey, entry, 0);
    }
    // SAFETY: as above.
    let Some(backend) = (unsafe { BACKENDS.get(backend_id) }).copied() else {
        return reject(ctx, &p);
    };
    let local = is_local_endpoint(backend.addr, backend.family);
    let Some(scratch) = CT_SCRATCH.get_ptr_mut(0) else {
        return Ok(SHOT);
    };
    // SAFETY: the per-CPU slot is this program run's alone until it ends.
    let sc = unsafe { &mut *scratch };
    sc.fv = CtValue {
        addr1: backend.addr,
        port1: backend.port,
        backend_id,
        last_seen_ns: now,
        ..CtValue::default()
    };
    sc.rv = CtValue {
        addr1: p.daddr,
        port1: p.dport,
        addr2: p.saddr,
        port2: p.sport,
        backend_id,
        last_seen_ns: now,
        ..CtValue::default()
    };
    sc.rkey = CtKey {
        saddr: backend.addr,
        daddr: p.saddr,
        sport: backend.port,
        dport: p.sport,
        proto: p.proto,
        dir: CT_DIR_REPLY,
        family: p.family,
        pad: 0,
    };
    if !local && fe.flags & SVC_F_EXT_LOCAL == 0 {
        // The reply must come back through this node: SNAT to its address.
        let nat_addr = if is_node_addr(p.daddr, p.family) {
            p.daddr
        } else {
            match primary_addr(p.family) {
                Some(addr) => addr,
                None => return Ok(SHOT),
            }
        };
        sc.rkey.daddr = nat_addr;
        let mut found = false;
        let mut i = 0;
        while i < NAT_PORT_TRIES {
            let port =
                (NAT_PORT_MIN + (hash.wrapping_add(i.wrapping_mul(7919))) % NAT_PORT_SPAN) as u16;
            sc.rkey.dport = port.to_be();
            // SAFETY: as above.
            if unsafe { CONNTRACK.get(&sc.rkey) }.is_none() {
                found = true;
                break;
            }
            i += 1;
        }
        if !found {
            return Ok(SHOT);
        }
        sc.fv.flags = CT_F_SNAT;
        sc.fv.addr2 = nat_addr;
        sc.fv.port2 = sc.rkey.dport;
        sc.rv.flags = CT_F_SNAT;
    }
    let _ = CONNTRACK.insert(&sc.rkey, &sc.rv, 0);
    let _ = CONNTRACK.insert(forward, &sc.fv, 0);
    translate(ctx, &p, &sc.fv)
}

/// Whether `port` (network byte order) is in the range SNAT picks from.
#[inline(always)]
fn is_nat_port(port: u16) -> bool {
    let port = u32::from(u16::from_be(port));
    (NAT_PORT_MIN..NAT_PORT_MIN + NAT_PORT_SPAN).contains(&port)
}

/// A reply of a SNATed flow goes back to the client, from the frontend;
/// `None` when the packet is no such reply.
#[inline(always)]
fn snat_reply(ctx: &TcContext, p: &Packet, now: u64) -> Result<Option<i32>, i64> {
    match touch(&p.key(CT_DIR_REPLY), now, p.closing) {
        Some(rv) if rv.flags & CT_F_SNAT != 0 => {
            rewrite(ctx, p, true, rv.addr2, rv.port2)?;
            rewrite(ctx, p, false, rv.addr1, rv.port1)?;
            Ok(Some(redirect_out(ctx)))
        }
        _ => Ok(None),
    }
}

/// Applies a forward entry: DNAT, plus SNAT when the backend is elsewhere.
#[inline(always)]
fn translate(ctx: &TcContext, p: &Packet, fv: &CtValue) -> Result<i32, i64> {
    rewrite(ctx, p, true, fv.addr1, fv.port1)?;
    if fv.flags & CT_F_SNAT == 0 {
        // To a local pod: the node's forwarding takes it from here.
        return Ok(OK);
    }
    rewrite(ctx, p, false, fv.addr2, fv.port2)?;
    Ok(redirect_out(ctx))
}

/// Sends a packet that now carries a node address as its source straight
/// back out of the interface it came in on (the stack would drop it as a
/// martian), with the next hop's MAC from the neighbour table.
#[inline(always)]
fn redirect_out(ctx: &TcContext) -> i32 {
    // SAFETY: the context points at a valid __sk_buff for this program.
    let ifindex = unsafe { (*ctx.skb.skb).ifindex };
    // SAFETY: no parameters: the helper does the FIB lookup itself.
    unsafe { bpf_redirect_neigh(ifindex, core::ptr::null_mut(), 0, 0) as i32 }
}

/// The backend a ClientIP-affinity client is pinned to, while the pin is
/// fresh and the backend exists.
#[inline(always)]
fn pinned_backend(akey: AffinityKey, fe: &ServiceValue, now: u64) -> Option<u32> {
    // SAFETY: plain-data value, copied out at once.
    let entry = unsafe { AFFINITY.get(akey) }.copied()?;
    let timeout = u64::from(fe.affinity_timeout) * 1_000_000_000;
    if now.saturating_sub(entry.last_used_ns) > timeout {
        return None;
    }
    // SAFETY: as above.
    unsafe { BACKENDS.get(entry.backend_id) }?;
    Some(entry.backend_id)
}

/// The backend for a new flow: from the frontend's Maglev row when it has
/// one, else from one of the external slots by the same hash.
#[inline(always)]
fn pick(mut key: ServiceKey, fe: &ServiceValue, hash: u32) -> Option<u32> {
    if fe.backend_id != 0 {
        let index = (fe.backend_id - 1) + hash % maglev_table_size(fe.ext_count);
        if let Some(id) = MAGLEV.get(index)
            && *id != 0
        {
            return Some(*id);
        }
    }
    key.slot = fe.ext_offset + (hash % u32::from(fe.ext_count)) as u16 + 1;
    // SAFETY: plain-data value, copied out at once.
    unsafe { SERVICES.get(key) }.map(|slot| slot.backend_id)
}

/// Hands the packet to the node's own stack at a node address, where
/// nothing listens on the port: TCP gets a RST, UDP an ICMP (or ICMPv6)
/// port unreachable.
#[inline(always)]
fn reject(ctx: &TcContext, p: &Packet) -> Result<i32, i64> {
    if !is_node_addr(p.daddr, p.family)
        && let Some(addr) = primary_addr(p.family)
    {
        rewrite(ctx, p, true, addr, p.dport)?;
    }
    Ok(OK)
}

/// tc egress on the node's external interface: replies of flows to local
/// backends leave with the frontend as their source.
#[inline(always)]
pub fn egress(ctx: &TcContext) -> i32 {
    let Some(p) = parse(ctx) else {
        return OK;
    };
    // Only replies from a node-local backend are translated here: a small
    // map tells them apart before the large conntrack map is touched.
    if !is_local_endpoint(p.saddr, p.family) {
        return OK;
    }
    // SAFETY: helper without preconditions.
    let now = unsafe { bpf_ktime_get_ns() };
    let Some(rv) = touch(&p.key(CT_DIR_REPLY), now, p.closing) else {
        return OK;
    };
    if rv.flags & CT_F_SNAT != 0 {
        return OK;
    }
    match rewrite(ctx, &p, false, rv.addr1, rv.port1) {
        Ok(()) => OK,
        Err(_) => SHOT,
    }
}
