//! kube-proxy's iptables layout for the NodePort benchmark
//! (`type: NodePort`, `externalTrafficPolicy: Cluster`,
//! `--nodeport-addresses` unset): `KUBE-SERVICES` ends with `addrtype
//! LOCAL -j KUBE-NODEPORTS`, which jumps per node port to `KUBE-EXT-*`
//! (mark for masquerade, then `KUBE-SVC-*`). The rules come from the same
//! generator as the ClusterIP baselines ([`strait_proxy::kube_layout`]);
//! this file only adds the node port to the benchmark's services.
use strait_proxy::kube_layout::{Existing, ServicePort, iptables};

use super::super::kube::{Service, options};

/// A service with its node port.
#[derive(Clone, Debug)]
pub struct NodePortService {
    /// ClusterIP, endpoints and names.
    pub svc: Service,
    /// `spec.ports[0].nodePort`.
    pub node_port: u16,
}

impl NodePortService {
    /// The generator's view of it.
    fn port(&self) -> ServicePort {
        let mut port = self.svc.port();
        port.node_port = Some(self.node_port);
        port
    }
}

fn ports(services: &[NodePortService]) -> Vec<ServicePort> {
    services.iter().map(NodePortService::port).collect()
}

/// The full `iptables-restore --noflush` input of kube-proxy's first sync.
pub fn iptables_full(services: &[NodePortService]) -> String {
    iptables::restore(&ports(services), &options(), &Existing::default(), None)
}

/// Removes exactly what [`iptables_full`] added: the built-in jumps, then
/// every chain (flushed first, so references between them are gone).
pub fn iptables_cleanup(services: &[NodePortService]) -> String {
    iptables::cleanup(&Existing::after_full(&ports(services), &options()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_ports_reach_the_generator() {
        let svc = NodePortService {
            svc: Service {
                namespace: "ns1".into(),
                name: "svc1".into(),
                port_name: "p80".into(),
                vip: "172.30.0.41:80".parse().unwrap(),
                endpoints: vec!["10.180.0.1:80".parse().unwrap()],
            },
            node_port: 3001,
        };
        // The full kube-proxy comparison lives with the generator.
        let rules = iptables_full(std::slice::from_ref(&svc));
        assert!(rules.contains(
            "-A KUBE-NODEPORTS -m comment --comment ns1/svc1:p80 -m tcp -p tcp --dport 3001 -j KUBE-EXT-XPGD46QRK7WJZT7O\n"
        ));
        assert!(iptables_cleanup(&[svc]).contains("-X KUBE-EXT-XPGD46QRK7WJZT7O\n"));
    }
}
