//! Protocols and port resolution shared by everything that turns Services
//! into backends.

use std::fmt;

use k8s_openapi::api::core::v1::{Container, Pod, ServicePort};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// A Service/endpoint transport protocol.
///
/// It exists so callers match protocols as values instead of comparing
/// optional strings (the API defaults a missing protocol to TCP).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    /// TCP (the default when the field is missing).
    Tcp,
    /// UDP.
    Udp,
    /// SCTP.
    Sctp,
}

impl Protocol {
    /// Parses an API protocol field: missing means TCP; an unknown value is
    /// `None` (callers skip that port rather than guess).
    pub fn parse(value: Option<&str>) -> Option<Protocol> {
        match value {
            None | Some("TCP") => Some(Protocol::Tcp),
            Some("UDP") => Some(Protocol::Udp),
            Some("SCTP") => Some(Protocol::Sctp),
            Some(_) => None,
        }
    }

    /// The API spelling ("TCP", "UDP", "SCTP").
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Sctp => "SCTP",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A port number from the API as `u16`, or `None` when it is outside 1..=65535.
pub fn port_number(value: i32) -> Option<u16> {
    u16::try_from(value).ok().filter(|p| *p != 0)
}

/// The protocol of a ServicePort (missing means TCP; unknown is `None`).
pub fn service_port_protocol(port: &ServicePort) -> Option<Protocol> {
    Protocol::parse(port.protocol.as_deref())
}

/// The port on `pod` that `service_port` sends traffic to, for callers that
/// build EndpointSlices themselves (the lab has no controller-manager).
///
/// Follows the endpoint controllers: an integer `targetPort` is used as is, a
/// missing `targetPort` means the service `port`, and a named `targetPort` is
/// looked up among the pod's container ports (and restartable init
/// containers, i.e. sidecars) by name and protocol. A string that is a number
/// ("8080") is accepted as that number. Returns `None` when the name is not
/// found or the number is not a valid port.
pub fn resolve_target_port(service_port: &ServicePort, pod: &Pod) -> Option<u16> {
    match &service_port.target_port {
        None => port_number(service_port.port),
        Some(IntOrString::Int(n)) => port_number(*n),
        Some(IntOrString::String(name)) => {
            if let Ok(n) = name.parse::<i32>() {
                return port_number(n);
            }
            let protocol = service_port_protocol(service_port)?;
            let spec = pod.spec.as_ref()?;
            let sidecars = spec
                .init_containers
                .iter()
                .flatten()
                .filter(|c| c.restart_policy.as_deref() == Some("Always"));
            spec.containers
                .iter()
                .chain(sidecars)
                .find_map(|c| named_port(c, name, protocol))
        }
    }
}

fn named_port(container: &Container, name: &str, protocol: Protocol) -> Option<u16> {
    container.ports.iter().flatten().find_map(|p| {
        (p.name.as_deref() == Some(name)
            && Protocol::parse(p.protocol.as_deref()) == Some(protocol))
        .then(|| port_number(p.container_port))
        .flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{ContainerPort, PodSpec};

    fn pod(containers: Vec<Vec<(&str, i32, Option<&str>)>>, sidecar: Option<(&str, i32)>) -> Pod {
        let mk = |ports: Vec<(&str, i32, Option<&str>)>| Container {
            name: "c".into(),
            ports: Some(
                ports
                    .into_iter()
                    .map(|(n, p, proto)| ContainerPort {
                        name: Some(n.into()),
                        container_port: p,
                        protocol: proto.map(Into::into),
                        ..Default::default()
                    })
                    .collect(),
            ),
            ..Default::default()
        };
        let init_containers = sidecar.map(|(n, p)| {
            let mut c = mk(vec![(n, p, None)]);
            c.restart_policy = Some("Always".into());
            vec![c]
        });
        Pod {
            spec: Some(PodSpec {
                containers: containers.into_iter().map(mk).collect(),
                init_containers,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn sp(port: i32, target: Option<IntOrString>, protocol: Option<&str>) -> ServicePort {
        ServicePort {
            port,
            target_port: target,
            protocol: protocol.map(Into::into),
            ..Default::default()
        }
    }

    #[test]
    fn target_port_resolution() {
        let p = pod(
            vec![
                vec![("http", 8080, None), ("dns", 5353, Some("UDP"))],
                vec![("metrics", 9090, Some("TCP")), ("dns", 5354, Some("TCP"))],
            ],
            Some(("proxy", 15001)),
        );
        let name = |s: &str| Some(IntOrString::String(s.into()));
        assert_eq!(resolve_target_port(&sp(80, None, None), &p), Some(80));
        assert_eq!(
            resolve_target_port(&sp(80, Some(IntOrString::Int(9000)), None), &p),
            Some(9000)
        );
        assert_eq!(
            resolve_target_port(&sp(80, name("http"), None), &p),
            Some(8080)
        );
        assert_eq!(
            resolve_target_port(&sp(80, name("metrics"), None), &p),
            Some(9090)
        );
        // same name, protocol decides
        assert_eq!(
            resolve_target_port(&sp(53, name("dns"), Some("UDP")), &p),
            Some(5353)
        );
        assert_eq!(
            resolve_target_port(&sp(53, name("dns"), Some("TCP")), &p),
            Some(5354)
        );
        assert_eq!(
            resolve_target_port(&sp(80, name("http"), Some("UDP")), &p),
            None
        );
        assert_eq!(
            resolve_target_port(&sp(80, name("missing"), None), &p),
            None
        );
        assert_eq!(
            resolve_target_port(&sp(80, name("proxy"), None), &p),
            Some(15001)
        );
        assert_eq!(
            resolve_target_port(&sp(80, name("8443"), None), &p),
            Some(8443)
        );
        assert_eq!(
            resolve_target_port(&sp(80, Some(IntOrString::Int(0)), None), &p),
            None
        );
        assert_eq!(
            resolve_target_port(&sp(80, Some(IntOrString::Int(70000)), None), &p),
            None
        );
        assert_eq!(
            resolve_target_port(&sp(80, name("http"), None), &Pod::default()),
            None
        );
        assert_eq!(
            resolve_target_port(&sp(80, name("http"), Some("ICMP")), &p),
            None
        );
    }

    #[test]
    fn protocol_parsing() {
        assert_eq!(Protocol::parse(None), Some(Protocol::Tcp));
        assert_eq!(Protocol::parse(Some("UDP")), Some(Protocol::Udp));
        assert_eq!(Protocol::parse(Some("SCTP")), Some(Protocol::Sctp));
        assert_eq!(Protocol::parse(Some("tcp")), None);
        assert_eq!(port_number(-1), None);
        assert_eq!(port_number(65535), Some(65535));
    }
}
