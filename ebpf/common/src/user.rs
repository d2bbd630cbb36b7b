//! User-space helpers: `aya::Pod` for the map types and address conversion
//! between `IpAddr` and the maps' four network-order words.
extern crate std;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::{FAMILY_V4, FAMILY_V6};

// SAFETY: all types are #[repr(C)], Copy, contain only integers and have no
// implicit padding (asserted by the layout tests).
unsafe impl aya::Pod for crate::ServiceKey {}
unsafe impl aya::Pod for crate::ServiceValue {}
unsafe impl aya::Pod for crate::Backend {}
unsafe impl aya::Pod for crate::AffinityKey {}
unsafe impl aya::Pod for crate::AffinityValue {}
unsafe impl aya::Pod for crate::RevNatKey {}
unsafe impl aya::Pod for crate::RevNatValue {}
unsafe impl aya::Pod for crate::CtKey {}
unsafe impl aya::Pod for crate::CtValue {}
unsafe impl aya::Pod for crate::NodeConfig {}
unsafe impl aya::Pod for crate::AddrKey {}

/// The map representation of an address: words in network byte order (as the
/// kernel stores `user_ip4` / `user_ip6`) and the family.
pub fn addr_to_words(ip: IpAddr) -> ([u32; 4], u8) {
    match ip {
        IpAddr::V4(v4) => ([u32::from_ne_bytes(v4.octets()), 0, 0, 0], FAMILY_V4),
        IpAddr::V6(v6) => {
            let o = v6.octets();
            let w = |i: usize| u32::from_ne_bytes([o[i], o[i + 1], o[i + 2], o[i + 3]]);
            ([w(0), w(4), w(8), w(12)], FAMILY_V6)
        }
    }
}

/// The node address / local endpoint map key of `ip`.
pub fn addr_key(ip: IpAddr) -> crate::AddrKey {
    let (addr, family) = addr_to_words(ip);
    crate::AddrKey::new(addr, family)
}

/// The inverse of [`addr_to_words`]; `None` for an unknown family.
pub fn addr_from_words(words: [u32; 4], family: u8) -> Option<IpAddr> {
    match family {
        FAMILY_V4 => Some(IpAddr::V4(Ipv4Addr::from(words[0].to_ne_bytes()))),
        FAMILY_V6 => {
            let mut o = [0u8; 16];
            for (i, w) in words.iter().enumerate() {
                o[i * 4..i * 4 + 4].copy_from_slice(&w.to_ne_bytes());
            }
            Some(IpAddr::V6(Ipv6Addr::from(o)))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_network_order_and_round_trip() {
        let v4: IpAddr = "10.96.0.10".parse().unwrap();
        let (w, f) = addr_to_words(v4);
        assert_eq!(w[0].to_ne_bytes(), [10, 96, 0, 10]);
        assert_eq!(addr_from_words(w, f), Some(v4));
        let v6: IpAddr = "fd00:10:96::a".parse().unwrap();
        let (w, f) = addr_to_words(v6);
        assert_eq!(w[0].to_ne_bytes(), [0xfd, 0, 0, 0x10]);
        assert_eq!(addr_from_words(w, f), Some(v6));
        assert_eq!(addr_from_words(w, 99), None);
    }
}
