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
pub const LAYOUT_VERSION: u32 = 1;

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
    /// Every map, in the order user space checks and removes pins.
    pub const ALL: [&str; 5] = [SERVICES, BACKENDS, AFFINITY, REVNAT, LAYOUT];
}

/// Default capacity of the service map: frontends plus all their slots.
pub const SERVICES_MAX: u32 = 131_072;
/// Default capacity of the backend map.
pub const BACKENDS_MAX: u32 = 65_536;
/// Default capacity of the affinity LRU map.
pub const AFFINITY_MAX: u32 = 65_536;
/// Default capacity of the reverse-translation LRU map.
pub const REVNAT_MAX: u32 = 262_144;

/// Frontend flag: the service uses ClientIP session affinity.
pub const SVC_F_AFFINITY: u16 = 1 << 0;
/// Frontend flag: this entry only marks the address as a service VIP (port 0,
/// proto 0), so a connect to a port the service does not define is refused.
pub const SVC_F_VIP_MARKER: u16 = 1 << 1;

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
/// slots; for a slot, `backend_id` names the backend.
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
pub use user::{addr_from_words, addr_to_words};

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::{align_of, size_of};

    /// Sizes equal the sum of the fields: no implicit padding anywhere.
    #[test]
    fn layouts_have_no_implicit_padding() {
        assert_eq!(size_of::<ServiceKey>(), 16 + 2 + 2 + 1 + 1 + 2);
        assert_eq!(size_of::<ServiceValue>(), 4 + 2 + 2 + 4 + 4);
        assert_eq!(size_of::<Backend>(), 16 + 2 + 1 + 1);
        assert_eq!(size_of::<AffinityKey>(), 8 + 4 + 4);
        assert_eq!(size_of::<AffinityValue>(), 8 + 4 + 4);
        assert_eq!(size_of::<RevNatKey>(), 8 + 16 + 2 + 6);
        assert_eq!(size_of::<RevNatValue>(), 16 + 2 + 6);
        assert_eq!(align_of::<RevNatKey>(), 8);
    }
}
