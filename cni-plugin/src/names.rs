//! Deterministic names and addresses derived from the attachment, so
//! `CHECK`, `DEL` and `GC` find what `ADD` made without any stored state.

/// Prefix of every host-side veth the plugin creates.
pub const HOST_VETH_PREFIX: &str = "strait";

/// The MAC of every host-side veth (the Calico convention): the pod's
/// static neighbour entry for its gateway points at it, so nothing has to
/// be looked up when wiring a pod.
pub const HOST_MAC: [u8; 6] = [0xee; 6];

/// FNV-1a, 64 bits: tiny, stable across Rust releases (unlike
/// `DefaultHasher`), and good enough to spread container ids.
fn fnv1a(parts: &[&str]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            // A zero byte between parts (xor with 0 is a no-op).
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        for b in part.bytes() {
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    hash
}

/// The host-side veth of an attachment: `strait` + 9 hex digits of a hash
/// of the container id and interface name (15 bytes, the kernel's limit).
pub fn host_veth(container_id: &str, ifname: &str) -> String {
    let hash = fnv1a(&[container_id, ifname]) >> 28;
    format!("{HOST_VETH_PREFIX}{hash:09x}")
}

/// The pod-side MAC of an attachment: locally administered, unicast, and
/// stable for the attachment (a pod that is re-added keeps its MAC).
pub fn pod_mac(container_id: &str, ifname: &str) -> [u8; 6] {
    let h = fnv1a(&[ifname, container_id]).to_be_bytes();
    [0x02, h[0], h[1], h[2], h[3], h[4]]
}

/// The MAC of a node's VXLAN device, derived from the node's IP so every
/// other node can compute it from the configuration alone: locally
/// administered, unicast, `02:53` then the four address bytes.
pub fn vtep_mac(node_ip: std::net::Ipv4Addr) -> [u8; 6] {
    let [a, b, c, d] = node_ip.octets();
    [0x02, 0x53, a, b, c, d]
}

/// `aa:bb:cc:dd:ee:ff`.
pub fn format_mac(mac: &[u8]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_veth_names_are_stable_and_fit() {
        let a = host_veth("4b3ef2a1c0d9", "eth0");
        assert_eq!(a, host_veth("4b3ef2a1c0d9", "eth0"));
        assert_eq!(a.len(), 15, "{a}");
        assert!(a.starts_with(HOST_VETH_PREFIX));
        assert_ne!(a, host_veth("4b3ef2a1c0d9", "eth1"));
        assert_ne!(a, host_veth("4b3ef2a1c0da", "eth0"));
        // Parts are separated: ("ab","c") and ("a","bc") differ.
        assert_ne!(host_veth("ab", "c"), host_veth("a", "bc"));
        // Pinned value: a change would orphan every existing pod's veth.
        assert_eq!(host_veth("c0ffee", "eth0"), "strait2ba21fd80");
    }

    #[test]
    fn pod_macs_are_local_unicast() {
        let mac = pod_mac("c0ffee", "eth0");
        assert_eq!(mac[0] & 0x01, 0, "unicast");
        assert_eq!(mac[0] & 0x02, 2, "locally administered");
        assert_eq!(mac, pod_mac("c0ffee", "eth0"));
        assert_ne!(mac, pod_mac("c0ffee", "eth1"));
        assert_eq!(format_mac(&HOST_MAC), "ee:ee:ee:ee:ee:ee");
        let vtep = vtep_mac(std::net::Ipv4Addr::new(10, 250, 0, 2));
        assert_eq!(format_mac(&vtep), "02:53:0a:fa:00:02");
    }
}
