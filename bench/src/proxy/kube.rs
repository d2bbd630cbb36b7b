//! The baselines: the benchmark's services written the way kube-proxy
//! writes them, by the generator the agent's `--mode iptables|nftables`
//! uses ([`strait_proxy::kube_layout`]): iptables mode
//! (`KUBE-SERVICES` → `KUBE-SVC-*` → `KUBE-SEP-*`, one
//! `iptables-restore --noflush`) and nftables mode (`table ip kube-proxy`,
//! one `nft -f`), plus the partial update kube-proxy sends when one
//! endpoint of one service changes. This file only describes the
//! benchmark's services and converts them.
use std::net::SocketAddrV4;

use strait_proxy::kube_layout::{
    Existing, Options, ServicePort, iptables,
    nftables::{self, NftExisting},
};

/// The cluster CIDR kube-proxy is configured with (`--cluster-cidr`).
pub const CLUSTER_CIDR: &str = "10.244.0.0/16";
/// The service CIDR (nftables mode drops traffic to unallocated ClusterIPs).
pub const SERVICE_CIDR: &str = "10.96.0.0/12";
/// The nftables table kube-proxy owns.
pub const NFT_TABLE: &str = nftables::TABLE;

/// One TCP service port of the benchmark with its endpoints.
#[derive(Clone, Debug)]
pub struct Service {
    /// Namespace.
    pub namespace: String,
    /// Service name.
    pub name: String,
    /// Port name.
    pub port_name: String,
    /// ClusterIP and port.
    pub vip: SocketAddrV4,
    /// Endpoints (TCP).
    pub endpoints: Vec<SocketAddrV4>,
}

impl Service {
    /// The generator's view of it: a ClusterIP port, Cluster policies.
    pub fn port(&self) -> ServicePort {
        ServicePort::cluster_ip(
            &self.namespace,
            &self.name,
            &self.port_name,
            self.vip,
            self.endpoints.clone(),
        )
    }
}

/// kube-proxy's flags in the benchmark.
pub fn options() -> Options {
    Options {
        cluster_cidr: CLUSTER_CIDR.parse().ok(),
        service_cidr: SERVICE_CIDR.parse().ok(),
    }
}

fn ports(services: &[Service]) -> Vec<ServicePort> {
    services.iter().map(Service::port).collect()
}

/// The full `iptables-restore --noflush` input of a first sync with
/// `services`, including the jumps from the built-in chains.
pub fn iptables_full(services: &[Service]) -> String {
    iptables::restore(&ports(services), &options(), &Existing::default(), None)
}

/// What kube-proxy's partial sync writes when `after` replaced `before`:
/// every top-level chain, the changed service's own chains, and `-X` of
/// the chains it no longer uses.
pub fn iptables_change(services_after: &[Service], before: &Service, after: &Service) -> String {
    let existing = Existing::after_full(&[before.port()], &options());
    iptables::restore(
        &ports(services_after),
        &options(),
        &existing,
        Some(&[after.port()]),
    )
}

/// Removes exactly what [`iptables_full`] (and any [`iptables_change`]s
/// leading to `services`) added: the jumps, then the chains.
pub fn iptables_cleanup(services: &[Service]) -> String {
    iptables::cleanup(&Existing::after_full(&ports(services), &options()))
}

/// The `nft -f` input of kube-proxy's first full sync with `services`.
pub fn nft_full(services: &[Service]) -> String {
    nftables::full(&ports(services), &options(), &NftExisting::default())
}

/// kube-proxy's nftables transaction when one service's endpoints change.
pub fn nft_change(before: &Service, after: &Service) -> String {
    nftables::change(&before.port(), &after.port(), &options())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_benchmark_services_get_kube_proxy_chains() {
        // proxier_test.go's ns1/svc1:p80; the name and probability tests
        // live with the generator (strait_proxy::kube_layout).
        let svc = Service {
            namespace: "ns1".into(),
            name: "svc1".into(),
            port_name: "p80".into(),
            vip: "172.30.0.41:80".parse().unwrap(),
            endpoints: vec!["10.180.0.1:80".parse().unwrap()],
        };
        let full = iptables_full(std::slice::from_ref(&svc));
        assert!(full.contains(
            "-A KUBE-SERVICES -m comment --comment \"ns1/svc1:p80 cluster IP\" -m tcp -p tcp -d 172.30.0.41 --dport 80 -j KUBE-SVC-XPGD46QRK7WJZT7O\n"
        ));
        let mut moved = svc.clone();
        moved.endpoints = vec!["10.180.0.2:80".parse().unwrap()];
        let change = iptables_change(std::slice::from_ref(&moved), &svc, &moved);
        assert!(
            change.contains("-X KUBE-SEP-SXIVWICOYRO3J4NJ\n"),
            "{change}"
        );
        assert!(nft_full(&[svc]).contains("service-ULMVA6XW-ns1/svc1/tcp/p80"));
    }
}
