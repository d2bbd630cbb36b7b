//! Endpoint selection for one Service port, following kube-proxy
//! (`pkg/proxy/endpointslicecache.go` and `topology.go` `CategorizeEndpoints`).
//!
//! Pure functions, no I/O: the proxy, the ingress upstreams and the lab all
//! call the same code, so they agree on which pods get traffic.
//!
//! Not implemented: topology-aware routing hints (`hints.forZones` /
//! `forNodes`, `trafficDistribution`); every ready endpoint is eligible.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use k8s_openapi::api::core::v1::{ObjectReference, Service, ServicePort};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointSlice};

use crate::ports::{Protocol, port_number, service_port_protocol};
use crate::service::{
    TrafficPolicy, external_traffic_policy, internal_traffic_policy, publishes_not_ready_addresses,
};

/// The three endpoint conditions with the API's nil semantics applied.
///
/// It exists so every consumer reads conditions the same way as kube-proxy:
/// `ready` nil means true, `serving` nil means true, `terminating` nil means
/// false (see the `EndpointConditions` API documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Conditions {
    /// The endpoint accepts new traffic.
    pub ready: bool,
    /// The endpoint can serve traffic (set even while terminating).
    pub serving: bool,
    /// The endpoint is shutting down.
    pub terminating: bool,
}

/// The effective conditions of `endpoint` (nil rules of kube-proxy applied).
pub fn conditions(endpoint: &Endpoint) -> Conditions {
    let c = endpoint.conditions.as_ref();
    Conditions {
        ready: c.and_then(|c| c.ready).unwrap_or(true),
        serving: c.and_then(|c| c.serving).unwrap_or(true),
        terminating: c.and_then(|c| c.terminating).unwrap_or(false),
    }
}

/// Which endpoints a traffic policy allows.
///
/// It exists because `internalTrafficPolicy: Local` and
/// `externalTrafficPolicy: Local` restrict a service to endpoints on the node
/// receiving the traffic.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Endpoints anywhere in the cluster.
    Cluster,
    /// Only endpoints whose `nodeName` is this node.
    NodeLocal(String),
}

impl Scope {
    /// The scope for traffic to the cluster IPs, from `internalTrafficPolicy`.
    pub fn internal(service: &Service, node_name: &str) -> Scope {
        Scope::for_policy(internal_traffic_policy(service), node_name)
    }

    /// The scope for NodePort, LoadBalancer and external IP traffic, from
    /// `externalTrafficPolicy`.
    pub fn external(service: &Service, node_name: &str) -> Scope {
        Scope::for_policy(external_traffic_policy(service), node_name)
    }

    fn for_policy(policy: TrafficPolicy, node_name: &str) -> Scope {
        match policy {
            TrafficPolicy::Cluster => Scope::Cluster,
            TrafficPolicy::Local => Scope::NodeLocal(node_name.to_owned()),
        }
    }
}

/// One usable backend of a Service port: where to send traffic and what is
/// known about it.
///
/// It exists as the common output of endpoint selection, carrying everything
/// the proxy (addresses, flags), DNS (hostname) and ingress need.
#[derive(Clone, Debug, PartialEq)]
pub struct Backend {
    /// The endpoint address (the first address of the endpoint, as kube-proxy uses).
    pub ip: IpAddr,
    /// The resolved target port on the endpoint.
    pub port: u16,
    /// The transport protocol.
    pub protocol: Protocol,
    /// The node the endpoint runs on.
    pub node_name: Option<String>,
    /// The endpoint's hostname (headless/StatefulSet DNS records).
    pub hostname: Option<String>,
    /// The endpoint's zone.
    pub zone: Option<String>,
    /// The object behind the endpoint (usually a Pod).
    pub target_ref: Option<ObjectReference>,
    /// Ready (true for every endpoint when the Service publishes not-ready addresses).
    pub ready: bool,
    /// Serving.
    pub serving: bool,
    /// Terminating.
    pub terminating: bool,
}

impl Backend {
    /// `ip:port` as a socket address.
    pub fn socket_addr(&self) -> SocketAddr {
        SocketAddr::new(self.ip, self.port)
    }
}

/// The slice port that carries `service_port`: same name (a missing name is
/// the empty name of a single unnamed port) and same protocol.
fn slice_port(slice: &EndpointSlice, name: &str, protocol: Protocol) -> Option<u16> {
    slice.ports.iter().flatten().find_map(|p| {
        let same_name = p.name.as_deref().unwrap_or("") == name;
        let same_protocol = Protocol::parse(p.protocol.as_deref()) == Some(protocol);
        if same_name && same_protocol {
            p.port.and_then(port_number)
        } else {
            None
        }
    })
}

fn address_family_matches(address_type: &str, ip: &IpAddr) -> bool {
    match address_type {
        "IPv4" => ip.is_ipv4(),
        "IPv6" => ip.is_ipv6(),
        _ => false,
    }
}

/// The backends of one port of `service`, chosen as kube-proxy does.
///
/// * The endpoint port is the port of the slice port with the same name and
///   protocol as `service_port`, so a named `targetPort` may resolve to
///   different numbers on different endpoints; slices without that port
///   contribute nothing.
/// * Only the first address of each endpoint is used; slices whose
///   `addressType` is not IPv4/IPv6 (FQDN) are ignored, as are addresses that
///   do not parse or do not match the slice's family.
/// * The same `ip:port` in several slices appears once; a non-terminating
///   copy wins over a terminating one.
/// * Ready endpoints are used; when there are none, serving-and-terminating
///   endpoints are used instead. With `publishNotReadyAddresses: true` every
///   endpoint counts as ready.
/// * [`Scope::NodeLocal`] first keeps only endpoints on that node, then
///   applies the same ready → serving-and-terminating fallback to them (it
///   never falls back to remote endpoints).
///
/// The result is sorted by address and port. Malformed input never panics; it
/// is skipped.
pub fn select_endpoints<'a>(
    service: &Service,
    slices: impl IntoIterator<Item = &'a EndpointSlice>,
    service_port: &ServicePort,
    scope: &Scope,
) -> Vec<Backend> {
    let Some(protocol) = service_port_protocol(service_port) else {
        return Vec::new();
    };
    let port_name = service_port.name.as_deref().unwrap_or("");
    let all_ready = publishes_not_ready_addresses(service);

    let mut unique: BTreeMap<(IpAddr, u16), Backend> = BTreeMap::new();
    for slice in slices {
        let Some(port) = slice_port(slice, port_name, protocol) else {
            continue;
        };
        for endpoint in &slice.endpoints {
            let Some(ip) = endpoint
                .addresses
                .first()
                .and_then(|a| a.parse::<IpAddr>().ok())
            else {
                continue;
            };
            if !address_family_matches(&slice.address_type, &ip) {
                continue;
            }
            let c = conditions(endpoint);
            let backend = Backend {
                ip,
                port,
                protocol,
                node_name: endpoint.node_name.clone(),
                hostname: endpoint.hostname.clone(),
                zone: endpoint.zone.clone(),
                target_ref: endpoint.target_ref.clone(),
                ready: c.ready || all_ready,
                serving: c.serving,
                terminating: c.terminating,
            };
            let key = (ip, port);
            if !unique.contains_key(&key) || !backend.terminating {
                unique.insert(key, backend);
            }
        }
    }

    let candidates: Vec<Backend> = match scope {
        Scope::Cluster => unique.into_values().collect(),
        Scope::NodeLocal(node) => unique
            .into_values()
            .filter(|b| b.node_name.as_deref() == Some(node.as_str()))
            .collect(),
    };
    if candidates.iter().any(|b| b.ready) {
        candidates.into_iter().filter(|b| b.ready).collect()
    } else {
        candidates
            .into_iter()
            .filter(|b| b.serving && b.terminating)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ServiceSpec;
    use k8s_openapi::api::discovery::v1::{EndpointConditions, EndpointPort};
    use std::collections::BTreeSet;

    type Cond = (Option<bool>, Option<bool>, Option<bool>);
    const READY: Cond = (Some(true), Some(true), Some(false));
    const NOT_READY: Cond = (Some(false), Some(false), Some(false));
    const TERMINATING_SERVING: Cond = (Some(false), Some(true), Some(true));
    const TERMINATING_NOT_SERVING: Cond = (Some(false), Some(false), Some(true));
    const NIL: Cond = (None, None, None);

    fn ep(ip: &str, node: Option<&str>, c: Cond) -> Endpoint {
        Endpoint {
            addresses: vec![ip.into()],
            node_name: node.map(Into::into),
            conditions: if c == NIL {
                None
            } else {
                Some(EndpointConditions {
                    ready: c.0,
                    serving: c.1,
                    terminating: c.2,
                })
            },
            ..Default::default()
        }
    }

    fn slice(
        address_type: &str,
        ports: &[(Option<&str>, Option<i32>, Option<&str>)],
        endpoints: Vec<Endpoint>,
    ) -> EndpointSlice {
        EndpointSlice {
            address_type: address_type.into(),
            endpoints,
            ports: Some(
                ports
                    .iter()
                    .map(|(name, port, proto)| EndpointPort {
                        name: name.map(Into::into),
                        port: *port,
                        protocol: proto.map(Into::into),
                        app_protocol: None,
                    })
                    .collect(),
            ),
            ..Default::default()
        }
    }

    fn sp(name: Option<&str>, port: i32, protocol: Option<&str>) -> ServicePort {
        ServicePort {
            name: name.map(Into::into),
            port,
            protocol: protocol.map(Into::into),
            ..Default::default()
        }
    }

    fn service(publish_not_ready: bool) -> Service {
        Service {
            spec: Some(ServiceSpec {
                publish_not_ready_addresses: Some(publish_not_ready),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    struct Case {
        name: &'static str,
        publish_not_ready: bool,
        slices: Vec<EndpointSlice>,
        port: ServicePort,
        scope: Scope,
        expect: &'static [&'static str],
    }

    const HTTP: &[(Option<&str>, Option<i32>, Option<&str>)] =
        &[(Some("http"), Some(8080), Some("TCP"))];

    fn http() -> ServicePort {
        sp(Some("http"), 80, None)
    }

    fn local(n: &str) -> Scope {
        Scope::NodeLocal(n.into())
    }

    fn cases() -> Vec<Case> {
        vec![
            Case {
                name: "ready only, not-ready excluded",
                publish_not_ready: false,
                slices: vec![slice(
                    "IPv4",
                    HTTP,
                    vec![
                        ep("10.0.0.1", None, READY),
                        ep("10.0.0.2", None, READY),
                        ep("10.0.0.3", None, NOT_READY),
                    ],
                )],
                port: http(),
                scope: Scope::Cluster,
                expect: &["10.0.0.1:8080", "10.0.0.2:8080"],
            },
            Case {
                name: "terminating endpoints ignored while a ready one exists",
                publish_not_ready: false,
                slices: vec![slice(
                    "IPv4",
                    HTTP,
                    vec![
                        ep("10.0.0.1", None, READY),
                        ep("10.0.0.2", None, TERMINATING_SERVING),
                    ],
                )],
                port: http(),
                scope: Scope::Cluster,
                expect: &["10.0.0.1:8080"],
            },
            Case {
                name: "serving terminating fallback when nothing is ready",
                publish_not_ready: false,
                slices: vec![slice(
                    "IPv4",
                    HTTP,
                    vec![
                        ep("10.0.0.2", None, TERMINATING_SERVING),
                        ep("10.0.0.3", None, NOT_READY),
                        ep("10.0.0.4", None, TERMINATING_NOT_SERVING),
                    ],
                )],
                port: http(),
                scope: Scope::Cluster,
                expect: &["10.0.0.2:8080"],
            },
            Case {
                name: "terminating but not serving is never used",
                publish_not_ready: false,
                slices: vec![slice(
                    "IPv4",
                    HTTP,
                    vec![ep("10.0.0.4", None, TERMINATING_NOT_SERVING)],
                )],
                port: http(),
                scope: Scope::Cluster,
                expect: &[],
            },
            Case {
                name: "publishNotReadyAddresses counts every endpoint as ready",
                publish_not_ready: true,
                slices: vec![slice(
                    "IPv4",
                    HTTP,
                    vec![
                        ep("10.0.0.1", None, READY),
                        ep("10.0.0.3", None, NOT_READY),
                        ep("10.0.0.4", None, TERMINATING_NOT_SERVING),
                    ],
                )],
                port: http(),
                scope: Scope::Cluster,
                expect: &["10.0.0.1:8080", "10.0.0.3:8080", "10.0.0.4:8080"],
            },
            Case {
                name: "nil conditions mean ready",
                publish_not_ready: false,
                slices: vec![slice(
                    "IPv4",
                    HTTP,
                    vec![
                        ep("10.0.0.1", None, NIL),
                        ep("10.0.0.2", None, (None, Some(false), None)),
                        ep("10.0.0.3", None, NOT_READY),
                    ],
                )],
                port: http(),
                scope: Scope::Cluster,
                expect: &["10.0.0.1:8080", "10.0.0.2:8080"],
            },
            Case {
                name: "nil serving counts as serving for the terminating fallback",
                publish_not_ready: false,
                slices: vec![slice(
                    "IPv4",
                    HTTP,
                    vec![ep("10.0.0.5", None, (Some(false), None, Some(true)))],
                )],
                port: http(),
                scope: Scope::Cluster,
                expect: &["10.0.0.5:8080"],
            },
            Case {
                name: "named port resolves to different numbers per slice",
                publish_not_ready: false,
                slices: vec![
                    slice("IPv4", HTTP, vec![ep("10.0.0.1", None, READY)]),
                    slice(
                        "IPv4",
                        &[(Some("http"), Some(9090), None)],
                        vec![ep("10.0.0.2", None, READY)],
                    ),
                ],
                port: http(),
                scope: Scope::Cluster,
                expect: &["10.0.0.1:8080", "10.0.0.2:9090"],
            },
            Case {
                name: "multi-port picks the matching name",
                publish_not_ready: false,
                slices: vec![slice(
                    "IPv4",
                    &[
                        (Some("http"), Some(8080), Some("TCP")),
                        (Some("metrics"), Some(9100), Some("TCP")),
                    ],
                    vec![ep("10.0.0.1", None, READY)],
                )],
                port: sp(Some("metrics"), 9100, Some("TCP")),
                scope: Scope::Cluster,
                expect: &["10.0.0.1:9100"],
            },
            Case {
                name: "unnamed single port (name missing in the slice)",
                publish_not_ready: false,
                slices: vec![slice(
                    "IPv4",
                    &[(None, Some(8080), None)],
                    vec![ep("10.0.0.1", None, READY)],
                )],
                port: sp(None, 80, None),
                scope: Scope::Cluster,
                expect: &["10.0.0.1:8080"],
            },
            Case {
                name: "unnamed single port (empty name in the slice)",
                publish_not_ready: false,
                slices: vec![slice(
                    "IPv4",
                    &[(Some(""), Some(8080), Some("TCP"))],
                    vec![ep("10.0.0.1", None, READY)],
                )],
                port: sp(None, 80, None),
                scope: Scope::Cluster,
                expect: &["10.0.0.1:8080"],
            },
            Case {
                name: "UDP port with the same number as TCP selects UDP",
                publish_not_ready: false,
                slices: vec![slice(
                    "IPv4",
                    &[
                        (Some("dns"), Some(5353), Some("UDP")),
                        (Some("dns-tcp"), Some(5354), Some("TCP")),
                    ],
                    vec![ep("10.0.0.1", None, READY)],
                )],
                port: sp(Some("dns"), 53, Some("UDP")),
                scope: Scope::Cluster,
                expect: &["10.0.0.1:5353"],
            },
            Case {
                name: "TCP port with the same number as UDP selects TCP",
                publish_not_ready: false,
                slices: vec![slice(
                    "IPv4",
                    &[
                        (Some("dns"), Some(5353), Some("UDP")),
                        (Some("dns-tcp"), Some(5354), Some("TCP")),
                    ],
                    vec![ep("10.0.0.1", None, READY)],
                )],
                port: sp(Some("dns-tcp"), 53, Some("TCP")),
                scope: Scope::Cluster,
                expect: &["10.0.0.1:5354"],
            },
            Case {
                name: "same name but other protocol does not match",
                publish_not_ready: false,
                slices: vec![slice(
                    "IPv4",
                    &[(Some("dns"), Some(53), Some("UDP"))],
                    vec![ep("10.0.0.1", None, READY)],
                )],
                port: sp(Some("dns"), 53, Some("TCP")),
                scope: Scope::Cluster,
                expect: &[],
            },
            Case {
                name: "node-local keeps local ready endpoints",
                publish_not_ready: false,
                slices: vec![slice(
                    "IPv4",
                    HTTP,
                    vec![
                        ep("10.0.1.1", Some("n1"), READY),
                        ep("10.0.1.2", Some("n1"), NOT_READY),
                        ep("10.0.2.1", Some("n2"), READY),
                        ep("10.0.3.1", None, READY),
                    ],
                )],
                port: http(),
                scope: local("n1"),
                expect: &["10.0.1.1:8080"],
            },
            Case {
                name: "node-local without local endpoints is empty",
                publish_not_ready: false,
                slices: vec![slice("IPv4", HTTP, vec![ep("10.0.2.1", Some("n2"), READY)])],
                port: http(),
                scope: local("n1"),
                expect: &[],
            },
            Case {
                name: "node-local falls back to local serving terminating endpoints",
                publish_not_ready: false,
                slices: vec![slice(
                    "IPv4",
                    HTTP,
                    vec![
                        ep("10.0.1.1", Some("n1"), TERMINATING_SERVING),
                        ep("10.0.1.2", Some("n1"), TERMINATING_NOT_SERVING),
                        ep("10.0.2.1", Some("n2"), READY),
                    ],
                )],
                port: http(),
                scope: local("n1"),
                expect: &["10.0.1.1:8080"],
            },
            Case {
                name: "cluster scope ignores that fallback when remote ready exist",
                publish_not_ready: false,
                slices: vec![slice(
                    "IPv4",
                    HTTP,
                    vec![
                        ep("10.0.1.1", Some("n1"), TERMINATING_SERVING),
                        ep("10.0.2.1", Some("n2"), READY),
                    ],
                )],
                port: http(),
                scope: Scope::Cluster,
                expect: &["10.0.2.1:8080"],
            },
            Case {
                name: "duplicate address across slices appears once",
                publish_not_ready: false,
                slices: vec![
                    slice(
                        "IPv4",
                        HTTP,
                        vec![ep("10.0.0.1", None, READY), ep("10.0.0.2", None, READY)],
                    ),
                    slice("IPv4", HTTP, vec![ep("10.0.0.1", None, READY)]),
                ],
                port: http(),
                scope: Scope::Cluster,
                expect: &["10.0.0.1:8080", "10.0.0.2:8080"],
            },
            Case {
                name: "duplicate prefers the non-terminating copy",
                publish_not_ready: false,
                slices: vec![
                    slice("IPv4", HTTP, vec![ep("10.0.0.1", None, READY)]),
                    slice(
                        "IPv4",
                        HTTP,
                        vec![ep("10.0.0.1", None, TERMINATING_SERVING)],
                    ),
                ],
                port: http(),
                scope: Scope::Cluster,
                expect: &["10.0.0.1:8080"],
            },
            Case {
                name: "FQDN slices are ignored",
                publish_not_ready: false,
                slices: vec![slice(
                    "FQDN",
                    HTTP,
                    vec![
                        ep("backend.example.com", None, READY),
                        ep("10.9.9.9", None, READY),
                    ],
                )],
                port: http(),
                scope: Scope::Cluster,
                expect: &[],
            },
            Case {
                name: "dual-stack slices contribute both families",
                publish_not_ready: false,
                slices: vec![
                    slice("IPv4", HTTP, vec![ep("10.0.0.1", None, READY)]),
                    slice("IPv6", HTTP, vec![ep("fd00::1", None, READY)]),
                ],
                port: http(),
                scope: Scope::Cluster,
                expect: &["10.0.0.1:8080", "[fd00::1]:8080"],
            },
            Case {
                name: "malformed input is skipped",
                publish_not_ready: false,
                slices: vec![
                    slice(
                        "IPv4",
                        HTTP,
                        vec![
                            ep("not-an-ip", None, READY),
                            ep("fd00::2", None, READY), // wrong family for the slice
                            Endpoint::default(),        // no addresses
                            ep("10.0.0.7", None, READY),
                        ],
                    ),
                    slice(
                        "IPv4",
                        &[(Some("http"), None, None)],
                        vec![ep("10.0.0.8", None, READY)],
                    ),
                    slice(
                        "IPv4",
                        &[(Some("http"), Some(0), None)],
                        vec![ep("10.0.0.9", None, READY)],
                    ),
                    slice(
                        "IPv4",
                        &[(Some("http"), Some(70000), None)],
                        vec![ep("10.0.0.10", None, READY)],
                    ),
                    EndpointSlice::default(),
                ],
                port: http(),
                scope: Scope::Cluster,
                expect: &["10.0.0.7:8080"],
            },
            Case {
                name: "unknown service port protocol selects nothing",
                publish_not_ready: false,
                slices: vec![slice("IPv4", HTTP, vec![ep("10.0.0.1", None, READY)])],
                port: sp(Some("http"), 80, Some("QUIC")),
                scope: Scope::Cluster,
                expect: &[],
            },
        ]
    }

    #[test]
    fn endpoint_selection_table() {
        let mut failures = Vec::new();
        for case in cases() {
            let svc = service(case.publish_not_ready);
            let got: BTreeSet<String> =
                select_endpoints(&svc, &case.slices, &case.port, &case.scope)
                    .iter()
                    .map(|b| b.socket_addr().to_string())
                    .collect();
            let want: BTreeSet<String> = case.expect.iter().map(|s| s.to_string()).collect();
            if got != want {
                failures.push(format!("{}: got {got:?}, want {want:?}", case.name));
            }
        }
        assert!(
            failures.is_empty(),
            "failing cases:\n{}",
            failures.join("\n")
        );
    }

    #[test]
    fn backend_carries_endpoint_details_and_flags() {
        let mut e = ep("10.0.0.1", Some("n1"), TERMINATING_SERVING);
        e.hostname = Some("web-0".into());
        e.zone = Some("z1".into());
        e.target_ref = Some(ObjectReference {
            kind: Some("Pod".into()),
            name: Some("web-0".into()),
            namespace: Some("default".into()),
            ..Default::default()
        });
        let slices = [slice("IPv4", HTTP, vec![e])];
        let got = select_endpoints(&service(false), &slices, &http(), &Scope::Cluster);
        assert_eq!(got.len(), 1);
        let b = &got[0];
        assert_eq!(b.protocol, Protocol::Tcp);
        assert_eq!(b.node_name.as_deref(), Some("n1"));
        assert_eq!(b.hostname.as_deref(), Some("web-0"));
        assert_eq!(b.zone.as_deref(), Some("z1"));
        assert_eq!(
            b.target_ref.as_ref().and_then(|t| t.name.as_deref()),
            Some("web-0")
        );
        assert!(!b.ready && b.serving && b.terminating);

        // duplicate: the ready copy's flags win regardless of slice order
        let slices = [
            slice("IPv4", HTTP, vec![ep("10.0.0.1", None, READY)]),
            slice(
                "IPv4",
                HTTP,
                vec![ep("10.0.0.1", None, TERMINATING_SERVING)],
            ),
        ];
        let got = select_endpoints(&service(false), &slices, &http(), &Scope::Cluster);
        assert!(got[0].ready && !got[0].terminating);
    }

    #[test]
    fn scope_follows_traffic_policies() {
        let svc = Service {
            spec: Some(ServiceSpec {
                internal_traffic_policy: Some("Local".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(Scope::internal(&svc, "n1"), Scope::NodeLocal("n1".into()));
        assert_eq!(Scope::external(&svc, "n1"), Scope::Cluster);
    }

    #[test]
    fn conditions_nil_semantics() {
        assert_eq!(
            conditions(&Endpoint::default()),
            Conditions {
                ready: true,
                serving: true,
                terminating: false
            }
        );
        let e = ep("10.0.0.1", None, (Some(false), None, None));
        assert_eq!(
            conditions(&e),
            Conditions {
                ready: false,
                serving: true,
                terminating: false
            }
        );
    }
}
