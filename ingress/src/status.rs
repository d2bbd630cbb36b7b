//! `status.loadBalancer.ingress` of the Ingresses the controller serves:
//! the address clients reach it at, so `kubectl get ingress` shows it and
//! tools such as external-dns can publish it.
//!
//! The address comes from `--publish-service NS/NAME` (that Service's
//! LoadBalancer status and external IPs, read from the cluster view) or
//! from `--publish-address`. After every rebuild, each served Ingress whose
//! status differs is patched (a JSON merge patch of the status subresource).
//! With `--manifests` there is no API server: the controller logs what it
//! would write, once per change.
//!
//! Status is written only for the Ingresses this controller serves. It is
//! not cleared when an Ingress stops being served.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use strait_cluster::k8s_openapi::api::networking::v1::{
    Ingress, IngressLoadBalancerIngress, IngressPortStatus,
};
use strait_cluster::{ClusterSnapshot, ObjectKey};
use tokio::sync::watch;

use crate::matching::HostRule;

/// Where the published address comes from.
///
/// It exists so the CLI's two flags become one typed choice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublishSource {
    /// The status (and external IPs) of this Service.
    Service {
        /// The Service's namespace.
        namespace: String,
        /// The Service's name.
        name: String,
    },
    /// These IP addresses or host names.
    Addresses(Vec<PublishAddress>),
}

/// One published address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublishAddress {
    /// An IP address (`ingress[].ip`).
    Ip(IpAddr),
    /// A DNS name (`ingress[].hostname`).
    Hostname(String),
}

/// Why a `--publish-service` or `--publish-address` value did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublishError {
    /// Not `NAMESPACE/NAME`.
    #[error("{0:?} is not a Service reference: expected NAMESPACE/NAME")]
    Service(String),
    /// Not an IP address or a DNS name.
    #[error("{0:?} is not an IP address or a DNS name")]
    Address(String),
}

impl PublishSource {
    /// `NAMESPACE/NAME` of the Service whose status is published.
    pub fn service(text: &str) -> Result<Self, PublishError> {
        match text.split_once('/') {
            Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => {
                Ok(Self::Service {
                    namespace: ns.to_owned(),
                    name: name.to_owned(),
                })
            }
            _ => Err(PublishError::Service(text.to_owned())),
        }
    }

    /// Comma-separated IP addresses or DNS names.
    pub fn addresses(text: &str) -> Result<Self, PublishError> {
        let list = text
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| match s.parse::<IpAddr>() {
                Ok(ip) => Ok(PublishAddress::Ip(ip)),
                Err(_) => match HostRule::new(s) {
                    Ok(HostRule::Exact(name)) => Ok(PublishAddress::Hostname(name.into())),
                    _ => Err(PublishError::Address(s.to_owned())),
                },
            })
            .collect::<Result<Vec<_>, _>>()?;
        if list.is_empty() {
            return Err(PublishError::Address(text.to_owned()));
        }
        Ok(Self::Addresses(list))
    }
}

impl fmt::Display for PublishSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Service { namespace, name } => write!(f, "service {namespace}/{name}"),
            Self::Addresses(list) => {
                let texts: Vec<String> = list
                    .iter()
                    .map(|a| match a {
                        PublishAddress::Ip(ip) => ip.to_string(),
                        PublishAddress::Hostname(h) => h.clone(),
                    })
                    .collect();
                write!(f, "address {}", texts.join(","))
            }
        }
    }
}

impl FromStr for PublishSource {
    type Err = PublishError;

    /// `NAMESPACE/NAME` is a Service, anything else addresses.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.contains('/') {
            Self::service(s)
        } else {
            Self::addresses(s)
        }
    }
}

/// How status is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StatusWrite {
    /// Patch the Ingresses through the API server.
    Api,
    /// No API server (`--manifests`): log what would be written.
    #[default]
    LogOnly,
}

/// The status settings of the controller.
///
/// It exists so the CLI (and tests) choose the address source and whether
/// an API server is there to write to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatusConfig {
    /// Where the address comes from (`None`: status is not written).
    pub publish: Option<PublishSource>,
    /// Write through the API, or only log.
    pub write: StatusWrite,
}

/// The `status.loadBalancer.ingress` entries to publish, sorted; empty
/// when the publish Service does not exist or has no address yet.
pub fn published_addresses(
    publish: &PublishSource,
    snapshot: &ClusterSnapshot,
) -> Vec<IngressLoadBalancerIngress> {
    let mut out: Vec<IngressLoadBalancerIngress> = match publish {
        PublishSource::Addresses(list) => list
            .iter()
            .map(|a| match a {
                PublishAddress::Ip(ip) => IngressLoadBalancerIngress {
                    ip: Some(ip.to_string()),
                    ..Default::default()
                },
                PublishAddress::Hostname(h) => IngressLoadBalancerIngress {
                    hostname: Some(h.clone()),
                    ..Default::default()
                },
            })
            .collect(),
        PublishSource::Service { namespace, name } => {
            let Some(svc) = snapshot.service(namespace, name) else {
                return Vec::new();
            };
            let balanced = svc
                .status
                .iter()
                .filter_map(|s| s.load_balancer.as_ref())
                .flat_map(|lb| lb.ingress.iter().flatten())
                .map(|i| IngressLoadBalancerIngress {
                    ip: i.ip.clone(),
                    hostname: i.hostname.clone(),
                    ports: i.ports.as_ref().map(|ports| {
                        ports
                            .iter()
                            .map(|p| IngressPortStatus {
                                port: p.port,
                                protocol: p.protocol.clone(),
                                error: p.error.clone(),
                            })
                            .collect()
                    }),
                });
            let external = svc
                .spec
                .iter()
                .flat_map(|s| s.external_ips.iter().flatten())
                .map(|ip| IngressLoadBalancerIngress {
                    ip: Some(ip.clone()),
                    ..Default::default()
                });
            balanced.chain(external).collect()
        }
    };
    out.sort_by(|a, b| (&a.ip, &a.hostname).cmp(&(&b.ip, &b.hostname)));
    out.dedup_by(|a, b| a.ip == b.ip && a.hostname == b.hostname);
    out
}

/// The JSON merge patch of the status subresource that sets
/// `status.loadBalancer.ingress` to `addresses` (removes it when empty).
pub fn status_patch(addresses: &[IngressLoadBalancerIngress]) -> serde_json::Value {
    let ingress = if addresses.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::to_value(addresses).unwrap_or(serde_json::Value::Null)
    };
    serde_json::json!({ "status": { "loadBalancer": { "ingress": ingress } } })
}

/// One Ingress whose status must change.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusUpdate {
    /// The Ingress.
    pub key: ObjectKey,
    /// The merge patch for its status subresource.
    pub patch: serde_json::Value,
    /// The addresses, for logs.
    pub addresses: String,
}

/// The status updates for the served Ingresses (`namespace/name`) whose
/// current `status.loadBalancer.ingress` differs from `addresses`.
pub fn plan(
    snapshot: &ClusterSnapshot,
    served: &[String],
    addresses: &[IngressLoadBalancerIngress],
) -> Vec<StatusUpdate> {
    let label = address_label(addresses);
    served
        .iter()
        .filter_map(|name| {
            let (ns, n) = name.split_once('/')?;
            let key = ObjectKey::namespaced(ns, n);
            let ingress = snapshot.get::<Ingress>(&key)?;
            let mut current: Vec<IngressLoadBalancerIngress> = ingress
                .status
                .iter()
                .filter_map(|s| s.load_balancer.as_ref())
                .flat_map(|lb| lb.ingress.iter().flatten().cloned())
                .collect();
            current.sort_by(|a, b| (&a.ip, &a.hostname).cmp(&(&b.ip, &b.hostname)));
            (current != addresses).then(|| StatusUpdate {
                key,
                patch: status_patch(addresses),
                addresses: label.clone(),
            })
        })
        .collect()
}

fn address_label(addresses: &[IngressLoadBalancerIngress]) -> String {
    let list: Vec<&str> = addresses
        .iter()
        .filter_map(|a| a.ip.as_deref().or(a.hostname.as_deref()))
        .collect();
    if list.is_empty() {
        "<none>".to_owned()
    } else {
        list.join(",")
    }
}

/// Computes status updates after each build and hands them to the writer
/// task.
///
/// It exists so the reconfiguration loop never waits on the API server.
pub(crate) struct StatusPlanner {
    publish: Option<PublishSource>,
    tx: watch::Sender<Vec<StatusUpdate>>,
}

impl StatusPlanner {
    /// A planner for `config` and the receiver its writer reads.
    pub(crate) fn new(config: &StatusConfig) -> (Self, watch::Receiver<Vec<StatusUpdate>>) {
        let (tx, rx) = watch::channel(Vec::new());
        if config.publish.is_none() {
            tracing::info!(
                "status.loadBalancer.ingress is not written: give --publish-service or \
                 --publish-address"
            );
        }
        (
            Self {
                publish: config.publish.clone(),
                tx,
            },
            rx,
        )
    }

    /// Plans the updates for one built snapshot.
    pub(crate) fn offer(&self, snapshot: &ClusterSnapshot, served: &[String]) {
        let Some(publish) = &self.publish else {
            return;
        };
        let addresses = published_addresses(publish, snapshot);
        let updates = plan(snapshot, served, &addresses);
        if !updates.is_empty() {
            self.tx.send_replace(updates);
        }
    }
}

/// Writes (or logs) planned status updates until `shutdown`.
pub(crate) async fn run_writer(
    write: StatusWrite,
    mut updates: watch::Receiver<Vec<StatusUpdate>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let client = match write {
        StatusWrite::LogOnly => None,
        StatusWrite::Api => match kube::Client::try_default().await {
            Ok(client) => Some(client),
            Err(error) => {
                tracing::error!(
                    %error,
                    "no Kubernetes client for status updates; logging them instead"
                );
                None
            }
        },
    };
    // What was last logged per Ingress, so log-only mode says it once.
    let mut logged: HashMap<ObjectKey, String> = HashMap::new();
    loop {
        tokio::select! {
            changed = updates.changed() => if changed.is_err() { return },
            () = crate::reload::stopped(&mut shutdown) => return,
        }
        let batch = updates.borrow_and_update().clone();
        for update in batch {
            match &client {
                Some(client) => patch(client, &update).await,
                None => {
                    if logged.get(&update.key) == Some(&update.addresses) {
                        continue;
                    }
                    tracing::info!(
                        ingress = %update.key,
                        addresses = %update.addresses,
                        patch = %update.patch,
                        "no API server (--manifests): would write status.loadBalancer.ingress"
                    );
                    logged.insert(update.key.clone(), update.addresses.clone());
                }
            }
        }
    }
}

/// Patches one Ingress's status subresource; failures are logged and
/// retried after the next change.
async fn patch(client: &kube::Client, update: &StatusUpdate) {
    use kube::api::{Api, Patch, PatchParams};
    let Some(ns) = update.key.namespace.as_deref() else {
        return;
    };
    let api: Api<Ingress> = Api::namespaced(client.clone(), ns);
    let params = PatchParams::default();
    match api
        .patch_status(&update.key.name, &params, &Patch::Merge(&update.patch))
        .await
    {
        Ok(_) => tracing::info!(
            ingress = %update.key,
            addresses = %update.addresses,
            "status.loadBalancer.ingress written"
        ),
        Err(error) => tracing::warn!(
            ingress = %update.key,
            %error,
            "cannot write status.loadBalancer.ingress (does the role grant patch on ingresses/status?)"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use strait_cluster::k8s_openapi::api::core::v1::Service;
    use strait_cluster::{Object, SnapshotBuilder};

    fn ingress(name: &str, status: serde_json::Value) -> Object {
        let ing: Ingress = serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "apps"},
            "status": status,
        }))
        .expect("ingress");
        ing.into()
    }

    #[test]
    fn the_plan_patches_served_ingresses_whose_status_differs() {
        let svc: Service = serde_json::from_value(json!({
            "metadata": {"name": "strait-ingress", "namespace": "strait-system"},
            "spec": {"type": "LoadBalancer", "externalIPs": ["198.51.100.4"]},
            "status": {"loadBalancer": {"ingress": [
                {"ip": "203.0.113.9", "ports": [{"port": 443, "protocol": "TCP"}]},
                {"hostname": "lb.example.net"},
            ]}},
        }))
        .expect("service");
        let published = [
            json!({"hostname": "lb.example.net"}),
            json!({"ip": "198.51.100.4"}),
            json!({"ip": "203.0.113.9", "ports": [{"port": 443, "protocol": "TCP"}]}),
        ];
        let snapshot = ClusterSnapshot::from_objects([
            svc.into(),
            ingress("fresh", json!({})),
            ingress("current", json!({"loadBalancer": {"ingress": published}})),
            ingress(
                "stale",
                json!({"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}}),
            ),
            ingress("not-ours", json!({})),
        ]);
        let source = PublishSource::service("strait-system/strait-ingress").expect("valid");
        let addresses = published_addresses(&source, &snapshot);
        let served: Vec<String> = ["apps/fresh", "apps/current", "apps/stale", "apps/gone"]
            .map(str::to_owned)
            .into();
        let updates = plan(&snapshot, &served, &addresses);
        let names: Vec<String> = updates.iter().map(|u| u.key.to_string()).collect();
        assert_eq!(names, ["apps/fresh", "apps/stale"]);
        assert_eq!(
            updates[0].patch,
            json!({"status": {"loadBalancer": {"ingress": published}}})
        );
        assert_eq!(
            updates[0].addresses,
            "lb.example.net,198.51.100.4,203.0.113.9"
        );
        // A publish Service that does not exist yet: nothing to publish,
        // and Ingresses with an address get it removed.
        let missing = PublishSource::service("strait-system/none").expect("valid");
        let addresses = published_addresses(&missing, &snapshot);
        assert!(addresses.is_empty());
        let updates = plan(&snapshot, &served, &addresses);
        let names: Vec<String> = updates.iter().map(|u| u.key.to_string()).collect();
        assert_eq!(names, ["apps/current", "apps/stale"]);
        assert_eq!(
            updates[0].patch,
            json!({"status": {"loadBalancer": {"ingress": null}}})
        );
    }

    #[test]
    fn publish_flags_parse() {
        assert_eq!(
            "ingress-nginx/controller".parse(),
            Ok(PublishSource::Service {
                namespace: "ingress-nginx".into(),
                name: "controller".into()
            })
        );
        assert_eq!(
            "192.0.2.7, lb.example.com".parse(),
            Ok(PublishSource::Addresses(vec![
                PublishAddress::Ip("192.0.2.7".parse().expect("ip")),
                PublishAddress::Hostname("lb.example.com".into())
            ]))
        );
        for bad in ["/x", "ns/", "a/b/c", "", "not an address", "*.x.com"] {
            assert!(bad.parse::<PublishSource>().is_err(), "{bad}");
        }
    }

    #[test]
    fn the_patch_sets_or_removes_the_load_balancer_ingress() {
        let addresses = published_addresses(
            &PublishSource::addresses("192.0.2.7,lb.example.com").expect("valid"),
            &SnapshotBuilder::default().build(),
        );
        assert_eq!(
            status_patch(&addresses),
            json!({"status": {"loadBalancer": {"ingress": [
                {"hostname": "lb.example.com"},
                {"ip": "192.0.2.7"},
            ]}}})
        );
        assert_eq!(
            status_patch(&[]),
            json!({"status": {"loadBalancer": {"ingress": null}}})
        );
    }
}
