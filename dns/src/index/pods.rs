//! Pod addresses by namespace, for `--pod-records verified`: a pod record
//! is answered only when a watched pod in that namespace has the address.

use std::collections::HashMap;
use std::net::IpAddr;

use strait_cluster::k8s_openapi::api::core::v1::Pod;
use strait_cluster::{Change, ChangeOp, ClusterSnapshot, ObjectKey};

use super::{MAX_LABEL, lower};

/// Addresses of the watched pods.
///
/// It exists so a verified pod record costs one hash lookup, and a pod
/// change touches only that pod's addresses.
#[derive(Debug, Default)]
pub(crate) struct PodIndex {
    /// Lowercase namespaces of the pods holding each address.
    pub(super) by_ip: HashMap<IpAddr, Vec<Box<str>>>,
    /// Pods per lowercase namespace.
    pub(super) per_namespace: HashMap<Box<str>, usize>,
    /// What each pod contributed, to undo it on change.
    by_pod: HashMap<ObjectKey, (Box<str>, Vec<IpAddr>)>,
}

impl PodIndex {
    /// Apply one Pod change from `snapshot`.
    pub(crate) fn apply(&mut self, snapshot: &ClusterSnapshot, change: &Change) {
        if let Some((ns, ips)) = self.by_pod.remove(&change.key) {
            for ip in ips {
                if let Some(list) = self.by_ip.get_mut(&ip) {
                    if let Some(pos) = list.iter().position(|n| *n == ns) {
                        list.swap_remove(pos);
                    }
                    if list.is_empty() {
                        self.by_ip.remove(&ip);
                    }
                }
            }
            if let Some(count) = self.per_namespace.get_mut(&ns) {
                *count -= 1;
                if *count == 0 {
                    self.per_namespace.remove(&ns);
                }
            }
        }
        if change.op == ChangeOp::Deleted {
            return;
        }
        let (Some(pod), Some(ns)) = (
            snapshot.get::<Pod>(&change.key),
            change.key.namespace.as_deref(),
        ) else {
            return;
        };
        let ns: Box<str> = ns.to_ascii_lowercase().into();
        let mut ips: Vec<IpAddr> = pod
            .status
            .iter()
            .flat_map(|s| {
                s.pod_ips
                    .iter()
                    .flatten()
                    .map(|p| p.ip.as_str())
                    .chain(s.pod_ip.as_deref())
            })
            .filter_map(|ip| ip.parse().ok())
            .collect();
        ips.sort();
        ips.dedup();
        for ip in &ips {
            self.by_ip.entry(*ip).or_default().push(ns.clone());
        }
        *self.per_namespace.entry(ns.clone()).or_default() += 1;
        self.by_pod.insert(change.key.clone(), (ns, ips));
    }

    /// Whether a pod in `ns` (any case) has address `ip`.
    pub(crate) fn has(&self, ns: &str, ip: IpAddr) -> bool {
        let mut buf = [0; MAX_LABEL];
        let Some(ns) = lower(ns, &mut buf) else {
            return false;
        };
        self.by_ip
            .get(&ip)
            .is_some_and(|list| list.iter().any(|n| &**n == ns))
    }

    /// The (lowercase) namespaces of the pods holding `ip`: how autopath
    /// learns a client's search path from its source address.
    pub(crate) fn namespaces_of(&self, ip: IpAddr) -> &[Box<str>] {
        self.by_ip.get(&ip).map_or(&[], Vec::as_slice)
    }

    /// Whether namespace `ns` (any case) has pods.
    pub(crate) fn has_namespace(&self, ns: &str) -> bool {
        let mut buf = [0; MAX_LABEL];
        lower(ns, &mut buf).is_some_and(|ns| self.per_namespace.contains_key(ns))
    }
}
