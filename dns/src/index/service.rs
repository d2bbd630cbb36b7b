//! Turn one Service and its EndpointSlices into the records DNS serves for
//! it. Pure functions of the cluster objects, so the index can recompute a
//! single service when it changes.

use std::net::IpAddr;

use hickory_proto::rr::Name;
use strait_cluster::conditions;
use strait_cluster::k8s_openapi::api::core::v1::Service;
use strait_cluster::k8s_openapi::api::discovery::v1::EndpointSlice;
use strait_cluster::service::cluster_ips;
use strait_cluster::service::{ServiceType, is_headless, publishes_not_ready_addresses};

use crate::name::Protocol;

/// One named port of a service (or of a headless endpoint): the SRV shape
/// `_<name>._<proto>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NamedPort {
    /// The port name, lowercase.
    pub name: Box<str>,
    /// The transport protocol.
    pub proto: Protocol,
    /// The port number: the service port for ClusterIP services, the
    /// endpoint port for headless ones (what a client connects to).
    pub port: u16,
}

/// One ready address of a headless service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EndpointRecord {
    /// The endpoint's hostname, or its dashed address when it has none (the
    /// "system-assigned identifier" of the specification), lowercase.
    pub label: Box<str>,
    /// `<label>.<svc>.<ns>.svc.<zone>.`, lowercase.
    pub name: Name,
    /// The address.
    pub ip: IpAddr,
    /// The named ports of the endpoint's slice.
    pub ports: Vec<NamedPort>,
}

/// What a service name resolves to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ServiceBody {
    /// ClusterIP, NodePort and LoadBalancer services: their virtual IPs.
    ClusterIp(Vec<IpAddr>),
    /// Headless services: their ready endpoints.
    Headless(Vec<EndpointRecord>),
    /// ExternalName services: the CNAME target.
    ExternalName(Name),
}

/// Everything DNS knows about one service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ServiceEntry {
    /// `<svc>.<ns>.svc.<zone>.`, lowercase.
    pub name: Name,
    /// The records behind the name.
    pub body: ServiceBody,
    /// The named ports of the Service (SRV records of ClusterIP services).
    pub ports: Vec<NamedPort>,
}

impl ServiceEntry {
    /// Whether the service name exists in DNS at all. A headless service
    /// without ready endpoints does not (the specification asks for
    /// NXDOMAIN).
    pub fn exists(&self) -> bool {
        !matches!(&self.body, ServiceBody::Headless(eps) if eps.is_empty())
    }

    /// The PTR names this service contributes: `(address, target)`.
    pub fn ptrs(&self) -> Vec<(IpAddr, Name)> {
        match &self.body {
            ServiceBody::ClusterIp(ips) => ips.iter().map(|ip| (*ip, self.name.clone())).collect(),
            ServiceBody::Headless(eps) => eps.iter().map(|e| (e.ip, e.name.clone())).collect(),
            ServiceBody::ExternalName(_) => Vec::new(),
        }
    }
}

/// Build the entry of `service` named `svc` in `ns`, or `None` when it
/// serves nothing (a ClusterIP service without a usable IP, an
/// ExternalName without a valid target) or cannot be named in DNS.
pub(crate) fn build<'a>(
    zone: &str,
    ns: &str,
    svc: &str,
    service: &Service,
    slices: impl IntoIterator<Item = &'a EndpointSlice>,
) -> Option<ServiceEntry> {
    let ns = ns.to_ascii_lowercase();
    let svc = svc.to_ascii_lowercase();
    let name = Name::from_ascii(format!("{svc}.{ns}.svc.{zone}.")).ok()?;
    let ports = service_ports(service);
    let body = if strait_cluster::service::service_type(service) == ServiceType::ExternalName {
        let target = service.spec.as_ref()?.external_name.as_deref()?;
        let target = target.strip_suffix('.').unwrap_or(target);
        let mut target = Name::from_ascii(target).ok()?;
        target.set_fqdn(true);
        ServiceBody::ExternalName(target)
    } else if is_headless(service) {
        ServiceBody::Headless(endpoints(&name, service, slices))
    } else {
        let ips = cluster_ips(service);
        if ips.is_empty() {
            return None;
        }
        ServiceBody::ClusterIp(ips)
    };
    Some(ServiceEntry { name, body, ports })
}

/// The API protocol (missing means TCP) as the DNS name label protocol.
fn protocol(value: Option<&str>) -> Option<Protocol> {
    Some(match strait_cluster::Protocol::parse(value)? {
        strait_cluster::Protocol::Tcp => Protocol::Tcp,
        strait_cluster::Protocol::Udp => Protocol::Udp,
        strait_cluster::Protocol::Sctp => Protocol::Sctp,
    })
}

fn port_number(value: Option<i32>) -> Option<u16> {
    value.and_then(strait_cluster::port_number)
}

fn service_ports(service: &Service) -> Vec<NamedPort> {
    strait_cluster::service::ports(service)
        .iter()
        .filter_map(|p| {
            let name = p.name.as_deref().filter(|n| !n.is_empty())?;
            Some(NamedPort {
                name: name.to_ascii_lowercase().into(),
                proto: protocol(p.protocol.as_deref())?,
                port: port_number(Some(p.port))?,
            })
        })
        .collect()
}

/// The dashed form of an address (`10-0-0-1`, `fd00--1`), the identifier of
/// an endpoint without a hostname.
pub(crate) fn dashed(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string().replace('.', "-"),
        IpAddr::V6(v6) => v6.to_string().replace(':', "-"),
    }
}

/// Ready addresses of a headless service, one record per address; an
/// address in several slices appears once.
fn endpoints<'a>(
    service_name: &Name,
    service: &Service,
    slices: impl IntoIterator<Item = &'a EndpointSlice>,
) -> Vec<EndpointRecord> {
    let all_ready = publishes_not_ready_addresses(service);
    let mut out: Vec<EndpointRecord> = Vec::new();
    for slice in slices {
        let ports: Vec<NamedPort> = slice
            .ports
            .iter()
            .flatten()
            .filter_map(|p| {
                let name = p.name.as_deref().filter(|n| !n.is_empty())?;
                Some(NamedPort {
                    name: name.to_ascii_lowercase().into(),
                    proto: protocol(p.protocol.as_deref())?,
                    port: port_number(p.port)?,
                })
            })
            .collect();
        let family_ok = |ip: &IpAddr| match slice.address_type.as_str() {
            "IPv4" => ip.is_ipv4(),
            "IPv6" => ip.is_ipv6(),
            _ => false,
        };
        for endpoint in &slice.endpoints {
            if !(all_ready || conditions(endpoint).ready) {
                continue;
            }
            let hostname = endpoint
                .hostname
                .as_deref()
                .filter(|h| crate::name::is_object_name(h.as_bytes()));
            for ip in endpoint
                .addresses
                .iter()
                .filter_map(|a| a.parse::<IpAddr>().ok())
            {
                if !family_ok(&ip) {
                    continue;
                }
                let label = match hostname {
                    Some(h) => h.to_ascii_lowercase(),
                    None => dashed(ip),
                };
                if out.iter().any(|e| e.ip == ip && *e.label == *label) {
                    continue;
                }
                let Ok(name) = Name::from_ascii(&label).and_then(|l| l.append_domain(service_name))
                else {
                    continue;
                };
                out.push(EndpointRecord {
                    label: label.into(),
                    name,
                    ip,
                    ports: ports.clone(),
                });
            }
        }
    }
    out.sort_by(|a, b| (a.ip, &a.label).cmp(&(b.ip, &b.label)));
    out
}
