//! kube-proxy's chain, set and endpoint names, so rules read (and diff)
//! exactly like a kube-proxy node's:
//! - iptables (`pkg/proxy/iptables/proxier.go`): `KUBE-SVC-`, `KUBE-SVL-`,
//!   `KUBE-EXT-`, `KUBE-FW-` + 16 chars of base32(sha256(port name +
//!   protocol)); `KUBE-SEP-` + 16 chars of base32(sha256(port name +
//!   protocol + endpoint));
//! - nftables (`pkg/proxy/nftables/proxier.go`): `service-`, `local-`,
//!   `external-`, `endpoint-`, `affinity-` + `hashAndTruncate` of
//!   `ns/name/proto/port[__ip/port]`.
use std::net::SocketAddrV4;

use data_encoding::BASE32;
use ring::digest::{SHA256, digest};

use super::model::ServicePort;

fn base32_sha256(input: &str) -> String {
    BASE32.encode(digest(&SHA256, input.as_bytes()).as_ref())
}

/// `portProtoHash`: the 16 characters shared by the per-service chains.
fn port_proto_hash(sp: &ServicePort) -> String {
    let h = base32_sha256(&format!("{}{}", sp.name_string(), sp.proto()));
    h[..16].to_owned()
}

/// `KUBE-SVC-<hash>`: the cluster-policy chain.
pub fn svc_chain(sp: &ServicePort) -> String {
    format!("KUBE-SVC-{}", port_proto_hash(sp))
}

/// `KUBE-SVL-<hash>`: the local-policy chain.
pub fn svl_chain(sp: &ServicePort) -> String {
    format!("KUBE-SVL-{}", port_proto_hash(sp))
}

/// `KUBE-EXT-<hash>`: where NodePort, external and load balancer IP traffic goes.
pub fn ext_chain(sp: &ServicePort) -> String {
    format!("KUBE-EXT-{}", port_proto_hash(sp))
}

/// `KUBE-SEP-<hash>`: one endpoint's DNAT chain.
pub fn sep_chain(sp: &ServicePort, ep: SocketAddrV4) -> String {
    let h = base32_sha256(&format!("{}{}{ep}", sp.name_string(), sp.proto()));
    format!("KUBE-SEP-{}", &h[..16])
}

/// kube-proxy's `probability(n)`: `%0.10f` of 1/n.
pub fn probability(n: usize) -> String {
    format!("{:.10}", 1.0 / n as f64)
}

/// nftables' longest name base kube-proxy keeps (`chainNameBaseLengthMax`).
const NAME_BASE_MAX: usize = 240;

/// kube-proxy's `hashAndTruncate`: 8 chars of base32(sha256(name)), `-`,
/// the name, cut to [`NAME_BASE_MAX`] with `...`.
fn hash_and_truncate(name: &str) -> String {
    let full = format!("{}-{name}", &base32_sha256(name)[..8]);
    if full.len() <= NAME_BASE_MAX {
        return full;
    }
    let mut cut = NAME_BASE_MAX - 3;
    while !full.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}...", &full[..cut])
}

/// `servicePortChainNameBase`: `ns/name/proto/port`, hashed and prefixed.
fn nft_service_base(sp: &ServicePort) -> String {
    hash_and_truncate(&format!(
        "{}/{}/{}/{}",
        sp.namespace,
        sp.name,
        sp.proto(),
        sp.port_name
    ))
}

/// `servicePortEndpointChainNameBase`: `ns/name/proto/port__ip/port`.
fn nft_endpoint_base(sp: &ServicePort, ep: SocketAddrV4) -> String {
    hash_and_truncate(&format!(
        "{}/{}/{}/{}__{}/{}",
        sp.namespace,
        sp.name,
        sp.proto(),
        sp.port_name,
        ep.ip(),
        ep.port()
    ))
}

/// `service-…`: the nftables cluster-policy chain.
pub fn nft_cluster_chain(sp: &ServicePort) -> String {
    format!("service-{}", nft_service_base(sp))
}

/// `local-…`: the nftables local-policy chain.
pub fn nft_local_chain(sp: &ServicePort) -> String {
    format!("local-{}", nft_service_base(sp))
}

/// `external-…`: the nftables external-traffic chain.
pub fn nft_external_chain(sp: &ServicePort) -> String {
    format!("external-{}", nft_service_base(sp))
}

/// `endpoint-…`: one endpoint's nftables DNAT chain.
pub fn nft_endpoint_chain(sp: &ServicePort, ep: SocketAddrV4) -> String {
    format!("endpoint-{}", nft_endpoint_base(sp, ep))
}

/// `affinity-…`: one endpoint's ClientIP affinity set.
pub fn nft_affinity_set(sp: &ServicePort, ep: SocketAddrV4) -> String {
    format!("affinity-{}", nft_endpoint_base(sp, ep))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc() -> ServicePort {
        ServicePort::cluster_ip(
            "ns1",
            "svc1",
            "p80",
            "172.30.0.41:80".parse().unwrap(),
            vec!["10.180.0.1:80".parse().unwrap()],
        )
    }

    #[test]
    fn chain_names_match_kube_proxy() {
        // Values from kube-proxy's own unit tests (proxier_test.go).
        let ep = "10.180.0.1:80".parse().unwrap();
        assert_eq!(svc_chain(&svc()), "KUBE-SVC-XPGD46QRK7WJZT7O");
        assert_eq!(ext_chain(&svc()), "KUBE-EXT-XPGD46QRK7WJZT7O");
        assert_eq!(svl_chain(&svc()), "KUBE-SVL-XPGD46QRK7WJZT7O");
        assert_eq!(sep_chain(&svc(), ep), "KUBE-SEP-SXIVWICOYRO3J4NJ");
        assert_eq!(
            nft_cluster_chain(&svc()),
            "service-ULMVA6XW-ns1/svc1/tcp/p80"
        );
        assert_eq!(
            nft_endpoint_chain(&svc(), ep),
            "endpoint-5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80"
        );
    }

    #[test]
    fn probabilities_are_formatted_like_kube_proxy() {
        assert_eq!(probability(5), "0.2000000000");
        assert_eq!(probability(3), "0.3333333333");
        assert_eq!(probability(2), "0.5000000000");
    }

    #[test]
    fn long_names_are_truncated_on_a_char_boundary() {
        let long = "é".repeat(200);
        let t = hash_and_truncate(&long);
        assert!(t.len() <= NAME_BASE_MAX && t.ends_with("..."), "{t}");
    }
}
