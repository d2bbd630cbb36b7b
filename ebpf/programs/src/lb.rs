//! Backend selection: the service lookup, session affinity and the random
//! pick over backend slots. User space computes everything; this only looks up.
use aya_ebpf::{
    helpers::{bpf_get_netns_cookie, bpf_get_prandom_u32, bpf_ktime_get_ns},
    programs::SockAddrContext,
};
use strait_ebpf_common::{
    AffinityKey, AffinityValue, Backend, FAMILY_V4, SVC_F_AFFINITY, SVC_F_NODEPORT, ServiceKey,
    ServiceValue,
};

use crate::maps::{AFFINITY, BACKENDS, LAYOUT, SERVICES, is_node_addr};

/// What to do with a connect or send.
pub enum Verdict {
    /// Not a service: leave the call alone.
    Pass,
    /// A service address without backends (or without this port): refuse.
    Refuse,
    /// Send it here instead.
    Translate(Backend),
}

const NS_PER_SEC: u64 = 1_000_000_000;

/// Looks up `addr:port/proto` and picks a backend.
#[inline(always)]
pub fn select(ctx: &SockAddrContext, addr: [u32; 4], family: u8, port: u16, proto: u8) -> Verdict {
    // Keep the layout map referenced so it is part of the object.
    let _ = LAYOUT.get_ptr(0);
    let mut key = ServiceKey {
        addr,
        port,
        slot: 0,
        proto,
        family,
        pad: [0; 2],
    };
    // SAFETY: plain-data value; copied before any map write.
    let found = unsafe { SERVICES.get(key) }.copied();
    // A NodePort reached from this node: at one of its addresses or, for
    // IPv4 only as with kube-proxy, at 127.0.0.0/8.
    if found.is_none()
        && ((family == FAMILY_V4 && is_loopback(addr[0])) || is_node_addr(addr, family))
    {
        let mut wildcard = key;
        wildcard.addr = [0; 4];
        // SAFETY: as above.
        if let Some(fe) = unsafe { SERVICES.get(wildcard) }.copied()
            && fe.flags & SVC_F_NODEPORT != 0
        {
            return balance(ctx, wildcard, &fe);
        }
    }
    let Some(frontend) = found else {
        // The VIP marker (port 0, proto 0) says the address is a service VIP,
        // so a port the service does not define is refused, not leaked.
        key.port = 0;
        key.proto = 0;
        // SAFETY: as above.
        return match unsafe { SERVICES.get(key) } {
            Some(_) => Verdict::Refuse,
            None => Verdict::Pass,
        };
    };
    // LoadBalancer IPs and externalIPs from inside the cluster: balanced
    // here like a ClusterIP, so the packet never needs the external path.
    balance(ctx, key, &frontend)
}

/// Picks a backend of a found frontend (affinity, or a random slot).
#[inline(always)]
fn balance(ctx: &SockAddrContext, key: ServiceKey, frontend: &ServiceValue) -> Verdict {
    if frontend.count == 0 {
        return Verdict::Refuse;
    }
    if frontend.flags & SVC_F_AFFINITY != 0 {
        return with_affinity(ctx, key, frontend);
    }
    match pick(key, frontend.count) {
        Some((_, backend)) => Verdict::Translate(backend),
        None => Verdict::Refuse,
    }
}

/// 127.0.0.0/8 (the address in network byte order).
#[inline(always)]
fn is_loopback(addr: u32) -> bool {
    addr.to_ne_bytes()[0] == 127
}

/// A random slot's backend, with its id.
#[inline(always)]
fn pick(mut key: ServiceKey, count: u16) -> Option<(u32, Backend)> {
    // SAFETY: helper without preconditions.
    let r = unsafe { bpf_get_prandom_u32() };
    key.slot = (r % u32::from(count)) as u16 + 1;
    // SAFETY: plain-data values, copied out at once.
    let id = unsafe { SERVICES.get(key) }?.backend_id;
    let backend = unsafe { BACKENDS.get(id) }?;
    Some((id, *backend))
}

#[inline(always)]
fn with_affinity(ctx: &SockAddrContext, key: ServiceKey, frontend: &ServiceValue) -> Verdict {
    // A pod is its own network namespace, so the netns cookie identifies the
    // client the way kube-proxy's source IP does.
    // SAFETY: the context pointer is valid for this program type.
    let netns_cookie = unsafe { bpf_get_netns_cookie(ctx.sock_addr.cast()) };
    let akey = AffinityKey {
        netns_cookie,
        frontend_id: frontend.id,
        pad: 0,
    };
    // SAFETY: helper without preconditions.
    let now = unsafe { bpf_ktime_get_ns() };
    let timeout = u64::from(frontend.affinity_timeout) * NS_PER_SEC;
    // SAFETY: plain-data value, copied out at once.
    if let Some(entry) = unsafe { AFFINITY.get(akey) }.copied()
        && now.saturating_sub(entry.last_used_ns) <= timeout
        // SAFETY: as above. A removed backend ends the affinity.
        && let Some(backend) = unsafe { BACKENDS.get(entry.backend_id) }.copied()
    {
        let refreshed = AffinityValue {
            last_used_ns: now,
            ..entry
        };
        let _ = AFFINITY.insert(akey, refreshed, 0);
        return Verdict::Translate(backend);
    }
    match pick(key, frontend.count) {
        Some((id, backend)) => {
            let entry = AffinityValue {
                last_used_ns: now,
                backend_id: id,
                pad: 0,
            };
            let _ = AFFINITY.insert(akey, entry, 0);
            Verdict::Translate(backend)
        }
        None => Verdict::Refuse,
    }
}
