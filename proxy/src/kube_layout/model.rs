//! What the kube-proxy layout is generated from: one [`ServicePort`] per
//! port of a proxyable Service, with the endpoints the cluster-wide and the
//! node-local policy would use, plus the few settings kube-proxy takes from
//! its own flags ([`Options`]).
use std::net::{Ipv4Addr, SocketAddrV4};

use ipnetwork::Ipv4Network;

/// kube-proxy's masquerade mark bit (`--iptables-masquerade-bit=14`).
pub const MASQ_MARK: &str = "0x4000";

/// The transport protocol of a service port (SCTP is not programmed).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

impl Protocol {
    /// The lower-case name iptables and nftables use (`-p tcp`, `meta l4proto tcp`).
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

/// One service port as kube-proxy sees it: its addresses, its policies and
/// the endpoints already selected for it (ready, else serving-and-terminating).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServicePort {
    /// Namespace of the Service.
    pub namespace: String,
    /// Name of the Service.
    pub name: String,
    /// `spec.ports[].name` (may be empty for a single unnamed port).
    pub port_name: String,
    /// TCP or UDP.
    pub protocol: Protocol,
    /// The (IPv4) ClusterIP.
    pub cluster_ip: Ipv4Addr,
    /// The service port.
    pub port: u16,
    /// The node port, for NodePort and LoadBalancer Services.
    pub node_port: Option<u16>,
    /// `spec.externalIPs` (IPv4).
    pub external_ips: Vec<Ipv4Addr>,
    /// `status.loadBalancer.ingress[].ip` (IPv4, LoadBalancer Services only).
    pub load_balancer_ips: Vec<Ipv4Addr>,
    /// `internalTrafficPolicy: Local`.
    pub internal_local: bool,
    /// `externalTrafficPolicy: Local`.
    pub external_local: bool,
    /// `sessionAffinity: ClientIP` timeout in seconds.
    pub affinity_seconds: Option<u32>,
    /// `spec.healthCheckNodePort` (LoadBalancer with Local policy).
    pub health_check_node_port: Option<u16>,
    /// Endpoints anywhere in the cluster, sorted.
    pub cluster_endpoints: Vec<SocketAddrV4>,
    /// Endpoints on this node, sorted.
    pub local_endpoints: Vec<SocketAddrV4>,
}

impl ServicePort {
    /// A plain TCP ClusterIP port with cluster-wide endpoints: what the
    /// proxy benchmark generates by the thousand.
    pub fn cluster_ip(
        namespace: &str,
        name: &str,
        port_name: &str,
        vip: SocketAddrV4,
        endpoints: Vec<SocketAddrV4>,
    ) -> ServicePort {
        ServicePort {
            namespace: namespace.into(),
            name: name.into(),
            port_name: port_name.into(),
            protocol: Protocol::Tcp,
            cluster_ip: *vip.ip(),
            port: vip.port(),
            node_port: None,
            external_ips: Vec::new(),
            load_balancer_ips: Vec::new(),
            internal_local: false,
            external_local: false,
            affinity_seconds: None,
            health_check_node_port: None,
            cluster_endpoints: endpoints,
            local_endpoints: Vec::new(),
        }
    }

    /// `ServicePortName.String()`: `ns/name:port` (`ns/name` when unnamed).
    pub fn name_string(&self) -> String {
        if self.port_name.is_empty() {
            format!("{}/{}", self.namespace, self.name)
        } else {
            format!("{}/{}:{}", self.namespace, self.name, self.port_name)
        }
    }

    /// The protocol's name.
    pub fn proto(&self) -> &'static str {
        self.protocol.as_str()
    }

    /// Reached by NodePort, external IPs or load balancer IPs.
    pub fn externally_accessible(&self) -> bool {
        self.node_port.is_some()
            || !self.external_ips.is_empty()
            || !self.load_balancer_ips.is_empty()
    }

    /// `externalTrafficPolicy: Local` that actually applies.
    pub fn external_policy_local(&self) -> bool {
        self.external_local && self.externally_accessible()
    }

    /// kube-proxy's `UsesClusterEndpoints`: internal policy Cluster, or any
    /// external access (Local external policy still short-circuits pod and
    /// node traffic to the cluster chain).
    pub fn uses_cluster_endpoints(&self) -> bool {
        !self.internal_local || self.externally_accessible()
    }

    /// kube-proxy's `UsesLocalEndpoints`.
    pub fn uses_local_endpoints(&self) -> bool {
        self.internal_local || self.external_policy_local()
    }

    /// The chains in-cluster and external traffic jump to, given the
    /// writer's names for the cluster-wide and the node-local endpoint
    /// chain: each traffic policy picks one, the same way in both writers.
    pub fn policy_chains<'a>(&self, cluster: &'a str, local: &'a str) -> (&'a str, &'a str) {
        let pick = |local_policy: bool| if local_policy { local } else { cluster };
        (
            pick(self.internal_local),
            pick(self.external_policy_local()),
        )
    }

    /// Usable endpoints exist somewhere in the cluster (else: REJECT).
    pub fn has_endpoints(&self) -> bool {
        !self.cluster_endpoints.is_empty() || !self.local_endpoints.is_empty()
    }

    /// Traffic to the ClusterIP has endpoints (else: REJECT or, for a
    /// Local internal policy without local endpoints, DROP).
    pub fn has_internal_endpoints(&self) -> bool {
        self.has_endpoints() && (!self.internal_local || !self.local_endpoints.is_empty())
    }

    /// External traffic has endpoints.
    pub fn has_external_endpoints(&self) -> bool {
        self.has_endpoints() && (!self.external_policy_local() || !self.local_endpoints.is_empty())
    }

    /// The cluster-policy chain is written.
    pub fn uses_cluster_chain(&self) -> bool {
        self.uses_cluster_endpoints() && !self.cluster_endpoints.is_empty()
    }

    /// The local-policy chain is written.
    pub fn uses_local_chain(&self) -> bool {
        self.uses_local_endpoints() && !self.local_endpoints.is_empty()
    }

    /// The external-traffic chain is written (also without external
    /// endpoints, for the short-circuit rules).
    pub fn uses_external_chain(&self) -> bool {
        self.has_endpoints() && self.externally_accessible()
    }

    /// Every endpoint some chain of this port jumps to, sorted, once each.
    pub fn reachable_endpoints(&self) -> Vec<SocketAddrV4> {
        let mut all = Vec::new();
        if self.uses_cluster_endpoints() {
            all.extend(&self.cluster_endpoints);
        }
        if self.uses_local_endpoints() {
            all.extend(&self.local_endpoints);
        }
        all.sort();
        all.dedup();
        all
    }

    /// Sort key: namespace, name, port name, protocol.
    pub fn key(&self) -> (&str, &str, &str, Protocol) {
        (&self.namespace, &self.name, &self.port_name, self.protocol)
    }
}

/// The settings kube-proxy takes from its flags.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Options {
    /// `--cluster-cidr`: traffic from outside it to a ClusterIP is
    /// masqueraded, and pod traffic to external destinations of a Local
    /// Service is short-circuited. `None`: kube-proxy's no-op local detector.
    pub cluster_cidr: Option<Ipv4Network>,
    /// The service CIDR; nftables mode drops traffic to unallocated
    /// ClusterIPs in it. `None`: no such rule.
    pub service_cidr: Option<Ipv4Network>,
}
