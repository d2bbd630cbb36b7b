//! Mirroring core/v1 Endpoints into EndpointSlices, as the
//! endpointslice-mirroring controller does, so a selector-less Service with
//! hand-written Endpoints works from a manifest directory.

use std::collections::BTreeMap;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::{EndpointAddress, Endpoints, Service};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::snapshot::SERVICE_NAME_LABEL;

/// Label the mirroring controller puts on the slices it manages.
pub const MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";
/// Value of [`MANAGED_BY_LABEL`] on mirrored slices.
pub const MIRRORING_CONTROLLER: &str = "endpointslicemirroring-controller.k8s.io";
/// Endpoints with this label set to "true" are not mirrored.
pub const SKIP_MIRROR_LABEL: &str = "endpointslice.kubernetes.io/skip-mirror";

/// Whether `endpoints` should be mirrored for `service`: like the controller,
/// only for an existing Service without a selector, and not when the
/// Endpoints opt out with the skip-mirror label.
pub(crate) fn should_mirror(endpoints: &Endpoints, service: Option<&Service>) -> bool {
    let skip = endpoints
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(SKIP_MIRROR_LABEL))
        .is_some_and(|v| v == "true");
    let selectorless = service.is_some_and(|s| {
        s.spec
            .as_ref()
            .and_then(|spec| spec.selector.as_ref())
            .is_none_or(|sel| sel.is_empty())
    });
    !skip && selectorless
}

/// The EndpointSlices mirrored from `endpoints`: one per subset and address
/// family, named `<endpoints-name>-mirror-<subset index>-<ipv4|ipv6>`, in the
/// same namespace, labelled with the service name and the mirroring
/// controller. `addresses` become ready endpoints and `notReadyAddresses`
/// not-ready ones; unparsable addresses are skipped.
pub fn mirror_endpoints(endpoints: &Endpoints) -> Vec<EndpointSlice> {
    let Some(name) = endpoints.metadata.name.as_deref() else {
        return Vec::new();
    };
    let mut labels: BTreeMap<String, String> =
        endpoints.metadata.labels.clone().unwrap_or_default();
    labels.insert(SERVICE_NAME_LABEL.to_owned(), name.to_owned());
    labels.insert(MANAGED_BY_LABEL.to_owned(), MIRRORING_CONTROLLER.to_owned());

    let mut slices = Vec::new();
    for (i, subset) in endpoints.subsets.iter().flatten().enumerate() {
        let ports: Vec<EndpointPort> = subset
            .ports
            .iter()
            .flatten()
            .map(|p| EndpointPort {
                name: Some(p.name.clone().unwrap_or_default()),
                port: Some(p.port),
                protocol: Some(p.protocol.clone().unwrap_or_else(|| "TCP".to_owned())),
                app_protocol: p.app_protocol.clone(),
            })
            .collect();
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        let ready = subset.addresses.iter().flatten().map(|a| (a, true));
        let not_ready = subset
            .not_ready_addresses
            .iter()
            .flatten()
            .map(|a| (a, false));
        for (address, is_ready) in ready.chain(not_ready) {
            match address.ip.parse::<IpAddr>() {
                Ok(IpAddr::V4(_)) => v4.push(to_endpoint(address, is_ready)),
                Ok(IpAddr::V6(_)) => v6.push(to_endpoint(address, is_ready)),
                Err(_) => {
                    tracing::debug!(endpoints = name, ip = %address.ip, "skipping unparsable Endpoints address")
                }
            }
        }
        for (family, suffix, eps) in [("IPv4", "ipv4", v4), ("IPv6", "ipv6", v6)] {
            if eps.is_empty() {
                continue;
            }
            slices.push(EndpointSlice {
                metadata: ObjectMeta {
                    name: Some(format!("{name}-mirror-{i}-{suffix}")),
                    namespace: endpoints.metadata.namespace.clone(),
                    labels: Some(labels.clone()),
                    ..Default::default()
                },
                address_type: family.to_owned(),
                endpoints: eps,
                ports: Some(ports.clone()),
            });
        }
    }
    slices
}

fn to_endpoint(address: &EndpointAddress, ready: bool) -> Endpoint {
    Endpoint {
        addresses: vec![address.ip.clone()],
        conditions: Some(EndpointConditions {
            ready: Some(ready),
            serving: None,
            terminating: None,
        }),
        hostname: address.hostname.clone().filter(|h| !h.is_empty()),
        node_name: address.node_name.clone(),
        target_ref: address.target_ref.clone(),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{EndpointPort as CorePort, EndpointSubset, ServiceSpec};

    fn addr(ip: &str) -> EndpointAddress {
        EndpointAddress {
            ip: ip.into(),
            ..Default::default()
        }
    }

    #[test]
    fn mirrors_subsets_by_family_and_readiness() {
        let ep = Endpoints {
            metadata: ObjectMeta {
                name: Some("ext".into()),
                namespace: Some("default".into()),
                ..Default::default()
            },
            subsets: Some(vec![EndpointSubset {
                addresses: Some(vec![addr("192.0.2.1"), addr("2001:db8::1"), addr("bogus")]),
                not_ready_addresses: Some(vec![addr("192.0.2.2")]),
                ports: Some(vec![CorePort {
                    name: Some("http".into()),
                    port: 8080,
                    ..Default::default()
                }]),
            }]),
        };
        let slices = mirror_endpoints(&ep);
        let names: Vec<_> = slices
            .iter()
            .map(|s| s.metadata.name.clone().unwrap())
            .collect();
        assert_eq!(names, ["ext-mirror-0-ipv4", "ext-mirror-0-ipv6"]);
        let v4 = &slices[0];
        assert_eq!(v4.address_type, "IPv4");
        assert_eq!(
            v4.metadata
                .labels
                .as_ref()
                .unwrap()
                .get(SERVICE_NAME_LABEL)
                .map(String::as_str),
            Some("ext")
        );
        let readiness: Vec<_> = v4
            .endpoints
            .iter()
            .map(|e| {
                (
                    e.addresses[0].as_str(),
                    e.conditions.as_ref().unwrap().ready,
                )
            })
            .collect();
        assert_eq!(
            readiness,
            [("192.0.2.1", Some(true)), ("192.0.2.2", Some(false))]
        );
        let port = &v4.ports.as_ref().unwrap()[0];
        assert_eq!(
            (port.name.as_deref(), port.port, port.protocol.as_deref()),
            (Some("http"), Some(8080), Some("TCP"))
        );
    }

    #[test]
    fn mirrors_only_for_selectorless_services() {
        let ep = Endpoints::default();
        let without = Service {
            spec: Some(ServiceSpec::default()),
            ..Default::default()
        };
        let with = Service {
            spec: Some(ServiceSpec {
                selector: Some([("app".to_string(), "web".to_string())].into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(should_mirror(&ep, Some(&without)));
        assert!(!should_mirror(&ep, Some(&with)));
        assert!(!should_mirror(&ep, None));
        let mut skip = ep.clone();
        skip.metadata.labels = Some([(SKIP_MIRROR_LABEL.to_string(), "true".to_string())].into());
        assert!(!should_mirror(&skip, Some(&without)));
    }
}
