//! The in-memory record index of the cluster zone, built from the cluster
//! view and updated incrementally from [`ClusterSnapshot::changes_since`].
//!
//! Keys are stored lowercase; lookups lowercase the query's labels into a
//! stack buffer, so answering never allocates for the lookup itself. A
//! change to one Service or EndpointSlice recomputes only that service.

mod pods;
mod service;

#[cfg(test)]
mod tests;

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

use hickory_proto::rr::Name;
use strait_cluster::k8s_openapi::api::core::v1::Service;
use strait_cluster::k8s_openapi::api::discovery::v1::EndpointSlice;
use strait_cluster::{Change, ChangeOp, ClusterSnapshot, Kind, ObjectKey, SERVICE_NAME_LABEL};

pub(crate) use pods::PodIndex;
pub(crate) use service::{NamedPort, ServiceBody, ServiceEntry};

/// Longest DNS label; every key of the index is a label.
const MAX_LABEL: usize = 63;

/// Lowercase `label` into `buf`, or `None` when it cannot be a key.
pub(crate) fn lower<'b>(label: &str, buf: &'b mut [u8; MAX_LABEL]) -> Option<&'b str> {
    let out = buf.get_mut(..label.len())?;
    for (o, b) in out.iter_mut().zip(label.bytes()) {
        *o = b.to_ascii_lowercase();
    }
    std::str::from_utf8(out).ok()
}

/// The records of the cluster zone and the reverse zones.
///
/// It exists so the authority answers from memory in a few hash lookups,
/// and so an update touches only the services that changed.
#[derive(Debug, Default)]
pub struct Index {
    zone: String,
    /// Services by lowercase namespace, then lowercase name.
    namespaces: HashMap<Box<str>, HashMap<Box<str>, Arc<ServiceEntry>>>,
    /// PTR targets by address (a shared address has several).
    reverse: HashMap<IpAddr, Vec<Name>>,
    /// Which service each EndpointSlice belonged to when last seen.
    slice_owner: HashMap<ObjectKey, ObjectKey>,
    pods: PodIndex,
    synced: bool,
    generation: u64,
}

impl Index {
    /// An empty, unsynced index for `zone` (lowercase, no trailing dot).
    pub fn new(zone: &str) -> Index {
        Index {
            zone: zone.to_ascii_lowercase(),
            ..Index::default()
        }
    }

    /// Whether the cluster view had completed its initial list when the
    /// index was last updated. Before that, answers would be guesses.
    pub fn synced(&self) -> bool {
        self.synced
    }

    /// The generation of the snapshot last applied (the SOA serial).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Number of services indexed (for metrics and memory accounting).
    pub fn service_count(&self) -> usize {
        self.namespaces.values().map(HashMap::len).sum()
    }

    /// Bring the index to `snapshot`, given what changed since the last
    /// snapshot applied. Only the services named by `changes` (directly or
    /// through their EndpointSlices) are recomputed.
    pub fn apply(&mut self, snapshot: &ClusterSnapshot, changes: &[Change]) {
        let mut dirty: BTreeSet<ObjectKey> = BTreeSet::new();
        for change in changes {
            match change.kind {
                Kind::Service => {
                    dirty.insert(change.key.clone());
                }
                Kind::EndpointSlice => {
                    if let Some(old) = self.slice_owner.remove(&change.key) {
                        dirty.insert(old);
                    }
                    if change.op == ChangeOp::Applied
                        && let Some(slice) = snapshot.endpoint_slices().get(&change.key)
                        && let Some(owner) = owner(&change.key, slice)
                    {
                        self.slice_owner.insert(change.key.clone(), owner.clone());
                        dirty.insert(owner);
                    }
                }
                Kind::Pod => self.pods.apply(snapshot, change),
                _ => {}
            }
        }
        for key in &dirty {
            self.refresh_service(snapshot, key);
        }
        self.synced = snapshot.synced();
        self.generation = snapshot.generation();
        tracing::debug!(
            changes = changes.len(),
            services_recomputed = dirty.len(),
            generation = self.generation,
            "dns index updated"
        );
    }

    /// Build a whole index from one snapshot (every object is a change).
    pub fn from_snapshot(zone: &str, snapshot: &ClusterSnapshot) -> Index {
        let mut index = Index::new(zone);
        let empty = ClusterSnapshot::empty(snapshot.watched_kinds());
        index.apply(snapshot, &snapshot.changes_since(&empty));
        index
    }

    fn refresh_service(&mut self, snapshot: &ClusterSnapshot, key: &ObjectKey) {
        let Some(ns) = key.namespace.as_deref() else {
            return;
        };
        let entry = snapshot.get::<Service>(key).and_then(|svc| {
            service::build(
                &self.zone,
                ns,
                &key.name,
                svc,
                snapshot.slices_for(ns, &key.name),
            )
        });
        let ns_key: Box<str> = ns.to_ascii_lowercase().into();
        let name_key: Box<str> = key.name.to_ascii_lowercase().into();
        let old = self
            .namespaces
            .get_mut(&ns_key)
            .and_then(|services| services.remove(&name_key));
        if let Some(old) = &old {
            for (ip, target) in old.ptrs() {
                self.remove_ptr(ip, &target);
            }
        }
        match entry {
            Some(entry) => {
                for (ip, target) in entry.ptrs() {
                    self.reverse.entry(ip).or_default().push(target);
                }
                self.namespaces
                    .entry(ns_key)
                    .or_default()
                    .insert(name_key, Arc::new(entry));
            }
            None => {
                if self.namespaces.get(&ns_key).is_some_and(HashMap::is_empty) {
                    self.namespaces.remove(&ns_key);
                }
            }
        }
    }

    fn remove_ptr(&mut self, ip: IpAddr, target: &Name) {
        if let Some(targets) = self.reverse.get_mut(&ip) {
            if let Some(pos) = targets.iter().position(|t| t == target) {
                targets.swap_remove(pos);
            }
            if targets.is_empty() {
                self.reverse.remove(&ip);
            }
        }
    }

    /// The service `svc` in `ns` (any case).
    pub(crate) fn service(&self, ns: &str, svc: &str) -> Option<&ServiceEntry> {
        let (mut a, mut b) = ([0; MAX_LABEL], [0; MAX_LABEL]);
        let ns = lower(ns, &mut a)?;
        let svc = lower(svc, &mut b)?;
        self.namespaces.get(ns)?.get(svc).map(Arc::as_ref)
    }

    /// Whether namespace `ns` (any case) has at least one service.
    pub(crate) fn has_namespace(&self, ns: &str) -> bool {
        let mut a = [0; MAX_LABEL];
        lower(ns, &mut a).is_some_and(|ns| self.namespaces.contains_key(ns))
    }

    /// The PTR targets of `ip` (empty when the address is not ours).
    pub(crate) fn ptr(&self, ip: IpAddr) -> &[Name] {
        self.reverse.get(&ip).map_or(&[], Vec::as_slice)
    }

    /// The pod records.
    pub(crate) fn pods(&self) -> &PodIndex {
        &self.pods
    }
}

/// The service an EndpointSlice belongs to, from its label.
fn owner(key: &ObjectKey, slice: &EndpointSlice) -> Option<ObjectKey> {
    let service = slice.metadata.labels.as_ref()?.get(SERVICE_NAME_LABEL)?;
    (!service.is_empty()).then(|| ObjectKey {
        namespace: key.namespace.clone(),
        name: service.clone(),
    })
}
