//! The seven object kinds the cluster view carries, how each is keyed, and a
//! type-erased [`Object`] that sources hand to the [`Publisher`](crate::Publisher).

use std::fmt;

use k8s_openapi::api::core::v1::{Node, Pod, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// One of the object kinds the cluster view carries.
///
/// It exists so change notifications, sync state and source configuration can
/// name a kind without generics (a plain `Copy` enum is cheap to match on).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// core/v1 Service.
    Service,
    /// discovery.k8s.io/v1 EndpointSlice.
    EndpointSlice,
    /// networking.k8s.io/v1 Ingress.
    Ingress,
    /// networking.k8s.io/v1 IngressClass (cluster-scoped).
    IngressClass,
    /// core/v1 Secret.
    Secret,
    /// core/v1 Node (cluster-scoped).
    Node,
    /// core/v1 Pod.
    Pod,
}

impl Kind {
    /// Every kind, in a fixed order, so callers can iterate without listing them.
    pub const ALL: [Kind; 7] = [
        Kind::Service,
        Kind::EndpointSlice,
        Kind::Ingress,
        Kind::IngressClass,
        Kind::Secret,
        Kind::Node,
        Kind::Pod,
    ];

    /// The Kubernetes `kind` string, for logs and error messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Service => "Service",
            Kind::EndpointSlice => "EndpointSlice",
            Kind::Ingress => "Ingress",
            Kind::IngressClass => "IngressClass",
            Kind::Secret => "Secret",
            Kind::Node => "Node",
            Kind::Pod => "Pod",
        }
    }

    /// The `apiVersion` this crate reads the kind at, so manifests and errors can name it.
    pub fn api_version(self) -> &'static str {
        match self {
            Kind::Service | Kind::Secret | Kind::Node | Kind::Pod => "v1",
            Kind::EndpointSlice => "discovery.k8s.io/v1",
            Kind::Ingress | Kind::IngressClass => "networking.k8s.io/v1",
        }
    }

    /// Whether objects of this kind live in a namespace; cluster-scoped objects
    /// are keyed with `namespace: None`.
    pub fn is_namespaced(self) -> bool {
        !matches!(self, Kind::Node | Kind::IngressClass)
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A small set of [`Kind`]s.
///
/// It exists so a source can say which kinds it provides (a DNS server does not
/// need Pods or Secrets) and a snapshot can say which kinds finished their
/// initial list.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct KindSet(u8);

impl KindSet {
    /// No kinds.
    pub const EMPTY: KindSet = KindSet(0);
    /// All seven kinds.
    pub const ALL: KindSet = KindSet(0b111_1111);

    /// A set holding exactly one kind.
    pub fn only(kind: Kind) -> KindSet {
        KindSet(kind.bit())
    }

    /// Whether `kind` is in the set.
    pub fn contains(self, kind: Kind) -> bool {
        self.0 & kind.bit() != 0
    }

    /// Adds `kind` to the set.
    pub fn insert(&mut self, kind: Kind) {
        self.0 |= kind.bit();
    }

    /// Removes `kind` from the set.
    pub fn remove(&mut self, kind: Kind) {
        self.0 &= !kind.bit();
    }

    /// The set with `kind` added (builder style).
    #[must_use]
    pub fn with(mut self, kind: Kind) -> KindSet {
        self.insert(kind);
        self
    }

    /// The set with `kind` removed (builder style).
    #[must_use]
    pub fn without(mut self, kind: Kind) -> KindSet {
        self.remove(kind);
        self
    }

    /// Whether every kind of `other` is also in `self`.
    pub fn is_superset(self, other: KindSet) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The kinds in the set, in [`Kind::ALL`] order.
    pub fn iter(self) -> impl Iterator<Item = Kind> {
        Kind::ALL.into_iter().filter(move |k| self.contains(*k))
    }
}

impl FromIterator<Kind> for KindSet {
    fn from_iter<I: IntoIterator<Item = Kind>>(iter: I) -> Self {
        let mut set = KindSet::EMPTY;
        for kind in iter {
            set.insert(kind);
        }
        set
    }
}

impl fmt::Debug for KindSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

/// The identity of an object within its kind: namespace (None for
/// cluster-scoped kinds) and name.
///
/// It exists as the sort key of every map in the snapshot, so maps iterate in a
/// stable order and two snapshots can be diffed by a merge walk.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey {
    /// The namespace, or `None` for cluster-scoped objects (Nodes, IngressClasses).
    pub namespace: Option<String>,
    /// `metadata.name`.
    pub name: String,
}

impl ObjectKey {
    /// A key for a namespaced object.
    pub fn namespaced(namespace: impl Into<String>, name: impl Into<String>) -> ObjectKey {
        ObjectKey {
            namespace: Some(namespace.into()),
            name: name.into(),
        }
    }

    /// A key for a cluster-scoped object.
    pub fn cluster(name: impl Into<String>) -> ObjectKey {
        ObjectKey {
            namespace: None,
            name: name.into(),
        }
    }

    /// The key of an object of `kind` from its metadata, or `None` when the
    /// name is missing (such an object cannot be stored). A namespaced object
    /// without a namespace gets `default`, like kubectl; a cluster-scoped object
    /// ignores any namespace it carries.
    pub fn from_meta(kind: Kind, meta: &ObjectMeta) -> Option<ObjectKey> {
        let name = meta.name.as_deref().filter(|n| !n.is_empty())?;
        let namespace = if kind.is_namespaced() {
            Some(
                meta.namespace
                    .as_deref()
                    .filter(|n| !n.is_empty())
                    .unwrap_or("default")
                    .to_owned(),
            )
        } else {
            None
        };
        Some(ObjectKey {
            namespace,
            name: name.to_owned(),
        })
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{ns}/{}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

/// Any object the view carries, as one value.
///
/// It exists so sources (manifest files, watchers of different kinds) can hand
/// a heterogeneous stream of objects to one [`Publisher`](crate::Publisher)
/// method.
#[derive(Clone, Debug, PartialEq)]
#[allow(clippy::large_enum_variant)]
pub enum Object {
    /// A Service.
    Service(Service),
    /// An EndpointSlice.
    EndpointSlice(EndpointSlice),
    /// An Ingress.
    Ingress(Ingress),
    /// An IngressClass.
    IngressClass(IngressClass),
    /// A Secret.
    Secret(Secret),
    /// A Node.
    Node(Node),
    /// A Pod.
    Pod(Pod),
}

impl Object {
    /// The kind of the object.
    pub fn kind(&self) -> Kind {
        match self {
            Object::Service(_) => Kind::Service,
            Object::EndpointSlice(_) => Kind::EndpointSlice,
            Object::Ingress(_) => Kind::Ingress,
            Object::IngressClass(_) => Kind::IngressClass,
            Object::Secret(_) => Kind::Secret,
            Object::Node(_) => Kind::Node,
            Object::Pod(_) => Kind::Pod,
        }
    }

    /// The object's metadata.
    pub fn meta(&self) -> &ObjectMeta {
        match self {
            Object::Service(o) => &o.metadata,
            Object::EndpointSlice(o) => &o.metadata,
            Object::Ingress(o) => &o.metadata,
            Object::IngressClass(o) => &o.metadata,
            Object::Secret(o) => &o.metadata,
            Object::Node(o) => &o.metadata,
            Object::Pod(o) => &o.metadata,
        }
    }

    /// The object's metadata, mutably (sources normalise namespaces and drop
    /// managed fields).
    pub fn meta_mut(&mut self) -> &mut ObjectMeta {
        match self {
            Object::Service(o) => &mut o.metadata,
            Object::EndpointSlice(o) => &mut o.metadata,
            Object::Ingress(o) => &mut o.metadata,
            Object::IngressClass(o) => &mut o.metadata,
            Object::Secret(o) => &mut o.metadata,
            Object::Node(o) => &mut o.metadata,
            Object::Pod(o) => &mut o.metadata,
        }
    }

    /// The key the object is stored under, or `None` when it has no name.
    pub fn key(&self) -> Option<ObjectKey> {
        ObjectKey::from_meta(self.kind(), self.meta())
    }
}

macro_rules! object_from {
    ($($ty:ident),*) => {$(
        impl From<$ty> for Object {
            fn from(o: $ty) -> Object {
                Object::$ty(o)
            }
        }
    )*};
}
object_from!(
    Service,
    EndpointSlice,
    Ingress,
    IngressClass,
    Secret,
    Node,
    Pod
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kindset_operations() {
        let set = KindSet::EMPTY.with(Kind::Service).with(Kind::Pod);
        assert!(set.contains(Kind::Service));
        assert!(!set.contains(Kind::Node));
        assert_eq!(
            set.iter().collect::<Vec<_>>(),
            vec![Kind::Service, Kind::Pod]
        );
        assert!(KindSet::ALL.is_superset(set));
        assert!(!set.is_superset(KindSet::ALL));
        assert_eq!(KindSet::ALL.iter().count(), 7);
        assert!(set.without(Kind::Service).without(Kind::Pod).is_empty());
    }

    #[test]
    fn keys_default_namespace_and_ignore_it_for_cluster_kinds() {
        let meta = ObjectMeta {
            name: Some("a".into()),
            ..Default::default()
        };
        assert_eq!(
            ObjectKey::from_meta(Kind::Service, &meta),
            Some(ObjectKey::namespaced("default", "a"))
        );
        let meta = ObjectMeta {
            name: Some("n1".into()),
            namespace: Some("x".into()),
            ..Default::default()
        };
        assert_eq!(
            ObjectKey::from_meta(Kind::Node, &meta),
            Some(ObjectKey::cluster("n1"))
        );
        assert_eq!(
            ObjectKey::from_meta(Kind::Pod, &ObjectMeta::default()),
            None
        );
        assert_eq!(ObjectKey::namespaced("ns", "a").to_string(), "ns/a");
    }
}
