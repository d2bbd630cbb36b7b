//! Typed accessors for the Service fields the data planes act on, with the
//! API's defaults applied in one place.

use std::net::IpAddr;

use k8s_openapi::api::core::v1::{Service, ServicePort};

/// Services with this label belong to another proxy implementation and must
/// not be programmed by ours (kube-proxy skips them too).
pub const SERVICE_PROXY_NAME_LABEL: &str = "service.kubernetes.io/service-proxy-name";

/// Session affinity timeout when `sessionAffinityConfig` does not set one.
pub const DEFAULT_AFFINITY_TIMEOUT_SECONDS: u32 = 10_800;

/// The largest session affinity timeout the API accepts.
pub const MAX_AFFINITY_TIMEOUT_SECONDS: u32 = 86_400;

/// The Service's ports (`spec.ports`), empty when the spec has none, so
/// every consumer walks the same list the same way.
pub fn ports(service: &Service) -> &[ServicePort] {
    service
        .spec
        .as_ref()
        .and_then(|s| s.ports.as_deref())
        .unwrap_or_default()
}

/// `spec.type` of a Service.
///
/// It exists so consumers match on a value with the API default applied
/// (missing means ClusterIP).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ServiceType {
    /// ClusterIP (the default).
    ClusterIp,
    /// NodePort.
    NodePort,
    /// LoadBalancer.
    LoadBalancer,
    /// ExternalName: a DNS CNAME only, never proxied.
    ExternalName,
}

impl ServiceType {
    /// The API's spelling (`spec.type`), for output operators compare with
    /// `kubectl get services`.
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceType::ClusterIp => "ClusterIP",
            ServiceType::NodePort => "NodePort",
            ServiceType::LoadBalancer => "LoadBalancer",
            ServiceType::ExternalName => "ExternalName",
        }
    }
}

/// `externalTrafficPolicy` / `internalTrafficPolicy`.
///
/// It exists so the proxy can pick [`Scope`](crate::Scope) without string
/// comparisons; missing means Cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TrafficPolicy {
    /// Use endpoints anywhere in the cluster (the default).
    Cluster,
    /// Use only endpoints on the receiving node.
    Local,
}

/// The Service's type, defaulting to ClusterIP (an unknown value is treated as
/// ClusterIP, which is what the API would have rejected it to).
pub fn service_type(service: &Service) -> ServiceType {
    match service.spec.as_ref().and_then(|s| s.type_.as_deref()) {
        Some("NodePort") => ServiceType::NodePort,
        Some("LoadBalancer") => ServiceType::LoadBalancer,
        Some("ExternalName") => ServiceType::ExternalName,
        _ => ServiceType::ClusterIp,
    }
}

/// Whether the Service is headless (`clusterIP: None`): DNS returns endpoint
/// addresses directly and no virtual IP exists.
pub fn is_headless(service: &Service) -> bool {
    let Some(spec) = service.spec.as_ref() else {
        return false;
    };
    spec.cluster_ip.as_deref() == Some("None")
        || spec
            .cluster_ips
            .as_ref()
            .and_then(|ips| ips.first())
            .is_some_and(|ip| ip == "None")
}

/// The Service's virtual IPs: `clusterIPs` when set (dual-stack, primary
/// first), else `clusterIP`. Empty for headless Services, ExternalName
/// Services and unparsable values.
pub fn cluster_ips(service: &Service) -> Vec<IpAddr> {
    let Some(spec) = service.spec.as_ref() else {
        return Vec::new();
    };
    if is_headless(service) {
        return Vec::new();
    }
    let listed: Vec<&str> = match spec.cluster_ips.as_ref().filter(|v| !v.is_empty()) {
        Some(ips) => ips.iter().map(String::as_str).collect(),
        None => spec.cluster_ip.as_deref().into_iter().collect(),
    };
    listed
        .into_iter()
        .filter_map(|ip| ip.parse().ok())
        .collect()
}

/// Whether a service proxy should program this Service: it has a virtual IP
/// (not headless), is not ExternalName, and is not claimed by another proxy
/// through the `service.kubernetes.io/service-proxy-name` label.
pub fn is_proxyable(service: &Service) -> bool {
    let claimed = service
        .metadata
        .labels
        .as_ref()
        .is_some_and(|l| l.contains_key(SERVICE_PROXY_NAME_LABEL));
    !claimed && !is_headless(service) && service_type(service) != ServiceType::ExternalName
}

fn policy(value: Option<&str>) -> TrafficPolicy {
    match value {
        // "OnlyLocal" is the pre-1.x spelling the API still converts.
        Some("Local") | Some("OnlyLocal") => TrafficPolicy::Local,
        _ => TrafficPolicy::Cluster,
    }
}

/// `spec.externalTrafficPolicy` (NodePort, LoadBalancer and external IPs),
/// defaulting to Cluster.
pub fn external_traffic_policy(service: &Service) -> TrafficPolicy {
    policy(
        service
            .spec
            .as_ref()
            .and_then(|s| s.external_traffic_policy.as_deref()),
    )
}

/// `spec.internalTrafficPolicy` (traffic to the cluster IPs), defaulting to Cluster.
pub fn internal_traffic_policy(service: &Service) -> TrafficPolicy {
    policy(
        service
            .spec
            .as_ref()
            .and_then(|s| s.internal_traffic_policy.as_deref()),
    )
}

/// The ClientIP session affinity timeout in seconds, or `None` when affinity
/// is off. Missing or non-positive means the default 10800 s; larger than the
/// API maximum is capped at 86400 s.
pub fn session_affinity_timeout(service: &Service) -> Option<u32> {
    let spec = service.spec.as_ref()?;
    if spec.session_affinity.as_deref() != Some("ClientIP") {
        return None;
    }
    let configured = spec
        .session_affinity_config
        .as_ref()
        .and_then(|c| c.client_ip.as_ref())
        .and_then(|c| c.timeout_seconds);
    Some(match configured {
        Some(t) if t > 0 => (t as u32).min(MAX_AFFINITY_TIMEOUT_SECONDS),
        _ => DEFAULT_AFFINITY_TIMEOUT_SECONDS,
    })
}

/// Whether endpoints count as ready regardless of their readiness
/// (`spec.publishNotReadyAddresses`).
pub fn publishes_not_ready_addresses(service: &Service) -> bool {
    service
        .spec
        .as_ref()
        .and_then(|s| s.publish_not_ready_addresses)
        .unwrap_or(false)
}

/// `spec.externalIPs`, parsed (unparsable entries are skipped).
pub fn external_ips(service: &Service) -> Vec<IpAddr> {
    service
        .spec
        .as_ref()
        .and_then(|s| s.external_ips.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|ip| ip.parse().ok())
        .collect()
}

/// The load balancer IPs in `status.loadBalancer.ingress[].ip` that the
/// node must serve: hostnames are skipped, and so are `ipMode: Proxy`
/// entries, whose load balancer rewrites the destination itself.
pub fn load_balancer_ips(service: &Service) -> Vec<IpAddr> {
    service
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .into_iter()
        .flatten()
        .filter(|i| i.ip_mode.as_deref() != Some("Proxy"))
        .filter_map(|i| i.ip.as_deref()?.parse().ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{ClientIPConfig, ServiceSpec, SessionAffinityConfig};

    fn svc(spec: ServiceSpec) -> Service {
        Service {
            spec: Some(spec),
            ..Default::default()
        }
    }

    #[test]
    fn type_names_round_trip_the_api_spelling() {
        for name in ["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"] {
            let s = svc(ServiceSpec {
                type_: Some(name.into()),
                ..ServiceSpec::default()
            });
            assert_eq!(service_type(&s).as_str(), name);
        }
        assert_eq!(
            service_type(&svc(ServiceSpec::default())).as_str(),
            "ClusterIP"
        );
    }

    #[test]
    fn types_and_ips() {
        let s = svc(ServiceSpec {
            cluster_ip: Some("10.96.0.10".into()),
            cluster_ips: Some(vec!["10.96.0.10".into(), "fd00::a".into()]),
            ..Default::default()
        });
        assert_eq!(service_type(&s), ServiceType::ClusterIp);
        assert_eq!(
            cluster_ips(&s),
            vec![
                "10.96.0.10".parse::<IpAddr>().unwrap(),
                "fd00::a".parse().unwrap()
            ]
        );
        assert!(is_proxyable(&s));

        let only_single = svc(ServiceSpec {
            cluster_ip: Some("10.96.0.11".into()),
            ..Default::default()
        });
        assert_eq!(cluster_ips(&only_single).len(), 1);

        let headless = svc(ServiceSpec {
            cluster_ip: Some("None".into()),
            ..Default::default()
        });
        assert!(is_headless(&headless));
        assert!(cluster_ips(&headless).is_empty());
        assert!(!is_proxyable(&headless));

        let headless2 = svc(ServiceSpec {
            cluster_ips: Some(vec!["None".into()]),
            ..Default::default()
        });
        assert!(is_headless(&headless2));

        let ext = svc(ServiceSpec {
            type_: Some("ExternalName".into()),
            external_name: Some("example.com".into()),
            ..Default::default()
        });
        assert_eq!(service_type(&ext), ServiceType::ExternalName);
        assert!(!is_proxyable(&ext));

        let mut claimed = s.clone();
        claimed.metadata.labels = Some([(SERVICE_PROXY_NAME_LABEL.into(), "other".into())].into());
        assert!(!is_proxyable(&claimed));

        assert!(cluster_ips(&Service::default()).is_empty());
        assert!(!is_headless(&Service::default()));
    }

    #[test]
    fn policies_and_affinity() {
        let s = svc(ServiceSpec {
            external_traffic_policy: Some("Local".into()),
            session_affinity: Some("ClientIP".into()),
            ..Default::default()
        });
        assert_eq!(external_traffic_policy(&s), TrafficPolicy::Local);
        assert_eq!(internal_traffic_policy(&s), TrafficPolicy::Cluster);
        assert_eq!(session_affinity_timeout(&s), Some(10_800));

        let with = |t: i32| {
            svc(ServiceSpec {
                session_affinity: Some("ClientIP".into()),
                session_affinity_config: Some(SessionAffinityConfig {
                    client_ip: Some(ClientIPConfig {
                        timeout_seconds: Some(t),
                    }),
                }),
                ..Default::default()
            })
        };
        assert_eq!(session_affinity_timeout(&with(60)), Some(60));
        assert_eq!(session_affinity_timeout(&with(1_000_000)), Some(86_400));
        assert_eq!(session_affinity_timeout(&with(0)), Some(10_800));
        assert_eq!(session_affinity_timeout(&Service::default()), None);
        assert_eq!(
            session_affinity_timeout(&svc(ServiceSpec {
                session_affinity: Some("None".into()),
                ..Default::default()
            })),
            None
        );
    }
}
