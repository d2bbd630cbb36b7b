//! The cluster `strait lab up` builds when no `--manifests` directory is
//! given: one of every Service type, pods on two nodes, an Ingress with TLS.
use std::collections::HashSet;

use strait_cluster::{ClusterError, LoadReport, ManifestErrors, ManifestLoader, Object};

/// The embedded default manifest, as ordinary Kubernetes YAML.
pub const DEFAULT_MANIFEST: &str = include_str!("../manifests/default.yaml");

/// The lab's own components (DNS, ingress), added to every lab.
pub const SYSTEM_MANIFEST: &str = include_str!("../manifests/system.yaml");

/// `objects` plus each system object whose kind and name they do not define,
/// so a user's own kube-dns (say) replaces the lab's.
pub fn with_system_objects(mut objects: Vec<Object>) -> Result<Vec<Object>, ClusterError> {
    let report = ManifestLoader::parse_str("<embedded lab system manifest>", SYSTEM_MANIFEST);
    if !report.errors.is_empty() {
        return Err(ClusterError::Manifests(ManifestErrors(report.errors)));
    }
    let present: HashSet<_> = objects.iter().map(|o| (o.kind(), o.key())).collect();
    objects.extend(
        report
            .objects
            .into_iter()
            .filter(|o| !present.contains(&(o.kind(), o.key()))),
    );
    Ok(objects)
}

/// Parses the embedded manifest. An error here is a bug in the build, but it
/// is still reported rather than panicking.
pub fn default_cluster() -> Result<LoadReport, ClusterError> {
    let report = ManifestLoader::parse_str("<embedded default manifest>", DEFAULT_MANIFEST);
    if report.errors.is_empty() {
        Ok(report)
    } else {
        Err(ClusterError::Manifests(ManifestErrors(report.errors)))
    }
}

#[cfg(test)]
mod tests {
    use strait_cluster::{ServiceType, service};

    use super::default_cluster;

    #[test]
    fn default_manifest_has_every_service_shape_the_lab_promises() {
        let objects = super::with_system_objects(
            default_cluster().expect("embedded manifest parses").objects,
        )
        .expect("system manifest parses");
        let snap = strait_cluster::ClusterSnapshot::from_objects(objects);
        let svc = |name: &str| {
            snap.services()
                .iter()
                .find(|(k, _)| k.name == name)
                .map(|(_, s)| s.clone())
                .unwrap_or_else(|| panic!("service {name} missing"))
        };
        assert_eq!(service::service_type(&svc("web")), ServiceType::ClusterIp);
        assert_eq!(
            svc("web")
                .spec
                .as_ref()
                .unwrap()
                .ports
                .as_ref()
                .unwrap()
                .len(),
            2
        );
        assert!(service::is_headless(&svc("db")));
        assert_eq!(service::service_type(&svc("api")), ServiceType::NodePort);
        assert_eq!(
            service::service_type(&svc("edge")),
            ServiceType::LoadBalancer
        );
        assert_eq!(
            service::external_traffic_policy(&svc("edge")),
            strait_cluster::TrafficPolicy::Local
        );
        assert_eq!(
            service::service_type(&svc("search")),
            ServiceType::ExternalName
        );
        assert_eq!(service::session_affinity_timeout(&svc("sticky")), Some(600));
        assert!(svc("legacy").spec.as_ref().unwrap().selector.is_none());
        assert_eq!(
            service::cluster_ips(&svc("kube-dns")),
            ["10.96.0.10".parse::<std::net::IpAddr>().unwrap()]
        );
        let ingress = snap.ingresses().values().next().expect("an ingress");
        let spec = ingress.spec.as_ref().unwrap();
        assert!(spec.tls.as_ref().is_some_and(|t| !t.is_empty()));
        assert!(spec.default_backend.is_some());
        assert_eq!(spec.rules.as_ref().unwrap().len(), 2);
        assert_eq!(snap.nodes().len(), 2);
    }
}
