//! The immutable snapshot of the cluster, the builder that produces new
//! snapshots cheaply, and the diff between two snapshots.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Pod, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::kind::{Kind, KindSet, Object, ObjectKey};
use crate::shared::SharedObject;

/// The label that ties an EndpointSlice to the Service it belongs to.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// A sorted map of objects of one kind. Values are `Arc`s so snapshots share
/// unchanged objects and a diff can compare them by pointer.
pub type ObjectMap<T> = BTreeMap<ObjectKey, Arc<T>>;

/// Slices of one service, sorted by slice name.
///
/// A sorted `Vec` rather than a map: a service has a handful of slices, and
/// a B-tree node per service cost about 400 bytes for the usual one.
#[derive(Clone, Default)]
pub(crate) struct SliceSet(Vec<Arc<EndpointSlice>>);

impl SliceSet {
    fn position(&self, name: &str) -> Result<usize, usize> {
        self.0
            .binary_search_by(|s| s.metadata.name.as_deref().unwrap_or_default().cmp(name))
    }

    /// Adds `slice`, replacing the one of the same name.
    fn insert(&mut self, slice: Arc<EndpointSlice>) {
        let name = slice.metadata.name.as_deref().unwrap_or_default();
        match self.position(name) {
            Ok(i) => self.0[i] = slice,
            Err(i) => self.0.insert(i, slice),
        }
    }

    fn remove(&mut self, name: &str) {
        if let Ok(i) = self.position(name) {
            self.0.remove(i);
        }
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn iter(&self) -> impl Iterator<Item = &EndpointSlice> {
        self.0.iter().map(Arc::as_ref)
    }
}

/// The internal storage of a snapshot: one `Arc`ed map per kind, so changing
/// one kind never copies another.
mod storage {
    use super::*;

    #[derive(Clone, Default)]
    pub struct Maps {
        pub(crate) services: Arc<ObjectMap<Service>>,
        pub(crate) endpoint_slices: Arc<ObjectMap<EndpointSlice>>,
        pub(crate) ingresses: Arc<ObjectMap<Ingress>>,
        pub(crate) ingress_classes: Arc<ObjectMap<IngressClass>>,
        pub(crate) secrets: Arc<ObjectMap<Secret>>,
        pub(crate) nodes: Arc<ObjectMap<Node>>,
        pub(crate) pods: Arc<ObjectMap<Pod>>,
        /// EndpointSlices by owning service key (namespace + service name).
        pub(crate) slice_index: Arc<BTreeMap<ObjectKey, Arc<SliceSet>>>,
    }

    /// Typed access to the map of one kind; sealed so only the seven kinds
    /// implement [`ClusterResource`](super::ClusterResource).
    pub trait Sealed: Sized {
        fn map(maps: &Maps) -> &Arc<ObjectMap<Self>>;
        fn map_mut(maps: &mut Maps) -> &mut Arc<ObjectMap<Self>>;
    }
}
use storage::{Maps, Sealed};

/// A Kubernetes type the cluster view stores (one of the seven kinds).
///
/// It exists so consumers can write generic code over kinds
/// (`snapshot.objects::<Service>()`) and get the [`Kind`] of a type. It is
/// sealed: the set of kinds is fixed by this crate.
pub trait ClusterResource:
    Sealed + Clone + PartialEq + fmt::Debug + Send + Sync + Into<Object> + 'static
{
    /// The kind of this type.
    const KIND: Kind;
    /// The object's metadata.
    fn metadata(&self) -> &ObjectMeta;
}

macro_rules! resource {
    ($ty:ident, $field:ident) => {
        impl Sealed for $ty {
            fn map(maps: &Maps) -> &Arc<ObjectMap<Self>> {
                &maps.$field
            }
            fn map_mut(maps: &mut Maps) -> &mut Arc<ObjectMap<Self>> {
                &mut maps.$field
            }
        }
        impl ClusterResource for $ty {
            const KIND: Kind = Kind::$ty;
            fn metadata(&self) -> &ObjectMeta {
                &self.metadata
            }
        }
    };
}
resource!(Service, services);
resource!(EndpointSlice, endpoint_slices);
resource!(Ingress, ingresses);
resource!(IngressClass, ingress_classes);
resource!(Secret, secrets);
resource!(Node, nodes);
resource!(Pod, pods);

/// What happened to one object between two snapshots.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ChangeOp {
    /// The object was added or modified.
    Applied,
    /// The object was removed.
    Deleted,
}

/// One changed object, as reported by [`ClusterSnapshot::changes_since`].
///
/// It exists so consumers can update only what changed, whatever number of
/// intermediate snapshots they skipped.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Change {
    /// The kind of the object.
    pub kind: Kind,
    /// The object's key.
    pub key: ObjectKey,
    /// Whether it was applied or deleted.
    pub op: ChangeOp,
}

struct Inner {
    maps: Maps,
    watched: KindSet,
    synced_kinds: KindSet,
    generation: u64,
}

/// An immutable, point-in-time view of the cluster's Services, EndpointSlices,
/// Ingresses, IngressClasses, Secrets, Nodes and Pods.
///
/// It exists so every consumer (proxy, DNS, ingress, lab) can read a
/// consistent state without locks while sources keep updating. Cloning is one
/// atomic increment; unchanged kinds and objects are shared between
/// successive snapshots.
#[derive(Clone)]
pub struct ClusterSnapshot {
    inner: Arc<Inner>,
}

impl Default for ClusterSnapshot {
    fn default() -> Self {
        ClusterSnapshot::empty(KindSet::ALL)
    }
}

impl ClusterSnapshot {
    /// An empty, not yet synced snapshot at generation 0, expecting `watched` kinds.
    pub fn empty(watched: KindSet) -> ClusterSnapshot {
        ClusterSnapshot {
            inner: Arc::new(Inner {
                maps: Maps::default(),
                watched,
                synced_kinds: KindSet::EMPTY,
                generation: 0,
            }),
        }
    }

    /// A complete, synced snapshot of the given objects (tests, benchmarks and
    /// the lab build static views this way). Objects without a name are skipped;
    /// for duplicate keys the last one wins.
    pub fn from_objects(objects: impl IntoIterator<Item = Object>) -> ClusterSnapshot {
        let mut builder = SnapshotBuilder::new(KindSet::ALL);
        builder.replace(KindSet::ALL, objects);
        for kind in Kind::ALL {
            builder.mark_synced(kind);
        }
        builder.build()
    }

    /// A counter that increases with every published change; equal generations
    /// from the same source mean equal contents.
    pub fn generation(&self) -> u64 {
        self.inner.generation
    }

    /// True once every watched kind has completed its initial list. Before
    /// that the view may be partial (DNS answers SERVFAIL, for example).
    pub fn synced(&self) -> bool {
        self.inner.synced_kinds.is_superset(self.inner.watched)
    }

    /// The kinds the source provides.
    pub fn watched_kinds(&self) -> KindSet {
        self.inner.watched
    }

    /// The kinds that have completed their initial list.
    pub fn synced_kinds(&self) -> KindSet {
        self.inner.synced_kinds
    }

    /// All objects of kind `T`, sorted by key.
    pub fn objects<T: ClusterResource>(&self) -> &ObjectMap<T> {
        T::map(&self.inner.maps)
    }

    /// One object of kind `T` by key.
    pub fn get<T: ClusterResource>(&self, key: &ObjectKey) -> Option<&Arc<T>> {
        self.objects::<T>().get(key)
    }

    /// All Services.
    pub fn services(&self) -> &ObjectMap<Service> {
        &self.inner.maps.services
    }

    /// All EndpointSlices.
    pub fn endpoint_slices(&self) -> &ObjectMap<EndpointSlice> {
        &self.inner.maps.endpoint_slices
    }

    /// All Ingresses.
    pub fn ingresses(&self) -> &ObjectMap<Ingress> {
        &self.inner.maps.ingresses
    }

    /// All IngressClasses.
    pub fn ingress_classes(&self) -> &ObjectMap<IngressClass> {
        &self.inner.maps.ingress_classes
    }

    /// All Secrets (from a Kubernetes API source: TLS secrets only).
    pub fn secrets(&self) -> &ObjectMap<Secret> {
        &self.inner.maps.secrets
    }

    /// All Nodes.
    pub fn nodes(&self) -> &ObjectMap<Node> {
        &self.inner.maps.nodes
    }

    /// All Pods (from a Kubernetes API source configured with a node name:
    /// that node's pods only).
    pub fn pods(&self) -> &ObjectMap<Pod> {
        &self.inner.maps.pods
    }

    /// The Service `namespace/name`.
    pub fn service(&self, namespace: &str, name: &str) -> Option<&Arc<Service>> {
        self.services().get(&ObjectKey::namespaced(namespace, name))
    }

    /// The EndpointSlices that belong to Service `namespace/service_name`
    /// (label `kubernetes.io/service-name`, same namespace), sorted by slice
    /// name. Served from an index kept in the snapshot.
    pub fn slices_for(
        &self,
        namespace: &str,
        service_name: &str,
    ) -> impl Iterator<Item = &EndpointSlice> + '_ {
        self.inner
            .maps
            .slice_index
            .get(&ObjectKey::namespaced(namespace, service_name))
            .into_iter()
            .flat_map(|set| set.iter())
    }

    /// Number of objects of `kind`.
    pub fn count(&self, kind: Kind) -> usize {
        let m = &self.inner.maps;
        match kind {
            Kind::Service => m.services.len(),
            Kind::EndpointSlice => m.endpoint_slices.len(),
            Kind::Ingress => m.ingresses.len(),
            Kind::IngressClass => m.ingress_classes.len(),
            Kind::Secret => m.secrets.len(),
            Kind::Node => m.nodes.len(),
            Kind::Pod => m.pods.len(),
        }
    }

    /// The objects that differ between `older` and `self`: added or modified
    /// ones are [`ChangeOp::Applied`], removed ones [`ChangeOp::Deleted`].
    ///
    /// It compares the sorted maps by a merge walk and objects by pointer, so it
    /// is correct however many snapshots lie between the two and costs nothing
    /// for kinds that did not change (their whole map is shared). An object
    /// re-applied with identical contents keeps its pointer and is not reported.
    /// Changes are ordered by kind ([`Kind::ALL`] order), then key.
    pub fn changes_since(&self, older: &ClusterSnapshot) -> Vec<Change> {
        let mut out = Vec::new();
        if Arc::ptr_eq(&self.inner, &older.inner) {
            return out;
        }
        for kind in Kind::ALL {
            self.diff_kind(older, kind, &mut out);
        }
        out
    }

    /// Whether any object of `kind` differs between `older` and `self`:
    /// what [`changes_since`](Self::changes_since) reports for that kind,
    /// without walking the other kinds' maps (a watcher of Nodes need not
    /// diff 10 000 EndpointSlices on every endpoint change).
    pub fn kind_changed_since(&self, older: &ClusterSnapshot, kind: Kind) -> bool {
        if Arc::ptr_eq(&self.inner, &older.inner) {
            return false;
        }
        let mut out = Vec::new();
        self.diff_kind(older, kind, &mut out);
        !out.is_empty()
    }

    /// Appends the changes of `kind` since `older` to `out`.
    fn diff_kind(&self, older: &ClusterSnapshot, kind: Kind, out: &mut Vec<Change>) {
        let (new, old) = (&self.inner.maps, &older.inner.maps);
        match kind {
            Kind::Service => diff_maps(&old.services, &new.services, out),
            Kind::EndpointSlice => diff_maps(&old.endpoint_slices, &new.endpoint_slices, out),
            Kind::Ingress => diff_maps(&old.ingresses, &new.ingresses, out),
            Kind::IngressClass => diff_maps(&old.ingress_classes, &new.ingress_classes, out),
            Kind::Secret => diff_maps(&old.secrets, &new.secrets, out),
            Kind::Node => diff_maps(&old.nodes, &new.nodes, out),
            Kind::Pod => diff_maps(&old.pods, &new.pods, out),
        }
    }
}

impl fmt::Debug for ClusterSnapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("ClusterSnapshot");
        d.field("generation", &self.generation())
            .field("synced", &self.synced());
        for kind in Kind::ALL {
            d.field(kind.as_str(), &self.count(kind));
        }
        d.finish()
    }
}

fn diff_maps<T: ClusterResource>(
    old: &Arc<ObjectMap<T>>,
    new: &Arc<ObjectMap<T>>,
    out: &mut Vec<Change>,
) {
    if Arc::ptr_eq(old, new) {
        return;
    }
    let change = |key: &ObjectKey, op| Change {
        kind: T::KIND,
        key: key.clone(),
        op,
    };
    let mut a = old.iter().peekable();
    let mut b = new.iter().peekable();
    loop {
        match (a.peek(), b.peek()) {
            (None, None) => break,
            (Some((ka, _)), None) => {
                out.push(change(ka, ChangeOp::Deleted));
                a.next();
            }
            (None, Some((kb, _))) => {
                out.push(change(kb, ChangeOp::Applied));
                b.next();
            }
            (Some((ka, va)), Some((kb, vb))) => match ka.cmp(kb) {
                std::cmp::Ordering::Less => {
                    out.push(change(ka, ChangeOp::Deleted));
                    a.next();
                }
                std::cmp::Ordering::Greater => {
                    out.push(change(kb, ChangeOp::Applied));
                    b.next();
                }
                std::cmp::Ordering::Equal => {
                    if !Arc::ptr_eq(va, vb) {
                        out.push(change(kb, ChangeOp::Applied));
                    }
                    a.next();
                    b.next();
                }
            },
        }
    }
}

/// The service an EndpointSlice belongs to, from its label.
fn owning_service(key: &ObjectKey, slice: &EndpointSlice) -> Option<ObjectKey> {
    let service = slice.metadata.labels.as_ref()?.get(SERVICE_NAME_LABEL)?;
    if service.is_empty() {
        return None;
    }
    Some(ObjectKey {
        namespace: key.namespace.clone(),
        name: service.clone(),
    })
}

/// A mutable working copy of the cluster state that produces snapshots.
///
/// It exists so sources (through the [`Publisher`](crate::Publisher)) and
/// synchronous callers (the lab computing EndpointSlices) can change objects
/// and then freeze the result. Applying an object equal to the stored one is a
/// no-op, so relists and reloads do not produce spurious changes.
#[derive(Clone)]
pub struct SnapshotBuilder {
    maps: Maps,
    watched: KindSet,
    synced_kinds: KindSet,
    generation: u64,
    dirty: bool,
}

impl SnapshotBuilder {
    /// An empty builder whose snapshots expect `watched` kinds to sync.
    pub fn new(watched: KindSet) -> SnapshotBuilder {
        SnapshotBuilder {
            maps: Maps::default(),
            watched,
            synced_kinds: KindSet::EMPTY,
            generation: 0,
            dirty: false,
        }
    }

    /// A builder that continues from `snapshot` (same contents, sync state and
    /// generation), for example to add computed EndpointSlices to a loaded
    /// manifest directory.
    pub fn from_snapshot(snapshot: &ClusterSnapshot) -> SnapshotBuilder {
        SnapshotBuilder {
            maps: snapshot.inner.maps.clone(),
            watched: snapshot.inner.watched,
            synced_kinds: snapshot.inner.synced_kinds,
            generation: snapshot.inner.generation,
            dirty: false,
        }
    }

    /// Whether anything changed since the last [`build`](Self::build).
    pub fn is_dirty(&self) -> bool {
        self.dirty
    }

    /// Adds or replaces one object. Returns whether the state changed; an
    /// object without `metadata.name` is ignored (and logged).
    pub fn apply(&mut self, object: impl Into<Object>) -> bool {
        let object = object.into();
        let Some(key) = object.key() else {
            tracing::warn!(kind = %object.kind(), "ignoring object without metadata.name");
            return false;
        };
        let changed = match object {
            Object::Service(o) => self.apply_typed(key, o).is_some(),
            Object::EndpointSlice(o) => match self.apply_typed(key.clone(), o) {
                Some(old) => {
                    let new = self.maps.endpoint_slices.get(&key).cloned();
                    self.reindex_slice(&key, old, new);
                    true
                }
                None => false,
            },
            Object::Ingress(o) => self.apply_typed(key, o).is_some(),
            Object::IngressClass(o) => self.apply_typed(key, o).is_some(),
            Object::Secret(o) => self.apply_typed(key, o).is_some(),
            Object::Node(o) => self.apply_typed(key, o).is_some(),
            Object::Pod(o) => self.apply_typed(key, o).is_some(),
        };
        self.dirty |= changed;
        changed
    }

    /// Removes one object. Returns whether it existed.
    pub fn delete(&mut self, kind: Kind, key: &ObjectKey) -> bool {
        let changed = match kind {
            Kind::Service => self.delete_typed::<Service>(key).is_some(),
            Kind::EndpointSlice => match self.delete_typed::<EndpointSlice>(key) {
                Some(old) => {
                    self.reindex_slice(key, Some(old), None);
                    true
                }
                None => false,
            },
            Kind::Ingress => self.delete_typed::<Ingress>(key).is_some(),
            Kind::IngressClass => self.delete_typed::<IngressClass>(key).is_some(),
            Kind::Secret => self.delete_typed::<Secret>(key).is_some(),
            Kind::Node => self.delete_typed::<Node>(key).is_some(),
            Kind::Pod => self.delete_typed::<Pod>(key).is_some(),
        };
        self.dirty |= changed;
        changed
    }

    /// Replaces every object of the kinds in `kinds` with `objects` (objects of
    /// other kinds are ignored). Objects equal to stored ones keep their
    /// identity, and a kind whose contents are unchanged keeps its map, so
    /// consumers see only real changes. Returns whether the state changed.
    pub fn replace(&mut self, kinds: KindSet, objects: impl IntoIterator<Item = Object>) -> bool {
        self.replace_shared(kinds, objects.into_iter().map(SharedObject::from))
    }

    /// [`replace`](Self::replace) for objects already behind their `Arc`: an
    /// object equal to the stored one keeps the stored `Arc`, any other goes
    /// into the snapshot as given, shared with the caller's copy.
    pub(crate) fn replace_shared(
        &mut self,
        kinds: KindSet,
        objects: impl IntoIterator<Item = SharedObject>,
    ) -> bool {
        let mut services = Vec::new();
        let mut slices = Vec::new();
        let mut ingresses = Vec::new();
        let mut classes = Vec::new();
        let mut secrets = Vec::new();
        let mut nodes = Vec::new();
        let mut pods = Vec::new();
        for object in objects {
            if !kinds.contains(object.kind()) {
                continue;
            }
            let Some(key) = object.key() else {
                tracing::warn!(kind = %object.kind(), "ignoring object without metadata.name");
                continue;
            };
            match object {
                SharedObject::Service(o) => services.push((key, o)),
                SharedObject::EndpointSlice(o) => slices.push((key, o)),
                SharedObject::Ingress(o) => ingresses.push((key, o)),
                SharedObject::IngressClass(o) => classes.push((key, o)),
                SharedObject::Secret(o) => secrets.push((key, o)),
                SharedObject::Node(o) => nodes.push((key, o)),
                SharedObject::Pod(o) => pods.push((key, o)),
            }
        }
        let mut changed = false;
        if kinds.contains(Kind::Service) {
            changed |= self.replace_typed(services);
        }
        if kinds.contains(Kind::EndpointSlice) && self.replace_typed(slices) {
            self.rebuild_slice_index();
            changed = true;
        }
        if kinds.contains(Kind::Ingress) {
            changed |= self.replace_typed(ingresses);
        }
        if kinds.contains(Kind::IngressClass) {
            changed |= self.replace_typed(classes);
        }
        if kinds.contains(Kind::Secret) {
            changed |= self.replace_typed(secrets);
        }
        if kinds.contains(Kind::Node) {
            changed |= self.replace_typed(nodes);
        }
        if kinds.contains(Kind::Pod) {
            changed |= self.replace_typed(pods);
        }
        self.dirty |= changed;
        changed
    }

    /// Records that `kind` completed its initial list. Returns whether that is new.
    pub fn mark_synced(&mut self, kind: Kind) -> bool {
        if self.synced_kinds.contains(kind) {
            return false;
        }
        self.synced_kinds.insert(kind);
        self.dirty = true;
        true
    }

    /// Changes the set of kinds a snapshot must have synced to count as synced.
    pub fn set_watched(&mut self, watched: KindSet) {
        if self.watched != watched {
            self.watched = watched;
            self.dirty = true;
        }
    }

    /// Freezes the current state. When anything changed since the last build
    /// the generation is incremented first.
    pub fn build(&mut self) -> ClusterSnapshot {
        if self.dirty {
            self.generation += 1;
            self.dirty = false;
        }
        ClusterSnapshot {
            inner: Arc::new(Inner {
                maps: self.maps.clone(),
                watched: self.watched,
                synced_kinds: self.synced_kinds,
                generation: self.generation,
            }),
        }
    }

    /// Returns `Some(previous)` when the map changed.
    fn apply_typed<T: ClusterResource>(
        &mut self,
        key: ObjectKey,
        object: T,
    ) -> Option<Option<Arc<T>>> {
        if let Some(old) = T::map(&self.maps).get(&key)
            && **old == object
        {
            return None;
        }
        let map = Arc::make_mut(T::map_mut(&mut self.maps));
        Some(map.insert(key, Arc::new(object)))
    }

    fn delete_typed<T: ClusterResource>(&mut self, key: &ObjectKey) -> Option<Arc<T>> {
        if !T::map(&self.maps).contains_key(key) {
            return None;
        }
        Arc::make_mut(T::map_mut(&mut self.maps)).remove(key)
    }

    fn replace_typed<T: ClusterResource>(&mut self, objects: Vec<(ObjectKey, Arc<T>)>) -> bool {
        let old = T::map(&self.maps);
        let mut new: ObjectMap<T> = BTreeMap::new();
        for (key, object) in objects {
            let value = match old.get(&key) {
                Some(existing) if Arc::ptr_eq(existing, &object) || **existing == *object => {
                    existing.clone()
                }
                _ => object,
            };
            new.insert(key, value);
        }
        let same = new.len() == old.len()
            && new
                .iter()
                .zip(old.iter())
                .all(|((k1, v1), (k2, v2))| k1 == k2 && Arc::ptr_eq(v1, v2));
        if same {
            return false;
        }
        *T::map_mut(&mut self.maps) = Arc::new(new);
        true
    }

    fn reindex_slice(
        &mut self,
        key: &ObjectKey,
        old: Option<Arc<EndpointSlice>>,
        new: Option<Arc<EndpointSlice>>,
    ) {
        let index = Arc::make_mut(&mut self.maps.slice_index);
        if let Some(service) = old.as_deref().and_then(|s| owning_service(key, s))
            && let Some(set) = index.get_mut(&service)
        {
            let set = Arc::make_mut(set);
            set.remove(&key.name);
            if set.is_empty() {
                index.remove(&service);
            }
        }
        if let Some(new) = new
            && let Some(service) = owning_service(key, &new)
        {
            Arc::make_mut(index.entry(service).or_default()).insert(new);
        }
    }

    fn rebuild_slice_index(&mut self) {
        let mut index: BTreeMap<ObjectKey, SliceSet> = BTreeMap::new();
        for (key, slice) in self.maps.endpoint_slices.iter() {
            if let Some(service) = owning_service(key, slice) {
                // keys are sorted, so each set is built in name order
                index.entry(service).or_default().0.push(slice.clone());
            }
        }
        self.maps.slice_index = Arc::new(
            index
                .into_iter()
                .map(|(k, mut v)| {
                    v.0.shrink_to_fit();
                    (k, Arc::new(v))
                })
                .collect(),
        );
    }
}

impl Default for SnapshotBuilder {
    fn default() -> Self {
        SnapshotBuilder::new(KindSet::ALL)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::discovery::v1::Endpoint;

    fn svc(ns: &str, name: &str, ip: &str) -> Object {
        Object::Service(Service {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some(ns.into()),
                ..Default::default()
            },
            spec: Some(k8s_openapi::api::core::v1::ServiceSpec {
                cluster_ip: Some(ip.into()),
                ..Default::default()
            }),
            ..Default::default()
        })
    }

    fn slice(ns: &str, name: &str, service: Option<&str>, ip: &str) -> Object {
        Object::EndpointSlice(EndpointSlice {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some(ns.into()),
                labels: service.map(|s| [(SERVICE_NAME_LABEL.to_string(), s.to_string())].into()),
                ..Default::default()
            },
            address_type: "IPv4".into(),
            endpoints: vec![Endpoint {
                addresses: vec![ip.into()],
                ..Default::default()
            }],
            ports: None,
        })
    }

    fn node(name: &str) -> Object {
        Object::Node(Node {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            ..Default::default()
        })
    }

    fn slice_names(s: &ClusterSnapshot, ns: &str, svc: &str) -> Vec<String> {
        s.slices_for(ns, svc)
            .map(|s| s.metadata.name.clone().unwrap_or_default())
            .collect()
    }

    fn applied(kind: Kind, key: ObjectKey) -> Change {
        Change {
            kind,
            key,
            op: ChangeOp::Applied,
        }
    }

    fn deleted(kind: Kind, key: ObjectKey) -> Change {
        Change {
            kind,
            key,
            op: ChangeOp::Deleted,
        }
    }

    #[test]
    fn changes_detect_applied_deleted_and_unchanged() {
        let mut b = SnapshotBuilder::new(KindSet::ALL);
        b.apply(svc("a", "one", "10.0.0.1"));
        b.apply(svc("a", "two", "10.0.0.2"));
        b.apply(node("n1"));
        let s1 = b.build();

        b.apply(svc("a", "one", "10.0.0.9")); // modified
        b.delete(Kind::Service, &ObjectKey::namespaced("a", "two")); // deleted
        b.apply(svc("b", "three", "10.0.0.3")); // added
        b.apply(node("n1")); // identical: not a change
        let s2 = b.build();

        assert_eq!(
            s2.changes_since(&s1),
            vec![
                applied(Kind::Service, ObjectKey::namespaced("a", "one")),
                deleted(Kind::Service, ObjectKey::namespaced("a", "two")),
                applied(Kind::Service, ObjectKey::namespaced("b", "three")),
            ]
        );
        // the Node map was not touched, so it is shared
        assert!(Arc::ptr_eq(&s1.inner.maps.nodes, &s2.inner.maps.nodes));
        // per kind, the same answer without walking the other kinds
        assert!(s2.kind_changed_since(&s1, Kind::Service));
        assert!(!s2.kind_changed_since(&s1, Kind::Node));
        assert!(!s2.kind_changed_since(&s2, Kind::Service));
        b.apply(node("n2"));
        let s3 = b.build();
        assert!(s3.kind_changed_since(&s2, Kind::Node));
        assert!(!s3.kind_changed_since(&s2, Kind::Service));
        assert!(s2.generation() > s1.generation());
        assert!(s2.changes_since(&s2).is_empty());
        // and the reverse direction inverts the operations
        assert_eq!(
            s1.changes_since(&s2),
            vec![
                applied(Kind::Service, ObjectKey::namespaced("a", "one")),
                applied(Kind::Service, ObjectKey::namespaced("a", "two")),
                deleted(Kind::Service, ObjectKey::namespaced("b", "three")),
            ]
        );
    }

    #[test]
    fn changes_across_skipped_snapshots() {
        let mut b = SnapshotBuilder::new(KindSet::ALL);
        b.apply(svc("a", "keep", "10.0.0.1"));
        b.apply(svc("a", "flap", "10.0.0.2"));
        b.apply(svc("a", "gone", "10.0.0.3"));
        let s1 = b.build();
        // intermediate snapshots the consumer never sees
        b.delete(Kind::Service, &ObjectKey::namespaced("a", "flap"));
        b.apply(svc("a", "temp", "10.0.0.4"));
        let _s2 = b.build();
        b.apply(svc("a", "flap", "10.0.0.2")); // re-added with same content
        b.delete(Kind::Service, &ObjectKey::namespaced("a", "temp"));
        b.delete(Kind::Service, &ObjectKey::namespaced("a", "gone"));
        b.apply(node("n"));
        let _s3 = b.build();
        b.apply(svc("a", "new", "10.0.0.5"));
        let s4 = b.build();

        assert_eq!(
            s4.changes_since(&s1),
            vec![
                // flap was deleted and re-created: a new object, so Applied
                applied(Kind::Service, ObjectKey::namespaced("a", "flap")),
                deleted(Kind::Service, ObjectKey::namespaced("a", "gone")),
                applied(Kind::Service, ObjectKey::namespaced("a", "new")),
                applied(Kind::Node, ObjectKey::cluster("n")),
            ]
        );
    }

    #[test]
    fn replace_keeps_identity_of_equal_objects() {
        let mut b = SnapshotBuilder::new(KindSet::ALL);
        b.replace(
            KindSet::ALL,
            vec![
                svc("a", "one", "10.0.0.1"),
                svc("a", "two", "10.0.0.2"),
                node("n"),
            ],
        );
        let s1 = b.build();
        assert!(!b.replace(
            KindSet::ALL,
            vec![
                svc("a", "one", "10.0.0.1"),
                svc("a", "two", "10.0.0.2"),
                node("n")
            ],
        ));
        assert!(!b.is_dirty());
        assert!(b.replace(
            KindSet::only(Kind::Service),
            vec![svc("a", "one", "10.0.0.1"), node("ignored")],
        ));
        let s2 = b.build();
        assert_eq!(
            s2.changes_since(&s1),
            vec![deleted(Kind::Service, ObjectKey::namespaced("a", "two"))]
        );
        assert_eq!(s2.nodes().len(), 1);
        assert!(Arc::ptr_eq(
            s1.service("a", "one").unwrap(),
            s2.service("a", "one").unwrap()
        ));
    }

    #[test]
    fn slice_index_follows_applies_relabels_and_deletes() {
        let mut b = SnapshotBuilder::new(KindSet::ALL);
        b.apply(slice("a", "web-1", Some("web"), "10.1.0.1"));
        b.apply(slice("a", "web-2", Some("web"), "10.1.0.2"));
        b.apply(slice("b", "web-1", Some("web"), "10.1.0.3"));
        b.apply(slice("a", "orphan", None, "10.1.0.4"));
        let s1 = b.build();
        assert_eq!(slice_names(&s1, "a", "web"), ["web-1", "web-2"]);
        assert_eq!(slice_names(&s1, "b", "web"), ["web-1"]);
        assert!(slice_names(&s1, "a", "db").is_empty());

        // relabel web-2 to db, delete web-1 in a
        b.apply(slice("a", "web-2", Some("db"), "10.1.0.2"));
        b.delete(Kind::EndpointSlice, &ObjectKey::namespaced("a", "web-1"));
        let s2 = b.build();
        assert!(slice_names(&s2, "a", "web").is_empty());
        assert_eq!(slice_names(&s2, "a", "db"), ["web-2"]);
        // the old snapshot is unaffected
        assert_eq!(slice_names(&s1, "a", "web"), ["web-1", "web-2"]);

        // a modified slice is visible through the index
        b.apply(slice("a", "web-2", Some("db"), "10.1.0.99"));
        let s3 = b.build();
        let ips: Vec<_> = s3
            .slices_for("a", "db")
            .flat_map(|s| s.endpoints.iter().flat_map(|e| e.addresses.clone()))
            .collect();
        assert_eq!(ips, ["10.1.0.99"]);

        // replace rebuilds it
        b.replace(
            KindSet::only(Kind::EndpointSlice),
            vec![slice("c", "x", Some("api"), "10.2.0.1")],
        );
        let s4 = b.build();
        assert!(slice_names(&s4, "a", "db").is_empty());
        assert_eq!(slice_names(&s4, "c", "api"), ["x"]);
    }

    #[test]
    fn slice_index_matches_a_scan_after_any_sequence() {
        let scan = |s: &ClusterSnapshot, ns: &str, svc: &str| -> Vec<String> {
            s.endpoint_slices()
                .iter()
                .filter(|(k, v)| {
                    k.namespace.as_deref() == Some(ns)
                        && v.metadata
                            .labels
                            .as_ref()
                            .and_then(|l| l.get(SERVICE_NAME_LABEL))
                            .is_some_and(|l| l == svc)
                })
                .map(|(k, _)| k.name.clone())
                .collect()
        };
        let mut b = SnapshotBuilder::new(KindSet::ALL);
        let mut seed = 7u32;
        for step in 0..400 {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            let r = seed >> 8;
            let ns = ["a", "b"][(r % 2) as usize];
            let name = format!("s{}", (r >> 1) % 7);
            let svc = ["web", "db", "api"][((r >> 4) % 3) as usize];
            match (r >> 6) % 4 {
                0 => {
                    b.delete(Kind::EndpointSlice, &ObjectKey::namespaced(ns, &name));
                }
                1 if step % 50 == 0 => {
                    b.replace(
                        KindSet::only(Kind::EndpointSlice),
                        vec![slice(ns, &name, Some(svc), "10.0.0.1")],
                    );
                }
                _ => {
                    b.apply(slice(ns, &name, Some(svc), &format!("10.0.0.{step}")));
                }
            }
            let snap = b.build();
            for ns in ["a", "b"] {
                for svc in ["web", "db", "api"] {
                    assert_eq!(
                        slice_names(&snap, ns, svc),
                        scan(&snap, ns, svc),
                        "step {step}"
                    );
                }
            }
        }
    }

    #[test]
    fn synced_requires_every_watched_kind() {
        let mut b = SnapshotBuilder::new(KindSet::only(Kind::Service).with(Kind::Pod));
        assert!(!b.build().synced());
        b.mark_synced(Kind::Service);
        assert!(!b.build().synced());
        b.mark_synced(Kind::Pod);
        let s = b.build();
        assert!(s.synced());
        assert!(!b.mark_synced(Kind::Pod));
        assert!(ClusterSnapshot::from_objects(vec![node("n")]).synced());
        assert!(!ClusterSnapshot::default().synced());
    }

    #[test]
    fn objects_without_names_are_ignored() {
        let mut b = SnapshotBuilder::new(KindSet::ALL);
        assert!(!b.apply(Object::Service(Service::default())));
        assert_eq!(b.build().services().len(), 0);
    }
}
