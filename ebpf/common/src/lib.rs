//! Map keys and values shared by Strait's eBPF programs and user space.
//!
//! Every type here is `#[repr(C)]` with explicit padding, so both sides agree on
//! the byte layout without relying on compiler choices. No Rust enums or `bool`
//! live in map values: they are plain integers and flag bits. Addresses and
//! ports are kept in network byte order, exactly as the kernel hands them to
//! the programs, so the datapath never converts them.
#![no_std]

/// Bumped whenever a map's key or value layout changes. User space stores it in
/// the pinned `strait_layout` map and refuses to reuse pinned maps written with
/// another version, so an upgrade never misreads old entries.
pub const LAYOUT_VERSION: u32 = 1;

/// IANA protocol numbers as used in [`Service4Key::proto`].
pub const PROTO_TCP: u8 = 6;
/// IANA protocol number for UDP.
pub const PROTO_UDP: u8 = 17;

/// Names of the maps, shared so the loader pins and opens exactly what the
/// programs declare.
pub mod maps {
    /// Frontends (slot 0) and backend slots (1..=count) of IPv4 services.
    pub const SERVICES4: &str = "STRAIT_SVC4";
    /// Backend id to IPv4 backend address.
    pub const BACKENDS4: &str = "STRAIT_BE4";
}

/// Default capacity of the service map: frontends plus all their slots.
pub const SERVICES4_MAX: u32 = 65_536;
/// Default capacity of the backend map.
pub const BACKENDS4_MAX: u32 = 65_536;

/// Key of the IPv4 service map. Slot 0 is the frontend entry that carries the
/// backend count; slots `1..=count` each name one backend. This is the Cilium
/// `lb4_key` model: one lookup finds the service, one more picks the backend.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Service4Key {
    /// Service address in network byte order (as in `bpf_sock_addr.user_ip4`).
    pub addr: u32,
    /// Service port in network byte order.
    pub port: u16,
    /// 0 for the frontend, 1..=count for backend slots.
    pub slot: u16,
    /// [`PROTO_TCP`] or [`PROTO_UDP`].
    pub proto: u8,
    /// Reserved for the traffic scope (internal/external); 0 today.
    pub scope: u8,
    /// Explicit padding; always zero so keys hash identically on both sides.
    pub pad: [u8; 2],
}

impl Service4Key {
    /// Builds a key from host-order values, so callers cannot forget a byte swap.
    pub const fn new(addr: [u8; 4], port: u16, proto: u8, slot: u16) -> Self {
        Self {
            addr: u32::from_ne_bytes(addr),
            port: port.to_be(),
            slot,
            proto,
            scope: 0,
            pad: [0; 2],
        }
    }
}

/// Value of the IPv4 service map. For slot 0 `count` is the number of backend
/// slots and `backend_id` is 0; for a slot, `backend_id` names the backend.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Service4Value {
    /// Backend id for slots; 0 ("none") in the frontend entry.
    pub backend_id: u32,
    /// Number of backend slots; only meaningful in the frontend entry.
    pub count: u16,
    /// `SVC_F_*` flag bits.
    pub flags: u16,
    /// Session affinity timeout in seconds; 0 means no affinity.
    pub affinity_timeout: u32,
}

/// An IPv4 backend: where a connection to a service is sent.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Backend4 {
    /// Backend address in network byte order.
    pub addr: u32,
    /// Backend port in network byte order.
    pub port: u16,
    /// [`PROTO_TCP`] or [`PROTO_UDP`].
    pub proto: u8,
    /// `BE_F_*` flag bits.
    pub flags: u8,
}

impl Backend4 {
    /// Builds a backend from host-order values.
    pub const fn new(addr: [u8; 4], port: u16, proto: u8) -> Self {
        Self {
            addr: u32::from_ne_bytes(addr),
            port: port.to_be(),
            proto,
            flags: 0,
        }
    }
}

#[cfg(feature = "user")]
mod user {
    // SAFETY: all three types are #[repr(C)], Copy, contain only integers and
    // have no implicit padding (asserted by the layout tests below).
    unsafe impl aya::Pod for super::Service4Key {}
    unsafe impl aya::Pod for super::Service4Value {}
    unsafe impl aya::Pod for super::Backend4 {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::size_of;

    #[test]
    fn layouts_have_no_implicit_padding() {
        assert_eq!(size_of::<Service4Key>(), 4 + 2 + 2 + 1 + 1 + 2);
        assert_eq!(size_of::<Service4Value>(), 4 + 2 + 2 + 4);
        assert_eq!(size_of::<Backend4>(), 4 + 2 + 1 + 1);
    }

    #[test]
    fn keys_store_network_byte_order() {
        let k = Service4Key::new([10, 96, 0, 10], 80, PROTO_TCP, 0);
        assert_eq!(k.addr.to_ne_bytes(), [10, 96, 0, 10]);
        assert_eq!(k.port.to_ne_bytes(), [0, 80]);
        let b = Backend4::new([10, 244, 1, 2], 8080, PROTO_TCP);
        assert_eq!(b.port.to_ne_bytes(), 8080u16.to_be_bytes());
    }
}
