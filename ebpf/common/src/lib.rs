//! Map keys and values shared by Strait's eBPF programs and user space.
//!
//! Every type here is `#[repr(C)]` with explicit padding, so both sides agree on
//! the byte layout without relying on compiler choices. No Rust enums or `bool`
//! live in map values: they are plain integers and flag bits. Addresses and
//! ports are kept in network byte order, exactly as the kernel hands them to
//! the programs, so the datapath never converts them.
//!
//! IPv4 and IPv6 share one set of maps: an address is four `u32` words, an
//! IPv4 address uses the first word and zeroes the rest, and `family` tells
//! them apart. One code path in the kernel serves both families.
#![no_std]

/// Bumped whenever a map's key or value layout changes. User space stores it
/// in the pinned `STRAIT_LAYOUT` map and rebuilds pinned maps written with
/// another version, so an upgrade never misreads old entries.
pub const LAYOUT_VERSION: u32 = 3;

/// IANA protocol number for TCP.
pub const PROTO_TCP: u8 = 6;
/// IANA protocol number for UDP.
pub const PROTO_UDP: u8 = 17;

/// `family` value of IPv4 keys (AF_INET).
pub const FAMILY_V4: u8 = 2;
/// `family` value of IPv6 keys (AF_INET6).
pub const FAMILY_V6: u8 = 10;

/// Names of the maps, shared so the loader pins and opens exactly what the
/// programs declare.
pub mod maps {
    /// Frontends (slot 0) and backend slots (1..=count).
    pub const SERVICES: &str = "STRAIT_SVC";
    /// Backend id to backend address.
    pub const BACKENDS: &str = "STRAIT_BE";
    /// ClientIP session affinity: (client netns, service) to backend (LRU).
    pub const AFFINITY: &str = "STRAIT_AFF";
    /// Reverse translation for UDP replies and getpeername (LRU).
    pub const REVNAT: &str = "STRAIT_REVNAT";
    /// One entry: the [`LAYOUT_VERSION`](super::LAYOUT_VERSION) the pinned maps use.
    pub const LAYOUT: &str = "STRAIT_LAYOUT";
    /// Connection tracking of external (NodePort, LoadBalancer, externalIP)
    /// flows: forward and reply directions (LRU).
    pub const CONNTRACK: &str = "STRAIT_CT";
    /// This node's addresses, where NodePorts are served.
    pub const NODE_ADDRS: &str = "STRAIT_NODE_ADDRS";
    /// Endpoint addresses on this node (no SNAT needed to reach them).
    pub const LOCAL_ENDPOINTS: &str = "STRAIT_LOCAL_EPS";
    /// One entry: [`NodeConfig`](super::NodeConfig).
    pub const NODE_CONFIG: &str = "STRAIT_NODE_CFG";
    /// Maglev lookup tables of external frontends, packed: a frontend's
    /// table starts at the offset its entry names and has
    /// [`maglev_table_size`](super::maglev_table_size)`(count)` backend ids.
    pub const MAGLEV: &str = "STRAIT_MAGLEV";
    /// `loadBalancerSourceRanges`: (frontend id, client CIDR) allowed (LPM).
    pub const SOURCE_RANGES: &str = "STRAIT_SRC_RANGES";
    /// Every map, in the order user space checks and removes pins.
    pub const ALL: [&str; 11] = [
        SOURCE_RANGES,
        MAGLEV,
        SERVICES,
        BACKENDS,
        AFFINITY,
        REVNAT,
        LAYOUT,
        CONNTRACK,
        NODE_ADDRS,
        LOCAL_ENDPOINTS,
        NODE_CONFIG,
    ];
}

/// Default capacity of the service map: frontends plus all their slots.
pub const SERVICES_MAX: u32 = 131_072;
/// Default capacity of the backend map.
pub const BACKENDS_MAX: u32 = 65_536;
/// Default capacity of the affinity LRU map.
pub const AFFINITY_MAX: u32 = 65_536;
/// Default capacity of the reverse-translation LRU map.
pub const REVNAT_MAX: u32 = 262_144;

/// Default capacity of the Maglev map, in entries (all tables together).
pub const MAGLEV_ENTRIES: u32 = 1 << 20;

/// Entries of the Maglev table of a frontend with `backends` backends: the
/// smallest of a fixed list of primes that is ≥ 100 × `backends` (the
/// Maglev paper's rule for even balance), at most 16 381. The datapath and
/// user space both call this, so they always agree.
#[inline(always)]
pub const fn maglev_table_size(backends: u16) -> u32 {
    match backends {
        0..=2 => 251,
        3..=5 => 509,
        6..=10 => 1_021,
        11..=20 => 2_039,
        21..=40 => 4_093,
        41..=81 => 8_191,
        _ => 16_381,
    }
}

/// Default capacity of the external-traffic conntrack LRU map.
pub const CONNTRACK_MAX: u32 = 262_144;
/// Capacity of the node address map.
pub const NODE_ADDRS_MAX: u32 = 256;
/// Default capacity of the node-local endpoint map.
pub const LOCAL_ENDPOINTS_MAX: u32 = 65_536;

/// Frontend flag: the service uses ClientIP session affinity.
pub const SVC_F_AFFINITY: u16 = 1 << 0;
/// Frontend flag: this entry only marks the address as a service VIP (port 0,
/// proto 0), so a connect to a port the service does not define is refused.
pub const SVC_F_VIP_MARKER: u16 = 1 << 1;

/// Frontend flag: traffic from outside the node (NodePort, LoadBalancer,
/// externalIP), handled by the tc programs.
pub const SVC_F_EXTERNAL: u16 = 1 << 2;
/// Frontend flag: `externalTrafficPolicy: Local`: only node-local backends
/// in the slots, the client address kept (no SNAT), dropped when none.
pub const SVC_F_EXT_LOCAL: u16 = 1 << 3;
/// Frontend flag: a NodePort, keyed by the wildcard address (all zero):
/// served on every node address; the socket hooks ignore it.
pub const SVC_F_NODEPORT: u16 = 1 << 4;

/// Frontend flag: only clients in the frontend's `loadBalancerSourceRanges`
/// (the source range map) may use it; others are dropped.
pub const SVC_F_SOURCE_RANGES: u16 = 1 << 5;

/// Capacity of the source range map (CIDRs over all frontends).
pub const SOURCE_RANGES_MAX: u32 = 16_384;

/// Conntrack flag: the flow's source was rewritten to a node address.
pub const CT_F_SNAT: u32 = 1 << 0;
/// Conntrack flag: a FIN or RST was seen in this direction; the agent
/// removes the entry after a short idle time.
pub const CT_F_CLOSING: u32 = 1 << 1;
/// Conntrack key direction: as the client sent it.
pub const CT_DIR_FORWARD: u8 = 0;
/// Conntrack key direction: as the backend's reply looks.
pub const CT_DIR_REPLY: u8 = 1;

/// Key of the conntrack map: the packet's addresses and ports as they
/// appear on the wire in one direction.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct CtKey {
    /// Source address (network byte order; IPv4 in word 0, rest zero).
    pub saddr: [u32; 4],
    /// Destination address (as `saddr`).
    pub daddr: [u32; 4],
    /// Source port (network byte order).
    pub sport: u16,
    /// Destination port (network byte order).
    pub dport: u16,
    /// [`PROTO_TCP`] or [`PROTO_UDP`].
    pub proto: u8,
    /// [`CT_DIR_FORWARD`] or [`CT_DIR_REPLY`].
    pub dir: u8,
    /// [`FAMILY_V4`] or [`FAMILY_V6`].
    pub family: u8,
    /// Explicit padding.
    pub pad: u8,
}

/// Value of the conntrack map. Forward entries: `addr1:port1` is the
/// backend, `addr2:port2` the SNAT source (with [`CT_F_SNAT`]). Reply
/// entries: `addr1:port1` is the frontend (the reply's new source),
/// `addr2:port2` the client (its new destination, with [`CT_F_SNAT`]).
/// Addresses have the key's family.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CtValue {
    /// See the type's description.
    pub addr1: [u32; 4],
    /// See the type's description.
    pub addr2: [u32; 4],
    /// See the type's description.
    pub port1: u16,
    /// See the type's description.
    pub port2: u16,
    /// The backend chosen (forward entries), so a removed backend ends the flow.
    pub backend_id: u32,
    /// `CT_F_*` bits.
    pub flags: u32,
    /// Explicit padding.
    pub pad: u32,
    /// `bpf_ktime_get_ns` of the last packet, for user-space expiry.
    pub last_seen_ns: u64,
}

/// The entries of a new external flow as the tc program builds them (in a
/// per-CPU scratch map, not on the BPF stack): the reply key, and the
/// forward and reply values.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CtScratch {
    /// Key of the reply direction.
    pub rkey: CtKey,
    /// Value of the forward direction.
    pub fv: CtValue,
    /// Value of the reply direction.
    pub rv: CtValue,
}

/// Node-wide settings of the tc programs.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NodeConfig {
    /// The IPv4 address SNATed flows leave with (network byte order); 0
    /// until set.
    pub primary_v4: u32,
    /// Explicit padding.
    pub pad: u32,
    /// The IPv6 address SNATed flows leave with (network byte order); all
    /// zero until set.
    pub primary_v6: [u32; 4],
}

/// Key of the node address and local endpoint maps: one address of either
/// family, so an IPv4 address never aliases an IPv6 one.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct AddrKey {
    /// The address (network byte order; IPv4 in word 0, rest zero).
    pub addr: [u32; 4],
    /// [`FAMILY_V4`] or [`FAMILY_V6`].
    pub family: u8,
    /// Explicit padding.
    pub pad: [u8; 3],
}

impl AddrKey {
    /// The key of `addr` in `family`.
    #[inline(always)]
    pub const fn new(addr: [u32; 4], family: u8) -> Self {
        Self {
            addr,
            family,
            pad: [0; 3],
        }
    }
}

/// Words of a source range map key: the frontend id, the family, then the
/// address; the prefix length covers the first two words (64 bits) plus
/// the CIDR's.
pub type SourceRangeData = [u32; 6];

/// Key of the service map. Slot 0 is the frontend entry that carries the
/// backend count; slots `1..=count` each name one backend. This is the Cilium
/// `lb4_key` model: one lookup finds the service, one more picks the backend.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ServiceKey {
    /// Service address in network byte order (IPv4 in word 0, rest zero).
    pub addr: [u32; 4],
    /// Service port in network byte order (0 for the VIP marker).
    pub port: u16,
    /// 0 for the frontend, 1..=count for backend slots.
    pub slot: u16,
    /// [`PROTO_TCP`] or [`PROTO_UDP`] (0 for the VIP marker).
    pub proto: u8,
    /// [`FAMILY_V4`] or [`FAMILY_V6`].
    pub family: u8,
    /// Explicit padding; always zero so keys hash identically on both sides.
    pub pad: [u8; 2],
}

/// Value of the service map. For slot 0 `count` is the number of backend
/// slots the socket hooks use; for a slot, `backend_id` names the backend.
/// In the frontend entry of an external frontend, `backend_id` is the
/// offset of its Maglev table in the Maglev map + 1 (0: none), and
/// `ext_offset`/`ext_count` say which slots external traffic uses.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServiceValue {
    /// Backend id for slots; 0 ("none") in the frontend entry.
    pub backend_id: u32,
    /// Number of backend slots; only meaningful in the frontend entry.
    pub count: u16,
    /// `SVC_F_*` flag bits.
    pub flags: u16,
    /// Session affinity timeout in seconds (with [`SVC_F_AFFINITY`]).
    pub affinity_timeout: u32,
    /// Frontend id, unique per frontend: keys affinity entries.
    pub id: u32,
    /// External frontends: how many slots the tc programs choose from
    /// (the Maglev table is built over them).
    pub ext_count: u16,
    /// External frontends: the slot before the first one the tc programs
    /// use. 0 when external traffic balances over the same slots as
    /// sockets; `count` with `externalTrafficPolicy: Local`, where slots
    /// `1..=count` hold every endpoint (pods and the node itself reach the
    /// service cluster-wide, as with kube-proxy) and the node-local ones
    /// follow.
    pub ext_offset: u16,
}

/// A backend: where a connection to a service is sent.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Backend {
    /// Backend address in network byte order (IPv4 in word 0, rest zero).
    pub addr: [u32; 4],
    /// Backend port in network byte order.
    pub port: u16,
    /// [`PROTO_TCP`] or [`PROTO_UDP`].
    pub proto: u8,
    /// [`FAMILY_V4`] or [`FAMILY_V6`].
    pub family: u8,
}

/// Key of the affinity map: one client (its network namespace, i.e. its pod)
/// and one frontend.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct AffinityKey {
    /// `bpf_get_netns_cookie` of the connecting socket.
    pub netns_cookie: u64,
    /// [`ServiceValue::id`] of the frontend.
    pub frontend_id: u32,
    /// Explicit padding.
    pub pad: u32,
}

/// Value of the affinity map.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AffinityValue {
    /// `bpf_ktime_get_ns` of the last connect that used this entry.
    pub last_used_ns: u64,
    /// The backend the client is pinned to.
    pub backend_id: u32,
    /// Explicit padding.
    pub pad: u32,
}

/// Key of the reverse-translation map: a socket and the backend it was sent to.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct RevNatKey {
    /// `bpf_get_socket_cookie` of the client socket.
    pub cookie: u64,
    /// Backend address in network byte order.
    pub addr: [u32; 4],
    /// Backend port in network byte order.
    pub port: u16,
    /// Explicit padding.
    pub pad: [u8; 6],
}

/// Value of the reverse-translation map: the service the client asked for.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RevNatValue {
    /// Service address in network byte order.
    pub addr: [u32; 4],
    /// Service port in network byte order.
    pub port: u16,
    /// Explicit padding.
    pub pad: [u8; 6],
}

#[cfg(feature = "user")]
mod user;
#[cfg(feature = "user")]
pub use user::{addr_from_words, addr_key, addr_to_words};

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::{align_of, size_of};

    /// Sizes equal the sum of the fields: no implicit padding anywhere.
    #[test]
    fn layouts_have_no_implicit_padding() {
        assert_eq!(size_of::<ServiceKey>(), 16 + 2 + 2 + 1 + 1 + 2);
        assert_eq!(size_of::<ServiceValue>(), 4 + 2 + 2 + 4 + 4 + 2 + 2);
        assert_eq!(size_of::<Backend>(), 16 + 2 + 1 + 1);
        assert_eq!(size_of::<AffinityKey>(), 8 + 4 + 4);
        assert_eq!(size_of::<AffinityValue>(), 8 + 4 + 4);
        assert_eq!(size_of::<RevNatKey>(), 8 + 16 + 2 + 6);
        assert_eq!(size_of::<RevNatValue>(), 16 + 2 + 6);
        assert_eq!(align_of::<RevNatKey>(), 8);
        assert_eq!(size_of::<CtKey>(), 16 + 16 + 2 + 2 + 1 + 1 + 1 + 1);
        assert_eq!(size_of::<CtValue>(), 16 + 16 + 2 + 2 + 4 + 4 + 4 + 8);
        assert_eq!(size_of::<NodeConfig>(), 4 + 4 + 16);
        assert_eq!(size_of::<AddrKey>(), 16 + 1 + 3);
    }
}
